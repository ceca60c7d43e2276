// BrainFuse slice interpolation (kind "brainfuse-interp", thesis section 5.1): a 2D U-Net learns, without
// labels, to predict the slice halfway between slices i and i + gap of real IXI T1 volumes, with a
// curriculum that widens the gap during training. The trained network synthesises the transition slices
// of fused volumes (`mf fuse`, and the BrainFuse arms of the brain-age study).
//
// Also here, shared by the brain-age study and `mf fuse`: the `brainfuse` section's settings, loading and
// preprocessing the subjects, PSNR and SSIM, and running a trained interpolator.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  findIxiVolumes, loadIxiSubjects, preprocessBrain, subjectSplit, type IxiSubject,
} from '../data/brain.ts';
import { encodePng, fuseVolumes, getSlice, type FusableVolume, type FusedVolume, type SliceInterpolator } from '../data/fuse.ts';
import type { Vec3 } from '../data/nifti.ts';
import { ConfigError, MfError } from '../errors.ts';
import { DEFAULT_UNET, resolveUNetConfig, SliceUNet, type SliceUNetConfig } from '../models/brainfuse.ts';
import { ParameterStore } from '../nn/parameters.ts';
import { add, affine, mean, mseLoss, slice, sqrt, square, sub } from '../ops/index.ts';
import { noGrad, Tensor, tidy } from '../tensor/tensor.ts';
import { hashSeed, Rng } from '../util/rng.ts';
import { AdamW } from './adamw.ts';
import { writeFileAtomic, writeSafetensors } from './checkpoint.ts';
import { runLoop } from './loop.ts';
import { lineChartSvg } from './report.ts';
import { readSafetensors } from './safetensors.ts';
import type { Session } from './session.ts';
import { asF32, readLog, series } from './supervised.ts';

// ---------------------------------------------------------------------------------------------
// Settings: the `brainfuse` section of an experiment file

type Obj = Record<string, unknown>;

/** Reads one object of the free-form `brainfuse` section: unknown keys and wrong types are errors. */
export class SectionReader {
  readonly obj: Obj;
  constructor(raw: unknown, readonly where: string, readonly file: string, allowed: readonly string[]) {
    if (raw === undefined || raw === null) raw = {};
    if (typeof raw !== 'object' || Array.isArray(raw)) throw this.err('', 'must be an object');
    this.obj = raw as Obj;
    for (const k of Object.keys(this.obj)) {
      if (!allowed.includes(k)) throw new ConfigError(`${file}: unknown key ${where}/${k} (allowed: ${allowed.join(', ')})`);
    }
  }
  err(key: string, what: string): ConfigError {
    return new ConfigError(`${this.file}: ${this.where}${key ? `/${key}` : ''} ${what}`);
  }
  has(key: string): boolean {
    return this.obj[key] !== undefined;
  }
  num(key: string, def: number, o: { min?: number; max?: number; int?: boolean; exclusiveMin?: boolean } = {}): number {
    const v = this.obj[key] ?? def;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.err(key, 'must be a number');
    if (o.int && !Number.isInteger(v)) throw this.err(key, 'must be an integer');
    if (o.min !== undefined && (o.exclusiveMin ? v <= o.min : v < o.min)) throw this.err(key, `must be ${o.exclusiveMin ? '>' : '>='} ${o.min}`);
    if (o.max !== undefined && v > o.max) throw this.err(key, `must be <= ${o.max}`);
    return v;
  }
  str(key: string, def: string): string;
  str(key: string, def: string | null): string | null;
  str(key: string, def: string | null): string | null {
    const v = this.obj[key] ?? def;
    if (v === null) return null;
    if (typeof v !== 'string' || v === '') throw this.err(key, 'must be a non-empty string');
    return v;
  }
  /** A string that may be explicitly null in the file (meaning "off"). */
  nullableStr(key: string, def: string | null): string | null {
    if (key in this.obj && this.obj[key] === null) return null;
    return this.str(key, def);
  }
  oneOf<T extends string>(key: string, def: T, values: readonly T[]): T {
    const v = this.obj[key] ?? def;
    if (!values.includes(v as T)) throw this.err(key, `must be one of ${values.map((x) => JSON.stringify(x)).join(', ')}`);
    return v as T;
  }
  bool(key: string, def: boolean): boolean {
    const v = this.obj[key] ?? def;
    if (typeof v !== 'boolean') throw this.err(key, 'must be true or false');
    return v;
  }
  nums(key: string, def: readonly number[], o: { min?: number; max?: number; int?: boolean } = {}): number[] {
    const v = this.obj[key] ?? def;
    if (!Array.isArray(v) || v.length === 0) throw this.err(key, 'must be a non-empty array of numbers');
    return v.map((x: unknown, i) => {
      if (typeof x !== 'number' || !Number.isFinite(x) || (o.int && !Number.isInteger(x)) || (o.min !== undefined && x < o.min) || (o.max !== undefined && x > o.max)) {
        throw this.err(`${key}/${i}`, `must be ${o.int ? 'an integer' : 'a number'}${o.min !== undefined ? ` >= ${o.min}` : ''}${o.max !== undefined ? ` and <= ${o.max}` : ''}`);
      }
      return x;
    });
  }
  strs(key: string, def: readonly string[]): string[] {
    const v = this.obj[key] ?? def;
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'string' && x !== '')) throw this.err(key, 'must be a non-empty array of strings');
    return [...(v as string[])];
  }
  sub(key: string, allowed: readonly string[]): SectionReader {
    return new SectionReader(this.obj[key], `${this.where}/${key}`, this.file, allowed);
  }
}

export interface BrainDataSettings {
  /** Folder with the IXI volumes (searched recursively) and usually ixi_subjects.csv. */
  dataDir: string;
  /** Demographics CSV; null when there is none (interpolation needs no ages). */
  subjectsCsv: string | null;
  cacheDir: string;
  /** Side of the cubic preprocessing grid. */
  shape: number;
  split: { seed: number; test: number; val: number };
}

export const DATA_KEYS = ['data_dir', 'subjects_csv', 'cache_dir', 'shape', 'split'] as const;

/** $XDG_CACHE_HOME/medformer/brain, else ~/.cache/medformer/brain. */
export function defaultBrainCache(): string {
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'medformer', 'brain');
}

/**
 * The data part of the section. data_dir: the setting, else $IXI_ROOT, else data/brain (relative to the
 * working directory). cache_dir: relative paths are under the run folder; default ~/.cache/medformer/brain.
 */
export function readDataSettings(r: SectionReader, runDir: string): BrainDataSettings {
  const dataDir = path.resolve(r.str('data_dir', process.env.IXI_ROOT || 'data/brain'));
  const csvSetting = r.str('subjects_csv', null);
  const csvDefault = path.join(dataDir, 'ixi_subjects.csv');
  const subjectsCsv = csvSetting ? path.resolve(csvSetting) : fs.existsSync(csvDefault) ? csvDefault : null;
  const cacheSetting = r.str('cache_dir', null);
  const cacheDir = cacheSetting ? path.resolve(runDir, cacheSetting) : defaultBrainCache();
  const shape = r.num('shape', 64, { int: true, min: 8, max: 256 });
  const s = r.sub('split', ['seed', 'test', 'val']);
  const split = { seed: s.num('seed', 0, { int: true, min: 0 }), test: s.num('test', 4, { int: true, min: 1 }), val: s.num('val', 2, { int: true, min: 0 }) };
  return { dataDir, subjectsCsv, cacheDir, shape, split };
}

export interface InterpSettings extends BrainDataSettings {
  unet: SliceUNetConfig;
  loss: 'l1' | 'l2';
  /** Weight of the image-gradient term (0 = off). */
  gradWeight: number;
  /** Curriculum: the largest gap is `start` for `every_epochs` epochs, then grows by 2 up to `max`. */
  gap: { start: number; max: number; everyEpochs: number };
  axes: (0 | 1 | 2)[];
  stepsPerEpoch: number;
  /** A slice counts as brain when this fraction of it is above 0.05. */
  minForeground: number;
  eval: { gaps: number[]; axes: (0 | 1 | 2)[]; perAxis: number };
}

const INTERP_KEYS = [...DATA_KEYS, 'unet', 'loss', 'grad_weight', 'gap', 'axes', 'steps_per_epoch', 'min_foreground', 'eval'];

export function readInterpSettings(raw: unknown, file: string, runDir: string): InterpSettings {
  const r = new SectionReader(raw, '/brainfuse', file, INTERP_KEYS);
  const data = readDataSettings(r, runDir);
  const u = r.sub('unet', Object.keys(DEFAULT_UNET));
  const unet = resolveUNetConfig(u.obj as Partial<SliceUNetConfig>, `${file}: /brainfuse/unet`);
  if (data.shape % 2 ** unet.depth !== 0) throw r.err('shape', `${data.shape} must be a multiple of 2^unet.depth = ${2 ** unet.depth}`);
  const g = r.sub('gap', ['start', 'max', 'every_epochs']);
  const even = (x: number, k: string) => {
    if (x % 2 !== 0) throw g.err(k, `${x} must be even (the target is the middle slice)`);
    return x;
  };
  const gap = {
    start: even(g.num('start', 2, { int: true, min: 2 }), 'start'),
    max: even(g.num('max', 8, { int: true, min: 2, max: data.shape - 2 }), 'max'),
    everyEpochs: g.num('every_epochs', 2, { int: true, min: 1 }),
  };
  if (gap.max < gap.start) throw g.err('max', `${gap.max} must be >= start ${gap.start}`);
  const axes = r.nums('axes', [0, 1, 2], { int: true, min: 0, max: 2 }) as (0 | 1 | 2)[];
  const e = r.sub('eval', ['gaps', 'axes', 'per_axis']);
  const evalGaps = e.nums('gaps', [2, 4, gap.max], { int: true, min: 2, max: data.shape - 2 });
  evalGaps.forEach((x, i) => {
    if (x % 2 !== 0) throw e.err(`gaps/${i}`, `${x} must be even`);
  });
  return {
    ...data,
    unet,
    loss: r.oneOf('loss', 'l1', ['l1', 'l2'] as const),
    gradWeight: r.num('grad_weight', 0.1, { min: 0 }),
    gap,
    axes: [...new Set(axes)],
    stepsPerEpoch: r.num('steps_per_epoch', 40, { int: true, min: 1 }),
    minForeground: r.num('min_foreground', 0.1, { min: 0, max: 1 }),
    eval: {
      gaps: [...new Set(evalGaps)].sort((a, b) => a - b),
      axes: [...new Set(e.nums('axes', [0, 1, 2], { int: true, min: 0, max: 2 }))] as (0 | 1 | 2)[],
      perAxis: e.num('per_axis', 16, { int: true, min: 1 }),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Subjects and their preprocessed volumes

export interface BrainSubject {
  id: string;
  /** Age in years; null when no demographics CSV names it. */
  age: number | null;
  file: string;
  /** Preprocessed (RAS, [0, 1], shape³) volume, x fastest. */
  volume: Float32Array;
}

/** Reads the subjects (with ages when a CSV is there) and preprocesses their volumes through the cache. */
export function loadBrainSubjects(s: BrainDataSettings, opts: { needAges: boolean; say?: (line: string) => void }): BrainSubject[] {
  if (!fs.existsSync(s.dataDir) || !fs.statSync(s.dataDir).isDirectory()) {
    throw new ConfigError(`IXI data folder ${s.dataDir} does not exist`, 'set brainfuse.data_dir or $IXI_ROOT to the folder holding the IXI T1 .nii.gz files (e.g. $MEDFORMER_SHARED_DATA/brain)');
  }
  let found: Map<string, string> | null = null;
  const volumes = () => (found ??= findIxiVolumes(s.dataDir));
  let listed: { id: string; age: number | null; file: string | undefined }[];
  if (s.subjectsCsv) {
    listed = loadIxiSubjects(s.subjectsCsv, { dataRoot: s.dataDir }).map((x: IxiSubject) => ({ id: x.id, age: x.age, file: x.file }));
  } else {
    if (opts.needAges) throw new ConfigError(`no demographics CSV in ${s.dataDir}`, 'brain age needs ages: set brainfuse.subjects_csv (ixi_subjects.csv or a CSV export of IXI.xls)');
    listed = [...volumes()].map(([id, file]) => ({ id, age: null, file }));
  }
  const withFile = listed.map((x) => ({ ...x, file: x.file ?? volumes().get(x.id) })).filter((x): x is { id: string; age: number | null; file: string } => !!x.file);
  if (withFile.length === 0) throw new ConfigError(`no IXI volume found for the subjects in ${s.subjectsCsv ?? s.dataDir}`, 'check brainfuse.data_dir');
  const shape: Vec3 = [s.shape, s.shape, s.shape];
  let computed = 0;
  const t0 = Date.now();
  const out = withFile.map((x) => {
    const v = preprocessBrain(x.file, { shape, cacheDir: s.cacheDir });
    if (!v.cached) computed++;
    return { id: x.id, age: x.age, file: x.file, volume: v.data };
  });
  opts.say?.(`brain data: ${out.length} subjects from ${s.dataDir} at ${s.shape}³ (${computed} preprocessed in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${out.length - computed} from the cache ${s.cacheDir})`);
  return out;
}

/** The subject-level split, and a one-line description of it for reports. */
export function splitSubjects<S extends { id: string }>(subjects: readonly S[], split: BrainDataSettings['split']): { train: S[]; val: S[]; test: S[]; text: string } {
  const parts = subjectSplit(subjects, split);
  const ids = (xs: S[]) => xs.map((x) => x.id).join(', ') || 'none';
  const text = `subject-level split (seed ${split.seed}): train ${parts.train.length} (${ids(parts.train)}); val ${parts.val.length} (${ids(parts.val)}); test ${parts.test.length} (${ids(parts.test)})`;
  return { ...parts, text };
}

// ---------------------------------------------------------------------------------------------
// Image quality

/** PSNR in dB for images in [0, range]; both are clipped to that range first. */
export function psnr(pred: ArrayLike<number>, target: ArrayLike<number>, range = 1): number {
  let se = 0;
  for (let i = 0; i < target.length; i++) {
    const d = Math.min(range, Math.max(0, pred[i]!)) - Math.min(range, Math.max(0, target[i]!));
    se += d * d;
  }
  const mse = se / target.length;
  return 10 * Math.log10((range * range) / Math.max(mse, 1e-12));
}

const SSIM_SIGMA = 1.5;
const SSIM_RADIUS = 5;
const SSIM_KERNEL = (() => {
  const k = Array.from({ length: 2 * SSIM_RADIUS + 1 }, (_, i) => Math.exp(-((i - SSIM_RADIUS) ** 2) / (2 * SSIM_SIGMA ** 2)));
  const s = k.reduce((a, b) => a + b, 0);
  return k.map((x) => x / s);
})();

/** Separable Gaussian blur over the positions where the whole window fits: [H - 2r] × [W - 2r]. */
function blurValid(img: Float64Array, W: number, H: number): { data: Float64Array; w: number; h: number } {
  const r = SSIM_RADIUS;
  const w = W - 2 * r;
  const h = H - 2 * r;
  const tmp = new Float64Array(w * H);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let k = 0; k <= 2 * r; k++) s += SSIM_KERNEL[k]! * img[y * W + x + k]!;
      tmp[y * w + x] = s;
    }
  }
  const out = new Float64Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let k = 0; k <= 2 * r; k++) s += SSIM_KERNEL[k]! * tmp[(y + k) * w + x]!;
      out[y * w + x] = s;
    }
  }
  return { data: out, w, h };
}

/**
 * Mean SSIM (Wang et al. 2004) of two W×H images in [0, range]: Gaussian window σ 1.5 (11 taps),
 * K1 0.01, K2 0.03, averaged over the positions where the window fits inside the image.
 */
export function ssim(a: ArrayLike<number>, b: ArrayLike<number>, W: number, H: number, range = 1): number {
  if (a.length !== W * H || b.length !== W * H) throw new MfError(`ssim: ${a.length} and ${b.length} values for ${W}×${H}`);
  if (W <= 2 * SSIM_RADIUS || H <= 2 * SSIM_RADIUS) throw new MfError(`ssim: ${W}×${H} is smaller than the ${2 * SSIM_RADIUS + 1}-pixel window`);
  const n = W * H;
  const x = new Float64Array(n);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    x[i] = Math.min(range, Math.max(0, a[i]!));
    y[i] = Math.min(range, Math.max(0, b[i]!));
  }
  const prod = (p: Float64Array, q: Float64Array) => p.map((v, i) => v * q[i]!);
  const mx = blurValid(x, W, H);
  const my = blurValid(y, W, H).data;
  const sxx = blurValid(prod(x, x), W, H).data;
  const syy = blurValid(prod(y, y), W, H).data;
  const sxy = blurValid(prod(x, y), W, H).data;
  const c1 = (0.01 * range) ** 2;
  const c2 = (0.03 * range) ** 2;
  let total = 0;
  for (let i = 0; i < mx.data.length; i++) {
    const ux = mx.data[i]!;
    const uy = my[i]!;
    const vx = sxx[i]! - ux * ux;
    const vy = syy[i]! - uy * uy;
    const cxy = sxy[i]! - ux * uy;
    total += ((2 * ux * uy + c1) * (2 * cxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
  }
  return total / mx.data.length;
}

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
function validMids(fg: number[], n: number, gap: number): number[] {
  return fg.filter((m) => m - gap / 2 >= 0 && m + gap / 2 < n);
}

export function sampleTriplets(rng: Rng, count: number, maxGap: number, fg: number[][][], axes: readonly (0 | 1 | 2)[], n: number): Triplet[] {
  const out: Triplet[] = [];
  let tries = 0;
  while (out.length < count) {
    if (++tries > count * 100) throw new MfError(`no slice with enough brain for gap ${maxGap}`, 'lower brainfuse.min_foreground or the gap');
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
    x.set(getSlice(v, t.axis, t.mid - t.gap / 2), (2 * b) * S);
    x.set(getSlice(v, t.axis, t.mid + t.gap / 2), (2 * b + 1) * S);
    y.set(getSlice(v, t.axis, t.mid), b * S);
  });
  return { x, y };
}

/** The curriculum's largest gap in `epoch` (0-based). */
export function gapAt(g: InterpSettings['gap'], epoch: number): number {
  return Math.min(g.max, g.start + 2 * Math.floor(epoch / g.everyEpochs));
}

// ---------------------------------------------------------------------------------------------
// Losses

const CHARBONNIER_EPS = 1e-3;

/** mean(sqrt(d² + ε²)): L1 with a smooth minimum, so the gradient exists where d = 0. */
function charbonnier(d: Tensor): Tensor {
  return mean(sqrt(affine(square(d), 1, CHARBONNIER_EPS ** 2)));
}

function reconLoss(kind: 'l1' | 'l2', pred: Tensor, target: Tensor): Tensor {
  return kind === 'l1' ? charbonnier(sub(pred, target)) : mseLoss(pred, target);
}

/** The same loss on horizontal and vertical finite differences, so edges are not blurred away. */
function gradientLoss(kind: 'l1' | 'l2', pred: Tensor, target: Tensor): Tensor {
  const [, , H, W] = pred.shape;
  const diff = (t: Tensor, axis: 2 | 3) => {
    const len = axis === 2 ? H - 1 : W - 1;
    return sub(slice(t, axis, 1, len), slice(t, axis, 0, len));
  };
  return affine(add(reconLoss(kind, diff(pred, 3), diff(target, 3)), reconLoss(kind, diff(pred, 2), diff(target, 2))), 0.5);
}

/** The training loss: reconstruction, plus `gradWeight` times the same loss on image gradients. */
export function interpLoss(kind: 'l1' | 'l2', gradWeight: number, pred: Tensor, target: Tensor): { loss: Tensor; recon: Tensor; grad: Tensor | null } {
  const recon = reconLoss(kind, pred, target);
  const grad = gradWeight > 0 ? gradientLoss(kind, pred, target) : null;
  return { loss: grad ? add(recon, affine(grad, gradWeight)) : recon, recon, grad };
}

// ---------------------------------------------------------------------------------------------
// Running a trained interpolator

/** Batch of the interpolator at inference; the training recipe's batch size, so its kernels are reused. */
export const DEFAULT_PREDICT_BATCH = 8;

/**
 * Predicts middle slices for (before, after) pairs of W×H slices, padded to the U-Net's multiple. Every
 * batch is padded to `batch` pairs: each pair is computed on its own (GroupNorm is per sample), and one
 * batch shape means one set of compiled kernels (compiling is slow on a CPU rasteriser).
 */
export async function predictMiddles(model: SliceUNet, pairs: readonly [Float32Array, Float32Array][], W: number, H: number, batch = DEFAULT_PREDICT_BATCH): Promise<Float32Array[]> {
  const m = model.multiple;
  const PW = Math.ceil(W / m) * m;
  const PH = Math.ceil(H / m) * m;
  const out: Float32Array[] = [];
  for (let b0 = 0; b0 < pairs.length; b0 += batch) {
    const chunk = pairs.slice(b0, b0 + batch);
    const x = new Float32Array(batch * 2 * PW * PH);
    chunk.forEach(([a, c], b) => {
      for (const [ch, s] of [[0, a], [1, c]] as const) {
        const base = (2 * b + ch) * PW * PH;
        for (let v = 0; v < H; v++) x.set(s.subarray(v * W, (v + 1) * W), base + v * PW);
      }
    });
    const y = tidy(() => noGrad(() => model.forward(Tensor.from(x, [batch, 2, PH, PW]))));
    const data = await y.data();
    y.dispose();
    chunk.forEach((_, b) => {
      const s = new Float32Array(W * H);
      for (let v = 0; v < H; v++) s.set(data.subarray(b * PW * PH + v * PW, b * PW * PH + v * PW + W), v * W);
      out.push(s);
    });
  }
  return out;
}

/**
 * `count` slices between `before` and `after` (count + 1 slice steps apart), clipped to [0, 1], by recursive bisection with
 * the network: the dyadic grid of 2^L ≥ count + 1 steps is filled level by level (one batch per level),
 * and each wanted slice is the linear blend of its two neighbours on that grid (exact when count + 1 is
 * a power of two).
 */
export async function synthesizeSlices(model: SliceUNet, before: Float32Array, after: Float32Array, count: number, W: number, H: number, batch = DEFAULT_PREDICT_BATCH): Promise<Float32Array[]> {
  if (count <= 0) return [];
  const G = count + 1;
  const P = 2 ** Math.ceil(Math.log2(G));
  const grid: (Float32Array | null)[] = new Array<Float32Array | null>(P + 1).fill(null);
  grid[0] = before;
  grid[P] = after;
  for (let step = P / 2; step >= 1; step /= 2) {
    const at: number[] = [];
    for (let i = step; i < P; i += 2 * step) at.push(i);
    const made = await predictMiddles(model, at.map((i) => [grid[i - step]!, grid[i + step]!] as [Float32Array, Float32Array]), W, H, batch);
    at.forEach((i, j) => (grid[i] = made[j]!));
  }
  // Preprocessed volumes lie in [0, 1]; the network's slightly negative background is clipped back to 0.
  const clip = (x: Float32Array) => x.map((v) => Math.min(1, Math.max(0, v)));
  return Array.from({ length: count }, (_, s) => {
    const pos = ((s + 1) * P) / G;
    const lo = Math.floor(pos);
    const t = pos - lo;
    if (t < 1e-9) return clip(grid[lo]!);
    const a = grid[lo]!;
    const b = grid[lo + 1]!;
    return clip(a.map((v, i) => v + (b[i]! - v) * t));
  });
}

export interface LoadedInterpolator {
  model: SliceUNet;
  store: ParameterStore;
  unet: SliceUNetConfig;
  /** Grid side the network was trained on. */
  shape: number;
  /** Split it was trained with (its test subjects were never seen). */
  split: BrainDataSettings['split'] | null;
  file: string;
  dispose(): void;
}

export const INTERP_WEIGHTS = 'model.safetensors';

/** A trained interpolator from a brainfuse-interp run folder (or its model.safetensors). Needs an engine. */
export function loadInterpolator(where: string): LoadedInterpolator {
  const file = fs.existsSync(where) && fs.statSync(where).isDirectory() ? path.join(where, INTERP_WEIGHTS) : where;
  if (!fs.existsSync(file)) {
    throw new MfError(`no trained interpolator at ${where}`, 'train one with `mf run experiments/brainfuse-interp.json` (it writes model.safetensors), or use --raw / --linear');
  }
  const st = readSafetensors(file);
  if (st.metadata.get('format') !== 'brainfuse-interp') throw new MfError(`${file} is not a BrainFuse interpolator (metadata format ${st.metadata.get('format') ?? 'missing'})`);
  const unet = resolveUNetConfig(JSON.parse(st.metadata.get('unet') ?? '{}') as Partial<SliceUNetConfig>, file);
  const store = new ParameterStore(0);
  const model = new SliceUNet(store, unet);
  store.finalize();
  store.load(asF32(st.tensors), { strict: true });
  const split = st.metadata.has('split') ? (JSON.parse(st.metadata.get('split')!) as BrainDataSettings['split']) : null;
  return { model, store, unet, shape: Number(st.metadata.get('shape') ?? 0), split, file, dispose: () => store.dispose() };
}

/**
 * fuseVolumes takes a synchronous interpolator but the network's output has to be read back from the
 * device, so transitions are made first and handed over through this.
 */
export function precomputed(slices: Float32Array[]): SliceInterpolator {
  return (_before, _after, count) => {
    if (count !== slices.length) throw new MfError(`precomputed transition has ${slices.length} slices, ${count} wanted`);
    return slices;
  };
}

// ---------------------------------------------------------------------------------------------
// Training

interface QualityAcc {
  psnr: number;
  ssim: number;
  n: number;
}

interface GapResult {
  slices: number;
  model: { psnr: number; ssim: number };
  linear: { psnr: number; ssim: number };
  /** Share of slices where the network's PSNR beats the linear blend's. */
  model_better: number;
}

export async function trainBrainfuseInterp(session: Session): Promise<void> {
  const { exp } = session;
  const t = exp.training;
  const cfg = readInterpSettings(exp.brainfuse, exp.source, session.outDir);
  const subjects = loadBrainSubjects(cfg, { needAges: false, say: (l) => session.say(l) });
  const split = splitSubjects(subjects, cfg.split);
  session.say(split.text);
  session.log({ event: 'split', train: split.train.map((s) => s.id), val: split.val.map((s) => s.id), test: split.test.map((s) => s.id) });
  const n = cfg.shape;
  const S = n * n;
  const trainVols = split.train.map((s) => s.volume);
  const trainFg = trainVols.map((v) => foregroundSlices(v, n, cfg.minForeground));

  const store = new ParameterStore(t.seed);
  const model = new SliceUNet(store, cfg.unet);
  store.finalize();
  session.say(`model: slice-interpolation U-Net (base ${cfg.unet.base}, depth ${cfg.unet.depth}), ${store.count().toLocaleString('en-US')} parameters`);
  const opt = new AdamW(store, { lr: t.lr, weightDecay: t.weight_decay, maxGradNorm: t.grad_clip ?? undefined });
  const restored = session.restore(store, opt);

  // A fixed validation set at the largest gap, so the curve is comparable from epoch to epoch.
  const valVols = split.val.map((s) => s.volume);
  const valFg = valVols.map((v) => foregroundSlices(v, n, cfg.minForeground));
  const valSet = valVols.length ? sampleTriplets(new Rng(hashSeed(cfg.split.seed, 'interp-val')), 8 * valVols.length, cfg.gap.max, valFg, cfg.axes, n).map((x) => ({ ...x, gap: cfg.gap.max })) : [];

  const result = await runLoop(
    {
      session,
      store,
      opt,
      stepsPerEpoch: cfg.stepsPerEpoch,
      step(epoch, position) {
        const maxGap = gapAt(cfg.gap, epoch);
        const rng = new Rng(hashSeed(t.seed, 'interp-batch', epoch, position));
        const batch = sampleTriplets(rng, t.batch_size, maxGap, trainFg, cfg.axes, n);
        const { x, y } = tripletBatch(trainVols, n, batch);
        return tidy(() => {
          const pred = model.forward(Tensor.from(x, [batch.length, 2, n, n]));
          const target = Tensor.from(y, [batch.length, 1, n, n]);
          const { loss, recon, grad } = interpLoss(cfg.loss, cfg.gradWeight, pred, target);
          loss.backward();
          const terms: Record<string, Tensor> = grad ? { recon, grad } : { recon };
          return { loss, terms, samples: batch.length, tag: { max_gap: maxGap } };
        });
      },
      async validate(epoch, step) {
        if (valSet.length === 0) return;
        const { x, y } = tripletBatch(valVols, n, valSet);
        const pairs = valSet.map((_, b) => [x.subarray(2 * b * S, (2 * b + 1) * S), x.subarray((2 * b + 1) * S, (2 * b + 2) * S)] as [Float32Array, Float32Array]);
        const pred = await predictMiddles(model, pairs, n, n, t.batch_size);
        let pm = 0;
        let pl = 0;
        pred.forEach((p, b) => {
          const target = y.subarray(b * S, (b + 1) * S);
          pm += psnr(p, target) / pred.length;
          pl += psnr(pairs[b]![0].map((v, i) => (v + pairs[b]![1][i]!) / 2), target) / pred.length;
        });
        session.log({ event: 'val', epoch, step, gap: cfg.gap.max, psnr_model: pm, psnr_linear: pl, max_gap: gapAt(cfg.gap, epoch) });
        session.say(`epoch ${epoch + 1} step ${step}: val PSNR at gap ${cfg.gap.max}: network ${pm.toFixed(2)} dB, linear ${pl.toFixed(2)} dB (curriculum gap ≤ ${gapAt(cfg.gap, epoch)})`);
      },
      extra: () => ({}),
    },
    restored,
  );
  if (result.interrupted) {
    store.dispose();
    return;
  }

  writeSafetensors(path.join(session.outDir, INTERP_WEIGHTS), await store.export(), {
    format: 'brainfuse-interp',
    unet: JSON.stringify(cfg.unet),
    shape: String(n),
    split: JSON.stringify(cfg.split),
    step: String(result.step),
  });

  session.say(`evaluating on ${split.test.length} held-out subjects (gaps ${cfg.eval.gaps.join(', ')}, axes ${cfg.eval.axes.join(', ')})`);
  const t0 = Date.now();
  const evaluation = await evaluateInterp(model, split.test.map((s) => s.volume), n, cfg, t.batch_size);
  const evalSeconds = (Date.now() - t0) / 1000;
  writeExamplesPng(path.join(session.outDir, 'examples.png'), evaluation.examples, n);

  const metrics = {
    interp: {
      steps: result.step,
      wall_s: +result.trainSeconds.toFixed(1),
      eval_s: +evalSeconds.toFixed(1),
      samples_per_s: +((result.step * t.batch_size) / Math.max(1e-3, result.trainSeconds)).toFixed(2),
      shape: n,
      split: { seed: cfg.split.seed, train: split.train.map((s) => s.id), val: split.val.map((s) => s.id), test: split.test.map((s) => s.id) },
      by_gap: evaluation.byGap,
    },
  };
  writeFileAtomic(path.join(session.outDir, 'metrics.json'), new TextEncoder().encode(JSON.stringify(metrics, null, 2) + '\n'));
  writeInterpReport(session, cfg, split.text, evaluation.byGap, result.step, result.trainSeconds);
  for (const [g, r] of Object.entries(evaluation.byGap)) {
    session.say(`gap ${g}: network PSNR ${r.model.psnr.toFixed(2)} dB SSIM ${r.model.ssim.toFixed(4)} | linear PSNR ${r.linear.psnr.toFixed(2)} dB SSIM ${r.linear.ssim.toFixed(4)} (${r.slices} slices)`);
  }
  store.dispose();
}

interface Example {
  before: Float32Array;
  after: Float32Array;
  linear: Float32Array;
  model: Float32Array;
  truth: Float32Array;
}

/** PSNR and SSIM of the network and of the linear blend on every held-out volume, per gap. */
export async function evaluateInterp(
  model: SliceUNet,
  vols: readonly Float32Array[],
  n: number,
  cfg: Pick<InterpSettings, 'eval' | 'minForeground'>,
  batch = DEFAULT_PREDICT_BATCH,
): Promise<{ byGap: Record<string, GapResult>; examples: Example[] }> {
  const S = n * n;
  const byGap: Record<string, GapResult> = {};
  const examples: Example[] = [];
  const fgs = vols.map((v) => foregroundSlices(v, n, cfg.minForeground));
  for (const gap of cfg.eval.gaps) {
    const triplets: Triplet[] = [];
    vols.forEach((_, vol) => {
      for (const axis of cfg.eval.axes) {
        const mids = validMids(fgs[vol]![axis]!, n, gap);
        // Evenly spaced positions through the brain, at most perAxis of them.
        const k = Math.min(cfg.eval.perAxis, mids.length);
        for (let i = 0; i < k; i++) triplets.push({ vol, axis, mid: mids[Math.floor(((i + 0.5) * mids.length) / k)]!, gap });
      }
    });
    const acc = { model: { psnr: 0, ssim: 0, n: 0 } as QualityAcc, linear: { psnr: 0, ssim: 0, n: 0 } as QualityAcc, better: 0 };
    const { x, y } = tripletBatch(vols, n, triplets);
    const pairs = triplets.map((_, b) => [x.subarray(2 * b * S, (2 * b + 1) * S), x.subarray((2 * b + 1) * S, (2 * b + 2) * S)] as [Float32Array, Float32Array]);
    const preds = await predictMiddles(model, pairs, n, n, batch);
    preds.forEach((p, b) => {
      const truth = y.subarray(b * S, (b + 1) * S);
      const lin = pairs[b]![0].map((v, i) => (v + pairs[b]![1][i]!) / 2);
      const pm = psnr(p, truth);
      const pl = psnr(lin, truth);
      acc.model.psnr += pm;
      acc.model.ssim += ssim(p, truth, n, n);
      acc.linear.psnr += pl;
      acc.linear.ssim += ssim(lin, truth, n, n);
      if (pm > pl) acc.better++;
    });
    const m = Math.max(1, preds.length);
    byGap[String(gap)] = {
      slices: preds.length,
      model: { psnr: acc.model.psnr / m, ssim: acc.model.ssim / m },
      linear: { psnr: acc.linear.psnr / m, ssim: acc.linear.ssim / m },
      model_better: acc.better / m,
    };
    if (gap === cfg.eval.gaps.at(-1)) {
      // One example per axis from the first volume, near the middle of the brain.
      for (const axis of cfg.eval.axes) {
        const idx = triplets.findIndex((tr) => tr.vol === 0 && tr.axis === axis);
        const cnt = triplets.filter((tr) => tr.vol === 0 && tr.axis === axis).length;
        const b = idx + Math.floor(cnt / 2);
        if (idx < 0 || !preds[b]) continue;
        examples.push({ before: pairs[b]![0], after: pairs[b]![1], linear: pairs[b]![0].map((v, i) => (v + pairs[b]![1][i]!) / 2), model: preds[b]!, truth: y.slice(b * S, (b + 1) * S) });
      }
    }
  }
  return { byGap, examples };
}

/** Rows of: slice i | linear blend | network | ground truth | slice j, on a common [0, 1] window. */
function writeExamplesPng(file: string, examples: readonly Example[], n: number): void {
  if (examples.length === 0) return;
  const scale = Math.max(1, Math.round(96 / n));
  const cell = n * scale;
  const W = 5 * cell;
  const H = examples.length * cell;
  const img = new Uint8Array(W * H);
  examples.forEach((ex, row) => {
    [ex.before, ex.linear, ex.model, ex.truth, ex.after].forEach((s, col) => {
      for (let v = 0; v < n; v++) {
        for (let u = 0; u < n; u++) {
          const g = Math.round(255 * Math.min(1, Math.max(0, s[u + n * v]!)));
          const py = row * cell + (n - 1 - v) * scale;
          for (let dy = 0; dy < scale; dy++) img.fill(g, (py + dy) * W + col * cell + u * scale, (py + dy) * W + col * cell + (u + 1) * scale);
        }
      }
    });
  });
  writeFileAtomic(file, encodePng(img, W, H));
}

function writeInterpReport(session: Session, cfg: InterpSettings, splitText: string, byGap: Record<string, GapResult>, steps: number, seconds: number): void {
  const records = readLog(session.outDir);
  const enc = (s: string) => new TextEncoder().encode(s);
  writeFileAtomic(path.join(session.outDir, 'loss.svg'), enc(lineChartSvg('training loss', 'step', series(records, 'train', 'loss'), { logY: true })));
  const val = [...series(records, 'val', 'psnr_model'), ...series(records, 'val', 'psnr_linear')];
  writeFileAtomic(path.join(session.outDir, 'val_psnr.svg'), enc(lineChartSvg(`validation PSNR at gap ${cfg.gap.max} (dB)`, 'step', val)));
  const rows = Object.entries(byGap).map(
    ([g, r]) =>
      `| ${g} | ${r.slices} | ${r.model.psnr.toFixed(2)} | ${r.linear.psnr.toFixed(2)} | ${(r.model.psnr - r.linear.psnr).toFixed(2)} | ${r.model.ssim.toFixed(4)} | ${r.linear.ssim.toFixed(4)} | ${(100 * r.model_better).toFixed(0)}% |`,
  );
  const md = [
    `# ${session.exp.name}`,
    '',
    session.exp.description,
    '',
    `Device: ${session.backend.describe()}`,
    '',
    'BrainFuse slice interpolation (Simionescu 2025, PhD thesis, section 5.1): a 2D U-Net predicts the slice halfway between slices i and i + gap of a preprocessed IXI T1 volume. ' +
      `Self-supervised on real volumes; curriculum over the gap from ${cfg.gap.start} to ${cfg.gap.max} (+2 every ${cfg.gap.everyEpochs} epochs); loss ${cfg.loss === 'l1' ? 'L1 (Charbonnier, ε = 1e-3)' : 'L2'}${cfg.gradWeight > 0 ? ` + ${cfg.gradWeight} × the same loss on image gradients` : ''}. ` +
      `${steps} steps in ${seconds.toFixed(0)} s at ${cfg.shape}³.`,
    '',
    `Data: ${splitText}. Only 16 IXI subjects are available here, so this is a demonstration of the method, not a reproduction (the thesis figures transcribed for this project hold no interpolation PSNR/SSIM to compare with).`,
    '',
    `Held-out (test) subjects, slices along axes ${cfg.eval.axes.join(', ')} with at least ${(100 * cfg.minForeground).toFixed(0)}% brain, at most ${cfg.eval.perAxis} evenly spaced positions per volume and axis; PSNR over the whole slice (range [0, 1]); SSIM with an 11-tap Gaussian window (σ 1.5).`,
    '',
    '| gap | slices | PSNR network (dB) | PSNR linear (dB) | Δ PSNR | SSIM network | SSIM linear | network better |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    'Examples (largest gap; columns: slice i, linear blend, network, ground truth, slice i + gap):',
    '',
    '![examples](examples.png)',
    '',
    '![loss](loss.svg)',
    '',
    '![validation PSNR](val_psnr.svg)',
    '',
  ].join('\n');
  writeFileAtomic(path.join(session.outDir, 'report.md'), enc(md));
}

// ---------------------------------------------------------------------------------------------
// Fusing with a transition maker

/** How transition slices are made: the trained network (BrainFuse), a straight blend, or none (RawBrainFuse). */
export type TransitionMaker = { kind: 'network'; model: SliceUNet } | { kind: 'linear' } | { kind: 'raw' };

/** Width and height of a slice along `axis` (getSlice's layout: the lower remaining axis runs fastest). */
export function sliceDims(shape: Vec3, axis: 0 | 1 | 2): { W: number; H: number } {
  const [u, v] = [0, 1, 2].filter((a) => a !== axis) as [number, number];
  return { W: shape[u]!, H: shape[v]! };
}

/** fuseVolumes with the transition made by `maker` (the network's slices are computed first, on the device). */
export async function fusePair(a: FusableVolume, b: FusableVolume, opts: { axis: 0 | 1 | 2; k: number; transition: number; maxGeneration?: number }, maker: TransitionMaker): Promise<FusedVolume> {
  const { axis, k } = opts;
  if (maker.kind === 'raw') return fuseVolumes(a, b, { axis, k, transition: 0, mode: 'raw', maxGeneration: opts.maxGeneration });
  const t = opts.transition;
  let interpolate: SliceInterpolator | undefined;
  if (maker.kind === 'network' && t > 0 && k >= 1 && k + t < a.shape[axis]! && b.shape[axis] === a.shape[axis]) {
    const { W, H } = sliceDims(a.shape, axis);
    interpolate = precomputed(await synthesizeSlices(maker.model, getSlice(a, axis, k - 1), getSlice(b, axis, k + t), t, W, H));
  }
  return fuseVolumes(a, b, { axis, k, transition: t, mode: 'interp', interpolate, maxGeneration: opts.maxGeneration });
}
