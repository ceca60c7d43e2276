// Evaluation on a whole split: scores on the device, metrics on the host exactly as MedMNIST defines them.
import { type Batch, BatchLoader } from '../../data/loader.ts';
import type { LoadedSplit } from '../../data/dataset.ts';
import { numOutputs } from '../../data/registry.ts';
import { noGrad, Tensor, tidy } from '../../tensor/tensor.ts';
import { evaluate, type Metrics } from '../../train/metrics.ts';
import { headOutputs, ordinalScores, type TaskData, type TaskModel, taskScores } from './tasks.ts';
import { killPoint } from '../../util/faults.ts';

/**
 * The batch size evaluation runs at: the training batch size, so that validation and test reuse the kernel
 * specialisations the training step compiled (a larger evaluation batch meant about 20 new pipelines on the
 * first validation, seconds each on a CPU rasteriser; `mf bench compile`). Rows are scored independently, so the
 * metrics do not depend on it.
 */
export const evalBatchSize = (trainingBatchSize: number): number => trainingBatchSize;

/**
 * Scores a split in eval mode (BatchNorm on its running statistics) and leaves the model in training mode, the
 * mode the trainer runs between evaluations.
 */
export async function evaluateSplit(
  model: TaskModel,
  task: Pick<TaskData, 'ds' | 'head' | 'meta'>,
  split: LoadedSplit,
  batchSize: number,
): Promise<Metrics> {
  return (await evaluateSplitWithScores(model, task, split, batchSize)).metrics;
}

/** evaluateSplit with the scores it ranked (row-major n × k, in split order), for confusion matrices and ROC curves. */
export async function evaluateSplitWithScores(
  model: TaskModel,
  task: Pick<TaskData, 'ds' | 'head' | 'meta'>,
  split: LoadedSplit,
  batchSize: number,
): Promise<{ metrics: Metrics; scores: Float32Array }> {
  const scores = await splitScores(model, task, split, batchSize);
  return { metrics: evaluate(task.ds.task, scores, split.labels, split.n, numOutputs(task.ds)), scores };
}

/** The images a batch of the split is scored on: its own (the default), or e.g. TTSA's hybrids (src/kinds/medformer/csa.ts). */
export type BatchInputs = (batch: Batch) => Float32Array;

/**
 * What the evaluator ranks for every sample of a split (row-major n × k, in split order: taskScores, an ordinal
 * regression head decoded by ordinalScores), computed in eval mode; the model is left in training mode.
 */
export async function splitScores(
  model: TaskModel,
  task: Pick<TaskData, 'ds' | 'head' | 'meta'>,
  split: LoadedSplit,
  batchSize: number,
  inputs: BatchInputs = (batch) => batch.x,
): Promise<Float32Array> {
  model.setTraining?.(false);
  try {
    return await scoreBatches(model, task, split, batchSize, inputs);
  } finally {
    model.setTraining?.(true);
  }
}

async function scoreBatches(
  model: TaskModel,
  task: Pick<TaskData, 'ds' | 'head' | 'meta'>,
  split: LoadedSplit,
  batchSize: number,
  inputs: BatchInputs,
): Promise<Float32Array> {
  const { ds, meta } = task;
  const k = numOutputs(ds);
  const width = headOutputs(task);
  const scores = new Float32Array(split.n * k);
  const loader = new BatchLoader(split, { batchSize, seed: 0, shuffle: false, dropLast: false, prefetch: false });
  for (let b = 0; b < loader.batchesPerEpoch; b++) {
    killPoint('evaluate');
    const batch = loader.batchAt(0, b);
    const images = inputs(batch);
    // Pad the last, smaller batch to the full size: a new batch size would mean new kernel
    // specialisations to compile (seconds each on a CPU rasteriser); the padded rows are ignored.
    const full = Math.min(batchSize, split.n);
    const x = batch.size === full ? images : padBatch(images, full * (images.length / batch.size));
    const probs = tidy(() => noGrad(() => taskScores(task, model.forward(Tensor.from(x, [full, ...batch.shape.slice(1)]), meta, ds.key))));
    const data = await probs.data();
    probs.dispose();
    for (let i = 0; i < batch.size; i++) {
      const row = width === k ? data.subarray(i * k, (i + 1) * k) : ordinalScores(data[i]!, k);
      scores.set(row, batch.indices[i] * k);
    }
  }
  return scores;
}

function padBatch(x: Float32Array, length: number): Float32Array {
  const out = new Float32Array(length);
  out.set(x);
  return out;
}

/** Higher validation AUC wins; accuracy breaks ties. */
export const better = (a: Metrics, b: Metrics | null): boolean =>
  b === null || a.auc > b.auc || (a.auc === b.auc && a.acc > b.acc) || (Number.isNaN(b.auc) && !Number.isNaN(a.auc));
