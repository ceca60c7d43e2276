// Losses as the thesis's tasks need them (Table 4.1): softmax cross-entropy for classes, sigmoid BCE for
// binary and multi-label outputs, MSE. Each returns the mean over the batch as a scalar tensor.
import { ShapeError } from '../errors.ts';
import { record, shapeStr, Tensor } from '../tensor/tensor.ts';
import { affine, square, sub } from './elementwise.ts';
import { launch } from './launch.ts';
import { mean, sum } from './reduce.ts';

/** mean_i -log softmax(logits_i)[labels_i]; logits [N, C], labels an i32 tensor [N]. */
export function crossEntropy(logits: Tensor, labels: Tensor): Tensor {
  if (logits.shape.length !== 2 || labels.shape.length !== 1 || labels.shape[0] !== logits.shape[0] || labels.dtype !== 'i32') {
    throw new ShapeError(`crossEntropy: logits must be [N, C] and labels an i32 [N], got ${shapeStr(logits.shape)} and ${labels.dtype} ${shapeStr(labels.shape)}`);
  }
  const [N, C] = logits.shape;
  const rowLoss = Tensor.empty([N]);
  const lse = Tensor.empty([N]);
  launch('losses', 'ce_forward', { N, C }, [logits, labels, null, rowLoss, lse]);
  const total = sum(rowLoss).keep();
  rowLoss.dispose();
  const loss = affine(total, 1 / N, 0);
  total.dispose();
  return record(loss, 'crossEntropy', [logits], (g) => {
    const dx = Tensor.empty(logits.shape);
    launch('losses', 'ce_backward', { N, C }, [logits, labels, lse, dx, g]);
    return [dx];
  });
}

/** mean over all elements of the stable sigmoid BCE; logits and float targets of one shape. */
export function bceWithLogits(logits: Tensor, targets: Tensor): Tensor {
  if (logits.size !== targets.size || logits.shape.length !== targets.shape.length) {
    throw new ShapeError(`bceWithLogits: logits ${shapeStr(logits.shape)} and targets ${shapeStr(targets.shape)} differ`);
  }
  const NE = logits.size;
  const elem = Tensor.empty(logits.shape);
  launch('losses', 'bce_forward', { NE }, [logits, null, targets, elem]);
  const total = sum(elem).keep();
  elem.dispose();
  const loss = affine(total, 1 / NE, 0);
  total.dispose();
  return record(loss, 'bceWithLogits', [logits], (g) => {
    const dx = Tensor.empty(logits.shape);
    launch('losses', 'bce_backward', { NE }, [logits, null, targets, dx, g], { SCALE_INV: 1 / NE });
    return [dx];
  });
}

/** mean((pred - target)^2); gradients flow to both when they require them. */
export function mseLoss(pred: Tensor, target: Tensor): Tensor {
  if (pred.size !== target.size || pred.shape.length !== target.shape.length) {
    throw new ShapeError(`mseLoss: shapes ${shapeStr(pred.shape)} and ${shapeStr(target.shape)} differ`);
  }
  return mean(square(sub(pred, target)));
}

