import { afterAll, describe, expect, it } from 'vitest';
import { vicreg, vicregReference } from '../../src/kinds/ssl/vicreg.ts';
import { checkOp, uniform, releaseGpu } from '../helpers.ts';
import { Tensor } from '../../src/tensor/tensor.ts';

afterAll(releaseGpu);

const coeffs = { sim: 25, std: 25, cov: 1, cosine: 0.5 };

describe('VICReg loss', () => {
  it('matches the plain TypeScript reference, term by term', async () => {
    const n = 6;
    const d = 5;
    const a = uniform(n * d, 1, -0.3, 0.3);
    const b = uniform(n * d, 2, -0.3, 0.3);
    const t = vicreg(Tensor.from(a, [n, d]), Tensor.from(b, [n, d]), coeffs);
    const ref = vicregReference(a, b, n, d, coeffs);
    expect(await t.invariance.item()).toBeCloseTo(ref.invariance, 5);
    expect(await t.variance.item()).toBeCloseTo(ref.variance, 5);
    expect(await t.covariance.item()).toBeCloseTo(ref.covariance, 5);
    expect(await t.cosine!.item()).toBeCloseTo(ref.cosine, 5);
    expect(await t.loss.item()).toBeCloseTo(ref.loss, 3);
  });

  it('gradients agree with finite differences and across backends', async () => {
    const n = 4;
    const d = 3;
    await checkOp(
      {
        inputs: [
          { data: uniform(n * d, 3, -0.5, 0.5), shape: [n, d], grad: true },
          { data: uniform(n * d, 4, -0.5, 0.5), shape: [n, d], grad: true },
        ],
        fn: (x, y) => vicreg(x, y, coeffs).loss,
      },
      { gradTol: 3e-2, eps: 5e-3, tol: 2e-4 },
    );
  });

  it('rejects embeddings of different shapes', () => {
    expect(() => vicreg(Tensor.from(uniform(6, 1), [2, 3]), Tensor.from(uniform(8, 1), [2, 4]), coeffs)).toThrow(
      /vicreg.*\[2, 3\].*\[2, 4\]/,
    );
  });
});
