// The study's training phases: Barlow Twins pre-training of the 3D ResNet's backbone, and one arm (NT with
// any of +BT, +BrainFuse / +RawBrainFuse, +ConsistencyReg) trained on soft age-bin labels and evaluated on
// the held-out subjects.
import path from 'node:path';
import { augmentVolume, stackVolumes } from '../../brain/sampling.ts';
import { smoothBinLabels, type AgeBins } from '../../data/age_bins.ts';
import { MfError } from '../../errors.ts';
import { Projector, ResNet3d } from '../../models/resnet3d.ts';
import { ParameterStore } from '../../nn/parameters.ts';
import { add, mseLoss, scale } from '../../ops/index.ts';
import { softmax } from '../../ops/softmax.ts';
import { noGrad, Tensor, tidy } from '../../tensor/tensor.ts';
import { asF32, type RunContext } from '../../train/context.ts';
import { TrainingPhase } from '../../train/phase.ts';
import type { LogRecordOf } from '../../train/records.ts';
import { readLog } from '../../train/report.ts';
import { readSafetensors, writeSafetensors } from '../../train/safetensors.ts';
import { hashSeed, Rng } from '../../util/rng.ts';
import { barlowTwins, softCrossEntropy } from './losses.ts';
import type { Arm, BrainAgeSettings } from './schema.ts';

/**
 * A training or test volume of the study (downsampled to the network's input, [channels, m, m, m]), with its
 * age in years.
 */
export interface Sample {
  id: string;
  age: number;
  volume: Float32Array;
}

export interface ArmResult {
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

export interface BtResult {
  loss: number | null;
  steps: number;
  wall_s: number;
  /** The backbone's weights file, in the run folder. */
  backbone: string;
}

/** What every phase of one study shares. */
export interface StudySetup {
  ctx: RunContext;
  s: BrainAgeSettings;
  bins: AgeBins;
  /** Side of the network's input volumes (data.size). */
  m: number;
  /** Input channels (data.modalities). */
  channels: number;
}

/** Pool indices for one epoch: shuffled passes over the pool, as many as `count` needs. */
function epochIndices(poolSize: number, count: number, seed: number, epoch: number): number[] {
  const rng = new Rng(hashSeed(seed, 'brainage-epoch', epoch));
  const out: number[] = [];
  while (out.length < count) out.push(...rng.shuffle(Array.from({ length: poolSize }, (_, i) => i)));
  return out.slice(0, count);
}

/**
 * Barlow Twins on two augmentations of each volume of `pool` (real training volumes and unlabelled fused
 * ones); saves the backbone. Null when interrupted.
 */
export async function trainBarlowTwins(
  setup: StudySetup,
  name: string,
  seed: number,
  pool: readonly { volume: Float32Array }[],
): Promise<BtResult | null> {
  const { ctx, s, m, channels: C } = setup;
  const t = s.training;
  const store = new ParameterStore(seed);
  const model = new ResNet3d(store, s.model, setup.bins.count, C);
  const projector = new Projector(store, 'bt.projector', model.featureDim, s.bt.dim);
  store.finalize();
  const phase = new TrainingPhase(ctx, { store, training: t, name });
  const B = Math.min(t.batch_size, pool.length);
  const steps = s.bt.steps_per_epoch;
  const result = await phase.run({
    stepsPerEpoch: steps,
    step(epoch, position) {
      const idx = epochIndices(pool.length, steps * B, seed, epoch).slice(position * B, (position + 1) * B);
      const rng = new Rng(hashSeed(seed, 'bt-views', epoch, position));
      const v1 = stackVolumes(idx.map((i) => augmentVolume(pool[i]!.volume, m, rng, C)));
      const v2 = stackVolumes(idx.map((i) => augmentVolume(pool[i]!.volume, m, rng, C)));
      return tidy(() => {
        const z1 = projector.forward(model.represent(Tensor.from(v1, [B, C, m, m, m])));
        const z2 = projector.forward(model.represent(Tensor.from(v2, [B, C, m, m, m])));
        const bt = barlowTwins(z1, z2, s.bt.lambda);
        bt.loss.backward();
        return { loss: bt.loss, terms: { on_diag: bt.onDiag, off_diag: bt.offDiag }, samples: B };
      });
    },
  });
  if (!result) {
    store.dispose();
    return null;
  }
  const weights = await store.export();
  for (const k of [...weights.keys()]) if (!k.startsWith('backbone.')) weights.delete(k);
  const file = path.join(ctx.outDir, `${name}-backbone.safetensors`);
  writeSafetensors(file, weights, { format: 'brainage-bt-backbone', phase: name });
  const last = readLog(ctx.outDir)
    .filter((r): r is LogRecordOf<'train'> => r.event === 'train' && r.phase === name)
    .at(-1);
  store.dispose();
  return { loss: last?.loss ?? null, steps: result.step, wall_s: +result.trainSeconds.toFixed(1), backbone: path.basename(file) };
}

/**
 * top-k hits and the expected age of each volume. Batches are padded to `batch` volumes so the kernels
 * compiled for training are reused (each sample is normalised on its own, so padding changes nothing).
 */
async function evaluateAges(
  model: ResNet3d,
  samples: readonly Sample[],
  m: number,
  bins: AgeBins,
  batch: number,
): Promise<Pick<ArmResult, 'top1' | 'top3' | 'top5' | 'mae' | 'predictions'>> {
  const preds: ArmResult['predictions'] = [];
  const C = model.inChannels;
  const V = C * m * m * m;
  for (let i = 0; i < samples.length; i += batch) {
    const chunk = samples.slice(i, i + batch);
    const x = new Float32Array(batch * V);
    chunk.forEach((c, j) => x.set(c.volume, j * V));
    const probs = tidy(() => noGrad(() => softmax(model.forward(Tensor.from(x, [batch, C, m, m, m])))));
    const p = await probs.data();
    probs.dispose();
    chunk.forEach((c, j) => {
      const row = Array.from(p.subarray(j * bins.count, (j + 1) * bins.count));
      const order = row
        .map((v, k) => [v, k] as const)
        .sort((x, y) => y[0] - x[0] || x[1] - y[1])
        .map(([, k]) => k);
      const expected = row.reduce((acc, v, k) => acc + v * bins.centre(k), 0);
      preds.push({ id: c.id, age: c.age, bin: bins.index(c.age), top: order.slice(0, 5), expected_age: +expected.toFixed(2) });
    });
  }
  const topk = (k: number) => preds.filter((x) => x.top.slice(0, k).includes(x.bin)).length / Math.max(1, preds.length);
  const mae = preds.reduce((a, x) => a + Math.abs(x.expected_age - x.age), 0) / Math.max(1, preds.length);
  return { top1: topk(1), top3: topk(3), top5: topk(5), mae, predictions: preds };
}

/**
 * One arm for one seed: the ResNet (its backbone from Barlow Twins for +BT) trained on `pool` (the training
 * volumes, plus the fused ones for +BrainFuse / +RawBrainFuse), validated on `val`, tested on `test`.
 * Null when interrupted.
 */
export async function trainArm(
  setup: StudySetup,
  name: string,
  arm: Arm,
  seed: number,
  data: { pool: readonly Sample[]; val: readonly Sample[]; test: readonly Sample[] },
  btBackbone: string | null,
): Promise<ArmResult | null> {
  const { ctx, s, m, bins, channels } = setup;
  const { pool, val, test } = data;
  const t = s.training;
  const store = new ParameterStore(seed);
  const model = new ResNet3d(store, s.model, bins.count, channels);
  store.finalize();
  if (btBackbone) {
    const r = store.load(asF32(readSafetensors(btBackbone).tensors), { strict: false });
    if (r.mismatched.length || r.unexpected.length || r.missing.some((k) => k.startsWith('backbone.'))) {
      throw new MfError(
        `${btBackbone}: Barlow Twins backbone does not match the network (mismatched ${r.mismatched.length}, unexpected ${r.unexpected.length}, missing ${r.missing.length})`,
      );
    }
  }
  const phase = new TrainingPhase(ctx, { store, training: t, name });
  if (!phase.restored && btBackbone) ctx.say(`backbone initialised from ${btBackbone}`);
  const B = Math.min(t.batch_size, pool.length);
  const C = bins.count;
  const labels = pool.map((x) => smoothBinLabels(bins.index(x.age), C, s.data.label_sigma));
  const view = (i: number, rng: Rng) => (s.data.augment ? augmentVolume(pool[i]!.volume, m, rng, channels) : pool[i]!.volume);
  const steps = t.steps_per_epoch;

  const result = await phase.run({
    stepsPerEpoch: steps,
    step(epoch, position) {
      const idx = epochIndices(pool.length, steps * B, seed, epoch).slice(position * B, (position + 1) * B);
      const rng = new Rng(hashSeed(seed, 'brainage-views', epoch, position));
      const x1 = stackVolumes(idx.map((i) => view(i, rng)));
      const x2 = arm.consistency ? stackVolumes(idx.map((i) => view(i, rng))) : null;
      const q = stackVolumes(idx.map((i) => labels[i]!));
      return tidy(() => {
        const target = Tensor.from(q, [B, C]);
        const logits = model.forward(Tensor.from(x1, [B, channels, m, m, m]));
        const ce = softCrossEntropy(logits, target);
        if (!x2) {
          ce.backward();
          return { loss: ce, samples: B };
        }
        const logits2 = model.forward(Tensor.from(x2, [B, channels, m, m, m]));
        const consistency = mseLoss(softmax(logits), softmax(logits2));
        const loss = add(ce, scale(consistency, s.consistency.weight));
        loss.backward();
        return { loss, terms: { ce, consistency }, samples: B };
      });
    },
    async validate(epoch, step) {
      if (val.length === 0) return;
      const v = await evaluateAges(model, val, m, bins, B);
      ctx.log({ event: 'val', phase: name, epoch, step, top1: v.top1, top3: v.top3, top5: v.top5, mae: v.mae });
    },
  });
  if (!result) {
    store.dispose();
    return null;
  }
  const ev = await evaluateAges(model, test, m, bins, B);
  store.dispose();
  ctx.say(
    `${arm.name} seed ${seed}: test top-1 ${(100 * ev.top1).toFixed(1)}% top-3 ${(100 * ev.top3).toFixed(1)}% top-5 ${(100 * ev.top5).toFixed(1)}%, MAE ${ev.mae.toFixed(1)} y`,
  );
  return { arm: arm.name, seed, ...ev, steps: result.step, wall_s: +result.trainSeconds.toFixed(1), train_samples: pool.length };
}
