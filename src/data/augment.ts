// Training-time augmentation of one sample at a time, on Float32 channel-first arrays with values
// in [0, 1]. Everything random comes from the Rng passed in, drawn in a fixed order, so the same
// Rng state always gives the same output (the loader derives that state from seed, epoch and
// sample index, which makes resumed runs see identical augmentations).
//   2D: random flips, a small rotation (±15°, bilinear), then RandAugment (N=2, M=8).
//   3D: random flips on each axis, small rotations about two axes (trilinear), intensity jitter.
import { ConfigError } from '../errors.ts';
import type { Rng } from '../util/rng.ts';

export interface AugmentConfig {
  /** 2D: horizontal and vertical flip, each with p = 0.5. 3D: a flip of each of D, H, W with p = 0.5. */
  flip: boolean;
  /**
   * Largest rotation in degrees; the angle is uniform in ±rotate; 0 turns it off.
   * 2D: in-plane, bilinear. 3D: one angle about the D axis (in the H-W plane) and one about the
   * H axis (in the D-W plane), composed into one trilinear resampling; trilinear rather than
   * nearest because nearest leaves stair artefacts that a 28³ volume cannot afford.
   */
  rotate: number;
  /** RandAugment: `n` ops chosen uniformly (with replacement) at magnitude `m` in 0..10; 2D only; null = off. */
  randAugment: { n: number; m: number } | null;
  /** x·s + t with s uniform in 1 ± scale and t uniform in ±shift, then clipped to [0, 1]; null = off. */
  intensity: { scale: number; shift: number } | null;
}

/** The thesis setup: 2D flips + ±15° + RandAugment(2, 8); 3D flips + ±10° about two axes + intensity jitter. */
export function defaultAugment(dim: 2 | 3): AugmentConfig {
  return dim === 2
    ? { flip: true, rotate: 15, randAugment: { n: 2, m: 8 }, intensity: null }
    : { flip: true, rotate: 10, randAugment: null, intensity: { scale: 0.1, shift: 0.1 } };
}

/** Throws a ConfigError for values that make no sense (negative angles, magnitude out of 0..10). */
export function validateAugment(cfg: AugmentConfig, dim: 2 | 3): void {
  if (!(cfg.rotate >= 0 && cfg.rotate <= 180)) throw new ConfigError(`augment.rotate ${cfg.rotate} is out of range`, 'use degrees in 0..180');
  if (cfg.randAugment) {
    const { n, m } = cfg.randAugment;
    if (dim === 3) throw new ConfigError('augment.randAugment is for 2D data only', 'set it to null for 3D datasets');
    if (!Number.isInteger(n) || n < 0 || n > 16) throw new ConfigError(`augment.randAugment.n ${n} is out of range`, 'use an integer in 0..16');
    if (!(m >= 0 && m <= 10)) throw new ConfigError(`augment.randAugment.m ${m} is out of range`, 'use a magnitude in 0..10');
  }
  if (cfg.intensity) {
    const { scale, shift } = cfg.intensity;
    if (!(scale >= 0 && scale < 1) || !(shift >= 0 && shift <= 1)) {
      throw new ConfigError(`augment.intensity {scale: ${scale}, shift: ${shift}} is out of range`, 'use scale in [0, 1) and shift in [0, 1]');
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Normalisation. Images are stored as uint8; the network sees [-1, 1] ((x/255)·2 − 1), i.e. mean
// 0.5 / std 0.5 per channel as in the MedMNIST reference code (transforms.Normalize([.5], [.5])),
// rather than per-dataset statistics: one fixed map for all 18 sets keeps a shared model's input
// scale identical across datasets and needs no statistics pass.

/** uint8 → [-1, 1]: out[i] = u8[i]/255·2 − 1. Returns `out`. */
export function normalizeU8(u8: Uint8Array, out: Float32Array = new Float32Array(u8.length)): Float32Array {
  for (let i = 0; i < u8.length; i++) out[i] = u8[i]! * (2 / 255) - 1;
  return out;
}

/** uint8 → [0, 1], the range the augmentation ops work in. Returns `out`. */
export function u8ToUnit(u8: Uint8Array, out: Float32Array = new Float32Array(u8.length)): Float32Array {
  for (let i = 0; i < u8.length; i++) out[i] = u8[i]! / 255;
  return out;
}

/** [0, 1] → [-1, 1] in place (after augmentation). */
export function unitToSigned(x: Float32Array): Float32Array {
  for (let i = 0; i < x.length; i++) x[i] = x[i]! * 2 - 1;
  return x;
}

const clamp01 = (v: number): number => (v < 0 ? 0 : v > 1 ? 1 : v);

// ---------------------------------------------------------------------------------------------
// Geometry

/** Reverses one spatial axis in place (axis 0 = first spatial dim after C). Exactly self-inverse. */
export function flip(x: Float32Array, shape: readonly number[], axis: number): Float32Array {
  const dims = shape.length - 1;
  if (axis < 0 || axis >= dims) throw new RangeError(`flip axis ${axis} for shape [${shape.join(', ')}]`);
  const len = shape[axis + 1]!;
  let outer = 1;
  for (let i = 0; i <= axis; i++) outer *= shape[i]!;
  let inner = 1;
  for (let i = axis + 2; i < shape.length; i++) inner *= shape[i]!;
  for (let o = 0; o < outer; o++) {
    const base = o * len * inner;
    for (let a = 0, b = len - 1; a < b; a++, b--) {
      const pa = base + a * inner;
      const pb = base + b * inner;
      for (let k = 0; k < inner; k++) {
        const t = x[pa + k]!;
        x[pa + k] = x[pb + k]!;
        x[pb + k] = t;
      }
    }
  }
  return x;
}

/**
 * 2D inverse-mapped affine warp, bilinear, zero outside: out(y, x) = src at
 * (cx + a·dx + b·dy + tx, cy + c·dx + d·dy + ty), with (dx, dy) taken from the image centre.
 */
function warp2d(src: Float32Array, shape: readonly number[], m: readonly [number, number, number, number, number, number]): Float32Array {
  const [C, H, W] = shape as [number, number, number];
  const [a, b, c, d, tx, ty] = m;
  const out = new Float32Array(src.length);
  const cx = (W - 1) / 2;
  const cy = (H - 1) / 2;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const dx = x - cx;
      const dy = y - cy;
      const sx = cx + a * dx + b * dy + tx;
      const sy = cy + c * dx + d * dy + ty;
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const fx = sx - x0;
      const fy = sy - y0;
      // Tap weights; a tap outside the image reads 0.
      const inY0 = y0 >= 0 && y0 < H;
      const inY1 = y0 + 1 >= 0 && y0 + 1 < H;
      const inX0 = x0 >= 0 && x0 < W;
      const inX1 = x0 + 1 >= 0 && x0 + 1 < W;
      const w00 = inY0 && inX0 ? (1 - fy) * (1 - fx) : 0;
      const w01 = inY0 && inX1 ? (1 - fy) * fx : 0;
      const w10 = inY1 && inX0 ? fy * (1 - fx) : 0;
      const w11 = inY1 && inX1 ? fy * fx : 0;
      if (w00 === 0 && w01 === 0 && w10 === 0 && w11 === 0) continue; // out is already 0
      const p00 = y0 * W + x0;
      for (let ch = 0; ch < C; ch++) {
        const b = ch * H * W + p00;
        let v = 0;
        if (w00 !== 0) v += w00 * src[b]!;
        if (w01 !== 0) v += w01 * src[b + 1]!;
        if (w10 !== 0) v += w10 * src[b + W]!;
        if (w11 !== 0) v += w11 * src[b + W + 1]!;
        out[ch * H * W + y * W + x] = v;
      }
    }
  }
  return out;
}

/**
 * Rotates a C×H×W image by `deg` degrees about its centre (bilinear, zero fill); positive is
 * counter-clockwise as displayed (row 0 at the top), as in torchvision.
 */
export function rotate2d(x: Float32Array, shape: readonly number[], deg: number): Float32Array {
  const t = (deg * Math.PI) / 180;
  const cos = Math.cos(t);
  const sin = Math.sin(t);
  // Inverse map: source = R(-t)·d in image coordinates (y down).
  return warp2d(x, shape, [cos, -sin, sin, cos, 0, 0]);
}

type Mat3 = [[number, number, number], [number, number, number], [number, number, number]];

function matmul3(a: Mat3, b: Mat3): Mat3 {
  const r: Mat3 = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 3; k++) r[i][j] += a[i][k] * b[k][j];
  return r;
}

/**
 * Rotates a C×D×H×W volume by `a` degrees about the D axis and `b` degrees about the H axis
 * (trilinear, zero fill). Both are composed into one matrix so the volume is resampled once.
 */
export function rotate3d(x: Float32Array, shape: readonly number[], a: number, b: number): Float32Array {
  const [C, D, H, W] = shape as [number, number, number, number];
  const ra = (a * Math.PI) / 180;
  const rb = (b * Math.PI) / 180;
  const [ca, sa, cb, sb] = [Math.cos(ra), Math.sin(ra), Math.cos(rb), Math.sin(rb)];
  // Forward rotations on (z, y, x), each the same convention as rotate2d on its plane:
  // about D (H-W plane): y' = ca·y − sa·x, x' = sa·y + ca·x; about H (D-W plane): z' = cb·z − sb·x, x' = sb·z + cb·x.
  const Ra: Mat3 = [[1, 0, 0], [0, ca, -sa], [0, sa, ca]];
  const Rb: Mat3 = [[cb, 0, -sb], [0, 1, 0], [sb, 0, cb]];
  const R = matmul3(Rb, Ra);
  const out = new Float32Array(x.length);
  const cz = (D - 1) / 2;
  const cy = (H - 1) / 2;
  const cx = (W - 1) / 2;
  const HW = H * W;
  for (let z = 0; z < D; z++) {
    for (let y = 0; y < H; y++) {
      for (let xx = 0; xx < W; xx++) {
        const dz = z - cz;
        const dy = y - cy;
        const dx = xx - cx;
        // source = R^T · d  (columns of R)
        const sz = cz + R[0][0] * dz + R[1][0] * dy + R[2][0] * dx;
        const sy = cy + R[0][1] * dz + R[1][1] * dy + R[2][1] * dx;
        const sx = cx + R[0][2] * dz + R[1][2] * dy + R[2][2] * dx;
        const z0 = Math.floor(sz);
        const y0 = Math.floor(sy);
        const x0 = Math.floor(sx);
        const fz = sz - z0;
        const fy = sy - y0;
        const fx = sx - x0;
        for (let ch = 0; ch < C; ch++) {
          const base = ch * D * HW;
          let acc = 0;
          for (let k = 0; k < 8; k++) {
            const zi = z0 + (k >> 2);
            const yi = y0 + ((k >> 1) & 1);
            const xi = x0 + (k & 1);
            if (zi < 0 || zi >= D || yi < 0 || yi >= H || xi < 0 || xi >= W) continue;
            const w = (k >> 2 ? fz : 1 - fz) * ((k >> 1) & 1 ? fy : 1 - fy) * (k & 1 ? fx : 1 - fx);
            acc += w * x[base + zi * HW + yi * W + xi]!;
          }
          out[base + z * HW + y * W + xx] = acc;
        }
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// RandAugment ops on C×H×W in [0, 1]. `f` = magnitude/10 in [0, 1]; `sign` = ±1 for signed ops.
// Ranges follow torchvision's RandAugment: rotate ±30°, shear ±0.3, translate ±0.45·size
// (150/331), brightness/contrast/sharpness factor 1 ± 0.9, posterize to 8 − 4f bits, solarize
// above 1 − f. Colour (saturation) is left out: most of these images are grayscale.

type Op = (x: Float32Array, shape: readonly number[], f: number, sign: number) => Float32Array;

function grayMean(x: Float32Array, shape: readonly number[]): number {
  const [C, H, W] = shape as [number, number, number];
  const P = H * W;
  let s = 0;
  if (C === 3) for (let p = 0; p < P; p++) s += 0.299 * x[p]! + 0.587 * x[P + p]! + 0.114 * x[2 * P + p]!;
  else for (let i = 0; i < C * P; i++) s += x[i]!;
  return C === 3 ? s / P : s / (C * P);
}

function blend(x: Float32Array, base: Float32Array | number, factor: number): Float32Array {
  for (let i = 0; i < x.length; i++) {
    const b = typeof base === 'number' ? base : base[i]!;
    x[i] = clamp01(b + (x[i]! - b) * factor);
  }
  return x;
}

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

/** Per-channel histogram equalisation on 256 levels, as PIL's ImageOps.equalize does it. */
function equalize(x: Float32Array, shape: readonly number[]): Float32Array {
  const P = shape[1]! * shape[2]!;
  const hist = new Uint32Array(256);
  for (let c = 0; c < shape[0]!; c++) {
    hist.fill(0);
    for (let p = c * P; p < (c + 1) * P; p++) hist[Math.round(clamp01(x[p]!) * 255)]!++;
    let last = 255;
    while (last > 0 && hist[last] === 0) last--;
    const step = Math.floor((P - hist[last]!) / 255);
    if (step === 0) continue; // (near-)constant channel: PIL leaves it unchanged
    const lut = new Float32Array(256);
    let n = Math.floor(step / 2);
    for (let i = 0; i < 256; i++) {
      lut[i] = Math.min(255, Math.floor(n / step)) / 255;
      n += hist[i]!;
    }
    for (let p = c * P; p < (c + 1) * P; p++) x[p] = lut[Math.round(clamp01(x[p]!) * 255)]!;
  }
  return x;
}

function sharpness(x: Float32Array, shape: readonly number[], factor: number): Float32Array {
  // PIL's SMOOTH kernel [[1,1,1],[1,5,1],[1,1,1]]/13 on the interior; border pixels stay as they are.
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

export const RAND_AUGMENT_OPS: Readonly<Record<string, Op>> = {
  identity: (x) => x,
  rotate: (x, s, f, sign) => rotate2d(x, s, sign * 30 * f),
  shearX: (x, s, f, sign) => warp2d(x, s, [1, sign * 0.3 * f, 0, 1, 0, 0]),
  shearY: (x, s, f, sign) => warp2d(x, s, [1, 0, sign * 0.3 * f, 1, 0, 0]),
  translateX: (x, s, f, sign) => warp2d(x, s, [1, 0, 0, 1, sign * (150 / 331) * s[2]! * f, 0]),
  translateY: (x, s, f, sign) => warp2d(x, s, [1, 0, 0, 1, 0, sign * (150 / 331) * s[1]! * f]),
  autocontrast: (x, s) => autocontrast(x, s),
  equalize: (x, s) => equalize(x, s),
  brightness: (x, _s, f, sign) => blend(x, 0, 1 + sign * 0.9 * f),
  contrast: (x, s, f, sign) => blend(x, grayMean(x, s), 1 + sign * 0.9 * f),
  sharpness: (x, s, f, sign) => sharpness(x, s, 1 + sign * 0.9 * f),
  posterize: (x, _s, f) => {
    const bits = 8 - Math.round(4 * f);
    const mask = (0xff << (8 - bits)) & 0xff;
    for (let i = 0; i < x.length; i++) x[i] = (Math.round(clamp01(x[i]!) * 255) & mask) / 255;
    return x;
  },
  solarize: (x, _s, f) => {
    const thr = 1 - f;
    for (let i = 0; i < x.length; i++) if (x[i]! >= thr) x[i] = 1 - x[i]!;
    return x;
  },
};
const OP_NAMES = Object.keys(RAND_AUGMENT_OPS);

/** Applies `n` ops drawn uniformly with replacement, each at magnitude m/10 with a random sign. */
export function randAugment(x: Float32Array, shape: readonly number[], n: number, m: number, rng: Rng): Float32Array {
  let y = x;
  for (let k = 0; k < n; k++) {
    const name = OP_NAMES[rng.int(OP_NAMES.length)]!;
    const sign = rng.bool() ? 1 : -1;
    y = RAND_AUGMENT_OPS[name]!(y, shape, m / 10, sign);
  }
  return y;
}

// ---------------------------------------------------------------------------------------------

/**
 * Augments one sample, `x` (C×H×W or C×D×H×W, values in [0, 1]). May overwrite `x`; returns the
 * result (the same length; possibly a new array). Random draws happen in a fixed order: flips,
 * rotation, RandAugment, intensity.
 */
export function augmentSample(x: Float32Array, shape: readonly number[], cfg: AugmentConfig, rng: Rng): Float32Array {
  const dim = shape.length - 1;
  if (dim !== 2 && dim !== 3) throw new RangeError(`augmentSample: shape [${shape.join(', ')}] is neither C×H×W nor C×D×H×W`);
  let y = x;
  if (cfg.flip) {
    for (let axis = 0; axis < dim; axis++) if (rng.bool()) flip(y, shape, axis);
  }
  if (cfg.rotate > 0) {
    if (dim === 2) {
      y = rotate2d(y, shape, rng.uniform(-cfg.rotate, cfg.rotate));
    } else {
      const a = rng.uniform(-cfg.rotate, cfg.rotate);
      const b = rng.uniform(-cfg.rotate, cfg.rotate);
      y = rotate3d(y, shape, a, b);
    }
  }
  if (cfg.randAugment && dim === 2) y = randAugment(y, shape, cfg.randAugment.n, cfg.randAugment.m, rng);
  if (cfg.intensity) {
    const s = rng.uniform(1 - cfg.intensity.scale, 1 + cfg.intensity.scale);
    const t = rng.uniform(-cfg.intensity.shift, cfg.intensity.shift);
    for (let i = 0; i < y.length; i++) y[i] = clamp01(y[i]! * s + t);
  }
  return y;
}
