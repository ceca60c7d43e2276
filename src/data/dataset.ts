// Loading one split of a MedMNIST (or synthetic) npz into memory as channel-first uint8 images
// plus int32 labels, with every shape, dtype, count and label range checked against the
// registry, so a wrong, old or modified file fails at load time with a message saying so.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { FileFormatError, MfError } from '../errors.ts';
import { readNpz, type NpyArray } from './npz.ts';
import type { DataSource } from '../train/records.ts';
import { fileFor, getDataset, numClasses, numLabelColumns, type DatasetInfo, type Split } from './registry.ts';
import { ensureSynthetic } from './synthetic.ts';

export interface LoadedSplit {
  ds: DatasetInfo;
  split: Split;
  /** Side length in pixels (28, 64, 128, 224). */
  size: number;
  /** Path of the npz it came from. */
  file: string;
  n: number;
  /** n samples, each C×H×W (2D) or C×D×H×W (3D), uint8, channel-first. */
  images: Uint8Array;
  /** n × numLabels int32: the class index (numLabels 1) or 14 multi-label 0/1 flags. */
  labels: Int32Array;
  numLabels: number;
  /** Per-sample shape: [C, H, W] or [C, D, H, W]. */
  shape: number[];
  /** Where the split came from, when its loader says (MNIST, CIFAR: files or a generated stand-in); else `file` (provenance.ts). */
  source?: DataSource;
}

export interface LoadOptions {
  root: string;
  size?: number;
  /** Require the official v2.2.4+/v3 sample counts (default true; synthetic sets are never checked). */
  strictCounts?: boolean;
}

/** Where the npz files live: the --data-root flag, else $MEDMNIST_ROOT, else ~/.medmnist (medmnist's own default). */
export function resolveDataRoot(flag?: string): string {
  const pick = flag?.trim() || process.env.MEDMNIST_ROOT?.trim() || join(homedir(), '.medmnist');
  return resolve(pick.startsWith('~/') || pick === '~' ? join(homedir(), pick.slice(1)) : pick);
}

/** MD5 of a file as lowercase hex, streamed so multi-GB files need no memory. */
export function md5File(path: string): Promise<string> {
  return new Promise((done, reject) => {
    const h = createHash('md5');
    createReadStream(path)
      .on('error', (e: NodeJS.ErrnoException) => {
        reject(
          e.code === 'ENOENT'
            ? new FileFormatError(
                `${path}: file not found`,
                'fetch it with `mf data download <key>` or `mf run --download`, or copy it into the data root',
              )
            : new MfError(`cannot read ${path} (${e.code ?? e.message})`, 'check its permissions'),
        );
      })
      .on('data', (chunk) => h.update(chunk))
      .on('end', () => done(h.digest('hex')));
  });
}

const HINT = 'the file is not the official MedMNIST v2.2.4+/v3 one; re-download it with `mf data download`';
const LABEL_DTYPES = new Set(['|u1', '|i1', '<u2', '<i2', '<u4', '<i4', '<u8', '<i8']);

function bad(file: string, key: string, what: string, hint = HINT): never {
  throw new FileFormatError(`${file} [${key}]: ${what}`, hint);
}

const fmt = (shape: readonly number[]) => `(${shape.join(', ')})`;

/**
 * Loads `<split>_images` / `<split>_labels` of a dataset at one size. Official 2D images are
 * N×H×W (gray) or N×H×W×3 (RGB, converted here to N×3×H×W); 3D volumes are N×D×H×W (one channel).
 * Synthetic sets are generated on first use.
 */
export function loadSplit(dsOrKey: DatasetInfo | string, split: Split, opts: LoadOptions): LoadedSplit {
  const ds = typeof dsOrKey === 'string' ? getDataset(dsOrKey) : dsOrKey;
  const size = opts.size ?? 28;
  const rec = fileFor(ds, size);
  const file = ds.synthetic ? ensureSynthetic(opts.root, ds.key) : join(opts.root, rec.file);
  const ik = `${split}_images`;
  const lk = `${split}_labels`;
  const strict = (opts.strictCounts ?? true) && !ds.synthetic;
  // An official file holds exactly its split's samples: an entry larger than that (plus a .npy header) is refused
  // before it is inflated, however honest its sizes.
  const voxels = ds.dim === 3 ? size ** 3 : size * size * ds.channels;
  const arrays = readNpz(
    file,
    [ik, lk],
    strict ? { maxBytes: { [ik]: 65548 + ds.splits[split] * voxels, [lk]: 65548 + ds.splits[split] * numLabelColumns(ds) * 8 } } : {},
  );
  const img = arrays.get(ik)!;
  const lab = arrays.get(lk)!;

  // Images: uint8 with the official layout.
  if (img.dtype !== '|u1') bad(file, ik, `dtype ${img.dtype}, expected uint8 (|u1)`);
  const n = img.shape[0] ?? 0;
  const C = ds.channels;
  const expect = ds.dim === 3 ? [n, size, size, size] : C === 3 ? [n, size, size, 3] : [n, size, size];
  if (img.shape.length !== expect.length || img.shape.some((d, i) => d !== expect[i])) {
    bad(file, ik, `shape ${fmt(img.shape)}, expected ${fmt(expect)} for ${ds.name} at ${size}px`);
  }
  if (n === 0) bad(file, ik, 'no samples');
  if (strict && n !== ds.splits[split]) {
    bad(file, ik, `${n} samples, ${ds.name} ${split} has ${ds.splits[split]} (v2.2.4+/v3 counts)`);
  }

  const cols = numLabelColumns(ds);
  const labels = checkLabels(ds, file, lk, lab, n);

  const shape = ds.dim === 3 ? [1, size, size, size] : [C, size, size];
  const images = C === 3 ? nhwcToNchw(img.data as Uint8Array, n, size * size, 3) : (img.data as Uint8Array);
  return { ds, split, size, file, n, images, labels, numLabels: cols, shape };
}

/** A split's labels as int32: integer, `n` × columns (n = the array's own rows when null), every value in range. */
function checkLabels(ds: DatasetInfo, file: string, lk: string, lab: NpyArray, n: number | null): Int32Array {
  const cols = numLabelColumns(ds);
  if (!LABEL_DTYPES.has(lab.dtype)) bad(file, lk, `dtype ${lab.dtype}, expected an integer type`);
  const rows = n ?? lab.shape[0] ?? 0;
  if (lab.shape.length !== 2 || lab.shape[0] !== rows || lab.shape[1] !== cols) {
    bad(file, lk, `shape ${fmt(lab.shape)}, expected ${fmt([rows, cols])}`);
  }
  const labels = toInt32(lab);
  const K = numClasses(ds);
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i]!;
    if (!(v >= 0 && v < K)) {
      const row = Math.floor(i / cols);
      const what =
        ds.task === 'multi-label' ? `flag ${i % cols} is ${v}, expected 0 or 1` : `label ${v}, expected 0..${K - 1} (${ds.task})`;
      bad(file, lk, `row ${row}: ${what}`);
    }
  }
  return labels;
}

/** One split's labels without its images: what the majority-class baseline needs. */
export interface LoadedLabels {
  ds: DatasetInfo;
  split: Split;
  file: string;
  n: number;
  /** n × numLabels int32, as LoadedSplit.labels. */
  labels: Int32Array;
  numLabels: number;
}

/**
 * Only `<split>_labels` of a dataset at one size, with loadSplit's label checks (dtype, shape, range, the official
 * count); the images are neither read nor inflated (readNpz extracts just the entries asked for).
 */
export function loadLabels(dsOrKey: DatasetInfo | string, split: Split, opts: LoadOptions): LoadedLabels {
  const ds = typeof dsOrKey === 'string' ? getDataset(dsOrKey) : dsOrKey;
  const rec = fileFor(ds, opts.size ?? 28);
  const file = ds.synthetic ? ensureSynthetic(opts.root, ds.key) : join(opts.root, rec.file);
  const lk = `${split}_labels`;
  const strict = (opts.strictCounts ?? true) && !ds.synthetic;
  const cols = numLabelColumns(ds);
  const lab = readNpz(file, [lk], strict ? { maxBytes: { [lk]: 65548 + ds.splits[split] * cols * 8 } } : {}).get(lk)!;
  const labels = checkLabels(ds, file, lk, lab, null);
  const n = labels.length / cols;
  if (n === 0) bad(file, lk, 'no samples');
  if (strict && n !== ds.splits[split]) bad(file, lk, `${n} samples, ${ds.name} ${split} has ${ds.splits[split]} (v2.2.4+/v3 counts)`);
  return { ds, split, file, n, labels, numLabels: cols };
}

function toInt32(a: NpyArray): Int32Array {
  const d = a.data;
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) {
    const out = new Int32Array(d.length);
    // Out-of-int32 values become -1 so the range check reports them.
    for (let i = 0; i < d.length; i++) out[i] = d[i]! >= 0n && d[i]! < 2n ** 31n ? Number(d[i]) : -1;
    return out;
  }
  if (d instanceof Uint32Array) return Int32Array.from(d, (v) => (v > 0x7fffffff ? -1 : v));
  return Int32Array.from(d as ArrayLike<number>);
}

/** N×P×C (pixels last) to N×C×P (channels first), P = pixels per image. */
export function nhwcToNchw(src: Uint8Array, n: number, P: number, C: number): Uint8Array {
  const out = new Uint8Array(src.length);
  for (let s = 0; s < n; s++) {
    const base = s * P * C;
    for (let p = 0; p < P; p++) {
      for (let c = 0; c < C; c++) out[base + c * P + p] = src[base + p * C + c]!;
    }
  }
  return out;
}
