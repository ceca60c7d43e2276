// GroupNorm (Wu & He 2018) over [B, C, ...spatial]: statistics per (sample, group of C / groups channels),
// then a per-channel affine. The forward saves mean and rstd per (sample, group) for the backward.
import { ShapeError } from '../errors.ts';
import { record, shapeStr, Tensor } from '../tensor/tensor.ts';
import { launch } from './launch.ts';

export function groupNorm(x: Tensor, gamma: Tensor, beta: Tensor, groups: number, eps = 1e-5): Tensor {
  const op = 'groupNorm';
  if (x.shape.length < 2) throw new ShapeError(`${op}: input must be [B, C, ...spatial], got ${shapeStr(x.shape)}`);
  const [B, C] = x.shape;
  if (!Number.isInteger(groups) || groups < 1 || C % groups !== 0) {
    throw new ShapeError(`${op}: ${groups} groups do not divide the ${C} channels of ${shapeStr(x.shape)}`);
  }
  if (gamma.shape.length !== 1 || gamma.size !== C || beta.shape.length !== 1 || beta.size !== C) {
    throw new ShapeError(
      `${op}: input ${shapeStr(x.shape)} needs gamma and beta of [${C}], got ${shapeStr(gamma.shape)} and ${shapeStr(beta.shape)}`,
    );
  }
  const S = x.shape.slice(2).reduce((a, b) => a * b, 1);
  const consts = { B, C, NG: groups, CG: C / groups, S };
  const fc = { EPS: eps };
  const stats = Tensor.empty([2, B * groups]);
  const y = Tensor.empty(x.shape);
  launch('groupnorm', 'stats', consts, { x, stats }, fc);
  launch('groupnorm', 'apply', consts, { x, gamma, beta, stats, out: y }, fc);
  return record(y, op, [x, gamma, beta], (g) => {
    const sums = Tensor.empty([2, B * C]);
    launch('groupnorm', 'channel_sums', consts, { x, g, stats, sums }, fc);
    let dgamma: Tensor | null = null;
    let dbeta: Tensor | null = null;
    if (gamma.requiresGrad || beta.requiresGrad) {
      dgamma = Tensor.empty(gamma.shape);
      dbeta = Tensor.empty(beta.shape);
      launch('groupnorm', 'param_grads', consts, { sums, out: dgamma, coef: dbeta }, fc);
    }
    let dx: Tensor | null = null;
    if (x.requiresGrad) {
      const coef = Tensor.empty([2, B * groups]);
      launch('groupnorm', 'group_coeffs', consts, { gamma, sums, coef }, fc);
      dx = Tensor.empty(x.shape);
      launch('groupnorm', 'backward_x', consts, { x, gamma, g, stats, out: dx, coef }, fc);
      coef.dispose();
    }
    sums.dispose();
    return [dx, dgamma, dbeta];
  });
}
