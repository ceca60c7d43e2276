// Volumes and sampling on the host: the interpolation triplets (slice i, slice i + gap -> the middle slice)
// over the slices that hold enough brain, and the brain-age study's downsampling, augmentation and batching.
import { getSlice } from '../data/fuse.ts';
import type { Vec3 } from '../data/nifti.ts';
import { MfError } from '../errors.ts';
import type { Rng } from '../util/rng.ts';

// ---------------------------------------------------------------------------------------------
// Triplets: (slice i, slice i + gap) -> slice i + gap/2

export interface Triplet {
  vol: number;
  axis: 0 | 1 | 2;
  /** Index of the middle (target) slice. */
  mid: number;
  gap: number;
}

/** Per volume and axis, the slice indices that hold enough brain to be worth predicting. */
export function foregroundSlices(vol: Float32Array, n: number, minForeground: number): number[][] {
  const shape: Vec3 = [n, n, n];
  return [0, 1, 2].map((axis) => {
    const keep: number[] = [];
    for (let s = 0; s < n; s++) {
      const sl = getSlice({ shape, data: vol }, axis, s);
      let c = 0;
      for (let i = 0; i < sl.length; i++) if (sl[i]! > 0.05) c++;
      if (c / sl.length >= minForeground) keep.push(s);
    }
    return keep;
  });
}

/** Middle positions along one axis whose two input slices lie inside the volume. */
export function validMids(fg: number[], n: number, gap: number): number[] {
  return fg.filter((m) => m - gap / 2 >= 0 && m + gap / 2 < n);
}

/** `count` triplets: a random volume, axis and even gap up to `maxGap`, and a middle slice that holds brain. */
export function sampleTriplets(
  rng: Rng,
  count: number,
  maxGap: number,
  fg: number[][][],
  axes: readonly (0 | 1 | 2)[],
  n: number,
): Triplet[] {
  const out: Triplet[] = [];
  let tries = 0;
  while (out.length < count) {
    if (++tries > count * 100) throw new MfError(`no slice with enough brain for gap ${maxGap}`, 'lower interp.min_foreground or the gap');
    const vol = rng.int(fg.length);
    const axis = axes[rng.int(axes.length)]!;
    const gap = 2 * (1 + rng.int(maxGap / 2));
    const mids = validMids(fg[vol]![axis]!, n, gap);
    if (mids.length === 0) continue;
    out.push({ vol, axis, mid: mids[rng.int(mids.length)]!, gap });
  }
  return out;
}

/** Inputs [B, 2, n, n] (slices mid ∓ gap/2) and targets [B, 1, n, n] on the host. */
export function tripletBatch(vols: readonly Float32Array[], n: number, ts: readonly Triplet[]): { x: Float32Array; y: Float32Array } {
  const S = n * n;
  const shape: Vec3 = [n, n, n];
  const x = new Float32Array(ts.length * 2 * S);
  const y = new Float32Array(ts.length * S);
  ts.forEach((t, b) => {
    const v = { shape, data: vols[t.vol]! };
    x.set(getSlice(v, t.axis, t.mid - t.gap / 2), 2 * b * S);
    x.set(getSlice(v, t.axis, t.mid + t.gap / 2), (2 * b + 1) * S);
    y.set(getSlice(v, t.axis, t.mid), b * S);
  });
  return { x, y };
}

// ---------------------------------------------------------------------------------------------
// Whole volumes

/** Mean over f×f×f blocks of each channel of a [channels, n, n, n] volume. */
export function downsampleVolume(v: Float32Array, n: number, f: number, channels = 1): Float32Array {
  if (f === 1) return v;
  if (v.length !== channels * n * n * n) throw new MfError(`downsampleVolume: ${v.length} values are not ${channels} × ${n}³`);
  const m = n / f;
  const out = new Float32Array(channels * m * m * m);
  const w = 1 / (f * f * f);
  for (let c = 0; c < channels; c++) {
    const src = c * n * n * n;
    const dst = c * m * m * m;
    for (let z = 0; z < n; z++) {
      const oz = Math.floor(z / f);
      for (let y = 0; y < n; y++) {
        const oy = Math.floor(y / f);
        const row = src + n * (y + n * z);
        const orow = dst + m * (oy + m * oz);
        for (let x = 0; x < n; x++) out[orow + Math.floor(x / f)] += v[row + x]! * w;
      }
    }
  }
  return out;
}

/**
 * A training augmentation of a [channels, m, m, m] RAS volume: left-right flip (p = 0.5), a shift of up to
 * m/16 voxels along each axis (zero fill), and intensity x·a + b with a in [0.9, 1.1], b in [-0.05, 0.05],
 * clipped to [0, 1]. Every channel gets the same flip and shift (they are one subject's aligned scans) and
 * its own intensity change (the modalities' contrasts vary independently between scanners).
 */
export function augmentVolume(v: Float32Array, m: number, rng: Rng, channels = 1): Float32Array {
  const flip = rng.bool();
  const s = Math.max(1, Math.round(m / 16));
  const [dx, dy, dz] = [0, 1, 2].map(() => rng.int(2 * s + 1) - s) as [number, number, number];
  const V = m * m * m;
  if (v.length !== channels * V) throw new MfError(`augmentVolume: ${v.length} values are not ${channels} × ${m}³`);
  const out = new Float32Array(channels * V);
  for (let c = 0; c < channels; c++) {
    const a = rng.uniform(0.9, 1.1);
    const b = rng.uniform(-0.05, 0.05);
    shiftFlipScale(v.subarray(c * V, (c + 1) * V), out.subarray(c * V, (c + 1) * V), m, [dx, dy, dz], flip, a, b);
  }
  return out;
}

function shiftFlipScale(
  v: Float32Array,
  out: Float32Array,
  m: number,
  d: [number, number, number],
  flip: boolean,
  a: number,
  b: number,
): void {
  const [dx, dy, dz] = d;
  for (let z = 0; z < m; z++) {
    const sz = z - dz;
    if (sz < 0 || sz >= m) continue;
    for (let y = 0; y < m; y++) {
      const sy = y - dy;
      if (sy < 0 || sy >= m) continue;
      for (let x = 0; x < m; x++) {
        let sx = x - dx;
        if (sx < 0 || sx >= m) continue;
        if (flip) sx = m - 1 - sx;
        const val = v[sx + m * (sy + m * sz)]!;
        out[x + m * (y + m * z)] = val === 0 ? 0 : Math.min(1, Math.max(0, val * a + b));
      }
    }
  }
}

/** Volumes of one size, back to back: a batch [B, ...] on the host. */
export function stackVolumes(vols: readonly Float32Array[]): Float32Array {
  const m = vols[0]!.length;
  const out = new Float32Array(vols.length * m);
  vols.forEach((v, i) => out.set(v, i * m));
  return out;
}
