// Losses as the thesis's tasks need them (Table 4.1): softmax cross-entropy for classes (hard labels, or soft
// target probabilities for sum augmentation), sigmoid BCE for binary and multi-label outputs (0/1 or fractional
// targets), MSE. Each is fused: one kernel computes the loss terms and their
// per-workgroup partial sums, a second sums those into the mean, and one kernel computes the gradient.
// Each returns a scalar (shape []) tensor.
import { lossPartials } from '../backend/kernels/losses.ts';
import { ShapeError } from '../errors.ts';
import { record, shapeStr, Tensor } from '../tensor/tensor.ts';
import { launch, sameShape } from './launch.ts';

const desc = (t: Tensor): string => `${t.dtype} ${shapeStr(t.shape)}`;

/** The mean of `terms` loss terms whose per-workgroup partial sums `forward(part)` writes into part, as a scalar tensor. */
function fusedMean(terms: number, forward: (part: Tensor) => void): Tensor {
  const NP = lossPartials(terms);
  const part = Tensor.empty([NP]);
  forward(part);
  const loss = Tensor.empty([]);
  launch('losses', 'finish', { NP }, { aux: part, out: loss }, { SCALE: 1 / terms });
  part.dispose();
  return loss;
}

function checkPair(op: string, a: Tensor, b: Tensor, names: [string, string]): void {
  if (a.dtype !== 'f32' || b.dtype !== 'f32' || !sameShape(a.shape, b.shape) || a.size === 0) {
    throw new ShapeError(
      `${op}: ${names[0]} and ${names[1]} must be non-empty f32 tensors of one shape, got ${names[0]} ${desc(a)} and ${names[1]} ${desc(b)}`,
    );
  }
}

/**
 * mean_i -log softmax(logits_i)[labels_i]; logits f32 [N, C], labels an i32 tensor [N].
 * Labels outside [0, C) are clamped into range by the kernel (the host cannot see them without a
 * read-back); the data loader is where labels are validated.
 */
export function crossEntropy(logits: Tensor, labels: Tensor): Tensor {
  const ok =
    logits.dtype === 'f32' &&
    logits.shape.length === 2 &&
    logits.size > 0 &&
    labels.dtype === 'i32' &&
    labels.shape.length === 1 &&
    labels.shape[0] === logits.shape[0];
  if (!ok)
    throw new ShapeError(
      `crossEntropy: logits must be f32 [N, C] with N, C >= 1 and labels i32 [N], got logits ${desc(logits)} and labels ${desc(labels)}`,
    );
  const [N, C] = logits.shape;
  // Log-sum-exp per row: the backward rebuilds softmax from it without another pass over the row.
  const lse = Tensor.empty([N]);
  const loss = fusedMean(N, (part) => launch('losses', 'ce_forward', { N, C }, { x: logits, labels, out: part, out2: lse }));
  const out = record(loss, 'crossEntropy', [logits], (g) => {
    const dx = Tensor.empty(logits.shape);
    launch('losses', 'ce_backward', { N, C }, { x: logits, labels, aux: lse, g, out: dx }, { SCALE: 1 / N });
    return [dx];
  });
  if (!out.node) lse.dispose();
  return out;
}

/**
 * mean_i sum_j -t_ij log softmax(logits_i)_j: cross-entropy against target probabilities t (f32 [N, C], each row
 * a distribution, e.g. the average of K one-hot labels under sum augmentation, thesis 5.4.3). With one-hot
 * targets it equals crossEntropy. Rows need not sum to one: the gradient (softmax · Σt − t) / N holds for any t.
 */
export function softCrossEntropy(logits: Tensor, targets: Tensor): Tensor {
  checkPair('softCrossEntropy', logits, targets, ['logits', 'targets']);
  if (logits.shape.length !== 2)
    throw new ShapeError(
      `softCrossEntropy: logits and targets must be f32 [N, C], got logits ${desc(logits)} and targets ${desc(targets)}`,
    );
  const [N, C] = logits.shape;
  const lse = Tensor.empty([N]);
  const loss = fusedMean(N, (part) => launch('losses', 'soft_ce_forward', { N, C }, { x: logits, t: targets, out: part, out2: lse }));
  const out = record(loss, 'softCrossEntropy', [logits], (g) => {
    const dx = Tensor.empty(logits.shape);
    launch('losses', 'soft_ce_backward', { N, C }, { x: logits, t: targets, aux: lse, g, out: dx }, { SCALE: 1 / N });
    return [dx];
  });
  if (!out.node) lse.dispose();
  return out;
}

/**
 * Mean over all elements of the sigmoid binary cross-entropy, in the stable form
 * max(x, 0) - x t + log(1 + exp(-|x|)); logits and f32 targets (0/1 or soft) of one shape, e.g. [N, L].
 */
export function bceWithLogits(logits: Tensor, targets: Tensor): Tensor {
  checkPair('bceWithLogits', logits, targets, ['logits', 'targets']);
  const NE = logits.size;
  const loss = fusedMean(NE, (part) => launch('losses', 'bce_forward', { NE }, { x: logits, t: targets, out: part }));
  return record(loss, 'bceWithLogits', [logits], (g) => {
    const dx = Tensor.empty(logits.shape);
    launch('losses', 'bce_backward', { NE }, { x: logits, t: targets, g, out: dx }, { SCALE: 1 / NE });
    return [dx];
  });
}

/** mean((pred - target)^2) over all elements; gradients flow to whichever inputs require them. */
export function mseLoss(pred: Tensor, target: Tensor): Tensor {
  checkPair('mseLoss', pred, target, ['pred', 'target']);
  const NE = pred.size;
  const loss = fusedMean(NE, (part) => launch('losses', 'mse_forward', { NE }, { x: pred, t: target, out: part }));
  return record(loss, 'mseLoss', [pred, target], (g) => {
    const fc = { SCALE: 2 / NE };
    if (pred.requiresGrad && target.requiresGrad) {
      const dp = Tensor.empty(pred.shape);
      const dt = Tensor.empty(target.shape);
      launch('losses', 'mse_backward2', { NE }, { x: pred, t: target, g, out: dp, out2: dt }, fc);
      return [dp, dt];
    }
    // d/dt of (p - t)^2 is d/dp with p and t swapped.
    const [a, b] = pred.requiresGrad ? [pred, target] : [target, pred];
    const d = Tensor.empty(a.shape);
    launch('losses', 'mse_backward', { NE }, { x: a, t: b, g, out: d }, fc);
    return pred.requiresGrad ? [d, null] : [null, d];
  });
}
