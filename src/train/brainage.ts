// The BrainFuse brain-age study (kind "brainage", thesis section 5.1): a small 3D ResNet classifies IXI
// T1 volumes into age bins (trained on Gaussian-smoothed bin labels), in the arms of the thesis's table:
//   NT              normal training on the real training volumes
//   +BT             the backbone first pre-trained with Barlow Twins on the same volumes (no labels)
//   +BrainFuse      extra training volumes fused from pairs of training subjects, transition slices made
//                   by the trained interpolation network, labelled with the slice-weighted mean age
//   +RawBrainFuse   the same fusions (same pairs, axes and seams) by plain concatenation
//   +ConsistencyReg MSE between the class probabilities of two augmentations of each volume
// Each arm runs for every seed; top-1/3/5 accuracy on the held-out subjects is reported as mean ± std next
// to the thesis's figures. Every arm and seed (and each Barlow Twins pre-training) is a phase of the study,
// trained through the shared loop in the study's one run folder: the checkpoint names its phase and
// study.json records the finished ones, so an interrupted study resumes inside the phase it stopped in
// and does not repeat finished phases. (One session and one device for the whole study: every new
// device would compile all the kernels again, which costs most of a minute on a CPU rasteriser.)
import fs from 'node:fs';
import path from 'node:path';
import { ageBins, smoothBinLabels, type AgeBins } from '../data/brain.ts';
import { fusedAge, midSliceMontagePng, transitionSmoothness, type FusableVolume } from '../data/fuse.ts';
import type { Vec3 } from '../data/nifti.ts';
import { ConfigError, MfError, ShapeError } from '../errors.ts';
import { DEFAULT_RESNET3D, Projector, ResNet3d, resolveResNet3dConfig, type ResNet3dConfig } from '../models/resnet3d.ts';
import { ParameterStore } from '../nn/parameters.ts';
import { add, affine, div, matmul, mean, mseLoss, mul, scale, sqrt, square, sub, sum } from '../ops/index.ts';
import { logSoftmax, softmax } from '../ops/softmax.ts';
import { noGrad, shapeStr, Tensor, tidy } from '../tensor/tensor.ts';
import { hashSeed, Rng } from '../util/rng.ts';
import { AdamW } from './adamw.ts';
import {
  DATA_KEYS, fusePair, loadBrainSubjects, loadInterpolator, readDataSettings, SectionReader, splitSubjects,
  type BrainDataSettings, type TransitionMaker,
} from './brainfuse.ts';
import { loadCheckpoint, writeFileAtomic, writeSafetensors, type TrainingState } from './checkpoint.ts';
import { runLoop } from './loop.ts';
import { readSafetensors } from './safetensors.ts';
import type { Session } from './session.ts';
import { asF32, readLog } from './supervised.ts';

// ---------------------------------------------------------------------------------------------
// The thesis's figures

export const THESIS_CITATION = 'Simionescu, C. (2025), PhD thesis, Alexandru Ioan Cuza University of Iasi';

/**
 * The BrainFuse brain-age table: IXI age-bin classification, 3 runs each, mean ± std, percent. From
 * Simionescu, C. (2025), PhD thesis, Alexandru Ioan Cuza University of Iasi, section 5.1 (as transcribed
 * in the project's reference tables, `brainfuse_table`).
 */
export const THESIS_BRAINAGE: Readonly<Record<string, Record<'top1' | 'top3' | 'top5', readonly [number, number]>>> = {
  NT: { top1: [32.1, 0.27], top3: [53.8, 0.18], top5: [64.21, 0.32] },
  'NT+BT': { top1: [40.1, 0.77], top3: [62.8, 0.11], top5: [73.01, 0.1] },
  'NT+BT+BrainFuse': { top1: [50.11, 0.3], top3: [71.16, 0.12], top5: [82.9, 0.22] },
  'NT+BT+RawBrainFuse': { top1: [45.1, 0.94], top3: [67.5, 0.41], top5: [80.01, 0.1] },
  'NT+BT+BrainFuse+ConsistencyReg': { top1: [51.4, 0.84], top3: [72.1, 0.61], top5: [83.8, 0.52] },
  'NT+BT+RawBrainFuse+ConsistencyReg': { top1: [46.6, 0.9], top3: [68.8, 0.78], top5: [81.1, 0.31] },
};

export const THESIS_ARMS = Object.keys(THESIS_BRAINAGE);

// ---------------------------------------------------------------------------------------------
// Barlow Twins

/**
 * Barlow Twins (Zbontar et al., ICML 2021): standardise each embedding dimension over the batch, take the
 * cross-correlation matrix C = z1ᵀ z2 / N, and push it to the identity:
 * sum_i (1 - C_ii)² + lambda · sum_{i≠j} C_ij². Composed from differentiable ops.
 */
export function barlowTwins(z1: Tensor, z2: Tensor, lambda: number): { loss: Tensor; onDiag: Tensor; offDiag: Tensor } {
  if (z1.shape.length !== 2 || z1.shape.some((s, i) => s !== z2.shape[i]) || z2.shape.length !== 2) {
    throw new ShapeError(`barlowTwins: embeddings must both be [N, D], got ${shapeStr(z1.shape)} and ${shapeStr(z2.shape)}`);
  }
  const [n, d] = z1.shape;
  if (n < 2) throw new ShapeError(`barlowTwins: needs a batch of at least 2 to standardise, got ${shapeStr(z1.shape)}`);
  const standardise = (z: Tensor) => {
    const zc = sub(z, mean(z, 0, true));
    return div(zc, sqrt(affine(mean(square(zc), 0, true), 1, BT_EPS)));
  };
  const c = scale(matmul(standardise(z1), standardise(z2), { transA: true }), 1 / n);
  const eyeData = new Float32Array(d * d);
  for (let i = 0; i < d; i++) eyeData[i * d + i] = 1;
  const eye = Tensor.from(eyeData, [d, d]);
  const offMask = Tensor.from(eyeData.map((v) => 1 - v), [d, d]);
  const onDiag = sum(square(sub(mul(c, eye), eye)));
  const offDiag = sum(square(mul(c, offMask)));
  return { loss: add(onDiag, scale(offDiag, lambda)), onDiag, offDiag };
}

const BT_EPS = 1e-5;

/** The same loss in plain float64 TypeScript, the test oracle. z1, z2 row-major [n, d]. */
export function barlowTwinsReference(z1: ArrayLike<number>, z2: ArrayLike<number>, n: number, d: number, lambda: number): { loss: number; onDiag: number; offDiag: number } {
  const standardise = (z: ArrayLike<number>) => {
    const out = new Float64Array(n * d);
    for (let j = 0; j < d; j++) {
      let mu = 0;
      for (let i = 0; i < n; i++) mu += z[i * d + j]! / n;
      let v = 0;
      for (let i = 0; i < n; i++) v += (z[i * d + j]! - mu) ** 2 / n;
      for (let i = 0; i < n; i++) out[i * d + j] = (z[i * d + j]! - mu) / Math.sqrt(v + BT_EPS);
    }
    return out;
  };
  const a = standardise(z1);
  const b = standardise(z2);
  let on = 0;
  let off = 0;
  for (let p = 0; p < d; p++) {
    for (let q = 0; q < d; q++) {
      let c = 0;
      for (let i = 0; i < n; i++) c += (a[i * d + p]! * b[i * d + q]!) / n;
      if (p === q) on += (1 - c) ** 2;
      else off += c * c;
    }
  }
  return { loss: on + lambda * off, onDiag: on, offDiag: off };
}

/** -mean_n sum_c q[n, c] log softmax(logits)[n, c]: cross-entropy against soft (smoothed) labels. */
export function softCrossEntropy(logits: Tensor, targets: Tensor): Tensor {
  if (logits.shape.length !== 2 || logits.shape.some((s, i) => s !== targets.shape[i]) || targets.shape.length !== 2) {
    throw new ShapeError(`softCrossEntropy: logits and targets must both be [N, C], got ${shapeStr(logits.shape)} and ${shapeStr(targets.shape)}`);
  }
  return scale(sum(mul(targets, logSoftmax(logits))), -1 / logits.shape[0]);
}

// ---------------------------------------------------------------------------------------------
// Settings

export interface Arm {
  name: string;
  bt: boolean;
  fusion: 'interp' | 'raw' | null;
  consistency: boolean;
}

/** 'NT+BT+BrainFuse+ConsistencyReg' -> its parts; NT first, then any of BT, BrainFuse | RawBrainFuse, ConsistencyReg. */
export function parseArm(name: string): Arm {
  const parts = name.split('+');
  const ok = new Set(['BT', 'BrainFuse', 'RawBrainFuse', 'ConsistencyReg']);
  if (parts[0] !== 'NT' || parts.slice(1).some((p) => !ok.has(p)) || new Set(parts).size !== parts.length || (parts.includes('BrainFuse') && parts.includes('RawBrainFuse'))) {
    throw new ConfigError(`arm "${name}" must be NT followed by +BT, +BrainFuse or +RawBrainFuse, +ConsistencyReg (e.g. NT+BT+BrainFuse)`);
  }
  return { name, bt: parts.includes('BT'), fusion: parts.includes('BrainFuse') ? 'interp' : parts.includes('RawBrainFuse') ? 'raw' : null, consistency: parts.includes('ConsistencyReg') };
}

export interface BrainAgeSettings extends BrainDataSettings {
  arms: Arm[];
  seeds: number;
  /** Average-pool the preprocessed grid by this factor before the network (64³ -> 32³). */
  downsample: number;
  resnet: ResNet3dConfig;
  bins: AgeBins;
  labelSigma: number;
  stepsPerEpoch: number;
  augment: boolean;
  /** Barlow Twins pre-training: as many epochs and the same learning rate as training, its own steps per epoch. */
  bt: { stepsPerEpoch: number; dim: number; lambda: number };
  fusion: {
    /** Run folder (or weights file) of the interpolation network; null: linear blending. */
    interpRun: string | null;
    perSubject: number;
    axes: (0 | 1 | 2)[];
    transition: number;
    kRange: [number, number];
    threshold: number;
    attempts: number;
    seed: number;
  };
  consistencyWeight: number;
}

const AGE_KEYS = [...DATA_KEYS, 'arms', 'seeds', 'downsample', 'resnet', 'bins', 'label_sigma', 'steps_per_epoch', 'augment', 'bt', 'fusion', 'consistency_weight'];

export function readBrainAgeSettings(raw: unknown, file: string, runDir: string): BrainAgeSettings {
  const r = new SectionReader(raw, '/brainfuse', file, AGE_KEYS);
  const data = readDataSettings(r, runDir);
  const arms = r.strs('arms', THESIS_ARMS).map((a, i) => {
    try {
      return parseArm(a);
    } catch (e) {
      throw r.err(`arms/${i}`, (e as Error).message);
    }
  });
  if (new Set(arms.map((a) => a.name)).size !== arms.length) throw r.err('arms', 'lists an arm twice');
  const downsample = r.num('downsample', 2, { int: true, min: 1, max: 8 });
  if (data.shape % downsample !== 0) throw r.err('downsample', `${downsample} must divide the grid side ${data.shape}`);
  const resnet = resolveResNet3dConfig(r.sub('resnet', Object.keys(DEFAULT_RESNET3D)).obj as Partial<ResNet3dConfig>, `${file}: /brainfuse/resnet`);
  const side = data.shape / downsample;
  if (side % 2 ** resnet.blocks.length !== 0) throw r.err('downsample', `the network's input side ${side} must be a multiple of ${2 ** resnet.blocks.length}`);
  const b = r.sub('bins', ['min', 'max', 'width']);
  const bins = ageBins({ min: b.num('min', 20), max: b.num('max', 90), width: b.num('width', 5, { min: 0, exclusiveMin: true }) });
  const bt = r.sub('bt', ['steps_per_epoch', 'dim', 'lambda']);
  const stepsPerEpoch = r.num('steps_per_epoch', 6, { int: true, min: 1 });
  const f = r.sub('fusion', ['interp_run', 'per_subject', 'axes', 'transition', 'k_range', 'threshold', 'attempts', 'seed']);
  const kRange = f.nums('k_range', [0.3, 0.7], { min: 0, max: 1 });
  if (kRange.length !== 2 || !(kRange[0]! < kRange[1]!)) throw f.err('k_range', 'must be [low, high] with 0 <= low < high <= 1');
  return {
    ...data,
    arms,
    seeds: r.num('seeds', 3, { int: true, min: 1, max: 20 }),
    downsample,
    resnet,
    bins,
    labelSigma: r.num('label_sigma', 1, { min: 0 }),
    stepsPerEpoch,
    augment: r.bool('augment', true),
    bt: {
      stepsPerEpoch: bt.num('steps_per_epoch', stepsPerEpoch, { int: true, min: 1 }),
      dim: bt.num('dim', 64, { int: true, min: 2 }),
      lambda: bt.num('lambda', 0.005, { min: 0 }),
    },
    fusion: {
      interpRun: f.nullableStr('interp_run', 'runs/brainfuse-interp'),
      perSubject: f.num('per_subject', 4, { int: true, min: 1 }),
      axes: [...new Set(f.nums('axes', [2], { int: true, min: 0, max: 2 }))] as (0 | 1 | 2)[],
      transition: f.num('transition', 7, { int: true, min: 1 }),
      kRange: [kRange[0]!, kRange[1]!],
      threshold: f.num('threshold', 3, { min: 0, exclusiveMin: true }),
      attempts: f.num('attempts', 4, { int: true, min: 1 }),
      seed: f.num('seed', 0, { int: true, min: 0 }),
    },
    consistencyWeight: r.num('consistency_weight', 1, { min: 0 }),
  };
}

// ---------------------------------------------------------------------------------------------
// Volumes on the host

/** Mean over f×f×f blocks of an n³ volume. */
export function downsampleVolume(v: Float32Array, n: number, f: number): Float32Array {
  if (f === 1) return v;
  const m = n / f;
  const out = new Float32Array(m * m * m);
  const w = 1 / (f * f * f);
  for (let z = 0; z < n; z++) {
    const oz = Math.floor(z / f);
    for (let y = 0; y < n; y++) {
      const oy = Math.floor(y / f);
      const row = n * (y + n * z);
      const orow = m * (oy + m * oz);
      for (let x = 0; x < n; x++) out[orow + Math.floor(x / f)] += v[row + x]! * w;
    }
  }
  return out;
}

/**
 * A training augmentation of an m³ RAS volume: left-right flip (p = 0.5), a shift of up to m/16 voxels
 * along each axis (zero fill), and intensity x·a + b with a in [0.9, 1.1], b in [-0.05, 0.05], clipped to [0, 1].
 */
export function augmentVolume(v: Float32Array, m: number, rng: Rng): Float32Array {
  const flip = rng.bool();
  const s = Math.max(1, Math.round(m / 16));
  const [dx, dy, dz] = [0, 1, 2].map(() => rng.int(2 * s + 1) - s) as [number, number, number];
  const a = rng.uniform(0.9, 1.1);
  const b = rng.uniform(-0.05, 0.05);
  const out = new Float32Array(m * m * m);
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
  return out;
}

interface Sample {
  id: string;
  age: number;
  volume: Float32Array;
}

interface FusedSet {
  mode: 'interp' | 'raw';
  transition: string;
  samples: (Sample & { a: string; b: string; axis: number; k: number; smoothness: number })[];
  proposed: number;
  kept: number;
  rejected: number;
}

/**
 * Fused training volumes from pairs of training subjects. The same list of proposals (pair, axis, seam) is
 * tried for every mode, so BrainFuse and RawBrainFuse differ only in the transition; proposals whose seam
 * fails the plausibility filter are dropped until `perSubject · subjects` are kept.
 */
async function makeFusions(train: readonly Sample[], n: number, cfg: BrainAgeSettings, modes: ReadonlySet<'interp' | 'raw'>, say: (l: string) => void): Promise<FusedSet[]> {
  const f = cfg.fusion;
  const wanted = f.perSubject * train.length;
  const rng = new Rng(hashSeed(f.seed, 'fusion-proposals'));
  const proposals = Array.from({ length: wanted * f.attempts }, () => {
    const a = rng.int(train.length);
    const b = (a + 1 + rng.int(train.length - 1)) % train.length;
    const axis: 0 | 1 | 2 = f.axes[rng.int(f.axes.length)]!;
    const k = Math.max(1, Math.min(n - 2 - f.transition, Math.round(rng.uniform(f.kRange[0], f.kRange[1]) * n)));
    return { a, b, axis, k };
  });
  const shape: Vec3 = [n, n, n];
  const out: FusedSet[] = [];
  for (const mode of ['interp', 'raw'] as const) {
    if (!modes.has(mode)) continue;
    let maker: TransitionMaker = { kind: 'raw' };
    let interp: ReturnType<typeof loadInterpolator> | null = null;
    let transition = 'none (concatenation)';
    if (mode === 'interp') {
      if (f.interpRun === null) {
        maker = { kind: 'linear' };
        transition = 'linear blend (fusion.interp_run is null)';
      } else {
        interp = loadInterpolator(f.interpRun);
        if (interp.shape !== n) throw new ConfigError(`the interpolator in ${f.interpRun} was trained at ${interp.shape}³, the study preprocesses at ${n}³`, 'make brainfuse.shape equal in both experiments');
        if (interp.split && JSON.stringify(interp.split) !== JSON.stringify(cfg.split)) {
          say(`warning: the interpolator was trained with split ${JSON.stringify(interp.split)}, this study uses ${JSON.stringify(cfg.split)}: it may have seen test subjects' images`);
        }
        maker = { kind: 'network', model: interp.model };
        transition = `network (${interp.file})`;
      }
    }
    const set: FusedSet = { mode, transition, samples: [], proposed: 0, kept: 0, rejected: 0 };
    const t0 = Date.now();
    try {
      for (const p of proposals) {
        if (set.kept >= wanted) break;
        set.proposed++;
        const A = train[p.a]!;
        const B = train[p.b]!;
        const va: FusableVolume = { shape, data: A.volume };
        const vb: FusableVolume = { shape, data: B.volume };
        const t = mode === 'raw' ? 0 : f.transition;
        const fused = await fusePair(va, vb, { axis: p.axis, k: p.k, transition: t }, maker);
        const smoothness = transitionSmoothness(fused, p.axis, p.k, t);
        if (!(smoothness <= f.threshold)) {
          set.rejected++;
          continue;
        }
        set.kept++;
        set.samples.push({ id: `${A.id}+${B.id}`, age: fusedAge(A.age, B.age, fused.fractionA), volume: fused.data, a: A.id, b: B.id, axis: p.axis, k: p.k, smoothness });
      }
    } finally {
      interp?.dispose();
    }
    say(`fusion ${mode === 'interp' ? 'BrainFuse' : 'RawBrainFuse'} (transition: ${transition}): ${set.kept} kept, ${set.rejected} rejected by the plausibility filter (seam ≤ ${f.threshold}× a typical slice step), ${set.proposed} proposed, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    out.push(set);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Sub-runs

interface ArmResult {
  arm: string;
  seed: number;
  top1: number;
  top3: number;
  top5: number;
  /** Mean absolute error of the expected age (sum of bin centres weighted by the probabilities), years. */
  mae: number;
  steps: number;
  wall_s: number;
  train_samples: number;
  predictions: { id: string; age: number; bin: number; top: number[]; expected_age: number }[];
}

interface BtResult {
  loss: number | null;
  steps: number;
  wall_s: number;
  backbone: string;
}

interface StudyState {
  split: Record<string, unknown>;
  /** Results of finished phases, by phase name. */
  phases: Record<string, unknown>;
}

const STUDY_FILE = 'study.json';

function saveStudy(top: Session, state: StudyState): void {
  writeFileAtomic(path.join(top.outDir, STUDY_FILE), new TextEncoder().encode(JSON.stringify(state, null, 2) + '\n'));
}

/** The run folder's checkpoint, if it was written by phase `name`. */
function restorePhase(top: Session, name: string, store: ParameterStore, opt: AdamW): TrainingState | null {
  if (!fs.existsSync(path.join(top.outDir, 'checkpoint.json'))) return null;
  if (loadCheckpoint(top.outDir).state.extra?.phase !== name) return null;
  return top.restore(store, opt);
}

/** Runs one phase unless study.json says it finished; records its result there. Null when interrupted. */
async function phase<T>(top: Session, state: StudyState, name: string, body: () => Promise<T | null>): Promise<T | null> {
  if (name in state.phases) return state.phases[name] as T;
  if (top.interrupted) return null;
  top.say(`--- ${name}`);
  top.log({ event: 'phase', phase: name });
  const r = await body();
  if (r === null || top.interrupted) return null;
  state.phases[name] = r;
  saveStudy(top, state);
  return r;
}

/** Pool indices for one epoch: shuffled passes over the pool, as many as `count` needs. */
function epochIndices(poolSize: number, count: number, seed: number, epoch: number): number[] {
  const rng = new Rng(hashSeed(seed, 'brainage-epoch', epoch));
  const out: number[] = [];
  while (out.length < count) out.push(...rng.shuffle(Array.from({ length: poolSize }, (_, i) => i)));
  return out.slice(0, count);
}

function stack(vols: readonly Float32Array[]): Float32Array {
  const m = vols[0]!.length;
  const out = new Float32Array(vols.length * m);
  vols.forEach((v, i) => out.set(v, i * m));
  return out;
}

async function trainBarlowTwins(top: Session, name: string, cfg: BrainAgeSettings, seed: number, train: readonly Sample[], m: number): Promise<BtResult | null> {
  const t = top.exp.training;
  const store = new ParameterStore(seed);
  const model = new ResNet3d(store, cfg.resnet, cfg.bins.count);
  const projector = new Projector(store, 'bt.projector', model.featureDim, cfg.bt.dim);
  store.finalize();
  const opt = new AdamW(store, { lr: t.lr, weightDecay: t.weight_decay, maxGradNorm: t.grad_clip ?? undefined });
  const restored = restorePhase(top, name, store, opt);
  const B = Math.min(t.batch_size, train.length);
  if (B < 2) throw new ConfigError('Barlow Twins needs a batch of at least 2 volumes', 'raise training.batch_size or use more training subjects');
  const steps = cfg.bt.stepsPerEpoch;
  const result = await runLoop(
    {
      session: top,
      store,
      opt,
      stepsPerEpoch: steps,
      step(epoch, position) {
        const idx = epochIndices(train.length, steps * B, seed, epoch).slice(position * B, (position + 1) * B);
        const rng = new Rng(hashSeed(seed, 'bt-views', epoch, position));
        const v1 = stack(idx.map((i) => augmentVolume(train[i]!.volume, m, rng)));
        const v2 = stack(idx.map((i) => augmentVolume(train[i]!.volume, m, rng)));
        return tidy(() => {
          const z1 = projector.forward(model.represent(Tensor.from(v1, [B, 1, m, m, m])));
          const z2 = projector.forward(model.represent(Tensor.from(v2, [B, 1, m, m, m])));
          const bt = barlowTwins(z1, z2, cfg.bt.lambda);
          bt.loss.backward();
          return { loss: bt.loss, terms: { on_diag: bt.onDiag, off_diag: bt.offDiag }, samples: B, tag: { phase: name } };
        });
      },
      extra: () => ({ phase: name }),
    },
    restored,
  );
  if (result.interrupted) {
    store.dispose();
    return null;
  }
  const weights = await store.export();
  for (const k of [...weights.keys()]) if (!k.startsWith('backbone.')) weights.delete(k);
  const file = path.join(top.outDir, `${name}-backbone.safetensors`);
  writeSafetensors(file, weights, { format: 'brainage-bt-backbone', phase: name });
  const last = readLog(top.outDir).filter((r) => r.event === 'train' && r.phase === name).at(-1);
  store.dispose();
  return { loss: typeof last?.loss === 'number' ? last.loss : null, steps: result.step, wall_s: +result.trainSeconds.toFixed(1), backbone: path.basename(file) };
}

/**
 * top-k hits and the expected age of each volume. Batches are padded to `batch` volumes so the kernels
 * compiled for training are reused (each sample is normalised on its own, so padding changes nothing).
 */
async function evaluateAges(model: ResNet3d, samples: readonly Sample[], m: number, bins: AgeBins, batch: number): Promise<Pick<ArmResult, 'top1' | 'top3' | 'top5' | 'mae' | 'predictions'>> {
  const preds: ArmResult['predictions'] = [];
  const V = m * m * m;
  for (let i = 0; i < samples.length; i += batch) {
    const chunk = samples.slice(i, i + batch);
    const x = new Float32Array(batch * V);
    chunk.forEach((c, j) => x.set(c.volume, j * V));
    const probs = tidy(() => noGrad(() => softmax(model.forward(Tensor.from(x, [batch, 1, m, m, m])))));
    const p = await probs.data();
    probs.dispose();
    chunk.forEach((c, j) => {
      const row = Array.from(p.subarray(j * bins.count, (j + 1) * bins.count));
      const order = row.map((v, k) => [v, k] as const).sort((x, y) => y[0] - x[0] || x[1] - y[1]).map(([, k]) => k);
      const expected = row.reduce((acc, v, k) => acc + v * bins.centre(k), 0);
      preds.push({ id: c.id, age: c.age, bin: bins.index(c.age), top: order.slice(0, 5), expected_age: +expected.toFixed(2) });
    });
  }
  const topk = (k: number) => preds.filter((x) => x.top.slice(0, k).includes(x.bin)).length / Math.max(1, preds.length);
  const mae = preds.reduce((a, x) => a + Math.abs(x.expected_age - x.age), 0) / Math.max(1, preds.length);
  return { top1: topk(1), top3: topk(3), top5: topk(5), mae, predictions: preds };
}

async function trainArm(
  top: Session,
  name: string,
  cfg: BrainAgeSettings,
  arm: Arm,
  seed: number,
  pool: readonly Sample[],
  val: readonly Sample[],
  test: readonly Sample[],
  m: number,
  btBackbone: string | null,
): Promise<ArmResult | null> {
  const t = top.exp.training;
  const store = new ParameterStore(seed);
  const model = new ResNet3d(store, cfg.resnet, cfg.bins.count);
  store.finalize();
  if (btBackbone) {
    const r = store.load(asF32(readSafetensors(btBackbone).tensors), { strict: false });
    if (r.mismatched.length || r.unexpected.length || r.missing.some((k) => k.startsWith('backbone.'))) {
      throw new MfError(`${btBackbone}: Barlow Twins backbone does not match the network (mismatched ${r.mismatched.length}, unexpected ${r.unexpected.length}, missing ${r.missing.length})`);
    }
  }
  const opt = new AdamW(store, { lr: t.lr, weightDecay: t.weight_decay, maxGradNorm: t.grad_clip ?? undefined });
  const restored = restorePhase(top, name, store, opt);
  if (!restored && btBackbone) top.say(`backbone initialised from ${btBackbone}`);
  const B = Math.min(t.batch_size, pool.length);
  const C = cfg.bins.count;
  const labels = pool.map((x) => smoothBinLabels(cfg.bins.index(x.age), C, cfg.labelSigma));
  const view = (i: number, rng: Rng) => (cfg.augment ? augmentVolume(pool[i]!.volume, m, rng) : pool[i]!.volume);

  const result = await runLoop(
    {
      session: top,
      store,
      opt,
      stepsPerEpoch: cfg.stepsPerEpoch,
      step(epoch, position) {
        const idx = epochIndices(pool.length, cfg.stepsPerEpoch * B, seed, epoch).slice(position * B, (position + 1) * B);
        const rng = new Rng(hashSeed(seed, 'brainage-views', epoch, position));
        const x1 = stack(idx.map((i) => view(i, rng)));
        const x2 = arm.consistency ? stack(idx.map((i) => view(i, rng))) : null;
        const q = stack(idx.map((i) => labels[i]!));
        return tidy(() => {
          const target = Tensor.from(q, [B, C]);
          const logits = model.forward(Tensor.from(x1, [B, 1, m, m, m]));
          const ce = softCrossEntropy(logits, target);
          if (!x2) {
            ce.backward();
            return { loss: ce, samples: B, tag: { phase: name } };
          }
          const logits2 = model.forward(Tensor.from(x2, [B, 1, m, m, m]));
          const consistency = mseLoss(softmax(logits), softmax(logits2));
          const loss = add(ce, scale(consistency, cfg.consistencyWeight));
          loss.backward();
          return { loss, terms: { ce, consistency }, samples: B, tag: { phase: name } };
        });
      },
      async validate(epoch, step) {
        if (val.length === 0) return;
        const v = await evaluateAges(model, val, m, cfg.bins, B);
        top.log({ event: 'val', phase: name, epoch, step, top1: v.top1, top3: v.top3, top5: v.top5, mae: v.mae });
      },
      extra: () => ({ phase: name }),
    },
    restored,
  );
  if (result.interrupted) {
    store.dispose();
    return null;
  }
  const ev = await evaluateAges(model, test, m, cfg.bins, B);
  store.dispose();
  top.say(`${arm.name} seed ${seed}: test top-1 ${(100 * ev.top1).toFixed(1)}% top-3 ${(100 * ev.top3).toFixed(1)}% top-5 ${(100 * ev.top5).toFixed(1)}%, MAE ${ev.mae.toFixed(1)} y`);
  return { arm: arm.name, seed, ...ev, steps: result.step, wall_s: +result.trainSeconds.toFixed(1), train_samples: pool.length };
}

// ---------------------------------------------------------------------------------------------
// The study

const meanStd = (xs: readonly number[]): [number, number] => {
  const mu = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mu) ** 2, 0) / (xs.length - 1)) : 0;
  return [mu, sd];
};

/** Top-k accuracy of always answering the k most frequent training bins (ties by lower bin). */
function majorityBaseline(train: readonly Sample[], test: readonly Sample[], bins: AgeBins): Record<'top1' | 'top3' | 'top5', number> {
  const counts = new Array<number>(bins.count).fill(0);
  for (const x of train) counts[bins.index(x.age)]++;
  const order = counts.map((c, b) => [c, b] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).map(([, b]) => b);
  const acc = (k: number) => test.filter((x) => order.slice(0, k).includes(bins.index(x.age))).length / Math.max(1, test.length);
  return { top1: acc(1), top3: acc(3), top5: acc(5) };
}

/** One arm's test results over its seeds: top-k accuracy and MAE as [mean, std], prediction spread. */
interface ArmSummary {
  top1: [number, number];
  top3: [number, number];
  top5: [number, number];
  mae: [number, number];
  spread: number;
  seeds: number;
}

export async function trainBrainAge(top: Session): Promise<void> {
  const { exp } = top;
  const cfg = readBrainAgeSettings(exp.brainfuse, exp.source, top.outDir);
  const studyFile = path.join(top.outDir, STUDY_FILE);
  if (fs.existsSync(studyFile) && !top.opts.resume) {
    throw new MfError(`${top.outDir} already holds a brain-age study`, 'pass --resume to continue it, or --out for a new folder');
  }
  const previous = fs.existsSync(studyFile) ? (JSON.parse(fs.readFileSync(studyFile, 'utf8')) as StudyState) : null;
  const subjects = loadBrainSubjects(cfg, { needAges: true, say: (l) => top.say(l) });
  const split = splitSubjects(subjects, cfg.split);
  top.say(split.text);
  const n = cfg.shape;
  const m = n / cfg.downsample;
  const toSample = (x: (typeof subjects)[number]): Sample => ({ id: x.id, age: x.age!, volume: downsampleVolume(x.volume, n, cfg.downsample) });
  const train = split.train.map(toSample);
  const val = split.val.map(toSample);
  const test = split.test.map(toSample);
  const splitRecord = { ...cfg.split, train: train.map((x) => x.id), val: val.map((x) => x.id), test: test.map((x) => x.id) };
  if (previous && JSON.stringify(previous.split) !== JSON.stringify(splitRecord)) {
    throw new MfError(`${studyFile}: the study was started with another subject split`, 'resume with the same data and settings, or use --out');
  }
  const state: StudyState = { split: splitRecord, phases: previous?.phases ?? {} };
  saveStudy(top, state);

  // Fusions are made at the preprocessing grid (where the interpolator was trained), then downsampled.
  const modes = new Set(cfg.arms.map((a) => a.fusion).filter((x): x is 'interp' | 'raw' => x !== null));
  const fullTrain: Sample[] = split.train.map((x) => ({ id: x.id, age: x.age!, volume: x.volume }));
  const fusions = modes.size ? await makeFusions(fullTrain, n, cfg, modes, (l) => top.say(l)) : [];
  const fusedSamples = new Map<'interp' | 'raw', Sample[]>();
  for (const f of fusions) {
    fusedSamples.set(f.mode, f.samples.map((x) => ({ id: x.id, age: x.age, volume: downsampleVolume(x.volume, n, cfg.downsample) })));
    if (f.samples.length) {
      const shape: Vec3 = [n, n, n];
      midSliceMontagePng(f.samples.slice(0, 4).map((x) => ({ shape, data: x.volume })), path.join(top.outDir, `fusions-${f.mode === 'interp' ? 'brainfuse' : 'raw'}.png`));
    }
  }
  const fusionSummary = fusions.map((f) => ({
    mode: f.mode === 'interp' ? 'BrainFuse' : 'RawBrainFuse',
    transition: f.transition,
    proposed: f.proposed,
    kept: f.kept,
    rejected: f.rejected,
    samples: f.samples.map((x) => ({ a: x.a, b: x.b, axis: x.axis, k: x.k, age: +x.age.toFixed(2), smoothness: +x.smoothness.toFixed(3) })),
  }));
  for (const f of fusions) f.samples.length = 0; // the full-size volumes are no longer needed

  const base = exp.training.seed;
  const results: ArmResult[] = [];
  for (let i = 0; i < cfg.seeds && !top.interrupted; i++) {
    const seed = base + i;
    let backbone: string | null = null;
    if (cfg.arms.some((a) => a.bt)) {
      const name = `BT-s${seed}`;
      const bt = await phase(top, state, name, () => trainBarlowTwins(top, name, cfg, seed, train, m));
      if (!bt) break;
      backbone = path.join(top.outDir, bt.backbone);
    }
    for (const arm of cfg.arms) {
      const name = `${arm.name}-s${seed}`;
      const pool = [...train, ...(arm.fusion ? (fusedSamples.get(arm.fusion) ?? []) : [])];
      const r = await phase(top, state, name, () => trainArm(top, name, cfg, arm, seed, pool, val, test, m, arm.bt ? backbone : null));
      if (!r) break;
      results.push(r);
    }
  }
  if (top.interrupted) {
    top.say(`interrupted: finished phases are recorded in ${studyFile}; continue with --resume`);
    process.exitCode = 130;
    return;
  }

  const arms: Record<string, ArmSummary> = {};
  for (const arm of cfg.arms) {
    const rs = results.filter((r) => r.arm === arm.name);
    const pct = (k: 'top1' | 'top3' | 'top5') => meanStd(rs.map((r) => 100 * r[k])).map((x) => +x.toFixed(2)) as [number, number];
    // How much the predicted (expected) age varies across test subjects: near 0 means the network answers
    // the training set's age distribution whatever the input.
    const spread = rs.reduce((acc, r) => acc + meanStd(r.predictions.map((p) => p.expected_age))[1], 0) / Math.max(1, rs.length);
    arms[arm.name] = { top1: pct('top1'), top3: pct('top3'), top5: pct('top5'), mae: meanStd(rs.map((r) => r.mae)).map((x) => +x.toFixed(2)) as [number, number], spread: +spread.toFixed(2), seeds: rs.length };
  }
  const majority = majorityBaseline(train, test, cfg.bins);
  // Training time of every phase, summed over however many invocations the study took.
  const trainSeconds = Object.values(state.phases).reduce((acc: number, p) => acc + (typeof (p as { wall_s?: unknown }).wall_s === 'number' ? (p as { wall_s: number }).wall_s : 0), 0);
  const metrics = {
    brainage: {
      demonstration: true,
      split: { ...cfg.split, train: train.map((x) => x.id), val: val.map((x) => x.id), test: test.map((x) => x.id) },
      bins: { edges: cfg.bins.edges, count: cfg.bins.count, label_sigma: cfg.labelSigma },
      input: `${m}³ (preprocessed at ${n}³, averaged ${cfg.downsample}×)`,
      arms,
      majority_baseline: { top1: +(100 * majority.top1).toFixed(2), top3: +(100 * majority.top3).toFixed(2), top5: +(100 * majority.top5).toFixed(2) },
      fusion: fusionSummary.map(({ samples: _samples, ...rest }) => rest),
      wall_s: +((Date.now() - top.started) / 1000).toFixed(1),
      train_s: +trainSeconds.toFixed(1),
      runs: results.map(({ predictions: _p, ...r }) => r),
    },
    thesis: { citation: THESIS_CITATION, table: THESIS_BRAINAGE },
  };
  writeFileAtomic(path.join(top.outDir, 'metrics.json'), new TextEncoder().encode(JSON.stringify(metrics, null, 2) + '\n'));
  writeFileAtomic(path.join(top.outDir, 'fusions.json'), new TextEncoder().encode(JSON.stringify(fusionSummary, null, 2) + '\n'));
  writeFileAtomic(path.join(top.outDir, 'report.md'), new TextEncoder().encode(brainAgeReport(top, cfg, split.text, arms, majority, fusionSummary, train.length, test.length, m, trainSeconds)));
  for (const [name, a] of Object.entries(arms)) {
    top.say(`${name}: top-1 ${a.top1[0].toFixed(1)} ± ${a.top1[1].toFixed(1)}, top-3 ${a.top3[0].toFixed(1)} ± ${a.top3[1].toFixed(1)}, top-5 ${a.top5[0].toFixed(1)} ± ${a.top5[1].toFixed(1)} (${a.seeds} seeds)`);
  }
}

function brainAgeReport(
  top: Session,
  cfg: BrainAgeSettings,
  splitText: string,
  arms: Record<string, ArmSummary>,
  majority: Record<'top1' | 'top3' | 'top5', number>,
  fusion: { mode: string; transition: string; proposed: number; kept: number; rejected: number }[],
  nTrain: number,
  nTest: number,
  m: number,
  trainSeconds: number,
): string {
  const exp = top.exp;
  const pm = (x: readonly [number, number]) => `${x[0].toFixed(2)} ± ${x[1].toFixed(2)}`;
  const rows = Object.entries(arms).map(([name, a]) => {
    const th = THESIS_BRAINAGE[name];
    const thesis = th ? `${pm(th.top1)} | ${pm(th.top3)} | ${pm(th.top5)}` : '– | – | –';
    return `| ${name} | ${pm(a.top1)} | ${pm(a.top3)} | ${pm(a.top5)} | ${a.mae[0].toFixed(1)} | ${a.spread.toFixed(1)} | ${thesis} |`;
  });
  const wall = (Date.now() - top.started) / 1000;
  return [
    `# ${exp.name}`,
    '',
    exp.description,
    '',
    `Device: ${top.backend.describe()}`,
    '',
    '**A demonstration, not a reproduction.** The thesis trains on the full IXI set (about 580 subjects); only 16 IXI T1 volumes are available here, ' +
      `so each arm is trained on ${nTrain} real subjects and tested on ${nTest}: one test subject is ${nTest ? (100 / nTest).toFixed(0) : '?'} percentage points of accuracy. ` +
      'The numbers below show that the pipeline runs end to end, not how the methods compare.',
    '',
    `Data: ${splitText}. The split is at subject level; fused volumes are made only from training subjects, and the interpolation network was trained with the same split.`,
    '',
    `Task: ${cfg.bins.count} age bins of ${cfg.bins.edges[1]! - cfg.bins.edges[0]!} years from ${cfg.bins.edges[0]} to ${cfg.bins.edges.at(-1)}, Gaussian-smoothed labels (σ ${cfg.labelSigma} bin), soft-label cross-entropy. ` +
      `Input ${m}³ (preprocessed at ${cfg.shape}³, averaged ${cfg.downsample}×). 3D ResNet (width ${cfg.resnet.width}, blocks [${cfg.resnet.blocks.join(', ')}], GroupNorm). ` +
      `Every arm takes the same number of optimizer steps (${exp.training.epochs ?? '?'} epochs × ${cfg.stepsPerEpoch} steps of ${exp.training.batch_size}), so arms differ in data, not in compute. ` +
      `Barlow Twins: ${exp.training.epochs ?? '?'} epochs × ${cfg.bt.stepsPerEpoch} steps on the training volumes, projector ${cfg.bt.dim}, λ ${cfg.bt.lambda}. Consistency weight ${cfg.consistencyWeight}. ` +
      `${cfg.seeds} seed(s); mean ± sample std over seeds (the split is the same for every seed).`,
    '',
    'Top-k accuracy (%) on the held-out subjects, this project next to the thesis (Simionescu, C. (2025), PhD thesis, Alexandru Ioan Cuza University of Iasi, section 5.1, 3 runs each):',
    '',
    '| Method | Top-1 | Top-3 | Top-5 | MAE (y) | spread (y) | Top-1 thesis | Top-3 thesis | Top-5 thesis |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows,
    `| always the most frequent training bins | ${(100 * majority.top1).toFixed(2)} | ${(100 * majority.top3).toFixed(2)} | ${(100 * majority.top5).toFixed(2)} | | | | | |`,
    '',
    'MAE: of the expected age (bin centres weighted by the predicted probabilities). Spread: standard deviation of that expected age across the test subjects, averaged over seeds; ' +
      'a spread near 0 means the network predicts the training set\'s age distribution whatever the volume, i.e. it has learnt no usable age signal from this few subjects, and its top-k accuracy is that of the most frequent bins.',
    '',
    'Fusion (plausibility filter: the seam\'s largest slice step at most ' + `${cfg.fusion.threshold}× the median step elsewhere; same proposals for both modes):`,
    '',
    '| mode | transition | proposed | kept | rejected |',
    '|---|---|---|---|---|',
    ...fusion.map((f) => `| ${f.mode} | ${f.transition} | ${f.proposed} | ${f.kept} | ${f.rejected} |`),
    '',
    fusion.length
      ? `Mid-slices of the first fused volumes (one row each; sagittal, coronal, axial): ${fusion.filter((f) => f.kept > 0).map((f) => `![${f.mode}](fusions-${f.mode === 'BrainFuse' ? 'brainfuse' : 'raw'}.png)`).join(' ')}`
      : '',
    '',
    `Time on this device: ${(trainSeconds / 60).toFixed(1)} min of training over all phases (validation, evaluation, fusion and kernel compilation come on top); this invocation took ${(wall / 60).toFixed(1)} min.`,
    '',
  ].join('\n');
}
