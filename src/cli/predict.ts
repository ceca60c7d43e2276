// `mf predict <run folder | model.safetensors> <inputs...>`: class probabilities for new images (PNG, JPEG), arrays
// (.npy, .npz) or volumes (NIfTI, 3D models), preprocessed as the training data are: resized to the model's input
// side (an antialiased bilinear filter, Pillow's BILINEAR, per axis; non-square inputs are stretched), converted to
// the data set's channels (RGB to gray by Pillow's "L" luma, gray to RGB by copying), rounded to 8 bits as MedMNIST
// stores them, then normalised by the batch loader itself (normalizeU8). uint8 data, and data of other dtypes that
// hold only whole numbers in 0-255, are taken as they are; any other array or volume is min-max scaled to 0-255 per
// sample first. A file that cannot be read is named in one error line and skipped; the others are still predicted
// and the exit status says one failed.
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { initEngine } from '../backend/index.ts';
import type { LoadedSplit } from '../data/dataset.ts';
import { readNifti } from '../data/nifti.ts';
import { type NpyArray, parseNpy, readNpz } from '../data/npz.ts';
import { getDataset, numLabelColumns, numOutputs } from '../data/registry.ts';
import { ConfigError, FileFormatError, MfError } from '../errors.ts';
import type { HeadDescription } from '../kinds/medformer/trainer.ts';
import { ACC_THRESHOLD } from '../train/metrics.ts';
import { MAX_BINARY_BYTES, readRegularFile, writeFileAtomic } from '../util/files.ts';
import { buildModel, type HeadTask, headTask, inputSize, type LoadedModel, readModel, selectHeads } from './load-model.ts';

import { evalBatchSize, splitScores } from '../kinds/medformer/evaluate.ts';
export interface PredictFlags {
  task?: string;
  out?: string;
  backend?: string;
}

/** One input sample as the model sees it before normalisation: C×S×S (2D) or 1×S×S×S (3D) bytes. */
export interface Sample {
  /** The file, with `[i]` for the i-th sample of an array that holds several and `:name` for an .npz member. */
  input: string;
  pixels: Uint8Array;
}

export interface Prediction {
  input: string;
  task: string;
  /** The predicted class; for a multi-label task every finding scored above 0.5. */
  predicted: string | string[];
  /**
   * Per label name: softmax probabilities (multi-class, ordinal), the sigmoid and its complement (binary), each
   * finding's sigmoid (multi-label); an ordinal regression head's class scores (see ordinalScores).
   */
  probabilities: Record<string, number>;
}

/** What an input must become for a head: its dimensionality, channels and side. */
export interface InputShape {
  dim: 2 | 3;
  channels: number;
  size: number;
}

export async function predictCommand(target: string, inputs: string[], flags: PredictFlags): Promise<void> {
  const out = flags.out;
  if (out !== undefined && !/\.(csv|json)$/i.test(out)) throw new ConfigError(`--out ${out}: give a .csv or .json file name`);
  const source = readModel(target);
  const d = source.description;
  if (flags.task === undefined && d.heads.length > 1) {
    throw new ConfigError(
      `${target}: the model has ${d.heads.length} heads (${d.heads.map((h) => h.key).join(', ')})`,
      'pick one with --task',
    );
  }
  const head = selectHeads(d, flags.task, '--task')[0]!;
  const want: InputShape = { dim: head.dim, channels: head.channels, size: inputSize(d, head) };

  // Every input read on the host first; a bad one is named and skipped.
  const samples: Sample[] = [];
  let failed = 0;
  for (const file of inputs) {
    try {
      samples.push(...readInput(file, want));
    } catch (e) {
      if (!(e instanceof MfError)) throw e;
      process.stderr.write(`error: ${e.message}\n`);
      failed++;
    }
  }

  const predictions: Prediction[] = [];
  if (samples.length) {
    await initEngine({ backend: (flags.backend ?? 'auto') as 'auto' | 'webgpu' | 'cpu' });
    const loaded = buildModel(source);
    try {
      loaded.use(head.key);
      const task = headTask(head);
      const scores = await scoreSamples(loaded, task, samples, want, evalBatchSize(d.batchSize));
      samples.forEach((s, i) => predictions.push(toPrediction(s.input, task, scores[i]!)));
    } finally {
      loaded.dispose();
    }
  }
  for (const p of predictions) console.log(describePrediction(p, head));
  if (out !== undefined && predictions.length) {
    const text = /\.json$/i.test(out) ? `${JSON.stringify(predictions, null, 2)}\n` : toCsv(predictions, getDataset(head.key).labels);
    writeFileAtomic(out, new TextEncoder().encode(text));
    process.stderr.write(`wrote ${predictions.length} predictions to ${out}\n`);
  }
  if (failed) {
    process.stderr.write(`error: ${failed} of ${inputs.length} inputs could not be read; the others were predicted\n`);
    process.exitCode = 1;
  }
}

/**
 * The scores of each sample: the inputs as one split, scored by the evaluator's own path (splitScores: the batch
 * loader's normalisation, no augmentation, file order, the last batch padded).
 */
export async function scoreSamples(
  loaded: LoadedModel,
  task: HeadTask,
  samples: readonly Sample[],
  want: InputShape,
  batchSize: number,
): Promise<Float32Array[]> {
  const shape = want.dim === 2 ? [want.channels, want.size, want.size] : [1, want.size, want.size, want.size];
  const len = shape.reduce((a, b) => a * b, 1);
  const images = new Uint8Array(samples.length * len);
  samples.forEach((s, i) => images.set(s.pixels, i * len));
  const cols = numLabelColumns(task.ds);
  const split: LoadedSplit = {
    ds: task.ds,
    split: 'test',
    size: want.size,
    file: 'inputs',
    n: samples.length,
    images,
    labels: new Int32Array(samples.length * cols),
    numLabels: cols,
    shape,
  };
  const k = numOutputs(task.ds);
  const scores = await splitScores(loaded.model, task, split, batchSize);
  return Array.from({ length: split.n }, (_, i) => scores.slice(i * k, (i + 1) * k));
}

/** Scores in the evaluator's layout (k per sample; one for binary) as named probabilities and a decision. */
export function toPrediction(input: string, task: HeadTask, row: Float32Array): Prediction {
  const labels = task.ds.labels;
  const probabilities: Record<string, number> = {};
  const set = (name: string, v: number) => {
    probabilities[name] = v;
  };
  let predicted: string | string[];
  if (task.ds.task === 'binary') {
    const p = row[row.length - 1]!;
    set(labels[0]!, 1 - p);
    set(labels[1]!, p);
    predicted = p > ACC_THRESHOLD ? labels[1]! : labels[0]!;
  } else if (task.ds.task === 'multi-label') {
    labels.forEach((l, j) => set(l, row[j]!));
    predicted = labels.filter((_, j) => row[j]! > ACC_THRESHOLD);
  } else {
    labels.forEach((l, j) => set(l, row[j]!));
    let best = 0;
    for (let j = 1; j < row.length; j++) if (row[j]! > row[best]!) best = j;
    predicted = labels[best]!;
  }
  return { input, task: task.ds.key, predicted, probabilities };
}

function describePrediction(p: Prediction, head: HeadDescription): string {
  const what = Array.isArray(p.predicted) ? (p.predicted.length ? p.predicted.join(', ') : 'no finding above 0.5') : p.predicted;
  const kind = head.head === 'regression' ? 'scores' : 'p';
  const list = Object.entries(p.probabilities)
    .map(([l, v]) => `${l} ${v.toFixed(4)}`)
    .join(', ');
  return `${p.input}: ${what} (${kind}: ${list})`;
}

function toCsv(predictions: readonly Prediction[], labels: readonly string[]): string {
  const cell = (s: string) => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const rows = [['input', 'task', 'predicted', ...labels].map(cell).join(',')];
  for (const p of predictions) {
    const predicted = Array.isArray(p.predicted) ? p.predicted.join(';') : p.predicted;
    rows.push([cell(p.input), cell(p.task), cell(predicted), ...labels.map((l) => String(p.probabilities[l]))].join(','));
  }
  return `${rows.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading inputs

/** An image or volume before it is fitted to the model: channel-first, values 0-255 (not yet rounded). */
interface Planar {
  /** [C, H, W] or [C, D, H, W]. */
  shape: number[];
  data: Float32Array;
}

const NIFTI = /\.(nii|nii\.gz|hdr|hdr\.gz)$/i;

/** The samples of one input file, fitted to `want`; every failure is one MfError naming the file. */
export function readInput(file: string, want: InputShape): Sample[] {
  const lower = file.toLowerCase();
  const kindHint = want.dim === 2 ? 'a PNG, JPEG, .npy or .npz image' : 'a NIfTI volume (.nii, .nii.gz), .npy or .npz';
  if (NIFTI.test(lower)) {
    if (want.dim === 2) throw new ConfigError(`${file}: a 3D volume, but the model's head takes 2D images`, `give ${kindHint}`);
    const vol = readNifti(file);
    const [x, y, z] = vol.shape;
    // x fastest in the file: as a row-major array that is [z][y][x], i.e. D×H×W.
    const planar = { shape: [1, z, y, x], data: vol.data };
    return [{ input: file, pixels: toModelInput(vol.datatype === 'uint8' ? planar : toByteRange(planar), want, file) }];
  }
  if (lower.endsWith('.npy')) {
    const bytes = readRegularFile(file, { what: 'a .npy array', fix: 'check the path', maxBytes: MAX_BINARY_BYTES });
    return fromArray(parseNpy(bytes, file, 'array'), want, file, file);
  }
  if (lower.endsWith('.npz')) {
    const arrays = readNpz(file);
    const names = [...arrays.keys()];
    const images = names.filter((n) => /images$/.test(n));
    const use = images.length ? images : names;
    if (!use.length) throw new FileFormatError(`${file}: holds no arrays`, 'save the images with np.savez');
    return use.flatMap((n) => fromArray(arrays.get(n)!, want, file, use.length === 1 && names.length === 1 ? file : `${file}:${n}`));
  }
  if (/\.(png|jpe?g)$/.test(lower)) {
    if (want.dim === 3) throw new ConfigError(`${file}: a 2D image, but the model's head takes 3D volumes`, `give ${kindHint}`);
    const bytes = readRegularFile(file, { what: 'an image', fix: 'check the path', maxBytes: MAX_BINARY_BYTES });
    return [{ input: file, pixels: toModelInput(lower.endsWith('.png') ? decodePng(bytes, file) : decodeJpeg(bytes, file), want, file) }];
  }
  throw new ConfigError(`${file}: not an input mf predict reads`, `give ${kindHint}`);
}

function decodePng(bytes: Uint8Array, file: string): Planar {
  if (!(bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47)) {
    throw new FileFormatError(`${file}: not a PNG (no PNG signature)`, 're-save it as PNG or JPEG');
  }
  let png: ReturnType<typeof PNG.sync.read>;
  try {
    png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    throw new FileFormatError(`${file}: not a readable PNG (${oneLine(e)})`, 're-save it as PNG or JPEG');
  }
  // pngjs gives 8-bit RGBA whatever the file holds; a gray file has R = G = B.
  return interleaved(png.data, png.width, png.height, 4, png.color ? 3 : 1);
}

function decodeJpeg(bytes: Uint8Array, file: string): Planar {
  if (!(bytes[0] === 0xff && bytes[1] === 0xd8))
    throw new FileFormatError(`${file}: not a JPEG (no JPEG signature)`, 're-save it as PNG or JPEG');
  let img: { width: number; height: number; data: Uint8Array };
  try {
    img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, maxResolutionInMP: 200, maxMemoryUsageInMB: 1024 });
  } catch (e) {
    throw new FileFormatError(`${file}: not a readable JPEG (${oneLine(e)})`, 're-save it as PNG or JPEG');
  }
  return interleaved(img.data, img.width, img.height, 3, 3);
}

const oneLine = (e: unknown): string => (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').slice(0, 120);

/** Pixels-last bytes (`stride` per pixel) as the first `channels` channel planes. */
function interleaved(src: Uint8Array, w: number, h: number, stride: number, channels: number): Planar {
  const p = w * h;
  const data = new Float32Array(channels * p);
  for (let c = 0; c < channels; c++) for (let i = 0; i < p; i++) data[c * p + i] = src[i * stride + c]!;
  return { shape: [channels, h, w], data };
}

/** The samples of an array: one image or volume, or a batch of them along the first axis. */
function fromArray(a: NpyArray, want: InputShape, file: string, name: string): Sample[] {
  const s = a.shape;
  const bad = (why: string) =>
    new FileFormatError(
      `${file}: array of shape (${s.join(', ')}) ${why}`,
      want.dim === 2 ? 'give H×W, H×W×C, C×H×W or a batch N×H×W(×C) with C 1 or 3' : 'give D×H×W, 1×D×H×W or a batch N×D×H×W',
    );
  // [n, C, ...spatial] with `last` true when channels are the last axis.
  let n: number;
  let c: number;
  let spatial: number[];
  let last = false;
  const isC = (x: number | undefined) => x === 1 || x === 3 || x === 4;
  if (want.dim === 2) {
    if (s.length === 2) [n, c, spatial] = [1, 1, s];
    else if (s.length === 3 && isC(s[2]) && !isC(s[0])) [n, c, spatial, last] = [1, s[2]!, [s[0]!, s[1]!], true];
    else if (s.length === 3 && isC(s[0])) [n, c, spatial] = [1, s[0]!, [s[1]!, s[2]!]];
    else if (s.length === 3) [n, c, spatial] = [s[0]!, 1, [s[1]!, s[2]!]];
    else if (s.length === 4 && isC(s[3])) [n, c, spatial, last] = [s[0]!, s[3]!, [s[1]!, s[2]!], true];
    else if (s.length === 4 && isC(s[1])) [n, c, spatial] = [s[0]!, s[1]!, [s[2]!, s[3]!]];
    else throw bad('is not a 2D image or a batch of them');
  } else if (s.length === 3) [n, c, spatial] = [1, 1, s];
  else if (s.length === 4 && s[0] === 1) [n, c, spatial] = [1, 1, s.slice(1)];
  else if (s.length === 4) [n, c, spatial] = [s[0]!, 1, s.slice(1)];
  else if (s.length === 5 && s[1] === 1) [n, c, spatial] = [s[0]!, 1, s.slice(2)];
  else throw bad('is not a 3D volume or a batch of them');
  if (n === 0 || spatial.some((x) => x === 0)) throw bad('is empty');
  if (a.data instanceof BigInt64Array || a.data instanceof BigUint64Array) throw bad(`has dtype ${a.dtype}; save it as uint8 or float32`);
  const values = a.data;
  const per = c * spatial.reduce((x, y) => x * y, 1);
  const p = per / c;
  const out: Sample[] = [];
  for (let i = 0; i < n; i++) {
    const data = new Float32Array(per);
    for (let j = 0; j < per; j++) {
      // Channel-last source index of channel cc, pixel q; channel-first is the same layout as ours.
      const cc = Math.floor(j / p);
      const q = j % p;
      data[j] = Number(values[i * per + (last ? q * c + cc : j)]);
    }
    const planar = { shape: [c, ...spatial], data };
    const label = n === 1 ? name : `${name}[${i}]`;
    out.push({ input: label, pixels: toModelInput(a.dtype === '|u1' ? planar : toByteRange(planar), want, file) });
  }
  return out;
}

/**
 * Values as bytes: kept when they already are whole numbers in 0-255 (a volume saved as float from 8-bit data),
 * else min-max scaled to 0-255 (a constant sample becomes 0).
 */
function toByteRange(p: Planar): Planar {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  let bytes = true;
  for (const v of p.data) {
    if (!Number.isFinite(v)) {
      bytes = false;
      continue;
    }
    if (v < lo) lo = v;
    if (v > hi) hi = v;
    if (bytes && !(Number.isInteger(v) && v >= 0 && v <= 255)) bytes = false;
  }
  if (bytes) return p;
  const scale = hi > lo ? 255 / (hi - lo) : 0;
  return { shape: p.shape, data: Float32Array.from(p.data, (v) => (Number.isFinite(v) ? (v - lo) * scale : 0)) };
}

/** To the head's channels and side, rounded to bytes. */
function toModelInput(p: Planar, want: InputShape, file: string): Uint8Array {
  const spatialDims = p.shape.length - 1;
  if (spatialDims !== want.dim) throw new FileFormatError(`${file}: a ${spatialDims}D input for a ${want.dim}D head`);
  let x = toChannels(p, want.channels, file);
  for (let axis = 1; axis <= want.dim; axis++) if (x.shape[axis] !== want.size) x = resizeAxis(x, axis, want.size);
  return Uint8Array.from(x.data, (v) => Math.min(255, Math.max(0, Math.round(v))));
}

function toChannels(p: Planar, want: number, file: string): Planar {
  const [c, ...spatial] = p.shape as [number, ...number[]];
  const n = spatial.reduce((a, b) => a * b, 1);
  const plane = (i: number) => p.data.subarray(i * n, (i + 1) * n);
  const have = c === 4 ? 3 : c; // alpha is dropped
  if (have === want) return c === 4 ? { shape: [3, ...spatial], data: p.data.slice(0, 3 * n) } : p;
  if (have === 1 && want === 3) {
    const data = new Float32Array(3 * n);
    for (let i = 0; i < 3; i++) data.set(plane(0), i * n);
    return { shape: [3, ...spatial], data };
  }
  if (have === 3 && want === 1) {
    // Pillow's convert("L"): L = R·299/1000 + G·587/1000 + B·114/1000, in its fixed point.
    const [r, g, b] = [plane(0), plane(1), plane(2)];
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = (r[i]! * 19595 + g[i]! * 38470 + b[i]! * 7471) / 65536;
    return { shape: [1, ...spatial], data };
  }
  throw new FileFormatError(`${file}: ${c} channels; the model takes ${want}`, 'give a gray or RGB image');
}

/**
 * Resamples one axis to `size` with Pillow's BILINEAR filter: a triangle of support 1 input pixel when enlarging,
 * stretched by the reduction factor when shrinking (so it averages, not aliases), pixel centres aligned.
 */
function resizeAxis(p: Planar, axis: number, size: number): Planar {
  const inLen = p.shape[axis]!;
  const outer = p.shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = p.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const scale = inLen / size;
  const fscale = Math.max(scale, 1);
  const support = fscale;
  const taps: { start: number; w: Float64Array }[] = [];
  for (let o = 0; o < size; o++) {
    const center = (o + 0.5) * scale;
    const lo = Math.max(0, Math.floor(center - support + 0.5));
    const hi = Math.min(inLen, Math.floor(center + support + 0.5));
    const w = new Float64Array(Math.max(0, hi - lo));
    let sum = 0;
    for (let i = lo; i < hi; i++) {
      const t = (i - center + 0.5) / fscale;
      w[i - lo] = Math.max(0, 1 - Math.abs(t));
      sum += w[i - lo]!;
    }
    if (sum > 0) for (let j = 0; j < w.length; j++) w[j]! /= sum;
    taps.push({ start: lo, w });
  }
  const shape = [...p.shape];
  shape[axis] = size;
  const data = new Float32Array(outer * size * inner);
  for (let a = 0; a < outer; a++) {
    for (let o = 0; o < size; o++) {
      const { start, w } = taps[o]!;
      const dst = (a * size + o) * inner;
      for (let j = 0; j < w.length; j++) {
        const wj = w[j]!;
        if (wj === 0) continue;
        const src = (a * inLen + start + j) * inner;
        for (let q = 0; q < inner; q++) data[dst + q]! += wj * p.data[src + q]!;
      }
    }
  }
  return { shape, data };
}
