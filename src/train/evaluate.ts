// Evaluation on a whole split: scores on the device, metrics on the host exactly as MedMNIST defines them.
import { BatchLoader } from '../data/loader.ts';
import type { LoadedSplit } from '../data/dataset.ts';
import { numOutputs, type DatasetInfo } from '../data/registry.ts';
import type { BatchMeta, Medformer } from '../models/medformer.ts';
import { noGrad, Tensor, tidy } from '../tensor/tensor.ts';
import { evaluate, type Metrics } from './metrics.ts';
import { taskScores } from './tasks.ts';

export async function evaluateSplit(
  model: Medformer,
  ds: DatasetInfo,
  meta: BatchMeta,
  split: LoadedSplit,
  batchSize: number,
): Promise<Metrics> {
  const k = numOutputs(ds);
  const scores = new Float32Array(split.n * k);
  const loader = new BatchLoader(split, { batchSize, seed: 0, shuffle: false, dropLast: false, prefetch: false });
  for (let b = 0; b < loader.batchesPerEpoch; b++) {
    const batch = loader.batchAt(0, b);
    const probs = tidy(() => noGrad(() => taskScores(ds, model.forward(Tensor.from(batch.x, batch.shape), meta, ds.key))));
    const data = await probs.data();
    probs.dispose();
    for (let i = 0; i < batch.size; i++) scores.set(data.subarray(i * k, (i + 1) * k), batch.indices[i] * k);
  }
  return evaluate(ds.task, scores, split.labels, split.n, k);
}

/** Higher validation AUC wins; accuracy breaks ties. */
export const better = (a: Metrics, b: Metrics | null): boolean =>
  b === null || a.auc > b.auc || (a.auc === b.auc && a.acc > b.acc) || (Number.isNaN(b.auc) && !Number.isNaN(a.auc));
