// Supervised training, single-task (kind "supervised"), several data sets at once (kind "multitask"),
// or from a pre-trained backbone (kind "finetune"): per-epoch validation, the best checkpoint per task
// by validation AUC (ties by ACC) evaluated once on test.
import fs from 'node:fs';
import path from 'node:path';
import { defaultAugment, type AugmentConfig as SampleAugment } from '../data/augment.ts';
import { BatchLoader } from '../data/loader.ts';
import type { Medformer } from '../models/medformer.ts';
import type { ParameterStore } from '../nn/parameters.ts';
import { Tensor, tidy } from '../tensor/tensor.ts';
import { AdamW } from './adamw.ts';
import { writeFileAtomic, writeSafetensors } from './checkpoint.ts';
import type { AugmentConfig as ExperimentAugment, Experiment, Sampling } from './config.ts';
import { better, evaluateSplit } from './evaluate.ts';
import { runLoop } from './loop.ts';
import type { Metrics } from './metrics.ts';
import { lineChartSvg, reportMarkdown, type DatasetResult } from './report.ts';
import { readSafetensors } from './safetensors.ts';
import type { Session, TaskData } from './session.ts';
import { taskLoss } from './tasks.ts';

/**
 * The order of batches in an epoch: every task's batches once, spread evenly so consecutive batches
 * alternate data sets (each batch holds one data set, so shapes stay static).
 */
export function epochOrder(batchesPerTask: number[]): Int32Array {
  const slots: { task: number; key: number }[] = [];
  batchesPerTask.forEach((n, task) => {
    for (let j = 0; j < n; j++) slots.push({ task, key: (j + 0.5) / n });
  });
  slots.sort((a, b) => a.key - b.key || a.task - b.task);
  return Int32Array.from(slots.map((s) => s.task));
}

/**
 * Batches each task gets per epoch under `data.sampling`. Every rule keeps the epoch's total at the sum of
 * the tasks' own batch counts. proportional: each task's own count (one pass over its data); uniform: the
 * same count for every task; temperature τ: counts ∝ size^(1/τ) (τ = 1 is proportional, large τ tends to
 * uniform). Every task gets at least one batch.
 */
export function taskBatchCounts(own: readonly number[], sampling: Sampling, temperature: number | null): number[] {
  if (sampling === 'proportional' || own.length === 1) return [...own];
  const total = own.reduce((a, b) => a + b, 0);
  const weights = sampling === 'uniform' ? own.map(() => 1) : own.map((n) => n ** (1 / (temperature ?? 1)));
  const wsum = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => Math.max(1, Math.round((total * w) / wsum)));
}

/**
 * The loader epoch and batch index of a task's k-th batch in training epoch `epoch` when it gets `count`
 * batches per epoch but its data holds `own`: the task walks through its own epochs continuously, so an
 * over-sampled task starts its next pass and an under-sampled one resumes where the last epoch stopped.
 */
export function loaderPosition(epoch: number, k: number, count: number, own: number): { epoch: number; index: number } {
  const g = epoch * count + k;
  return { epoch: Math.floor(g / own), index: g % own };
}

/** The experiment's augmentation switches mapped onto the sample augmenter, per dimensionality. */
export function augmentFor(a: ExperimentAugment | null, dim: 2 | 3): SampleAugment | null {
  if (!a) return null;
  const base = defaultAugment(dim);
  return {
    flip: a.flips,
    rotate: a.rotate,
    randAugment: dim === 2 && a.randaugment.n > 0 ? { n: a.randaugment.n, m: Math.min(10, a.randaugment.m) } : null,
    intensity: a.intensity ? (base.intensity ?? { scale: 0.1, shift: 0.1 }) : null,
  };
}

/** Training loaders, one per task, honouring data.train_limit. */
export function trainLoaders(exp: Experiment, tasks: TaskData[], augmentSeed?: string): BatchLoader[] {
  const t = exp.training;
  return tasks.map((task, i) => {
    const limit = exp.data.train_limit;
    const train = limit ? { ...task.train, n: Math.min(limit, task.train.n) } : task.train;
    return new BatchLoader(train, {
      batchSize: t.batch_size,
      seed: t.seed * 1000 + i,
      augmentSeed: augmentSeed === undefined ? undefined : `${t.seed}-${i}-${augmentSeed}`,
      shuffle: true,
      dropLast: train.n >= t.batch_size,
      augment: augmentFor(exp.data.augment, task.ds.dim),
      prefetch: false,
    });
  });
}

/** Which batch of task `order[position]` sits at `position` of the epoch's order. */
export function batchIndexAt(order: Int32Array, position: number): number {
  let j = 0;
  for (let p = 0; p < position; p++) if (order[p] === order[position]) j++;
  return j;
}

interface BestRecord {
  epoch: number;
  step: number;
  val: Metrics;
}

export interface SupervisedOptions {
  /** Called once the model exists, before a resume is restored: loads a pre-trained backbone, freezes. */
  init?: (store: ParameterStore, model: Medformer) => Promise<void>;
  /** Validation AUC per task to reach (fine-tuning's "SSL steps" column); the first step that does is recorded. */
  baselineAuc?: Record<string, number>;
}

export async function trainSupervised(session: Session, options: SupervisedOptions = {}): Promise<void> {
  const { exp } = session;
  const t = exp.training;
  const tasks = session.tasks;
  const { model, store } = session.buildModel(tasks);
  if (options.init) await options.init(store, model);
  const opt = new AdamW(store, { lr: t.lr, weightDecay: t.weight_decay, maxGradNorm: t.grad_clip ?? undefined });
  const loaders = trainLoaders(exp, tasks);
  const counts = taskBatchCounts(loaders.map((l) => l.batchesPerEpoch), exp.data.sampling, exp.data.temperature);
  const order = epochOrder(counts);

  const restored = session.restore(store, opt);
  const best: Record<string, BestRecord | null> = (restored?.extra?.best as Record<string, BestRecord | null>) ?? {};
  const reached: Record<string, number | null> = (restored?.extra?.reached as Record<string, number | null>) ?? {};
  for (const task of tasks) {
    best[task.ds.key] ??= null;
    reached[task.ds.key] ??= null;
  }
  const bestFile = (key: string) => path.join(session.outDir, `best-${key}.safetensors`);

  const result = await runLoop(
    {
      session,
      store,
      opt,
      stepsPerEpoch: order.length,
      step(epoch, position) {
        const ti = order[position];
        const task = tasks[ti];
        const at = loaderPosition(epoch, batchIndexAt(order, position), counts[ti], loaders[ti].batchesPerEpoch);
        const batch = loaders[ti].batchAt(at.epoch, at.index);
        const loss = tidy(() => {
          const logits = model.forward(Tensor.from(batch.x, batch.shape), task.meta, task.ds.key);
          const l = taskLoss(task.ds, logits, batch.labels);
          l.backward();
          return l;
        });
        return { loss, samples: batch.size, tag: { task: task.ds.key } };
      },
      async validate(epoch, step) {
        for (const task of tasks) {
          const key = task.ds.key;
          const val = await evaluateSplit(model, task.ds, task.meta, task.val, t.batch_size * 2);
          session.log({ event: 'val', epoch, step, task: key, auc: val.auc, acc: val.acc });
          session.say(`epoch ${epoch + 1} step ${step} ${key}: val AUC ${val.auc.toFixed(4)} ACC ${(100 * val.acc).toFixed(1)}%`);
          const goal = options.baselineAuc?.[key];
          if (goal !== undefined && reached[key] === null && val.auc >= goal) reached[key] = step;
          if (better(val, best[key]?.val ?? null)) {
            best[key] = { epoch, step, val };
            writeSafetensors(bestFile(key), await store.export(), { step: String(step), epoch: String(epoch) });
          }
        }
      },
      extra: () => ({ best, reached }),
    },
    restored,
  );
  if (result.interrupted) {
    store.dispose();
    return;
  }

  // Test once per task, with that task's best validation checkpoint.
  const results: Record<string, DatasetResult> = {};
  for (const task of tasks) {
    const key = task.ds.key;
    const rec = best[key];
    if (rec && fs.existsSync(bestFile(key))) store.load(asF32(readSafetensors(bestFile(key)).tensors), { strict: true });
    const test = await evaluateSplit(model, task.ds, task.meta, task.test, t.batch_size * 2);
    session.log({ event: 'test', task: key, auc: test.auc, acc: test.acc, best_epoch: rec ? rec.epoch + 1 : null });
    results[key] = {
      test,
      val: rec?.val ?? { auc: NaN, acc: NaN },
      best_epoch: rec ? rec.epoch + 1 : 0,
      steps: result.step,
      wall_s: +result.trainSeconds.toFixed(1),
      samples_per_s: +((result.step * t.batch_size) / Math.max(1e-3, result.trainSeconds)).toFixed(2),
      ...(options.baselineAuc ? { ssl_steps: reached[key] } : {}),
    };
    session.say(`${key}: test AUC ${test.auc.toFixed(4)} ACC ${(100 * test.acc).toFixed(1)}% (best epoch ${results[key].best_epoch})`);
  }
  writeFileAtomic(path.join(session.outDir, 'metrics.json'), new TextEncoder().encode(JSON.stringify(results, null, 2) + '\n'));
  writeSupervisedReport(session, results);
  store.dispose();
}

export function asF32(m: ReadonlyMap<string, { shape: number[]; data: ArrayLike<number> }>): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [k, v] of m) out.set(k, { shape: v.shape, data: v.data instanceof Float32Array ? v.data : Float32Array.from(v.data) });
  return out;
}

/** Log records, keeping only the last record of a step (a resumed run re-logs steps after its checkpoint). */
export function readLog(outDir: string): Record<string, unknown>[] {
  return fs
    .readFileSync(path.join(outDir, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

export function series(records: Record<string, unknown>[], event: string, field: string, groupBy?: string): { label: string; points: [number, number][] }[] {
  const groups = new Map<string, Map<number, number>>();
  for (const r of records) {
    if (r.event !== event || typeof r[field] !== 'number') continue;
    const g = groupBy ? String(r[groupBy]) : field;
    const m = groups.get(g) ?? new Map<number, number>();
    m.set(r.step as number, r[field] as number);
    groups.set(g, m);
  }
  return [...groups].map(([label, m]) => ({ label, points: [...m].sort((a, b) => a[0] - b[0]) }));
}

function writeSupervisedReport(session: Session, results: Record<string, DatasetResult>): void {
  const records = readLog(session.outDir);
  const enc = (s: string) => new TextEncoder().encode(s);
  writeFileAtomic(path.join(session.outDir, 'loss.svg'), enc(lineChartSvg('training loss', 'step', series(records, 'train', 'loss', 'task'), { logY: true })));
  writeFileAtomic(path.join(session.outDir, 'val_auc.svg'), enc(lineChartSvg('validation AUC', 'step', series(records, 'val', 'auc', 'task'))));
  writeFileAtomic(
    path.join(session.outDir, 'report.md'),
    enc(reportMarkdown(session.exp.name, session.exp.description, session.backend.describe(), results, ['loss.svg', 'val_auc.svg'])),
  );
}
