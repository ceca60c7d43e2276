// IXI brain MRI for the BrainFuse experiments: preprocessing. Subjects, their CSV and the subject-level split
// are in ixi.ts, age bins in age_bins.ts.
//
// Preprocessing (preprocessBrain), in this order:
//   1. reorient to RAS+: permute/flip voxel axes so axis 0 runs Left→Right, 1 Posterior→Anterior,
//      2 Inferior→Superior (nearest axis of the affine; no interpolation, so no voxel changes value).
//      IXI volumes are stored PSR (256×256×150), so they come out 150×256×256.
//   2. intensity: clip to the 0.5th/99.5th percentile of the nonzero voxels, then scale to [0, 1]. Zero
//      (background after skull stripping) is left out of the percentiles so the brain, not the empty
//      field of view, sets the window; the top clip removes the few hot voxels (vessels, artefacts).
//   3. resample to a fixed grid (default 64³) with trilinear interpolation, centred on the bounding box
//      of the foreground, cropping or zero-padding around it. The output spacing is isotropic: by default
//      the spacing that fits a 160×192×160 mm box into the grid (the 15 skull-stripped IXI brains here measure
//      at most 136×179×137 mm; 64³ gives 3 mm voxels, 96×112×96 gives 1.71 mm), so every subject keeps its
//      physical size (brain volume shrinks with age: normalising it away would hide a cue);
//      `spacingMm: 'fit'` instead scales each brain's box to fill the grid.
//      Before sampling, a box filter as wide as the output voxel (in input voxels) is applied, so going from
//      ~1 mm to ~3.5 mm does not alias; `antialias: false` gives plain trilinear sampling.
// The resampled grid is axis-aligned with the RAS voxel axes; the small obliquity of the scanner affine
// (a few degrees for IXI) is kept in the output affine, not resampled away.
//
// Results are cached as float32 `.nii` files under `cacheDir`, keyed by a hash of the source path, its size
// and mtime, and the options, so a second run reads a small file instead of redoing the work.

import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, FileFormatError, MfError } from '../errors.ts';
import { readNifti, writeNifti, type Vec3, type Volume } from './nifti.ts';

// ---------------------------------------------------------------------------------------------
// Orientation

const AXIS_CODES = [
  ['L', 'R'],
  ['P', 'A'],
  ['I', 'S'],
] as const;

/** For each voxel axis, the world axis (0=x R, 1=y A, 2=z S) it runs along most, and whether it runs backwards. */
export function axisMapping(affine: readonly number[]): { world: Vec3; flip: [boolean, boolean, boolean] } {
  // Greedy on the largest remaining |direction cosine|: for an oblique scan two voxel axes can share the
  // same "largest" world axis, and the greedy pick still yields a permutation.
  const m = (r: number, c: number) => affine[4 * r + c]!;
  const norm = [0, 1, 2].map((c) => Math.hypot(m(0, c), m(1, c), m(2, c)) || 1);
  const world: number[] = [-1, -1, -1];
  const usedRow = [false, false, false];
  for (let step = 0; step < 3; step++) {
    let best = -1;
    let br = 0;
    let bc = 0;
    for (let r = 0; r < 3; r++) {
      for (let c = 0; c < 3; c++) {
        if (usedRow[r] || world[c] !== -1) continue;
        const v = Math.abs(m(r, c)) / norm[c]!;
        if (v > best) (best = v), (br = r), (bc = c);
      }
    }
    world[bc] = br;
    usedRow[br] = true;
  }
  return { world: world as Vec3, flip: [0, 1, 2].map((c) => m(world[c]!, c) < 0) as [boolean, boolean, boolean] };
}

/** The orientation as three letters naming where each voxel axis points, e.g. 'PSR' for IXI, 'RAS' after reorienting. */
export function orientationCode(affine: readonly number[]): string {
  const { world, flip } = axisMapping(affine);
  return world.map((w, c) => AXIS_CODES[w]![flip[c] ? 0 : 1]).join('');
}

/** Permutes/flips voxel axes so the volume is RAS+ (see axisMapping). Exact: no interpolation. */
export function reorientToRas(vol: Volume): Volume {
  const { world, flip } = axisMapping(vol.affine);
  const perm = [0, 0, 0]; // perm[newAxis] = old axis
  for (let c = 0; c < 3; c++) perm[world[c]!] = c;
  const [X, Y] = vol.shape;
  const oldStride = [1, X, X * Y];
  const shape = perm.map((a) => vol.shape[a]!) as Vec3;
  const spacing = perm.map((a) => vol.spacing[a]!) as Vec3;
  // Walk the new grid; each new axis steps along its old axis, backwards when flipped.
  const step = perm.map((a) => (flip[a] ? -oldStride[a]! : oldStride[a]!));
  let base = 0;
  for (let i = 0; i < 3; i++) if (flip[perm[i]!]) base += (vol.shape[perm[i]!]! - 1) * oldStride[perm[i]!]!;
  const out = new Float32Array(vol.data.length);
  let o = 0;
  for (let z = 0; z < shape[2]; z++) {
    for (let y = 0; y < shape[1]; y++) {
      let src = base + z * step[2]! + y * step[1]!;
      for (let x = 0; x < shape[0]; x++, src += step[0]!) out[o++] = vol.data[src]!;
    }
  }
  // New affine = A · P, where old index = P · new index (a signed permutation plus offset).
  const A = vol.affine;
  const affine = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
  for (let r = 0; r < 3; r++) {
    let t = A[4 * r + 3]!;
    for (let i = 0; i < 3; i++) {
      const a = perm[i]!;
      const sgn = flip[a] ? -1 : 1;
      affine[4 * r + i] = A[4 * r + a]! * sgn;
      if (flip[a]) t += A[4 * r + a]! * (vol.shape[a]! - 1);
    }
    affine[4 * r + 3] = t;
  }
  return { shape, data: out, spacing, affine };
}

// ---------------------------------------------------------------------------------------------
// Intensity

/** Percentiles (0..100, linear interpolation as numpy's default) of the nonzero finite values. */
export function nonzeroPercentiles(data: Float32Array, ps: readonly number[]): number[] {
  let n = 0;
  for (let i = 0; i < data.length; i++) if (data[i] !== 0 && Number.isFinite(data[i]!)) n++;
  if (n === 0) return ps.map(() => 0);
  const vals = new Float32Array(n);
  let k = 0;
  for (let i = 0; i < data.length; i++) if (data[i] !== 0 && Number.isFinite(data[i]!)) vals[k++] = data[i]!;
  vals.sort();
  return ps.map((p) => {
    const pos = (Math.min(100, Math.max(0, p)) / 100) * (n - 1);
    const lo = Math.floor(pos);
    const hi = Math.min(n - 1, lo + 1);
    return vals[lo]! + (vals[hi]! - vals[lo]!) * (pos - lo);
  });
}

/** In place: clip to [lo, hi] and map to [0, 1]; non-finite voxels become 0 (background). */
export function clipNormalize(data: Float32Array, lo: number, hi: number): void {
  const span = hi > lo ? hi - lo : 1;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    data[i] = Number.isFinite(v) ? (Math.min(hi, Math.max(lo, v)) - lo) / span : 0;
  }
}

/**
 * Inclusive voxel bounds [min, max] per axis of the voxels above `threshold`, trimming the outermost `trim`
 * fraction of those voxels at each end of each axis (default 0.1%), so a few stray voxels left by skull
 * stripping, or one hot artefact, do not stretch the box and shift the brain off centre. Null if empty.
 */
export function foregroundBox(vol: { shape: Vec3; data: Float32Array }, threshold = 0, trim = 0.001): { min: Vec3; max: Vec3 } | null {
  if (!(trim >= 0 && trim < 0.5)) throw new ConfigError(`foreground box trim ${trim} must be in [0, 0.5)`);
  const [X, Y, Z] = vol.shape;
  const counts = [new Float64Array(X), new Float64Array(Y), new Float64Array(Z)]; // marginal histograms
  let total = 0;
  let i = 0;
  for (let z = 0; z < Z; z++) {
    for (let y = 0; y < Y; y++) {
      for (let x = 0; x < X; x++, i++) {
        if (!(vol.data[i]! > threshold)) continue;
        counts[0]![x]++;
        counts[1]![y]++;
        counts[2]![z]++;
        total++;
      }
    }
  }
  if (total === 0) return null;
  const cut = Math.floor(total * trim); // voxels allowed outside at each end
  const min = [0, 0, 0] as Vec3;
  const max = [0, 0, 0] as Vec3;
  counts.forEach((c, a) => {
    let lo = 0;
    for (let acc = c[0]!; acc <= cut; acc += c[++lo]!);
    let hi = c.length - 1;
    for (let acc = c[hi]!; acc <= cut; acc += c[--hi]!);
    min[a] = lo;
    max[a] = hi;
  });
  return { min, max };
}

// ---------------------------------------------------------------------------------------------
// Resampling

/** In place: a centred running-mean of odd width `w` along `axis`, treating outside voxels as 0. */
function boxFilter(vol: { shape: Vec3; data: Float32Array }, axis: number, w: number): void {
  if (w <= 1) return;
  const [X, Y, Z] = vol.shape;
  const n = vol.shape[axis]!;
  const stride = [1, X, X * Y][axis]!;
  const half = (w - 1) / 2;
  const line = new Float32Array(n);
  const lines = (X * Y * Z) / n;
  for (let l = 0; l < lines; l++) {
    // The l-th line along `axis`: split l into the two other coordinates.
    let start: number;
    if (axis === 0) start = l * X;
    else if (axis === 1) start = (l % X) + Math.floor(l / X) * X * Y;
    else start = l;
    for (let i = 0; i < n; i++) line[i] = vol.data[start + i * stride]!;
    let sum = 0;
    for (let i = 0; i <= Math.min(half, n - 1); i++) sum += line[i]!;
    for (let i = 0; i < n; i++) {
      vol.data[start + i * stride] = sum / w;
      const add = i + half + 1;
      const drop = i - half;
      if (add < n) sum += line[add]!;
      if (drop >= 0) sum -= line[drop]!;
    }
  }
}

/**
 * Trilinear resampling onto an isotropic grid of `shape` voxels of `spacingMm`, centred on the continuous
 * voxel index `centre` of the input; samples outside the input are 0.
 */
export function resampleCentred(vol: Volume, shape: Vec3, spacingMm: number, centre: Vec3): Volume {
  // Per output axis: the two input neighbours and their weights (weight 0 for neighbours outside).
  const taps = [0, 1, 2].map((a) => {
    const n = vol.shape[a]!;
    const S = shape[a]!;
    const i0 = new Int32Array(S);
    const w0 = new Float32Array(S);
    const w1 = new Float32Array(S);
    for (let o = 0; o < S; o++) {
      const p = centre[a]! + ((o - (S - 1) / 2) * spacingMm) / vol.spacing[a]!;
      const f = Math.floor(p);
      const t = p - f;
      i0[o] = f;
      w0[o] = f >= 0 && f < n ? 1 - t : 0;
      w1[o] = f + 1 >= 0 && f + 1 < n ? t : 0;
    }
    return { i0, w0, w1 };
  });
  const [X, Y] = vol.shape;
  const [SX, SY, SZ] = shape;
  const d = vol.data;
  const at = (x: number, y: number, z: number) => d[x + X * (y + Y * z)]!;
  const out = new Float32Array(SX * SY * SZ);
  const tx = taps[0]!;
  const ty = taps[1]!;
  const tz = taps[2]!;
  let o = 0;
  for (let k = 0; k < SZ; k++) {
    const z0 = tz.i0[k]!;
    const wz = [tz.w0[k]!, tz.w1[k]!];
    for (let j = 0; j < SY; j++) {
      const y0 = ty.i0[j]!;
      const wy = [ty.w0[j]!, ty.w1[j]!];
      for (let i = 0; i < SX; i++, o++) {
        const x0 = tx.i0[i]!;
        const wx = [tx.w0[i]!, tx.w1[i]!];
        let v = 0;
        for (let c = 0; c < 8; c++) {
          const w = wx[c & 1]! * wy[(c >> 1) & 1]! * wz[c >> 2]!;
          if (w !== 0) v += w * at(x0 + (c & 1), y0 + ((c >> 1) & 1), z0 + (c >> 2));
        }
        out[o] = v;
      }
    }
  }
  // Output voxel o maps to input index centre + (o - (S-1)/2)·s/s_in; compose with the input affine.
  const A = vol.affine;
  const affine = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
  for (let r = 0; r < 3; r++) {
    let t = A[4 * r + 3]!;
    for (let a = 0; a < 3; a++) {
      const scale = spacingMm / vol.spacing[a]!;
      affine[4 * r + a] = A[4 * r + a]! * scale;
      t += A[4 * r + a]! * (centre[a]! - ((shape[a]! - 1) / 2) * scale);
    }
    affine[4 * r + 3] = t;
  }
  return { shape: [SX, SY, SZ], data: out, spacing: [spacingMm, spacingMm, spacingMm], affine };
}

// ---------------------------------------------------------------------------------------------
// The pipeline, with its cache

export interface PreprocessOptions {
  /** Output grid, RAS voxel order. Default [64, 64, 64]; the thesis-scale alternative is [96, 112, 96]. */
  shape?: Vec3;
  /** Isotropic output voxel size in mm, or 'fit' (per-subject, to fill the grid). Default: fits 160×192×160 mm. */
  spacingMm?: number | 'fit';
  /** Lower/upper clip percentiles of the nonzero voxels. Default [0.5, 99.5]. */
  clipPercentiles?: [number, number];
  /** Foreground for the bounding box: normalised intensity above this. Default 0 (any voxel above the low clip). */
  foregroundThreshold?: number;
  /** Box prefilter before trilinear sampling when downsampling. Default true. */
  antialias?: boolean;
  /**
   * Centre the grid on this world point (mm, the file's affine) instead of the foreground box: the other
   * modalities of a subject are sampled on the grid of its first, so the channels line up voxel for voxel.
   */
  centreMm?: Vec3;
  /** Where to cache results; no caching when unset. */
  cacheDir?: string;
}

export interface BrainVolume extends Volume {
  source: string;
  /** True when this came from the cache. */
  cached: boolean;
  /** Orientation of the source file before reorienting (e.g. 'PSR'). */
  sourceOrientation: string;
}

/** Bumped whenever preprocessing changes, so old cache entries are never read as new ones. */
const CACHE_VERSION = 1;
const BRAIN_FOV_MM: Vec3 = [160, 192, 160];

type ResolvedOptions = Required<Omit<PreprocessOptions, 'cacheDir' | 'centreMm'>> & { centreMm: Vec3 | null };

function resolveOptions(o: PreprocessOptions): ResolvedOptions {
  const shape = o.shape ?? [64, 64, 64];
  if (shape.length !== 3 || !shape.every((s) => Number.isInteger(s) && s >= 1 && s <= 1024)) {
    throw new ConfigError(`brain preprocessing shape [${shape.join(', ')}] must be 3 integers in 1..1024`);
  }
  const spacingMm = o.spacingMm ?? Math.max(...BRAIN_FOV_MM.map((f, i) => f / shape[i]!));
  if (spacingMm !== 'fit' && !(Number.isFinite(spacingMm) && spacingMm > 0)) {
    throw new ConfigError(`brain preprocessing spacingMm ${spacingMm} must be a positive number of mm or 'fit'`);
  }
  const clip = o.clipPercentiles ?? [0.5, 99.5];
  if (!(clip[0] >= 0 && clip[0] < clip[1] && clip[1] <= 100)) {
    throw new ConfigError(`brain preprocessing clipPercentiles [${clip.join(', ')}] must satisfy 0 <= low < high <= 100`);
  }
  const foregroundThreshold = o.foregroundThreshold ?? 0;
  if (!(foregroundThreshold >= 0 && foregroundThreshold < 1)) {
    throw new ConfigError(`brain preprocessing foregroundThreshold ${foregroundThreshold} must be in [0, 1)`);
  }
  const centreMm = o.centreMm ?? null;
  if (centreMm && !(centreMm.length === 3 && centreMm.every(Number.isFinite))) {
    throw new ConfigError(`brain preprocessing centreMm [${centreMm.join(', ')}] must be 3 finite numbers`);
  }
  return {
    shape: [shape[0], shape[1], shape[2]],
    spacingMm,
    clipPercentiles: [clip[0], clip[1]],
    foregroundThreshold,
    antialias: o.antialias ?? true,
    centreMm: centreMm ? [centreMm[0], centreMm[1], centreMm[2]] : null,
  };
}

/** The continuous voxel index of world point `w` under a 4×4 row-major affine (Cramer's rule on its 3×3 part). */
export function worldToVoxel(affine: readonly number[], w: Vec3): Vec3 {
  const a = (r: number, c: number) => affine[4 * r + c]!;
  const det3 = (m: number[][]) =>
    m[0]![0]! * (m[1]![1]! * m[2]![2]! - m[1]![2]! * m[2]![1]!) -
    m[0]![1]! * (m[1]![0]! * m[2]![2]! - m[1]![2]! * m[2]![0]!) +
    m[0]![2]! * (m[1]![0]! * m[2]![1]! - m[1]![1]! * m[2]![0]!);
  const M = [0, 1, 2].map((r) => [0, 1, 2].map((c) => a(r, c)));
  const b = [0, 1, 2].map((r) => w[r]! - a(r, 3));
  const d = det3(M);
  if (!(Math.abs(d) > 1e-12))
    throw new MfError("the volume's affine is singular: cannot place a world point in it", 'check the NIfTI header');
  return [0, 1, 2].map((c) => det3(M.map((row, r) => row.map((v, k) => (k === c ? b[r]! : v)))) / d) as Vec3;
}

/** The world point (mm) at the centre of a volume's grid. */
export function gridCentreMm(vol: Pick<Volume, 'shape' | 'affine'>): Vec3 {
  const c = vol.shape.map((s) => (s - 1) / 2);
  return [0, 1, 2].map(
    (r) => vol.affine[4 * r]! * c[0]! + vol.affine[4 * r + 1]! * c[1]! + vol.affine[4 * r + 2]! * c[2]! + vol.affine[4 * r + 3]!,
  ) as Vec3;
}

/** Steps 1–3 above on a volume already in memory. */
export function preprocessVolume(vol: Volume, options: PreprocessOptions = {}, name = 'volume'): Volume {
  const o = resolveOptions(options);
  const ras = reorientToRas(vol);
  const [plo, phi] = nonzeroPercentiles(ras.data, o.clipPercentiles);
  clipNormalize(ras.data, plo!, phi!);
  const box = foregroundBox(ras, o.foregroundThreshold);
  if (!box) throw new MfError(`${name}: no voxel above the background, nothing to preprocess`, 'check that this is the right file');
  const centre = o.centreMm ? worldToVoxel(ras.affine, o.centreMm) : ([0, 1, 2].map((a) => (box.min[a]! + box.max[a]!) / 2) as Vec3);
  const spacingMm =
    o.spacingMm === 'fit'
      ? Math.max(...[0, 1, 2].map((a) => ((box.max[a]! - box.min[a]! + 1) * ras.spacing[a]!) / o.shape[a]!))
      : o.spacingMm;
  if (o.antialias) {
    for (let a = 0; a < 3; a++) {
      const w = Math.round(spacingMm / ras.spacing[a]!);
      boxFilter(ras, a, w % 2 === 1 ? w : w - 1); // odd, so the filter stays centred on the voxel
    }
  }
  const out = resampleCentred(ras, o.shape, spacingMm, centre);
  for (let i = 0; i < out.data.length; i++) out.data[i] = Math.min(1, out.data[i]!); // weights summing to 1+ulp
  return out;
}

/** The cache file for (file, options); its name changes when the file or any option changes. */
export function cachePath(file: string, options: PreprocessOptions, cacheDir: string): string {
  const abs = resolve(file);
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(abs);
  } catch {
    throw new FileFormatError(`${file}: no such file`, 'check the path');
  }
  // centreMm joins the key only when set, so the entries written before it existed stay valid.
  const { centreMm, ...o } = resolveOptions(options);
  const key = JSON.stringify({ v: CACHE_VERSION, abs, size: st.size, mtime: st.mtimeMs, o: centreMm ? { ...o, centreMm } : o });
  return join(cacheDir, `${createHash('sha256').update(key).digest('hex').slice(0, 24)}.nii`);
}

/** Reads, preprocesses (see the top of this file) and caches one brain volume. */
export function preprocessBrain(file: string, options: PreprocessOptions = {}): BrainVolume {
  const o = resolveOptions(options);
  const cache = options.cacheDir ? cachePath(file, options, options.cacheDir) : undefined;
  if (cache && existsSync(cache)) {
    try {
      const c = readNifti(cache);
      if (c.shape.every((s, i) => s === o.shape[i])) {
        const orient = /orient=([A-Z]{3})/.exec(readHeaderDescrip(cache))?.[1] ?? '?';
        return {
          shape: c.shape,
          data: c.data,
          spacing: c.spacing,
          affine: c.affine,
          source: file,
          cached: true,
          sourceOrientation: orient,
        };
      }
    } catch (e) {
      // A damaged cache entry is not the user's data: recompute and overwrite it.
      if (!(e instanceof FileFormatError)) throw e;
    }
  }
  const src = readNifti(file);
  const out = preprocessVolume(src, options, file);
  const sourceOrientation = orientationCode(src.affine);
  if (cache) {
    mkdirSync(options.cacheDir!, { recursive: true });
    writeNifti(cache, out, { description: `medformer brain v${CACHE_VERSION} orient=${sourceOrientation}` });
  }
  return { ...out, source: file, cached: false, sourceOrientation };
}

function readHeaderDescrip(file: string): string {
  const b = new Uint8Array(80);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, b, 0, 80, 148); // descrip: bytes 148..227 of the header
  } finally {
    closeSync(fd);
  }
  const end = b.indexOf(0);
  return String.fromCharCode(...b.subarray(0, end < 0 ? b.length : end));
}
