// Training-time augmentation of one sample at a time, on Float32 channel-first arrays with values in [0, 1].
// Everything random comes from the Rng passed in, drawn in a fixed order, so the same Rng state always gives the
// same output (the loader derives that state from seed, epoch and sample index, which makes resumed runs see
// identical augmentations). The ops live in augment/geometry.ts and augment/randaugment.ts.
//
// Named policies (AUGMENT_POLICIES; the experiment file picks one by name):
//   "thesis"           what the thesis prints (training settings table and section 4.7.3): on 2D, the random
//                      crop it mentions (pad-and-crop), random horizontal and vertical flips, small rotations and
//                      RandAugment N = 2, M = 8 on torchvision's scale (31 magnitude bins, torchvision's default;
//                      see augment/randaugment.ts); on 3D, flips along each dimension and rotation about two
//                      spatial axes. No intensity jitter (the thesis lists none). This project's choices where the
//                      thesis gives no number: each flip (2D: H and W; 3D: D, H and W) independently with p = 0.5,
//                      rotations uniform in ±10° (bilinear 2D, trilinear 3D), crop padding round(size/7) pixels of
//                      0 (black, −1 after normalisation, the fill of the rotations too): 4 at 28 px, 9 at 64, 18 at
//                      128, 32 at 224; no crop on 3D (this project's reading of the crop as a 2D one).
//   "flips-rotations"  "thesis" without RandAugment: crop, flips and rotations only.
//   "ssl"              the views of self-supervised pre-training (thesis section 4.7.6: "flips, rotations,
//                      intensity"): flips and ±10° rotations as above, and an intensity jitter x·s + t with s in
//                      1 ± 0.1 and t in ±0.1 (this project's magnitudes), on 2D and 3D; no crop, no RandAugment.
//   "none"             nothing (the loader then only normalises).
import { ConfigError } from '../errors.ts';
import type { Rng } from '../util/rng.ts';
import { flip, padCrop, rotate2d, rotate3d } from './augment/geometry.ts';
import { type RandAugmentConfig, randAugment } from './augment/randaugment.ts';

export { flip, padCrop, rotate2d, rotate3d, rotation2d, warp2d } from './augment/geometry.ts';
export { RA_OPS, RAND_AUGMENT_OPS, type RandAugmentConfig, type RaOp, raMagnitude, randAugment } from './augment/randaugment.ts';

/** What one sample goes through, in this order: crop, flips, rotation, RandAugment, intensity. */
export interface AugmentConfig {
  /**
   * Pad-and-crop: pad every spatial axis by `crop` pixels of 0 on both sides, then crop the original size back at
   * a uniform random offset per axis (torchvision's RandomCrop(size, padding=crop)); 0 turns it off.
   */
  crop: number;
  /**
   * true: 2D a vertical (H) and a horizontal (W) flip, each with p = 0.5; 3D a flip of each of D, H, W with p = 0.5.
   * "horizontal": the W flip alone, p = 0.5 (natural images, e.g. the Wide ResNet CIFAR recipe).
   */
  flips: boolean | 'horizontal';
  /**
   * Largest rotation in degrees; the angle is uniform in ±rotate; 0 turns it off. 2D: in-plane, bilinear. 3D: one
   * angle about the D axis (in the H-W plane) and one about the H axis (in the D-W plane), trilinear.
   */
  rotate: number;
  /** RandAugment (torchvision's, see augment/randaugment.ts); 2D only; null = off. */
  randaugment: RandAugmentConfig | null;
  /** x·s + t with s uniform in 1 ± scale and t uniform in ±shift, then clipped to [0, 1]; null = off. */
  intensity: { scale: number; shift: number } | null;
}

export const AUGMENT_POLICIES = ['thesis', 'flips-rotations', 'ssl', 'none'] as const;
export type AugmentPolicy = (typeof AUGMENT_POLICIES)[number];

/** "small rotations" (thesis 4.7.3): ±10° is this project's bound, the one used since the first runs. */
export const THESIS_ROTATE_DEG = 10;
/** Intensity jitter of the "ssl" policy and of custom settings with `intensity: true` (this project's magnitudes). */
export const SSL_INTENSITY: Readonly<{ scale: number; shift: number }> = { scale: 0.1, shift: 0.1 };
/** RandAugment as the thesis prints it: N = 2 ops at M = 8, on torchvision's 31-bin scale (its default bins). */
export const THESIS_RANDAUGMENT: Readonly<RandAugmentConfig> = { n: 2, m: 8, bins: 31 };

/** Pad-and-crop padding of the named policies for a `size`-pixel image: round(size/7), 4 at 28 px (this project's choice). */
export function thesisCrop(size: number): number {
  return Math.round(size / 7);
}

/** The ops of a named policy for `dim`-D samples of side `size`; null for "none". See the table at the top. */
export function augmentPolicy(policy: AugmentPolicy, dim: 2 | 3, size: number): AugmentConfig | null {
  if (policy === 'none') return null;
  if (policy === 'ssl') return { crop: 0, flips: true, rotate: THESIS_ROTATE_DEG, randaugment: null, intensity: { ...SSL_INTENSITY } };
  const base: AugmentConfig = {
    crop: dim === 2 ? thesisCrop(size) : 0,
    flips: true,
    rotate: THESIS_ROTATE_DEG,
    randaugment: null,
    intensity: null,
  };
  if (policy === 'thesis' && dim === 2) base.randaugment = { ...THESIS_RANDAUGMENT };
  return base;
}

/** True when `cfg` changes nothing (every op off), so a loader can skip it and normalise directly. */
export function isNoAugment(cfg: AugmentConfig): boolean {
  return (
    cfg.crop === 0 && !cfg.flips && cfg.rotate === 0 && (cfg.randaugment === null || cfg.randaugment.n === 0) && cfg.intensity === null
  );
}

/** Throws a ConfigError for values that make no sense (negative angles, magnitude outside the bins, …). */
export function validateAugment(cfg: AugmentConfig, dim: 2 | 3): void {
  if (!(cfg.rotate >= 0 && cfg.rotate <= 180))
    throw new ConfigError(`augment.rotate ${cfg.rotate} is out of range`, 'use degrees in 0..180');
  if (!Number.isInteger(cfg.crop) || cfg.crop < 0 || cfg.crop > 256) {
    throw new ConfigError(`augment.crop ${cfg.crop} is out of range`, 'use a padding in whole pixels, 0 (off) to 256');
  }
  if (cfg.randaugment) {
    const { n, m, bins } = cfg.randaugment;
    if (dim === 3) throw new ConfigError('augment.randaugment is for 2D data only', 'set it to null for 3D datasets');
    if (!Number.isInteger(n) || n < 0 || n > 16)
      throw new ConfigError(`augment.randaugment.n ${n} is out of range`, 'use an integer in 0..16');
    if (!Number.isInteger(bins) || bins < 2)
      throw new ConfigError(`augment.randaugment.bins ${bins} is invalid`, 'use an integer of at least 2 (torchvision: 31)');
    if (!Number.isInteger(m) || m < 0 || m >= bins) {
      throw new ConfigError(
        `augment.randaugment.m ${m} is out of range`,
        `use an integer magnitude bin in 0..${bins - 1} (torchvision's scale)`,
      );
    }
  }
  if (cfg.intensity) {
    const { scale, shift } = cfg.intensity;
    if (!(scale >= 0 && scale < 1) || !(shift >= 0 && shift <= 1)) {
      throw new ConfigError(
        `augment.intensity {scale: ${scale}, shift: ${shift}} is out of range`,
        'use scale in [0, 1) and shift in [0, 1]',
      );
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

const clamp01 = (v: number): number => Math.min(1, Math.max(0, v));

// ---------------------------------------------------------------------------------------------

/**
 * Augments one sample, `x` (C×H×W or C×D×H×W, values in [0, 1]). May overwrite `x`; returns the result (the same
 * length; possibly a new array). Random draws happen in a fixed order, each only when its op is on: crop offsets
 * (rng.int(2·crop + 1) per spatial axis), flips (rng.bool() per axis; one for "horizontal"), rotation (rng.uniform per angle),
 * RandAugment (see randAugment), intensity (scale, then shift).
 */
export function augmentSample(x: Float32Array, shape: readonly number[], cfg: AugmentConfig, rng: Rng): Float32Array {
  const dim = shape.length - 1;
  if (dim !== 2 && dim !== 3) throw new RangeError(`augmentSample: shape [${shape.join(', ')}] is neither C×H×W nor C×D×H×W`);
  let y = x;
  if (cfg.crop > 0) {
    const offsets = Array.from({ length: dim }, () => rng.int(2 * cfg.crop + 1));
    y = padCrop(y, shape, cfg.crop, offsets);
  }
  if (cfg.flips === 'horizontal') {
    if (rng.bool()) flip(y, shape, dim - 1);
  } else if (cfg.flips) {
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
  if (cfg.randaugment && dim === 2) y = randAugment(y, shape, cfg.randaugment, rng);
  if (cfg.intensity) {
    const s = rng.uniform(1 - cfg.intensity.scale, 1 + cfg.intensity.scale);
    const t = rng.uniform(-cfg.intensity.shift, cfg.intensity.shift);
    for (let i = 0; i < y.length; i++) y[i] = clamp01(y[i]! * s + t);
  }
  return y;
}
