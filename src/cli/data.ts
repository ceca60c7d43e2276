// `mf data list | verify | download`: the functions behind the commands (the commander wiring
// lives with the rest of the CLI). Each returns structured rows plus a printable text.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, FileFormatError, MfError } from '../errors.ts';
import { loadSplit, md5File } from '../data/dataset.ts';
import { DATASETS, fileFor, getDataset, numOutputs, SPLITS, type DatasetInfo } from '../data/registry.ts';
import { ensureSynthetic } from '../data/synthetic.ts';

const ALL_SIZES = [28, 64, 128, 224] as const;

export type Presence = 'present' | 'missing' | 'n/a';

export interface DataListRow {
  key: string;
  name: string;
  dim: 2 | 3;
  task: string;
  outputs: number;
  splits: string;
  synthetic: boolean;
  /** Per size: the file is there, is not, or the dataset has no such size. */
  sizes: Record<number, Presence>;
}

const isFile = (p: string): boolean => existsSync(p) && statSync(p).isFile();

function table(header: string[], rows: string[][]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(w[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}

/** Which dataset files are in `root`, for every known dataset and size. */
export function dataList(root: string): { rows: DataListRow[]; text: string } {
  const rows = DATASETS.map((ds): DataListRow => {
    const sizes: Record<number, Presence> = {};
    for (const s of ALL_SIZES) {
      const f = ds.files.find((x) => x.size === s);
      sizes[s] = f ? (isFile(join(root, f.file)) ? 'present' : 'missing') : 'n/a';
    }
    return {
      key: ds.key,
      name: ds.name,
      dim: ds.dim,
      task: ds.task,
      outputs: numOutputs(ds),
      splits: `${ds.splits.train}/${ds.splits.val}/${ds.splits.test}`,
      synthetic: ds.synthetic,
      sizes,
    };
  });
  const cell = (p: Presence, synthetic: boolean) => (p === 'present' ? 'yes' : p === 'n/a' ? '' : synthetic ? 'gen' : '-');
  const body = rows.map((r) => [
    r.key,
    `${r.dim}D`,
    r.task,
    String(r.outputs),
    r.splits,
    ...ALL_SIZES.map((s) => cell(r.sizes[s]!, r.synthetic)),
  ]);
  const n = rows.reduce((a, r) => a + Object.values(r.sizes).filter((p) => p === 'present').length, 0);
  const text = [
    `data root: ${root}`,
    table(['dataset', 'dim', 'task', 'out', 'train/val/test', '28', '64', '128', '224'], body),
    `${n} file(s) present. yes = present, - = missing (mf data download <key>), gen = generated on first use.`,
  ].join('\n');
  return { rows, text };
}

export interface VerifyRow {
  key: string;
  size: number;
  file: string;
  ok: boolean;
  /** null when the file has no official MD5 (synthetic) or is missing. */
  md5: string | null;
  /** "train/val/test" counts when the splits loaded. */
  counts: string | null;
  error: string | null;
}

/**
 * Checks every present file of the given datasets (default: all): MD5 against the official one,
 * then each split's shapes, dtypes, counts and label ranges. A key asked for by name whose
 * files are all missing is reported as an error.
 */
export async function dataVerify(root: string, keys?: readonly string[]): Promise<{ rows: VerifyRow[]; ok: boolean; text: string }> {
  const chosen: DatasetInfo[] = keys?.length ? keys.map(getDataset) : [...DATASETS];
  const rows: VerifyRow[] = [];
  for (const ds of chosen) {
    const present = ds.files.filter((f) => isFile(join(root, f.file)));
    if (present.length === 0 && keys && keys.length) {
      const f = ds.files[0]!;
      rows.push({
        key: ds.key,
        size: f.size,
        file: f.file,
        ok: false,
        md5: null,
        counts: null,
        error: `missing from ${root}${ds.synthetic ? '' : ` (mf data download ${ds.key})`}`,
      });
    }
    for (const f of present) {
      const row: VerifyRow = { key: ds.key, size: f.size, file: f.file, ok: false, md5: null, counts: null, error: null };
      rows.push(row);
      try {
        const path = join(root, f.file);
        if (f.md5) {
          row.md5 = await md5File(path);
          if (row.md5 !== f.md5) {
            throw new FileFormatError(`MD5 ${row.md5}, expected ${f.md5}`, 'an old, modified or damaged copy; re-download it');
          }
        }
        const counts = SPLITS.map((s) => loadSplit(ds, s, { root, size: f.size }).n);
        row.counts = counts.join('/');
        row.ok = true;
      } catch (e) {
        if (!(e instanceof MfError)) throw e;
        row.error = e.message;
      }
    }
  }
  const ok = rows.every((r) => r.ok);
  const body = rows.map((r) => [r.file, r.ok ? 'ok' : 'FAIL', r.counts ?? '', r.error ?? '']);
  const text =
    rows.length === 0
      ? `no dataset files in ${root}; download with \`mf data download <key>\` or copy the .npz files there`
      : [
          table(['file', 'status', 'train/val/test', 'problem'], body),
          ok ? `all ${rows.length} file(s) ok` : `${rows.filter((r) => !r.ok).length} of ${rows.length} file(s) failed`,
        ].join('\n');
  return { rows, ok, text };
}

export interface DownloadOptions {
  /** Injected for tests; defaults to the global fetch. */
  fetch?: typeof fetch;
  /** Give up after this long without the whole file (default 30 min). */
  timeoutMs?: number;
  /** Called as bytes arrive (total from Content-Length, or null). */
  onProgress?: (bytes: number, total: number | null) => void;
}

export interface DownloadResult {
  path: string;
  md5: string | null;
  /** False when an intact copy was already there (or the set is synthetic and was generated). */
  downloaded: boolean;
}

/**
 * Downloads one dataset file from Zenodo into `root`: streamed to a hidden temp file in the same
 * folder while hashing, MD5-checked, then renamed into place, so the real name only ever holds a
 * verified file. Any failure removes the temp file. Synthetic sets are generated instead.
 */
export async function dataDownload(key: string, root: string, size = 28, opts: DownloadOptions = {}): Promise<DownloadResult> {
  const ds = getDataset(key);
  if (ds.synthetic) {
    fileFor(ds, size);
    return { path: ensureSynthetic(root, ds.key), md5: null, downloaded: false };
  }
  const rec = fileFor(ds, size);
  if (!rec.url || !rec.md5) throw new ConfigError(`${ds.key} has no download URL`);
  const dest = join(root, rec.file);
  if (isFile(dest) && (await md5File(dest)) === rec.md5) return { path: dest, md5: rec.md5, downloaded: false };

  const manual = `copy ${rec.file} into ${root} manually (download it from that URL on a machine with internet access), then run \`mf data verify ${ds.key}\``;
  try {
    mkdirSync(root, { recursive: true });
  } catch (e) {
    throw new MfError(
      `cannot create data root ${root} (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
      'pass a writable --data-root or set MEDMNIST_ROOT',
    );
  }
  const tmp = join(root, `.${rec.file}.${process.pid}.${randomBytes(4).toString('hex')}.part`);
  // If the process exits mid-download (an error elsewhere, process.exit), drop the temp file too.
  const cleanup = () => rmSync(tmp, { force: true });
  process.once('exit', cleanup);
  try {
    let res: Response;
    try {
      res = await (opts.fetch ?? fetch)(rec.url, { signal: AbortSignal.timeout(opts.timeoutMs ?? 30 * 60_000), redirect: 'follow' });
    } catch (e) {
      throw new MfError(`could not reach ${rec.url} (${causeOf(e)})`, manual);
    }
    if (!res.ok || !res.body) throw new MfError(`download of ${rec.url} failed: HTTP ${res.status}`, manual);
    const total = Number(res.headers.get('content-length')) || null;
    const hash = createHash('md5');
    const fh = await open(tmp, 'wx');
    let bytes = 0;
    try {
      const reader = res.body.getReader();
      for (;;) {
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch (e) {
          throw new MfError(`download of ${rec.url} broke off after ${bytes} bytes (${causeOf(e)})`, manual);
        }
        if (chunk.done) break;
        hash.update(chunk.value);
        await fh.write(chunk.value);
        bytes += chunk.value.length;
        opts.onProgress?.(bytes, total);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    const md5 = hash.digest('hex');
    if (md5 !== rec.md5) {
      throw new FileFormatError(
        `${rec.url}: downloaded ${bytes} bytes with MD5 ${md5}, expected ${rec.md5}`,
        `the download was damaged or the file changed upstream; retry, or ${manual}`,
      );
    }
    renameSync(tmp, dest);
    return { path: dest, md5, downloaded: true };
  } finally {
    cleanup();
    process.removeListener('exit', cleanup);
  }
}

/** A fetch failure's root cause in a few words ("getaddrinfo ENOTFOUND zenodo.org"). */
function causeOf(e: unknown): string {
  let err: unknown = e;
  while (err instanceof Error && err.cause !== undefined) err = err.cause;
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s+/g, ' ').slice(0, 160);
}
