// LayerNorm over the last dimension; the forward saves per-row mean and rstd for the backward.
import { ShapeError } from '../errors.ts';
import { record, shapeStr, Tensor } from '../tensor/tensor.ts';
import { launch } from './launch.ts';

export function layerNorm(x: Tensor, gamma: Tensor, beta: Tensor, eps = 1e-5): Tensor {
  const D = x.shape.at(-1) ?? 0;
  if (D === 0 || gamma.size !== D || beta.size !== D) {
    throw new ShapeError(`layerNorm: input ${shapeStr(x.shape)} needs gamma and beta of [${D}], got ${shapeStr(gamma.shape)} and ${shapeStr(beta.shape)}`);
  }
  const ROWS = x.size / D;
  const y = Tensor.empty(x.shape);
  const mean = Tensor.empty([ROWS]);
  const rstd = Tensor.empty([ROWS]);
  launch('layernorm', 'forward', { ROWS, D }, [x, gamma, beta, null, y, mean, rstd], { EPS: eps });
  return record(y, 'layerNorm', [x, gamma, beta], (g) => {
    let dx: Tensor | null = null;
    if (x.requiresGrad) {
      dx = Tensor.empty(x.shape);
      launch('layernorm', 'backward_x', { ROWS, D }, [x, gamma, null, g, dx, mean, rstd], { EPS: eps });
    }
    if (!gamma.requiresGrad && !beta.requiresGrad) return [dx, null, null];
    const dgamma = Tensor.empty(gamma.shape);
    const dbeta = Tensor.empty(beta.shape);
    launch('layernorm', 'backward_params', { ROWS, D }, [x, null, null, g, dgamma, mean, rstd, dbeta], { EPS: eps });
    return [dx, dgamma, dbeta];
  });
}
