// Losses as the thesis's tasks need them (Table 4.1): softmax cross-entropy for classes, sigmoid BCE for
// binary and multi-label outputs, MSE. Each is fused: one kernel computes the loss terms and their
// per-workgroup partial sums, a second sums those into the mean, and one kernel computes the gradient.
// Each returns a scalar (shape []) tensor.
import { lossPartials } from '../backend/kernels/losses.ts';
import { ShapeError } from '../errors.ts';
import { record, shapeStr, Tensor } from '../tensor/tensor.ts';
import { launch, sameShape } from './launch.ts';

const desc = (t: Tensor): string => `${t.dtype} ${shapeStr(t.shape)}`;

/**
 * Runs forward `entry` over `terms` loss terms (inputs at bindings 0-2, `extra` at binding 6) and
 * returns the mean of the terms as a scalar tensor.
 */
function fusedMean(entry: string, consts: Record<string, number>, terms: number, inputs: (Tensor | null)[], extra: Tensor | null = null): Tensor {
  const NP = lossPartials(terms);
  const part = Tensor.empty([NP]);
  launch('losses', entry, consts, [...inputs, null, null, part, extra]);
  const loss = Tensor.empty([]);
  launch('losses', 'finish', { NP }, [null, null, null, part, null, loss], { SCALE: 1 / terms });
  part.dispose();
  return loss;
}

function checkPair(op: string, a: Tensor, b: Tensor, names: [string, string]): void {
  if (a.dtype !== 'f32' || b.dtype !== 'f32' || !sameShape(a.shape, b.shape) || a.size === 0) {
    throw new ShapeError(`${op}: ${names[0]} and ${names[1]} must be non-empty f32 tensors of one shape, got ${names[0]} ${desc(a)} and ${names[1]} ${desc(b)}`);
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
  if (!ok) throw new ShapeError(`crossEntropy: logits must be f32 [N, C] with N, C >= 1 and labels i32 [N], got logits ${desc(logits)} and labels ${desc(labels)}`);
  const [N, C] = logits.shape;
  // Log-sum-exp per row: the backward rebuilds softmax from it without another pass over the row.
  const lse = Tensor.empty([N]);
  const loss = fusedMean('ce_forward', { N, C }, N, [logits, labels, null], lse);
  const out = record(loss, 'crossEntropy', [logits], (g) => {
    const dx = Tensor.empty(logits.shape);
    launch('losses', 'ce_backward', { N, C }, [logits, labels, null, lse, g, dx], { SCALE: 1 / N });
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
  const loss = fusedMean('bce_forward', { NE }, NE, [logits, null, targets]);
  return record(loss, 'bceWithLogits', [logits], (g) => {
    const dx = Tensor.empty(logits.shape);
    launch('losses', 'bce_backward', { NE }, [logits, null, targets, null, g, dx], { SCALE: 1 / NE });
    return [dx];
  });
}

/** mean((pred - target)^2) over all elements; gradients flow to whichever inputs require them. */
export function mseLoss(pred: Tensor, target: Tensor): Tensor {
  checkPair('mseLoss', pred, target, ['pred', 'target']);
  const NE = pred.size;
  const loss = fusedMean('mse_forward', { NE }, NE, [pred, null, target]);
  return record(loss, 'mseLoss', [pred, target], (g) => {
    const fc = { SCALE: 2 / NE };
    if (pred.requiresGrad && target.requiresGrad) {
      const dp = Tensor.empty(pred.shape);
      const dt = Tensor.empty(target.shape);
      launch('losses', 'mse_backward2', { NE }, [pred, null, target, null, g, dp, dt], fc);
      return [dp, dt];
    }
    // d/dt of (p - t)^2 is d/dp with p and t swapped.
    const [a, b] = pred.requiresGrad ? [pred, target] : [target, pred];
    const d = Tensor.empty(a.shape);
    launch('losses', 'mse_backward', { NE }, [a, null, b, null, g, d], fc);
    return pred.requiresGrad ? [d, null] : [null, d];
  });
}
