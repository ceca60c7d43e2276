// LayerNorm over the last dimension; the forward saves per-row mean and rstd for the backward.
import { ShapeError } from '../errors.ts';
import { record, shapeStr, Tensor } from '../tensor/tensor.ts';
import { launch } from './launch.ts';

/** (x - mean) / sqrt(var + eps) * gamma + beta over the last dimension D of x; gamma and beta are [D]. */
export function layerNorm(x: Tensor, gamma: Tensor, beta: Tensor, eps = 1e-5): Tensor {
  const D = x.shape.at(-1) ?? 0;
  const vec = (t: Tensor) => t.dtype === 'f32' && t.shape.length === 1 && t.shape[0] === D;
  if (x.dtype !== 'f32' || D === 0 || !vec(gamma) || !vec(beta)) {
    throw new ShapeError(
      `layerNorm: input ${x.dtype} ${shapeStr(x.shape)} needs f32 gamma and beta of [${D}] (D >= 1), got ${gamma.dtype} ${shapeStr(gamma.shape)} and ${beta.dtype} ${shapeStr(beta.shape)}`,
    );
  }
  if (!(eps > 0) || !Number.isFinite(eps)) throw new ShapeError(`layerNorm: eps must be a positive number, got ${eps}`);
  const ROWS = x.size / D;
  const consts = { ROWS, D };
  const fc = { EPS: eps };
  // Rows of a multiple of 4 run the vec4 entries (see kernels/layernorm.wgsl).
  const w = D % 4 === 0 ? '4' : '';
  const y = Tensor.empty(x.shape);
  const stats = Tensor.empty([2, ROWS]);
  if (ROWS > 0) launch('layernorm', `forward${w}`, consts, { x, gamma, beta, out: y, stats }, fc);
  const out = record(y, 'layerNorm', [x, gamma, beta], (g) => {
    let dx: Tensor | null = null;
    if (x.requiresGrad) {
      dx = Tensor.empty(x.shape);
      if (ROWS > 0) launch('layernorm', `backward_x${w}`, consts, { x, gamma, g, out: dx, statsIn: stats }, fc);
    }
    if (!gamma.requiresGrad && !beta.requiresGrad) return [dx, null, null];
    const dgamma = Tensor.empty(gamma.shape);
    const dbeta = Tensor.empty(beta.shape);
    launch('layernorm', `backward_params${w}`, consts, { x, g, out: dgamma, statsIn: stats, out2: dbeta }, fc);
    return [dx, gamma.requiresGrad ? dgamma : (dgamma.dispose(), null), beta.requiresGrad ? dbeta : (dbeta.dispose(), null)];
  });
  if (!out.node) stats.dispose();
  return out;
}
