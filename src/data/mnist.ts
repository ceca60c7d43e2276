// MNIST for the thesis's backforward experiment (section 5.3, Figure 5.4): the four IDX files of LeCun, Cortes and
// Burges (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each
// optionally gzipped) that the user puts in `<data root>/mnist/`. Training is the first 50,000 training images,
// validation the last 10,000 (the usual split; the thesis prints none), test the 10,000 t10k images. Without the
// files a generated set of seven-segment digits stands in (seeded; 2,000 / 500 / 500 images), and the run says so.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { ConfigError, FileFormatError } from '../errors.ts';
import { Rng } from '../util/rng.ts';
import type { LoadedSplit } from './dataset.ts';
import { type DataSource, filesSource, standInSource } from './provenance.ts';
import { BODY_PARTS, type DatasetInfo, MODALITIES, type Split } from './registry.ts';

export const MNIST_KEY = 'mnist';
export const MNIST_SIDE = 28;
/** Validation images taken from the end of the training file. */
export const MNIST_VAL = 10_000;
const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

/**
 * MNIST as the trainer sees a data set. It is not a medical set: its latents (used by Medformer only) are the
 * synthetic ones, and it has no official download here (the user supplies the files).
 */
export const MNIST: DatasetInfo = {
  key: MNIST_KEY,
  name: 'MNIST',
  dim: 2,
  modality: 'synthetic',
  bodyPart: 'synthetic',
  task: 'multi-class',
  labels: DIGITS,
  channels: 1,
  splits: { train: 60_000 - MNIST_VAL, val: MNIST_VAL, test: 10_000 },
  files: [],
  latent: { dim: 0, modality: MODALITIES.indexOf('synthetic'), bodyPart: BODY_PARTS.indexOf('synthetic') },
  license: 'MNIST: Y. LeCun, C. Cortes, C. J. C. Burges (CC BY-SA 3.0)',
  synthetic: false,
};

export const isMnist = (key: string): boolean => key.toLowerCase() === MNIST_KEY;

/** An IDX array: its dimensions and its unsigned bytes. */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/**
 * Reads an IDX file (gzipped or not): two zero bytes, type 0x08 (unsigned byte, the only type MNIST uses), the
 * number of dimensions, each dimension as a big-endian u32, then the data. Anything else is one FileFormatError line.
 */
export function readIdx(file: string): IdxArray {
  let buf: Buffer = fs.readFileSync(file);
  const fix = 'use the original MNIST files (train-images-idx3-ubyte, …), gzipped or not';
  if (buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = zlib.gunzipSync(buf);
    } catch (e) {
      throw new FileFormatError(`${file}: not a valid gzip file (${(e as Error).message})`, fix);
    }
  }
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0) throw new FileFormatError(`${file}: not an IDX file (bad magic number)`, fix);
  if (buf[2] !== 0x08) throw new FileFormatError(`${file}: IDX type 0x${buf[2].toString(16)} is not unsigned bytes (0x08)`, fix);
  const nd = buf[3];
  if (nd < 1 || nd > 4 || buf.length < 4 + 4 * nd) throw new FileFormatError(`${file}: IDX header with ${nd} dimensions is cut short`, fix);
  const dims = Array.from({ length: nd }, (_, i) => buf.readUInt32BE(4 + 4 * i));
  const n = dims.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * nd;
  if (buf.length - start !== n) {
    throw new FileFormatError(`${file}: IDX header says ${dims.join('×')} = ${n} bytes, the file holds ${buf.length - start}`, fix);
  }
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + start, n) };
}

/** Writes an IDX file of unsigned bytes (tests, and converting other digit sets). */
export function writeIdx(file: string, dims: readonly number[], data: Uint8Array): void {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = 0x08;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(data)]));
}

const FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
} as const;

/** The folder the IDX files are read from. */
export const mnistDir = (root: string): string => path.join(root, MNIST_KEY);

function find(dir: string, name: string): string | null {
  for (const f of [name, `${name}.gz`]) if (fs.existsSync(path.join(dir, f))) return path.join(dir, f);
  return null;
}

function images(file: string): { n: number; data: Uint8Array } {
  const a = readIdx(file);
  if (a.dims.length !== 3 || a.dims[1] !== MNIST_SIDE || a.dims[2] !== MNIST_SIDE) {
    throw new FileFormatError(`${file}: images of ${a.dims.join('×')}, not N×28×28`, 'use the original MNIST image files');
  }
  return { n: a.dims[0], data: a.data };
}

function labels(file: string, n: number): Int32Array {
  const a = readIdx(file);
  if (a.dims.length !== 1 || a.dims[0] !== n)
    throw new FileFormatError(`${file}: ${a.dims.join('×')} labels for ${n} images`, 'use the matching label file');
  const bad = a.data.findIndex((y) => y > 9);
  if (bad >= 0)
    throw new FileFormatError(`${file}: label ${a.data[bad]} at ${bad} is not a digit 0-9`, 'use the original MNIST label file');
  return Int32Array.from(a.data);
}

export interface MnistSplits {
  train: LoadedSplit;
  val: LoadedSplit;
  test: LoadedSplit;
  /** False when the generated digits stood in for missing files. */
  real: boolean;
}

/** MNIST's three splits from `<root>/mnist/`, or the generated digits when none of the four files is there. */
export function loadMnist(root: string, opts: { syntheticSeed?: number } = {}): MnistSplits {
  const dir = mnistDir(root);
  const found = Object.fromEntries(Object.entries(FILES).map(([k, name]) => [k, find(dir, name)])) as Record<
    keyof typeof FILES,
    string | null
  >;
  const present = Object.values(found).filter((f) => f !== null);
  if (present.length === 0) return { ...syntheticDigits(opts.syntheticSeed ?? 0), real: false };
  const missing = Object.entries(found)
    .filter(([, f]) => f === null)
    .map(([k]) => FILES[k as keyof typeof FILES]);
  if (missing.length)
    throw new ConfigError(
      `${dir}: MNIST is missing ${missing.join(', ')}`,
      'copy all four IDX files there (or none, for the generated digits)',
    );
  const tr = images(found.trainImages!);
  const trl = labels(found.trainLabels!, tr.n);
  const te = images(found.testImages!);
  const tel = labels(found.testLabels!, te.n);
  const nVal = Math.min(MNIST_VAL, Math.floor(tr.n / 6));
  const P = MNIST_SIDE * MNIST_SIDE;
  const cut = tr.n - nVal;
  const trainFiles = filesSource([found.trainImages!, found.trainLabels!]);
  return {
    train: split('train', found.trainImages!, tr.data.subarray(0, cut * P), trl.subarray(0, cut), trainFiles),
    val: split('val', found.trainImages!, tr.data.subarray(cut * P), trl.subarray(cut), trainFiles),
    test: split('test', found.testImages!, te.data, tel, filesSource([found.testImages!, found.testLabels!])),
    real: true,
  };
}

function split(which: Split, file: string, data: Uint8Array, y: Int32Array, source: DataSource): LoadedSplit {
  return {
    ds: MNIST,
    split: which,
    size: MNIST_SIDE,
    file,
    n: y.length,
    images: Uint8Array.from(data),
    labels: Int32Array.from(y),
    numLabels: 1,
    shape: [1, MNIST_SIDE, MNIST_SIDE],
    source,
  };
}

// Seven-segment digits: segments a (top), b (upper right), c (lower right), d (bottom), e (lower left), f (upper
// left), g (middle), as x0, y0, x1, y1 in a 10×18 box.
const SEGMENTS: Record<string, [number, number, number, number]> = {
  a: [0, 0, 10, 0],
  b: [10, 0, 10, 9],
  c: [10, 9, 10, 18],
  d: [0, 18, 10, 18],
  e: [0, 9, 0, 18],
  f: [0, 0, 0, 9],
  g: [0, 9, 10, 9],
};
const DIGIT_SEGMENTS = ['abcdef', 'bc', 'abdeg', 'abcdg', 'bcfg', 'acdfg', 'acdefg', 'abc', 'abcdefg', 'abcdfg'];

/** One generated digit: its segments at a random offset, scale, slant and stroke width, with pixel noise. */
function drawDigit(digit: number, rng: Rng, out: Uint8Array): void {
  const s = rng.uniform(0.8, 1.15);
  const slant = rng.uniform(-0.25, 0.25);
  const ox = 14 - 5 * s + rng.uniform(-3, 3);
  const oy = 14 - 9 * s + rng.uniform(-2.5, 2.5);
  const width = rng.uniform(1.1, 2.0);
  const ink = rng.uniform(180, 255);
  const canvas = new Float32Array(MNIST_SIDE * MNIST_SIDE);
  // Each segment's end points on the canvas (slanted), then per pixel near it the ink of a stroke of `width`.
  const at = (px: number, py: number): [number, number] => {
    const yy = oy + s * py;
    return [ox + s * px + slant * (yy - 14), yy];
  };
  for (const seg of DIGIT_SEGMENTS[digit]) {
    const [x0, y0, x1, y1] = SEGMENTS[seg];
    const [ax, ay] = at(x0, y0);
    const [bx, by] = at(x1, y1);
    const [dx, dy] = [bx - ax, by - ay];
    const len2 = dx * dx + dy * dy;
    const r = width + 1;
    for (let py = Math.max(0, Math.floor(Math.min(ay, by) - r)); py <= Math.min(MNIST_SIDE - 1, Math.max(ay, by) + r); py++) {
      for (let px = Math.max(0, Math.floor(Math.min(ax, bx) - r)); px <= Math.min(MNIST_SIDE - 1, Math.max(ax, bx) + r); px++) {
        const u = Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / len2));
        const d = Math.hypot(px - (ax + u * dx), py - (ay + u * dy));
        const v = Math.max(0, Math.min(1, width + 0.5 - d));
        canvas[py * MNIST_SIDE + px] = Math.max(canvas[py * MNIST_SIDE + px], v);
      }
    }
  }
  for (let e = 0; e < canvas.length; e++) out[e] = Math.max(0, Math.min(255, Math.round(canvas[e] * ink + rng.uniform(0, 24))));
}

/** The generated stand-in: 2,000 / 500 / 500 seven-segment digits, balanced, from `seed`. */
export function syntheticDigits(
  seed: number,
  sizes: Readonly<Record<Split, number>> = { train: 2000, val: 500, test: 500 },
): Omit<MnistSplits, 'real'> {
  const make = (which: Split): LoadedSplit => {
    const n = sizes[which];
    const rng = new Rng(`mnist-digits-${seed}-${which}`);
    const P = MNIST_SIDE * MNIST_SIDE;
    const data = new Uint8Array(n * P);
    const y = Int32Array.from({ length: n }, (_, i) => i % 10);
    rng.shuffle(y);
    for (let i = 0; i < n; i++) drawDigit(y[i], rng, data.subarray(i * P, (i + 1) * P));
    return { ...split(which, `generated digits (seed ${seed})`, data, y, standInSource()) };
  };
  return { train: make('train'), val: make('val'), test: make('test') };
}
