// A trained slice interpolator: its weights file (written by the brainfuse-interp kind, read by the brain-age
// study and `mf fuse`), and inference: middle slices of (before, after) pairs, and any number of transition
// slices by recursive bisection.
import fs from 'node:fs';
import path from 'node:path';
import { MfError } from '../errors.ts';
import { resolveUNetConfig, SliceUNet, type SliceUNetConfig } from '../models/brainfuse.ts';
import { ParameterStore } from '../nn/parameters.ts';
import { noGrad, Tensor, tidy } from '../tensor/tensor.ts';
import { asF32 } from '../train/context.ts';
import { readSafetensors, writeSafetensors } from '../train/safetensors.ts';
import { parseJsonText } from '../util/json.ts';
import type { BrainDataSettings } from './settings.ts';

/** Batch of the interpolator at inference; the training recipe's batch size, so its kernels are reused. */
export const DEFAULT_PREDICT_BATCH = 8;

/**
 * Predicts middle slices for (before, after) pairs of W×H slices, padded to the U-Net's multiple. Every
 * batch is padded to `batch` pairs: each pair is computed on its own (GroupNorm is per sample), and one
 * batch shape means one set of compiled kernels (compiling is slow on a CPU rasteriser).
 */
export async function predictMiddles(
  model: SliceUNet,
  pairs: readonly [Float32Array, Float32Array][],
  W: number,
  H: number,
  batch = DEFAULT_PREDICT_BATCH,
): Promise<Float32Array[]> {
  const m = model.multiple;
  const PW = Math.ceil(W / m) * m;
  const PH = Math.ceil(H / m) * m;
  const out: Float32Array[] = [];
  for (let b0 = 0; b0 < pairs.length; b0 += batch) {
    const chunk = pairs.slice(b0, b0 + batch);
    const x = new Float32Array(batch * 2 * PW * PH);
    chunk.forEach(([a, c], b) => {
      for (const [ch, s] of [
        [0, a],
        [1, c],
      ] as const) {
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
export async function synthesizeSlices(
  model: SliceUNet,
  before: Float32Array,
  after: Float32Array,
  count: number,
  W: number,
  H: number,
  batch = DEFAULT_PREDICT_BATCH,
): Promise<Float32Array[]> {
  if (count <= 0) return [];
  const G = count + 1;
  const P = 2 ** Math.ceil(Math.log2(G));
  const grid: (Float32Array | null)[] = new Array<Float32Array | null>(P + 1).fill(null);
  grid[0] = before;
  grid[P] = after;
  for (let step = P / 2; step >= 1; step /= 2) {
    const at: number[] = [];
    for (let i = step; i < P; i += 2 * step) at.push(i);
    const made = await predictMiddles(
      model,
      at.map((i) => [grid[i - step]!, grid[i + step]!] as [Float32Array, Float32Array]),
      W,
      H,
      batch,
    );
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

export const INTERP_WEIGHTS = 'model.safetensors';
const FORMAT = 'brainfuse-interp';

/** What a weights file says about its network, read on the host (no device needed). */
export interface InterpolatorFile {
  file: string;
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  unet: SliceUNetConfig;
  /** Grid side the network was trained on. */
  shape: number;
  /** Split it was trained with (its test subjects were never seen). */
  split: BrainDataSettings['split'] | null;
}

export interface LoadedInterpolator extends Omit<InterpolatorFile, 'tensors'> {
  model: SliceUNet;
  store: ParameterStore;
  dispose(): void;
}

/** Writes a trained interpolator's weights with the metadata `readInterpolator` needs. */
export function saveInterpolator(
  file: string,
  weights: Map<string, { shape: number[]; data: Float32Array }>,
  meta: { unet: SliceUNetConfig; shape: number; split: BrainDataSettings['split']; step: number },
): void {
  writeSafetensors(file, weights, {
    format: FORMAT,
    unet: JSON.stringify(meta.unet),
    shape: String(meta.shape),
    split: JSON.stringify(meta.split),
    step: String(meta.step),
  });
}

/** The weights of a brainfuse-interp run folder (or its model.safetensors), checked on the host. */
export function readInterpolator(where: string): InterpolatorFile {
  const file = fs.existsSync(where) && fs.statSync(where).isDirectory() ? path.join(where, INTERP_WEIGHTS) : where;
  if (!fs.existsSync(file)) {
    throw new MfError(
      `no trained interpolator at ${where}`,
      'train one with `mf run experiments/brainfuse-interp.json` (it writes model.safetensors), or use --raw / --linear',
    );
  }
  const st = readSafetensors(file);
  if (st.metadata.get('format') !== FORMAT)
    throw new MfError(`${file} is not a BrainFuse interpolator (metadata format ${st.metadata.get('format') ?? 'missing'})`);
  const fix = 'point fusion.interp_run at a finished brainfuse-interp run';
  const unet = resolveUNetConfig(
    parseJsonText(st.metadata.get('unet') ?? '{}', { file, at: 'metadata unet', fix }) as Partial<SliceUNetConfig>,
    file,
  );
  const split = st.metadata.has('split')
    ? (parseJsonText(st.metadata.get('split')!, { file, at: 'metadata split', fix }) as BrainDataSettings['split'])
    : null;
  return { file, tensors: asF32(st.tensors), unet, shape: Number(st.metadata.get('shape') ?? 0), split };
}

/** The network of a read weights file, on the device (needs an engine). */
export function buildInterpolator(f: InterpolatorFile): LoadedInterpolator {
  const store = new ParameterStore(0);
  const model = new SliceUNet(store, f.unet);
  store.finalize();
  store.load(f.tensors, { strict: true });
  return { model, store, unet: f.unet, shape: f.shape, split: f.split, file: f.file, dispose: () => store.dispose() };
}

/** A trained interpolator from a brainfuse-interp run folder (or its model.safetensors). Needs an engine. */
export function loadInterpolator(where: string): LoadedInterpolator {
  return buildInterpolator(readInterpolator(where));
}
