// Per-task-type loss and scores, as thesis Table 4.1 and the MedMNIST evaluator define the tasks.
// RetinaMNIST (ordinal) is trained as 5-way classification with cross-entropy: the official evaluator
// scores it exactly like a multi-class task, so this keeps training and evaluation consistent.
import type { DatasetInfo } from '../data/registry.ts';
import { numOutputs } from '../data/registry.ts';
import { sigmoid } from '../ops/index.ts';
import { bceWithLogits, crossEntropy } from '../ops/losses.ts';
import { softmax } from '../ops/softmax.ts';
import { Tensor } from '../tensor/tensor.ts';

export function taskLoss(ds: DatasetInfo, logits: Tensor, labels: Int32Array): Tensor {
  const b = logits.shape[0];
  if (ds.task === 'multi-class' || ds.task === 'ordinal') {
    return crossEntropy(logits, Tensor.from(labels.subarray(0, b), [b], 'i32'));
  }
  // binary: one logit per sample; multi-label: one per label. Targets are the 0/1 labels.
  const k = numOutputs(ds);
  return bceWithLogits(logits, Tensor.from(Float32Array.from(labels.subarray(0, b * k)), [b, k]));
}

/** Probabilities the evaluator ranks: softmax for classes, sigmoid for binary and multi-label. */
export function taskScores(ds: DatasetInfo, logits: Tensor): Tensor {
  return ds.task === 'multi-class' || ds.task === 'ordinal' ? softmax(logits) : sigmoid(logits);
}
