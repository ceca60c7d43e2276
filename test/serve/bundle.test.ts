// The engine runs in a browser: every module of src/backend, src/tensor, src/ops, src/nn and src/models but the
// Node side (dawn.ts: Dawn and the kernels read from disk; index.ts: the engine choice of `mf`) bundles for
// platform "browser", where any Node import is a build error; the page of `mf serve` bundles the same way, with
// every kernel's WGSL inlined exactly as kernels/*.wgsl holds it.
import fs from 'node:fs';
import path from 'node:path';
import * as esbuild from 'esbuild';
import { describe, expect, it } from 'vitest';
import { KERNELS } from '../../src/backend/kernels/index.ts';
import { BROWSER_BUILD, buildWeb, ROOT, writeWeb } from '../../src/serve/bundle.ts';
import { tmpDir } from '../run/helpers.ts';

const ENGINE_DIRS = ['src/backend', 'src/tensor', 'src/ops', 'src/nn', 'src/models'];
/** What the page reads dropped files and prepares inputs with: `mf predict`'s own code, with no Node import. */
const PAGE_READERS = ['src/data/nifti-codec.ts', 'src/data/npy-codec.ts', 'src/data/model-input.ts'];
/** The engine's Node side: the only modules there that may import Node (and that a page never loads). */
const NODE_SIDE = ['src/backend/dawn.ts', 'src/backend/index.ts'];

function engineFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(rel);
      else if (rel.endsWith('.ts') && !NODE_SIDE.includes(rel)) out.push(rel);
    }
  };
  ENGINE_DIRS.forEach(walk);
  return out.sort();
}

/** The build errors of bundling `entries` for the browser (none: it bundles). */
async function browserBuildErrors(entries: string[]): Promise<string[]> {
  try {
    await esbuild.build({ ...BROWSER_BUILD, entryPoints: entries.map((f) => path.join(ROOT, f)), outdir: '/virtual', write: false });
    return [];
  } catch (e) {
    return ((e as esbuild.BuildFailure).errors ?? []).map((x) => `${x.location?.file ?? '?'}: ${x.text}`);
  }
}

describe('the engine in the browser', () => {
  it('bundles every engine module for platform "browser" (no Node import), while the Node side does not', async () => {
    const files = engineFiles();
    expect(files).toContain('src/backend/webgpu.ts');
    expect(files).toContain('src/models/medformer.ts');
    expect(await browserBuildErrors(files)).toEqual([]);
    // The check can fail: the Node side, bundled for a browser, is refused for its Node imports.
    const errors = await browserBuildErrors(['src/backend/dawn.ts']);
    expect(errors.join('\n')).toMatch(/node:fs|node:url/);
  });

  it("bundles the page's file parsers and input preparation for the browser, while the readers of files do not", async () => {
    expect(await browserBuildErrors(PAGE_READERS)).toEqual([]);
    // The check can fail: the Node wrappers that read files (and so import node:fs) are refused.
    expect((await browserBuildErrors(['src/data/nifti.ts'])).join('\n')).toMatch(/node:fs/);
    expect((await browserBuildErrors(['src/data/npz.ts'])).join('\n')).toMatch(/node:fs|node:path/);
    // node:zlib, which crc32.ts reaches at run time through process.getBuiltinModule, is an error when imported.
    const elsewhere = await esbuild
      .build({
        ...BROWSER_BUILD,
        stdin: { contents: "import zlib from 'node:zlib'; export default zlib;", resolveDir: ROOT },
        write: false,
      })
      .then(
        () => [],
        (e: esbuild.BuildFailure) => e.errors.map((x) => x.text),
      );
    expect(elsewhere.join('\n')).toMatch(/node:zlib/);
  });

  it("builds the page with every kernel's WGSL inlined, byte for byte, and no Node module or Dawn in it", async () => {
    const { assets, inputs } = await buildWeb();
    expect(assets.map((a) => a.name).sort()).toEqual(['app.css', 'app.css.map', 'app.js', 'app.js.map', 'index.html']);
    expect(inputs.filter((i) => /^node:|node_modules\/webgpu\//.test(i))).toEqual([]);
    expect(inputs.filter((i) => i.includes('node:'))).toEqual([]);
    for (const reader of PAGE_READERS) expect(inputs).toContain(reader);
    for (const family of KERNELS.keys()) expect(inputs).toContain(`kernels/${family}.wgsl`);

    // What the page's loader (kernel-sources.ts) hands the runtime is the file on disk, for every family.
    const probe = await esbuild.build({
      ...BROWSER_BUILD,
      platform: 'neutral',
      stdin: {
        contents: `import { loadKernelSources } from './src/backend/kernel-sources.ts';
          import { KERNELS } from './src/backend/kernels/index.ts';
          export default async () => { const get = await loadKernelSources(); return Object.fromEntries([...KERNELS.keys()].map((k) => [k, get(k)])); };`,
        resolveDir: ROOT,
        loader: 'ts',
      },
      write: false,
    });
    const mod = (await import(`data:text/javascript;base64,${Buffer.from(probe.outputFiles[0]!.contents).toString('base64')}`)) as {
      default: () => Promise<Record<string, string>>;
    };
    const sources = await mod.default();
    expect(Object.keys(sources).sort()).toEqual([...KERNELS.keys()].sort());
    for (const [family, text] of Object.entries(sources))
      expect(text, family).toBe(fs.readFileSync(path.join(ROOT, `kernels/${family}.wgsl`), 'utf8'));
  });

  it('writes the page to a folder (npm run build:web)', async () => {
    const out = tmpDir('web');
    const files = await writeWeb(out);
    expect(files.map((f) => path.basename(f)).sort()).toEqual(['app.css', 'app.css.map', 'app.js', 'app.js.map', 'index.html']);
    expect(fs.readFileSync(path.join(out, 'index.html'), 'utf8')).toContain('src="app.js"');
    expect(fs.statSync(path.join(out, 'app.js')).size).toBeGreaterThan(100_000);
  });
});
