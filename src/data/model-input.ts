// How `mf predict` and the page of `mf serve` prepare an input for a model, as the training data are prepared:
// resized to the model's input side (an antialiased bilinear filter, Pillow's BILINEAR, per axis; non-square
// inputs are stretched), converted to the data set's channels (RGB to gray by Pillow's "L" luma, gray to RGB by
// copying), rounded to 8 bits as MedMNIST stores them; the batch loader's normalizeU8 comes after. Values that are
// not bytes are min-max scaled to 0-255 per sample first (toByteRange). An array (.npy, .npz member) may hold one
// sample or a batch (arraySamples); a NIfTI volume is one sample (volumeSample). No Node module here: the page
// bundles it.
import jpeg from 'jpeg-js';
import { ConfigError, FileFormatError } from '../errors.ts';
import type { NiftiVolume } from './nifti-codec.ts';
import type { NpyArray } from './npy-codec.ts';

/** One input sample as the model sees it before normalisation: C×S×S (2D) or 1×S×S×S (3D) bytes. */
export interface Sample {
  /** The file, with `[i]` for the i-th sample of an array that holds several and `:name` for an .npz member. */
  input: string;
  pixels: Uint8Array;
}

/** What an input must become for a head: its dimensionality, channels and side. */
export interface InputShape {
  dim: 2 | 3;
  channels: number;
  size: number;
}

/** An image or volume before it is fitted to the model: channel-first, values 0-255 (not yet rounded). */
export interface Planar {
  /** [C, H, W] or [C, D, H, W]. */
  shape: number[];
  data: Float32Array;
}

/** A JPEG's pixels (jpeg-js, the same decoder in Node and in the page). */
export function decodeJpeg(bytes: Uint8Array, file: string): Planar {
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

/** The inputs a head takes, for the hint of an error. */
export const inputKindsHint = (want: InputShape): string =>
  want.dim === 2 ? 'a PNG, JPEG, .npy or .npz image' : 'a NIfTI volume (.nii, .nii.gz), .npy or .npz';

/** Refuses a 2D image for a 3D head; `kinds` names what the reader takes instead. */
export function checkImageHead(want: InputShape, file: string, kinds = inputKindsHint(want)): void {
  if (want.dim === 3) throw new ConfigError(`${file}: a 2D image, but the model's head takes 3D volumes`, `give ${kinds}`);
}

/** Refuses a volume for a 2D head (before the file is even read); `kinds` names what the reader takes instead. */
export function checkVolumeHead(want: InputShape, file: string, kinds = inputKindsHint(want)): void {
  if (want.dim === 2) throw new ConfigError(`${file}: a 3D volume, but the model's head takes 2D images`, `give ${kinds}`);
}

/** A NIfTI volume as the sample of a 3D head (its x fastest, i.e. a row-major D×H×W array). */
export function volumeSample(vol: Pick<NiftiVolume, 'shape' | 'data' | 'datatype'>, want: InputShape, file: string): Sample {
  checkVolumeHead(want, file);
  const [x, y, z] = vol.shape;
  // x fastest in the file: as a row-major array that is [z][y][x], i.e. D×H×W.
  const planar = { shape: [1, z, y, x], data: vol.data };
  return { input: file, pixels: toModelInput(vol.datatype === 'uint8' ? planar : toByteRange(planar), want, file) };
}

/**
 * The samples of an array: one image or volume, or a batch of them along the first axis. `name` labels them (the
 * file, or `file:member` for an .npz member), with `[i]` for the i-th of a batch.
 */
export function arraySamples(a: NpyArray, want: InputShape, file: string, name: string): Sample[] {
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

export const oneLine = (e: unknown): string => (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').slice(0, 120);

/** Pixels-last bytes (`stride` per pixel) as the first `channels` channel planes. */
export function interleaved(src: Uint8Array, w: number, h: number, stride: number, channels: number): Planar {
  const p = w * h;
  const data = new Float32Array(channels * p);
  for (let c = 0; c < channels; c++) for (let i = 0; i < p; i++) data[c * p + i] = src[i * stride + c]!;
  return { shape: [channels, h, w], data };
}

/**
 * Values as bytes: kept when they already are whole numbers in 0-255 (a volume saved as float from 8-bit data),
 * else min-max scaled to 0-255 (a constant sample becomes 0).
 */
export function toByteRange(p: Planar): Planar {
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
export function toModelInput(p: Planar, want: InputShape, file: string): Uint8Array {
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
