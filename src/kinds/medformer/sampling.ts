// Which batch a step trains on: every task's batches spread over an epoch (sampling proportional, uniform or by
// temperature), each task walking through its own loader epochs, and the loaders with their augmentation.
import { type AugmentConfig as SampleAugment, isNoAugment } from '../../data/augment.ts';
import { BatchLoader } from '../../data/loader.ts';
import { hashSeed, Rng } from '../../util/rng.ts';
import type { AugmentConfig as ExperimentAugment, MedformerSettings, Sampling } from './schema.ts';
import type { TaskData } from './tasks.ts';

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

/**
 * The ops `dim`-D samples go through under the experiment's resolved augmentation (its '2d' or '3d' part, the
 * policy's table in src/data/augment.ts); null when there is none or every op is off, so the loader only normalises.
 */
export function augmentFor(a: ExperimentAugment | null, dim: 2 | 3): SampleAugment | null {
  const cfg = a ? a[dim === 2 ? '2d' : '3d'] : null;
  return cfg && !isNoAugment(cfg) ? cfg : null;
}

/** Training loaders, one per task, honouring data.train_limit. */
export function trainLoaders(
  exp: Pick<MedformerSettings, 'data' | 'training'>,
  tasks: TaskData[],
  augmentSeed?: string,
  batchSize = exp.training.batch_size,
): BatchLoader[] {
  const t = { ...exp.training, batch_size: batchSize };
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

/**
 * The epoch's order shuffled with the run's seed (a combined shuffled index over every task's batches), so
 * that consecutive sub-batches of a multi-task step come from different tasks in no fixed pattern.
 */
export function shuffledOrder(order: Int32Array, seed: number, epoch: number): Int32Array {
  return new Rng(hashSeed(seed, 'multitask-order', epoch)).shuffle(Int32Array.from(order));
}

/** For each position of `order`, how many earlier positions hold the same task: which batch of its task it is. */
export function occurrences(order: Int32Array): Int32Array {
  const seen = new Map<number, number>();
  return order.map((task) => {
    const j = seen.get(task) ?? 0;
    seen.set(task, j + 1);
    return j;
  });
}
