// The data side of BrainFuse volume fusion: build a new training volume from the first slices of one brain
// and the last slices of another, with synthesized transition slices in between, and label it with the
// age-weighted mix of the two. The transition synthesis itself (a network in the thesis) is a callback here;
// the default is linear interpolation. 'raw' mode is the RawBrainFuse ablation: plain concatenation.
//
// Layout along `axis` (N slices), for k >= 1 and k + transition <= N - 1:
//   interp: [0, k) from A | [k, k + transition) synthesized from A[k-1] and B[k+transition] | [k + transition, N) from B
//   raw:    [0, k) from A | [k, N) from B                       (transition is ignored)
// Kept slices are copied bit for bit. Each fused volume carries a generation (sources 0, fused 1, ...):
// fusing fused volumes compounds artefacts and blurs the age label, so it is refused past `maxGeneration`.

import { ConfigError, ShapeError } from '../errors.ts';
import { writeFileAtomic } from '../util/files.ts';
import { encodePng } from '../util/png.ts';
import type { Vec3 } from './nifti.ts';

export interface FusableVolume {
  shape: Vec3;
  data: Float32Array;
  spacing?: Vec3;
  affine?: number[];
  /** 0 (or absent) for a real scan, 1 for a fusion of real scans, and so on. */
  generation?: number;
}

export interface FusedVolume extends FusableVolume {
  generation: number;
  /** Share of the output's slices that come from A (transition slices count half). */
  fractionA: number;
}

/** Synthesizes `count` slices between `before` (A's last kept slice) and `after` (B's first kept slice). */
export type SliceInterpolator = (before: Float32Array, after: Float32Array, count: number) => Float32Array[];

export interface FuseOptions {
  axis: 0 | 1 | 2;
  /** Slices taken from A. */
  k: number;
  /** Synthesized slices after A's (interp mode). */
  transition: number;
  mode: 'raw' | 'interp';
  /** Default: linearInterpolate. */
  interpolate?: SliceInterpolator;
  /** The highest source generation that may be fused. Default 0: only real scans. */
  maxGeneration?: number;
}

/** Straight-line blend: slice i of count is before + (after - before)·i/(count + 1). */
export const linearInterpolate: SliceInterpolator = (before, after, count) =>
  Array.from({ length: count }, (_, s) => {
    const t = (s + 1) / (count + 1);
    const out = new Float32Array(before.length);
    for (let i = 0; i < out.length; i++) out[i] = before[i]! + (after[i]! - before[i]!) * t;
    return out;
  });

// ---------------------------------------------------------------------------------------------
// Slices

/** Slice `index` along `axis`, as a 2D array over the other two axes (lower axis fastest). */
export function getSlice(vol: { shape: Vec3; data: Float32Array }, axis: number, index: number): Float32Array {
  const [X, Y, Z] = vol.shape;
  if (axis === 2) return vol.data.slice(index * X * Y, (index + 1) * X * Y); // contiguous
  const out = new Float32Array(axis === 0 ? Y * Z : X * Z);
  let o = 0;
  if (axis === 0) for (let z = 0; z < Z; z++) for (let y = 0; y < Y; y++) out[o++] = vol.data[index + X * (y + Y * z)]!;
  else for (let z = 0; z < Z; z++) for (let x = 0; x < X; x++) out[o++] = vol.data[x + X * (index + Y * z)]!;
  return out;
}

function setSlice(vol: { shape: Vec3; data: Float32Array }, axis: number, index: number, s: Float32Array): void {
  const [X, Y, Z] = vol.shape;
  if (axis === 2) {
    vol.data.set(s, index * X * Y);
    return;
  }
  let o = 0;
  if (axis === 0) for (let z = 0; z < Z; z++) for (let y = 0; y < Y; y++) vol.data[index + X * (y + Y * z)] = s[o++]!;
  else for (let z = 0; z < Z; z++) for (let x = 0; x < X; x++) vol.data[x + X * (index + Y * z)] = s[o++]!;
}

function checkSeam(n: number, axis: number, k: number, transition: number, what: string): void {
  if (axis !== 0 && axis !== 1 && axis !== 2) throw new ConfigError(`${what}: axis ${axis} must be 0, 1 or 2`);
  if (!Number.isInteger(k) || !Number.isInteger(transition) || k < 1 || transition < 0 || k + transition > n - 1) {
    throw new ConfigError(
      `${what}: k ${k} and transition ${transition} must leave slices from both volumes along axis ${axis} of ${n} (1 <= k, k + transition <= ${n - 1})`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Fusion

export function fuseVolumes(a: FusableVolume, b: FusableVolume, opts: FuseOptions): FusedVolume {
  const { axis, k, mode } = opts;
  if (a.shape.some((s, i) => s !== b.shape[i]) || a.data.length !== b.data.length) {
    throw new ShapeError(
      `cannot fuse volumes of shapes [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`,
      'preprocess both to the same grid',
    );
  }
  if (mode !== 'raw' && mode !== 'interp') throw new ConfigError(`fusion mode '${String(mode)}' must be 'raw' or 'interp'`);
  const transition = mode === 'raw' ? 0 : opts.transition;
  const n = a.shape[axis]!;
  checkSeam(n, axis, k, transition, 'fuseVolumes');
  const gen = Math.max(a.generation ?? 0, b.generation ?? 0);
  const maxGeneration = opts.maxGeneration ?? 0;
  if (gen > maxGeneration) {
    throw new ConfigError(
      `refusing to fuse a generation-${gen} volume (maxGeneration ${maxGeneration}): re-fusing fused volumes compounds seams and blurs the age label`,
      'fuse real scans, or raise maxGeneration deliberately',
    );
  }

  const out: FusedVolume = {
    shape: [...a.shape],
    data: new Float32Array(a.data.length),
    generation: gen + 1,
    fractionA: (k + transition / 2) / n,
  };
  if (a.spacing) out.spacing = [...a.spacing];
  if (a.affine) out.affine = [...a.affine];
  for (let s = 0; s < k; s++) setSlice(out, axis, s, getSlice(a, axis, s));
  if (transition > 0) {
    const before = getSlice(a, axis, k - 1);
    const after = getSlice(b, axis, k + transition);
    const made = (opts.interpolate ?? linearInterpolate)(before, after, transition);
    if (made.length !== transition || made.some((m) => m.length !== before.length)) {
      throw new ShapeError(
        `the transition interpolator returned ${made.length} slices of [${made.map((m) => m.length).join(', ')}] values; expected ${transition} of ${before.length}`,
      );
    }
    made.forEach((m, i) => setSlice(out, axis, k + i, m));
  }
  for (let s = k + transition; s < n; s++) setSlice(out, axis, s, getSlice(b, axis, s));
  return out;
}

/** The fused volume's age label: each source's age weighted by its share of the slices. */
export function fusedAge(ageA: number, ageB: number, fractionA: number): number {
  if (!(fractionA >= 0 && fractionA <= 1)) throw new ConfigError(`fusion fraction ${fractionA} must be in [0, 1]`);
  return fractionA * ageA + (1 - fractionA) * ageB;
}

// ---------------------------------------------------------------------------------------------
// Plausibility

/** Mean absolute difference between consecutive slices along `axis`: entry s compares slices s and s+1. */
export function sliceSteps(vol: { shape: Vec3; data: Float32Array }, axis: number): number[] {
  const n = vol.shape[axis]!;
  const steps: number[] = [];
  let prev = getSlice(vol, axis, 0);
  for (let s = 1; s < n; s++) {
    const cur = getSlice(vol, axis, s);
    let sum = 0;
    for (let i = 0; i < cur.length; i++) sum += Math.abs(cur[i]! - prev[i]!);
    steps.push(sum / cur.length);
    prev = cur;
  }
  return steps;
}

/**
 * How abrupt the seam is: the largest slice-to-slice step across it (from A's last kept slice to B's first)
 * over the median step elsewhere in the volume. About 1 looks like anatomy; raw concatenation of two brains
 * scores several times that. The largest step, not the mean, so one bad synthesized slice is not averaged away.
 */
export function transitionSmoothness(vol: { shape: Vec3; data: Float32Array }, axis: 0 | 1 | 2, k: number, transition: number): number {
  checkSeam(vol.shape[axis]!, axis, k, transition, 'transitionSmoothness');
  const steps = sliceSteps(vol, axis);
  const seam = steps.slice(k - 1, k + transition); // pairs (k-1, k) .. (k+transition-1, k+transition)
  const rest = [...steps.slice(0, k - 1), ...steps.slice(k + transition)].sort((x, y) => x - y);
  const worst = Math.max(...seam);
  const typical = rest.length ? rest[Math.floor((rest.length - 1) / 2)]! : 0;
  if (typical === 0) return worst === 0 ? 1 : Infinity;
  return worst / typical;
}

/** Whether the seam is no more abrupt than `threshold` times a typical slice step (default 3). */
export function plausible(
  vol: { shape: Vec3; data: Float32Array },
  axis: 0 | 1 | 2,
  k: number,
  transition: number,
  threshold = 3,
): boolean {
  return transitionSmoothness(vol, axis, k, transition) <= threshold;
}

// ---------------------------------------------------------------------------------------------
// A quick look: mid-slices as a PNG

/**
 * Writes one row per volume: sagittal, coronal and axial mid-slices (RAS volumes: right, anterior and
 * superior point right/up), each volume windowed to its own min..max. Returns the image size.
 */
export function midSliceMontagePng(
  vols: readonly { shape: Vec3; data: Float32Array }[],
  path: string,
  opts: { scale?: number } = {},
): { width: number; height: number } {
  if (vols.length === 0) throw new ConfigError('midSliceMontagePng: no volumes given');
  // Panel p shows plane (u, v) of axis `axis`: sagittal (y, z), coronal (x, z), axial (x, y).
  const planes = [
    { axis: 0, u: 1, v: 2 },
    { axis: 1, u: 0, v: 2 },
    { axis: 2, u: 0, v: 1 },
  ];
  const cw = Math.max(...vols.flatMap((v) => planes.map((p) => v.shape[p.u]!)));
  const ch = Math.max(...vols.flatMap((v) => planes.map((p) => v.shape[p.v]!)));
  const scale = opts.scale ?? Math.max(1, Math.round(128 / Math.max(cw, ch)));
  if (!Number.isInteger(scale) || scale < 1) throw new ConfigError(`midSliceMontagePng: scale ${scale} must be a positive integer`);
  const width = 3 * cw * scale;
  const height = vols.length * ch * scale;
  const img = new Uint8Array(width * height);
  vols.forEach((vol, row) => {
    let lo = Infinity;
    let hi = -Infinity;
    for (const x of vol.data) if (Number.isFinite(x)) (lo = Math.min(lo, x)), (hi = Math.max(hi, x));
    const span = hi > lo ? hi - lo : 1;
    planes.forEach((p, col) => {
      const s = getSlice(vol, p.axis, Math.floor(vol.shape[p.axis]! / 2));
      const W = vol.shape[p.u]!;
      const H = vol.shape[p.v]!;
      const x0 = col * cw * scale + Math.floor(((cw - W) * scale) / 2);
      const y0 = row * ch * scale + Math.floor(((ch - H) * scale) / 2);
      for (let v = 0; v < H; v++) {
        for (let u = 0; u < W; u++) {
          const val = s[u + W * v]!;
          const g = Number.isFinite(val) ? Math.round((255 * (val - lo)) / span) : 0;
          const py = y0 + (H - 1 - v) * scale; // image rows go down; anatomy's v axis goes up
          for (let dy = 0; dy < scale; dy++) img.fill(g, (py + dy) * width + x0 + u * scale, (py + dy) * width + x0 + (u + 1) * scale);
        }
      }
    });
  });
  writeFileAtomic(path, encodePng(img, width, height));
  return { width, height };
}
