// `mf data list | verify | download`: the functions behind the commands (the commander wiring
// lives with the rest of the CLI). Each returns structured rows plus a printable text.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileFormatError, MfError } from '../errors.ts';
import { loadSplit, md5File } from '../data/dataset.ts';
import { type DownloadResult, downloadFile, type FetchOptions, formatBytes } from '../data/download.ts';
import { loadExperiment } from '../kinds/index.ts';
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
  /** Each file of the dataset: its size in bytes (null: unknown here) and the experiments that read it. */
  files: DataFileRow[];
}

export interface DataFileRow {
  size: number;
  file: string;
  bytes: number | null;
  present: boolean;
  /** Experiment names (file names without .json) in the experiments folder whose runs read this file. */
  experiments: string[];
}

const isFile = (p: string): boolean => existsSync(p) && statSync(p).isFile();

/** The project's own experiment files. */
const EXPERIMENTS = fileURLToPath(new URL('../../experiments/', import.meta.url));

function table(header: string[], rows: string[][]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(w[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}

/**
 * The official files each experiment in `dir` reads (file name -> experiment names), as `mf run` would resolve them;
 * an experiment that does not load is listed in `problems` with its error.
 */
export function experimentFiles(dir: string): { byFile: Map<string, string[]>; problems: string[] } {
  const byFile = new Map<string, string[]>();
  const problems: string[] = [];
  const names = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.json'))
        .sort()
    : [];
  for (const f of names) {
    const name = basename(f, '.json');
    try {
      for (const need of loadExperiment(join(dir, f)).data()?.files ?? []) {
        byFile.set(need.rec.file, [...(byFile.get(need.rec.file) ?? []), name]);
      }
    } catch (e) {
      if (!(e instanceof MfError)) throw e;
      problems.push(`${f}: ${e.message}`);
    }
  }
  return { byFile, problems };
}

/**
 * Which dataset files are in `root`, for every known dataset and size, with each file's size and the experiments
 * in `experimentsDir` (default: the project's experiments/) that read it.
 */
export function dataList(root: string, experimentsDir = EXPERIMENTS): { rows: DataListRow[]; text: string } {
  const { byFile, problems } = experimentFiles(experimentsDir);
  const rows = DATASETS.map((ds): DataListRow => {
    const sizes: Record<number, Presence> = {};
    for (const s of ALL_SIZES) {
      const f = ds.files.find((x) => x.size === s);
      sizes[s] = f ? (isFile(join(root, f.file)) ? 'present' : 'missing') : 'n/a';
    }
    const files = ds.files.map(
      (f): DataFileRow => ({
        size: f.size,
        file: f.file,
        bytes: f.bytes,
        present: sizes[f.size] === 'present',
        experiments: byFile.get(f.file) ?? [],
      }),
    );
    return {
      key: ds.key,
      name: ds.name,
      dim: ds.dim,
      task: ds.task,
      outputs: numOutputs(ds),
      splits: `${ds.splits.train}/${ds.splits.val}/${ds.splits.test}`,
      synthetic: ds.synthetic,
      sizes,
      files,
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
  const needed = rows.flatMap((r) => r.files.filter((f) => f.experiments.length && !r.synthetic));
  const missing = needed.filter((f) => !f.present);
  const missingBytes = missing.reduce((a, f) => a + (f.bytes ?? 0), 0);
  const unknown = missing.filter((f) => f.bytes === null).length;
  const text = [
    `data root: ${root}`,
    table(['dataset', 'dim', 'task', 'out', 'train/val/test', '28', '64', '128', '224'], body),
    `${n} file(s) present. yes = present, - = missing (mf data download <key>), gen = generated on first use.`,
    '',
    `official files the experiments in ${experimentsDir} read (mf run --download fetches the missing ones):`,
    table(
      ['file', 'size', 'here', 'experiments'],
      needed.map((f) => [f.file, f.bytes === null ? '?' : formatBytes(f.bytes), f.present ? 'yes' : '-', f.experiments.join(', ')]),
    ),
    `${missing.length} of ${needed.length} missing: ${formatBytes(missingBytes)}${unknown ? ` plus ${unknown} of unknown size (?)` : ''}.`,
    ...problems.map((p) => `not read: ${p}`),
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

/**
 * Downloads one dataset file from Zenodo into `root` (src/data/download.ts: MD5-checked, atomic, resumable).
 * Synthetic sets are generated instead.
 */
export async function dataDownload(key: string, root: string, size = 28, opts: FetchOptions = {}): Promise<DownloadResult> {
  const ds = getDataset(key);
  const rec = fileFor(ds, size);
  if (ds.synthetic) return { path: ensureSynthetic(root, ds.key), md5: null, downloaded: false, resumedFrom: 0 };
  return downloadFile(rec, root, opts);
}
