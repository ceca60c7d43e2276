// layerNorm over the last dimension, on both the scalar entries (D % 4 != 0) and the vec4 entries
// (D % 4 == 0): dx, dgamma, dbeta vs finite differences, WebGPU vs the CPU reference, values vs a direct
// float64 computation, rows with a large offset, partial gradients, and shape errors.
import { afterAll, describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { layerNorm } from '../../src/ops/layernorm.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { checkOp, expectClose, uniform, releaseGpu, onEachBackend } from '../helpers.ts';

afterAll(releaseGpu);

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const inp = (shape: number[], seed: number, grad = true, lo = -2, hi = 2) => ({ data: uniform(numel(shape), seed, lo, hi), shape, grad });

function direct(x: Float32Array, d: number, gamma: Float32Array, beta: Float32Array, eps: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < x.length; b += d) {
    const row = Array.from(x.subarray(b, b + d));
    const mu = row.reduce((s, v) => s + v, 0) / d;
    const v = row.reduce((s, u) => s + (u - mu) ** 2, 0) / d;
    row.forEach((u, j) => (out[b + j] = ((u - mu) / Math.sqrt(v + eps)) * gamma[j] + beta[j]));
  }
  return out;
}

describe('layerNorm', () => {
  // Scalar path: [1, 1], [3, 7], [2, 5, 33], [70, 3] (70 rows: two workgroups). vec4 path: [4, 8], [3, 12]
  // (three vec4s a row), [2, 3, 4] (one vec4 a row).
  for (const shape of [
    [1, 1],
    [3, 7],
    [2, 5, 33],
    [70, 3],
    [4, 8],
    [3, 12],
    [2, 3, 4],
  ]) {
    it(`${shape.join('x')}: dx, dgamma, dbeta vs finite differences (3e-2) and WebGPU vs CPU (1e-4)`, async () => {
      const d = shape.at(-1)!;
      await checkOp(
        { inputs: [inp(shape, d + shape[0]), inp([d], 8, true, 0.5, 1.5), inp([d], 9)], fn: (x, g, b) => layerNorm(x, g, b) },
        { gradTol: 3e-2 },
      );
    });
  }

  it('wide rows (D 512 and 510) on WebGPU match the CPU reference', async () => {
    for (const d of [512, 510]) {
      await checkOp(
        { inputs: [inp([9, d], d), inp([d], 2, true, 0.5, 1.5), inp([d], 3)], fn: (x, g, b) => layerNorm(x, g, b) },
        { skipFd: true },
      );
    }
  });

  it('gradients only where asked: x alone, gamma alone', async () => {
    await checkOp(
      { inputs: [inp([3, 8], 11), inp([8], 12, false), inp([8], 13, false)], fn: (x, g, b) => layerNorm(x, g, b) },
      { gradTol: 3e-2 },
    );
    await checkOp(
      { inputs: [inp([3, 7], 14, false), inp([7], 15), inp([7], 16, false)], fn: (x, g, b) => layerNorm(x, g, b) },
      { gradTol: 3e-2 },
    );
  });

  it('matches a float64 computation (1e-5) for both paths, another eps, and rows offset by 1000', async () => {
    for (const [d, eps, lo, hi] of [
      [36, 1e-5, -3, 3],
      [37, 1e-3, -3, 3],
      [64, 1e-6, 999, 1001],
      [7, 1e-5, 999, 1001],
    ]) {
      const x = inp([5, d], d, false, lo, hi);
      const g = inp([d], 2, false, 0.5, 1.5);
      const b = inp([d], 3, false);
      const want = direct(x.data, d, g.data, b.data, eps);
      // Offset rows keep only ~1e-4 of absolute precision in f32 inputs, so their tolerance is looser.
      const tol = lo > 0 ? 2e-4 : 1e-5;
      await onEachBackend({ inputs: [x, g, b], fn: (xx, gg, bb) => layerNorm(xx, gg, bb, eps) }, (r, be) =>
        expectClose(r.out, want, tol, `${be} D ${d} eps ${eps}`),
      );
    }
  });

  it('rejects mismatched gamma or beta, scalars and a bad eps, naming the op and the shapes', () => {
    const x = Tensor.from(uniform(6, 1), [2, 3]);
    const v3 = Tensor.from(uniform(3, 1), [3]);
    expect(() => layerNorm(x, Tensor.from(uniform(2, 1), [2]), v3)).toThrow(/layerNorm: .*\[2, 3\].*\[3\].*\[2\]/);
    expect(() => layerNorm(x, v3, Tensor.from(uniform(3, 1), [1, 3]))).toThrow(/layerNorm: .*\[2, 3\].*\[1, 3\]/);
    expect(() => layerNorm(Tensor.from([1], []), v3, v3)).toThrow(ShapeError);
    expect(() => layerNorm(x, v3, v3, 0)).toThrow(/layerNorm: eps/);
  });
});
