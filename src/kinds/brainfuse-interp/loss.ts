// The interpolation objective and its curriculum: Charbonnier (smooth L1) or L2 on the middle slice, plus
// optionally the same loss on image gradients; the largest gap grows by 2 every `every_epochs` epochs.
import { add, affine, mean, mseLoss, slice, sqrt, square, sub } from '../../ops/index.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import type { InterpTask } from './schema.ts';

/** The curriculum's largest gap in `epoch` (0-based). */
export function gapAt(g: InterpTask['gap'], epoch: number): number {
  return Math.min(g.max, g.start + 2 * Math.floor(epoch / g.every_epochs));
}

const CHARBONNIER_EPS = 1e-3;

/** mean(sqrt(d² + ε²)): L1 with a smooth minimum, so the gradient exists where d = 0. */
function charbonnier(d: Tensor): Tensor {
  return mean(sqrt(affine(square(d), 1, CHARBONNIER_EPS ** 2)));
}

function reconLoss(kind: 'l1' | 'l2', pred: Tensor, target: Tensor): Tensor {
  return kind === 'l1' ? charbonnier(sub(pred, target)) : mseLoss(pred, target);
}

/** The same loss on horizontal and vertical finite differences, so edges are not blurred away. */
function gradientLoss(kind: 'l1' | 'l2', pred: Tensor, target: Tensor): Tensor {
  const [, , H, W] = pred.shape;
  const diff = (t: Tensor, axis: 2 | 3) => {
    const len = axis === 2 ? H - 1 : W - 1;
    return sub(slice(t, axis, 1, len), slice(t, axis, 0, len));
  };
  return affine(add(reconLoss(kind, diff(pred, 3), diff(target, 3)), reconLoss(kind, diff(pred, 2), diff(target, 2))), 0.5);
}

/** The training loss: reconstruction, plus `gradWeight` times the same loss on image gradients. */
export function interpLoss(
  kind: 'l1' | 'l2',
  gradWeight: number,
  pred: Tensor,
  target: Tensor,
): { loss: Tensor; recon: Tensor; grad: Tensor | null } {
  const recon = reconLoss(kind, pred, target);
  const grad = gradWeight > 0 ? gradientLoss(kind, pred, target) : null;
  return { loss: grad ? add(recon, affine(grad, gradWeight)) : recon, recon, grad };
}
