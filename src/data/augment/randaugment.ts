// RandAugment as torchvision.transforms.RandAugment(num_ops=n, magnitude=m, num_magnitude_bins=bins), on one
// C×H×W image (C = 1 grayscale or 3 RGB) with values in [0, 1]. Checked against torchvision's
// transforms/autoaugment.py (RandAugment._augmentation_space, forward and _apply_op):
//   - each of the n rounds draws one of the 14 ops below uniformly (with replacement), in torchvision's order;
//   - the op's magnitude is the m-th entry of its table (linspace(0, max, bins)[m], RA_SPACE);
//   - a signed op then draws a sign (negative with p = 0.5); an unsigned op draws nothing;
//   - geometric ops use torchvision's default interpolation NEAREST and fill 0, resolved as PIL does it (MedMNIST's
//     datasets hand PIL images to their transforms).
// The ops work in float; where PIL defines an op on 8-bit levels (posterize, solarize, equalize) they read the level
// round(255·x). test/data/randaugment-torchvision.test.ts holds outputs recorded from torchvision 0.14.1 on
// Pillow 9.4: the geometric and 8-bit ops match them exactly; brightness, color, contrast and sharpness blend in
// float where PIL truncates to 8 bits after each step, so they differ by at most 1.5 levels of 255.
import type { Rng } from '../../util/rng.ts';
import { type Affine2d, rotate2d, warp2d } from './geometry.ts';

/** torchvision's 14 RandAugment ops, in the order of its _augmentation_space (the order of the uniform draw). */
export const RA_OPS = [
  'identity',
  'shearX',
  'shearY',
  'translateX',
  'translateY',
  'rotate',
  'brightness',
  'color',
  'contrast',
  'sharpness',
  'posterize',
  'solarize',
  'autocontrast',
  'equalize',
] as const;
export type RaOp = (typeof RA_OPS)[number];

/**
 * torchvision's magnitude table, per op: the magnitude at bin m of `bins` (m in 0..bins−1) before its sign, for an
 * H×W image, and whether it is signed. Units are those _apply_op takes:
 *   shearX/Y     linspace(0, 0.3, bins)           shear factor (tan of the angle); signed
 *   translateX   linspace(0, 150/331·W, bins)     pixels, truncated towards 0 when applied; signed
 *   translateY   linspace(0, 150/331·H, bins)     pixels, truncated towards 0 when applied; signed
 *   rotate       linspace(0, 30, bins)            degrees; signed
 *   brightness, color, contrast, sharpness
 *                linspace(0, 0.9, bins)           enhance factor 1 + magnitude; signed
 *   posterize    8 − round(arange(bins)/((bins−1)/4))   bits kept (8 … 4)
 *   solarize     linspace(255, 0, bins)           threshold on 0..255 levels (1.0 … 0.0 on [0, 1])
 *   identity, autocontrast, equalize            no magnitude (0)
 * At torchvision's bins = 31: M = 8 gives shear 0.08, translate 8/30·150/331·size (3.38 px at 28, truncated to 3),
 * rotate 8°, enhance 0.24, posterize 7 bits, solarize threshold 187.
 */
export function raMagnitude(op: RaOp, m: number, bins: number, H: number, W: number): { magnitude: number; signed: boolean } {
  const lin = (max: number): number => (max * m) / (bins - 1);
  switch (op) {
    case 'shearX':
    case 'shearY':
      return { magnitude: lin(0.3), signed: true };
    case 'translateX':
      return { magnitude: lin((150 / 331) * W), signed: true };
    case 'translateY':
      return { magnitude: lin((150 / 331) * H), signed: true };
    case 'rotate':
      return { magnitude: lin(30), signed: true };
    case 'brightness':
    case 'color':
    case 'contrast':
    case 'sharpness':
      return { magnitude: lin(0.9), signed: true };
    case 'posterize':
      return { magnitude: 8 - roundHalfEven(m / ((bins - 1) / 4)), signed: false };
    case 'solarize':
      return { magnitude: 255 - lin(255), signed: false };
    case 'identity':
    case 'autocontrast':
    case 'equalize':
      return { magnitude: 0, signed: false };
  }
}

/** torch.round: halves go to the even neighbour. */
function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const r = v - f;
  return r > 0.5 ? f + 1 : r < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

const clamp01 = (v: number): number => Math.min(1, Math.max(0, v));
const level = (v: number): number => Math.round(clamp01(v) * 255);

/** PIL's / torchvision's blend: base + (x − base)·factor, clipped to [0, 1], in place. */
function blend(x: Float32Array, base: Float32Array | number, factor: number): Float32Array {
  for (let i = 0; i < x.length; i++) {
    const b = typeof base === 'number' ? base : base[i]!;
    x[i] = clamp01(b + (x[i]! - b) * factor);
  }
  return x;
}

/** ITU-R 601-2 luma, L = 0.299 R + 0.587 G + 0.114 B (PIL's convert('L'), torchvision's rgb_to_grayscale). */
function luma(x: Float32Array, P: number): Float32Array {
  const l = new Float32Array(P);
  for (let p = 0; p < P; p++) l[p] = 0.299 * x[p]! + 0.587 * x[P + p]! + 0.114 * x[2 * P + p]!;
  return l;
}

/** Mean of the grayscale image: of the luma for RGB, of the values for one channel (torchvision's adjust_contrast). */
function grayMean(x: Float32Array, shape: readonly number[]): number {
  const P = shape[1]! * shape[2]!;
  const v = shape[0] === 3 ? luma(x, P) : x;
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]!;
  return s / v.length;
}

/** Per channel, maps [min, max] linearly onto [0, 1]; a constant channel stays as it is. */
function autocontrast(x: Float32Array, shape: readonly number[]): Float32Array {
  const P = shape[1]! * shape[2]!;
  for (let c = 0; c < shape[0]!; c++) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let p = c * P; p < (c + 1) * P; p++) {
      lo = Math.min(lo, x[p]!);
      hi = Math.max(hi, x[p]!);
    }
    if (hi - lo < 1e-6) continue;
    for (let p = c * P; p < (c + 1) * P; p++) x[p] = (x[p]! - lo) / (hi - lo);
  }
  return x;
}

/**
 * Per-channel histogram equalisation on 256 levels as PIL's ImageOps.equalize (and torchvision's tensor
 * equalize): step = ⌊(pixels − count of the highest level present)/255⌋; level i maps to
 * min(255, ⌊(⌊step/2⌋ + pixels below i)/step⌋); step 0 (a near-constant channel) leaves it unchanged.
 */
function equalize(x: Float32Array, shape: readonly number[]): Float32Array {
  const P = shape[1]! * shape[2]!;
  const hist = new Uint32Array(256);
  for (let c = 0; c < shape[0]!; c++) {
    hist.fill(0);
    for (let p = c * P; p < (c + 1) * P; p++) hist[level(x[p]!)]!++;
    let last = 255;
    while (last > 0 && hist[last] === 0) last--;
    const step = Math.floor((P - hist[last]!) / 255);
    if (step === 0) continue;
    const lut = new Float32Array(256);
    let n = Math.floor(step / 2);
    for (let i = 0; i < 256; i++) {
      lut[i] = Math.min(255, Math.floor(n / step)) / 255;
      n += hist[i]!;
    }
    for (let p = c * P; p < (c + 1) * P; p++) x[p] = lut[level(x[p]!)]!;
  }
  return x;
}

/** Blend with PIL's SMOOTH filter, [[1, 1, 1], [1, 5, 1], [1, 1, 1]]/13 on the interior; border pixels are kept. */
function sharpness(x: Float32Array, shape: readonly number[], factor: number): Float32Array {
  const [C, H, W] = shape as [number, number, number];
  const smooth = Float32Array.from(x);
  for (let c = 0; c < C; c++) {
    const b = c * H * W;
    for (let y = 1; y < H - 1; y++) {
      for (let xx = 1; xx < W - 1; xx++) {
        let s = 4 * x[b + y * W + xx]!;
        for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) s += x[b + (y + dy) * W + xx + dx]!;
        smooth[b + y * W + xx] = s / 13;
      }
    }
  }
  return blend(x, smooth, factor);
}

/** torchvision's shear about the top-left corner (center=[0, 0]) in index coordinates: PIL's (1, s, 0, 0, 1, 0). */
const shearX = (s: number): Affine2d => [1, s, s / 2, 0, 1, 0];
const shearY = (s: number): Affine2d => [1, 0, 0, s, 1, s / 2];

export type RaOpFn = (x: Float32Array, shape: readonly number[], magnitude: number) => Float32Array;

/**
 * The ops as torchvision's _apply_op, each taking the signed magnitude in its table's units (see raMagnitude). They
 * may work in place; use the returned array.
 */
export const RAND_AUGMENT_OPS: Readonly<Record<RaOp, RaOpFn>> = {
  identity: (x) => x,
  // out(x, y) = in(x + s·(y + ½), y): the top-left corner stays, lower rows shift left for s > 0.
  shearX: (x, s, mag) => warp2d(x, s, shearX(mag), 'nearest'),
  shearY: (x, s, mag) => warp2d(x, s, shearY(mag), 'nearest'),
  // out(x) = in(x − t) with t = trunc(magnitude) pixels: t > 0 moves the content right (down for Y).
  translateX: (x, s, mag) => warp2d(x, s, [1, 0, -Math.trunc(mag), 0, 1, 0], 'nearest'),
  translateY: (x, s, mag) => warp2d(x, s, [1, 0, 0, 0, 1, -Math.trunc(mag)], 'nearest'),
  // counter-clockwise by `mag` degrees about the centre
  rotate: (x, s, mag) => rotate2d(x, s, mag, 'nearest'),
  // factor 1 + mag; brightness blends with black, color with the luma (identity on grayscale), contrast with the
  // mean gray level, sharpness with the smoothed image
  brightness: (x, _s, mag) => blend(x, 0, 1 + mag),
  color: (x, s, mag) => {
    if (s[0] !== 3) return x;
    const P = s[1]! * s[2]!;
    const l = luma(x, P);
    const base = new Float32Array(x.length);
    for (let c = 0; c < 3; c++) base.set(l, c * P);
    return blend(x, base, 1 + mag);
  },
  contrast: (x, s, mag) => blend(x, grayMean(x, s), 1 + mag),
  sharpness: (x, s, mag) => sharpness(x, s, 1 + mag),
  // keeps the top trunc(mag) bits of each 8-bit level
  posterize: (x, _s, mag) => {
    const bits = Math.trunc(mag);
    const mask = (0xff << (8 - bits)) & 0xff;
    for (let i = 0; i < x.length; i++) x[i] = (level(x[i]!) & mask) / 255;
    return x;
  },
  // inverts (x → 1 − x) every value whose level is at or above the threshold `mag` (0..255)
  solarize: (x, _s, mag) => {
    for (let i = 0; i < x.length; i++) if (level(x[i]!) >= mag) x[i] = 1 - x[i]!;
    return x;
  },
  autocontrast: (x, s) => autocontrast(x, s),
  equalize: (x, s) => equalize(x, s),
};

export interface RandAugmentConfig {
  /** Ops per image (torchvision's num_ops). */
  n: number;
  /** Magnitude bin, an integer in 0..bins−1 (torchvision's magnitude). */
  m: number;
  /** Number of magnitude bins (torchvision's num_magnitude_bins, 31 by default). */
  bins: number;
}

/**
 * Applies `cfg.n` ops, each drawn with rng.int(14) and, when signed, negated if rng.bool(): two draws at most per
 * op, always in this order, so the output is a function of the input and the Rng state. `trace`, if given, sees
 * each op and the signed magnitude it ran at.
 */
export function randAugment(
  x: Float32Array,
  shape: readonly number[],
  cfg: RandAugmentConfig,
  rng: Rng,
  trace?: (op: RaOp, magnitude: number) => void,
): Float32Array {
  const [, H, W] = shape as [number, number, number];
  let y = x;
  for (let k = 0; k < cfg.n; k++) {
    const op = RA_OPS[rng.int(RA_OPS.length)]!;
    const { magnitude, signed } = raMagnitude(op, cfg.m, cfg.bins, H, W);
    const mag = signed && rng.bool() ? -magnitude : magnitude;
    trace?.(op, mag);
    y = RAND_AUGMENT_OPS[op](y, shape, mag);
  }
  return y;
}
