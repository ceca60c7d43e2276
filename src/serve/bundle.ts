// The page of `mf serve`, bundled by esbuild for the browser: the dashboard (web/app.ts) with the engine, the
// models and the input preparation of `mf predict`, and the kernels' WGSL inlined as text. platform "browser"
// makes any Node import a build error, which is how the engine's portability is checked (test/serve/bundle.test.ts).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BuildOptions, Metafile } from 'esbuild';
import { MfError } from '../errors.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const WEB_DIR = path.join(ROOT, 'web');

/** The options every browser bundle of this project is built with (the page, and the engine check). */
export const BROWSER_BUILD: BuildOptions = {
  bundle: true,
  platform: 'browser',
  format: 'esm',
  target: 'es2022',
  loader: { '.wgsl': 'text' },
  logLevel: 'silent',
  legalComments: 'none',
};

/** A built file of the page: its name under the site root and its bytes. */
export interface WebAsset {
  name: string;
  bytes: Uint8Array;
  type: string;
}

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.map': 'application/json',
};

/** The page's files (index.html, app.js, app.css), built in memory; `inputs` are the sources the bundle holds. */
export async function buildWeb(): Promise<{ assets: WebAsset[]; inputs: string[] }> {
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch {
    throw new MfError('esbuild is not installed: the page of mf serve is built with it', 'run npm ci');
  }
  const outdir = path.join(ROOT, 'dist/web');
  let result: { outputFiles?: { path: string; contents: Uint8Array }[]; metafile?: Metafile };
  try {
    result = await esbuild.build({
      ...BROWSER_BUILD,
      entryPoints: { app: path.join(WEB_DIR, 'app.ts') },
      outdir,
      write: false,
      metafile: true,
      sourcemap: 'linked',
    });
  } catch (e) {
    const errors = (e as { errors?: { text: string; location?: { file: string; line: number } | null }[] }).errors ?? [];
    const first = errors[0];
    const where = first?.location ? `${first.location.file}:${first.location.line}: ` : '';
    throw new MfError(`building the page of mf serve failed: ${where}${first?.text ?? String(e)}`);
  }
  const assets: WebAsset[] = (result.outputFiles ?? []).map((f) => {
    const name = path.relative(outdir, f.path).split(path.sep).join('/');
    return { name, bytes: f.contents, type: TYPES[path.extname(name)] ?? 'application/octet-stream' };
  });
  assets.push({ name: 'index.html', bytes: fs.readFileSync(path.join(WEB_DIR, 'index.html')), type: TYPES['.html']! });
  return { assets, inputs: Object.keys(result.metafile?.inputs ?? {}) };
}

/** `npm run build:web`: the page's files into dist/web/ (git-ignored), for hosting them elsewhere. */
export async function writeWeb(outdir = path.join(ROOT, 'dist/web')): Promise<string[]> {
  const { assets } = await buildWeb();
  fs.mkdirSync(outdir, { recursive: true });
  for (const a of assets) fs.writeFileSync(path.join(outdir, a.name), a.bytes);
  return assets.map((a) => path.join(outdir, a.name));
}
