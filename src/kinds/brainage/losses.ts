// The brain-age study's losses: Barlow Twins for the backbone's pre-training, and cross-entropy against the
// Gaussian-smoothed age-bin labels.
import { ShapeError } from '../../errors.ts';
import { add, affine, div, matmul, mean, mul, scale, sqrt, square, sub, sum } from '../../ops/index.ts';
import { logSoftmax } from '../../ops/softmax.ts';
import { shapeStr, Tensor } from '../../tensor/tensor.ts';

const BT_EPS = 1e-5;

/**
 * Barlow Twins (Zbontar et al., ICML 2021): standardise each embedding dimension over the batch, take the
 * cross-correlation matrix C = z1ᵀ z2 / N, and push it to the identity:
 * sum_i (1 - C_ii)² + lambda · sum_{i≠j} C_ij². Composed from differentiable ops.
 */
export function barlowTwins(z1: Tensor, z2: Tensor, lambda: number): { loss: Tensor; onDiag: Tensor; offDiag: Tensor } {
  if (z1.shape.length !== 2 || z1.shape.some((s, i) => s !== z2.shape[i]) || z2.shape.length !== 2) {
    throw new ShapeError(`barlowTwins: embeddings must both be [N, D], got ${shapeStr(z1.shape)} and ${shapeStr(z2.shape)}`);
  }
  const [n, d] = z1.shape;
  if (n < 2) throw new ShapeError(`barlowTwins: needs a batch of at least 2 to standardise, got ${shapeStr(z1.shape)}`);
  const standardise = (z: Tensor) => {
    const zc = sub(z, mean(z, 0, true));
    return div(zc, sqrt(affine(mean(square(zc), 0, true), 1, BT_EPS)));
  };
  const c = scale(matmul(standardise(z1), standardise(z2), { transA: true }), 1 / n);
  const eyeData = new Float32Array(d * d);
  for (let i = 0; i < d; i++) eyeData[i * d + i] = 1;
  const eye = Tensor.from(eyeData, [d, d]);
  const offMask = Tensor.from(
    eyeData.map((v) => 1 - v),
    [d, d],
  );
  const onDiag = sum(square(sub(mul(c, eye), eye)));
  const offDiag = sum(square(mul(c, offMask)));
  return { loss: add(onDiag, scale(offDiag, lambda)), onDiag, offDiag };
}

/** The same loss in plain float64 TypeScript, the test oracle. z1, z2 row-major [n, d]. */
export function barlowTwinsReference(
  z1: ArrayLike<number>,
  z2: ArrayLike<number>,
  n: number,
  d: number,
  lambda: number,
): { loss: number; onDiag: number; offDiag: number } {
  const standardise = (z: ArrayLike<number>) => {
    const out = new Float64Array(n * d);
    for (let j = 0; j < d; j++) {
      let mu = 0;
      for (let i = 0; i < n; i++) mu += z[i * d + j]! / n;
      let v = 0;
      for (let i = 0; i < n; i++) v += (z[i * d + j]! - mu) ** 2 / n;
      for (let i = 0; i < n; i++) out[i * d + j] = (z[i * d + j]! - mu) / Math.sqrt(v + BT_EPS);
    }
    return out;
  };
  const a = standardise(z1);
  const b = standardise(z2);
  let on = 0;
  let off = 0;
  for (let p = 0; p < d; p++) {
    for (let q = 0; q < d; q++) {
      let c = 0;
      for (let i = 0; i < n; i++) c += (a[i * d + p]! * b[i * d + q]!) / n;
      if (p === q) on += (1 - c) ** 2;
      else off += c * c;
    }
  }
  return { loss: on + lambda * off, onDiag: on, offDiag: off };
}

/** -mean_n sum_c q[n, c] log softmax(logits)[n, c]: cross-entropy against soft (smoothed) labels. */
export function softCrossEntropy(logits: Tensor, targets: Tensor): Tensor {
  if (logits.shape.length !== 2 || logits.shape.some((s, i) => s !== targets.shape[i]) || targets.shape.length !== 2) {
    throw new ShapeError(
      `softCrossEntropy: logits and targets must both be [N, C], got ${shapeStr(logits.shape)} and ${shapeStr(targets.shape)}`,
    );
  }
  return scale(sum(mul(targets, logSoftmax(logits))), -1 / logits.shape[0]);
}
