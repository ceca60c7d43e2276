// VICReg (Bardes, Ponce & LeCun, ICLR 2022) as the thesis uses it for self-supervised pre-training:
// invariance (MSE between the two views' embeddings), variance (hinge on each dimension's standard
// deviation over the batch) and covariance (squared off-diagonal covariances), with an optional cosine
// term the thesis mentions. Written as a composition of differentiable ops, so its gradient comes from
// the same tested backward rules as everything else.
import { add, affine, div, matmul, mean, mul, relu, scale, sqrt, square, sub, sum } from '../../ops/index.ts';
import { ShapeError } from '../../errors.ts';
import { shapeStr, type Tensor } from '../../tensor/tensor.ts';

export interface VicregCoeffs {
  sim: number;
  std: number;
  cov: number;
  /** Weight of (1 - cosine similarity) between the views; 0 disables it. */
  cosine: number;
}

export interface VicregTerms {
  loss: Tensor;
  invariance: Tensor;
  variance: Tensor;
  covariance: Tensor;
  cosine: Tensor | null;
}

const EPS = 1e-4;

function centred(z: Tensor): Tensor {
  return sub(z, mean(z, 0, true));
}

/** mean_j relu(1 - sqrt(var_j + eps)), the unbiased variance over the batch. */
function varianceTerm(xc: Tensor, n: number): Tensor {
  const variance = affine(sum(square(xc), 0), 1 / (n - 1));
  return mean(relu(affine(sqrt(affine(variance, 1, EPS)), -1, 1)));
}

/** Sum of squared off-diagonal entries of the covariance matrix, divided by the dimension. */
function covarianceTerm(xc: Tensor, n: number, d: number): Tensor {
  const cov = scale(matmul(xc, xc, { transA: true }), 1 / (n - 1));
  const variance = affine(sum(square(xc), 0), 1 / (n - 1));
  return scale(sub(sum(square(cov)), sum(square(variance))), 1 / d);
}

export function vicreg(z1: Tensor, z2: Tensor, c: VicregCoeffs): VicregTerms {
  if (z1.shape.length !== 2 || z1.shape.some((s, i) => s !== z2.shape[i])) {
    throw new ShapeError(`vicreg: embeddings must both be [N, D], got ${shapeStr(z1.shape)} and ${shapeStr(z2.shape)}`);
  }
  const [n, d] = z1.shape;
  if (n < 2) throw new ShapeError(`vicreg: needs a batch of at least 2 to estimate variances, got ${n}`);
  const invariance = mean(square(sub(z1, z2)));
  const x1 = centred(z1);
  const x2 = centred(z2);
  const variance = scale(add(varianceTerm(x1, n), varianceTerm(x2, n)), 0.5);
  const covariance = add(covarianceTerm(x1, n, d), covarianceTerm(x2, n, d));
  let loss = add(add(scale(invariance, c.sim), scale(variance, c.std)), scale(covariance, c.cov));
  let cosine: Tensor | null = null;
  if (c.cosine > 0) {
    const dot = sum(mul(z1, z2), 1);
    const norms = sqrt(affine(mul(sum(square(z1), 1), sum(square(z2), 1)), 1, 1e-12));
    cosine = affine(mean(div(dot, norms)), -1, 1);
    loss = add(loss, scale(cosine, c.cosine));
  }
  return { loss, invariance, variance, covariance, cosine };
}

/** The same loss in plain TypeScript (float64), the oracle for tests. */
export function vicregReference(
  z1: Float32Array,
  z2: Float32Array,
  n: number,
  d: number,
  c: VicregCoeffs,
): { loss: number; invariance: number; variance: number; covariance: number; cosine: number } {
  let inv = 0;
  for (let i = 0; i < n * d; i++) inv += (z1[i] - z2[i]) ** 2;
  inv /= n * d;
  const branch = (z: Float32Array) => {
    const mu = new Float64Array(d);
    for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mu[j] += z[i * d + j] / n;
    const cov = new Float64Array(d * d);
    for (let i = 0; i < n; i++)
      for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) cov[a * d + b] += ((z[i * d + a] - mu[a]) * (z[i * d + b] - mu[b])) / (n - 1);
    let v = 0;
    let off = 0;
    for (let a = 0; a < d; a++) {
      v += Math.max(0, 1 - Math.sqrt(cov[a * d + a] + EPS)) / d;
      for (let b = 0; b < d; b++) if (a !== b) off += cov[a * d + b] ** 2;
    }
    return { v, cv: off / d };
  };
  const b1 = branch(z1);
  const b2 = branch(z2);
  const variance = (b1.v + b2.v) / 2;
  const covariance = b1.cv + b2.cv;
  let cos = 0;
  for (let i = 0; i < n; i++) {
    let dot = 0;
    let n1 = 0;
    let n2 = 0;
    for (let j = 0; j < d; j++) {
      dot += z1[i * d + j] * z2[i * d + j];
      n1 += z1[i * d + j] ** 2;
      n2 += z2[i * d + j] ** 2;
    }
    cos += dot / Math.sqrt(n1 * n2 + 1e-12) / n;
  }
  const cosine = 1 - cos;
  return {
    loss: c.sim * inv + c.std * variance + c.cov * covariance + (c.cosine > 0 ? c.cosine * cosine : 0),
    invariance: inv,
    variance,
    covariance,
    cosine,
  };
}
