// groupNorm: WebGPU vs the CPU reference, dx/dgamma/dbeta vs finite differences, values vs a direct
// float64 computation, and shape errors.
import { afterAll, describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { groupNorm } from '../../src/ops/index.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { checkOp, cpu, expectClose, gpuBackend, uniform, releaseGpu, use } from '../helpers.ts';

afterAll(releaseGpu);

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const inp = (shape: number[], seed: number, lo = -1, hi = 1) => ({ data: uniform(numel(shape), seed, lo, hi), shape, grad: true });

function direct(x: Float32Array, shape: number[], gamma: Float32Array, beta: Float32Array, groups: number, eps: number): Float32Array {
  const [B, C] = shape;
  const S = numel(shape.slice(2));
  const n = (C / groups) * S;
  const out = new Float32Array(x.length);
  for (let b = 0; b < B; b++) {
    for (let g = 0; g < groups; g++) {
      const base = (b * C + (g * C) / groups) * S;
      let mu = 0;
      for (let i = 0; i < n; i++) mu += x[base + i];
      mu /= n;
      let v = 0;
      for (let i = 0; i < n; i++) v += (x[base + i] - mu) ** 2;
      const rstd = 1 / Math.sqrt(v / n + eps);
      for (let i = 0; i < n; i++) {
        const c = Math.floor((base + i) / S) % C;
        out[base + i] = (x[base + i] - mu) * rstd * gamma[c] + beta[c];
      }
    }
  }
  return out;
}

describe('groupNorm', () => {
  for (const [shape, groups] of [
    [[2, 6, 5, 3], 3],
    [[2, 4, 5, 3], 1],
    [[1, 3, 4, 5], 3],
    [[1, 4, 5, 4, 6], 2],
    [[3, 4], 2],
  ] as [number[], number][]) {
    it(`${shape.join('x')} in ${groups} groups: outputs and dx, dgamma, dbeta`, async () => {
      const C = shape[1];
      await checkOp(
        { inputs: [inp(shape, 1, -2, 2), inp([C], 2, 0.5, 1.5), inp([C], 3)], fn: (x, g, b) => groupNorm(x, g, b, groups) },
        { gradTol: 3e-2 },
      );
    });
  }

  it('large groups match the reference and a direct float64 computation', async () => {
    const shape = [2, 8, 37, 29];
    await checkOp({ inputs: [inp(shape, 4, -3, 5), inp([8], 5), inp([8], 6)], fn: (x, g, b) => groupNorm(x, g, b, 4) }, { skipFd: true });
    const x = uniform(numel(shape), 7, -3, 5);
    const gamma = uniform(8, 8);
    const beta = uniform(8, 9);
    const want = direct(x, shape, gamma, beta, 4, 1e-5);
    for (const be of [cpu, await gpuBackend()]) {
      if (!be) continue;
      use(be);
      const y = groupNorm(Tensor.from(x, shape), Tensor.from(gamma, [8]), Tensor.from(beta, [8]), 4);
      expectClose(await y.data(), want, 1e-5, `${be.name} groupNorm vs float64`);
    }
    use(cpu);
  });

  it('names the op and the shapes on bad input', () => {
    const x = Tensor.from(uniform(2 * 6 * 5, 1), [2, 6, 5]);
    const g6 = Tensor.from(uniform(6, 1), [6]);
    expect(() => groupNorm(x, g6, g6, 4)).toThrow(ShapeError);
    expect(() => groupNorm(x, g6, g6, 4)).toThrow(/groupNorm: 4 groups.*6 channels.*\[2, 6, 5\]/);
    expect(() => groupNorm(x, Tensor.from(uniform(5, 1), [5]), g6, 3)).toThrow(/groupNorm.*\[2, 6, 5\].*\[5\]/);
    expect(() => groupNorm(Tensor.from(uniform(3, 1), [3]), g6, g6, 1)).toThrow(/groupNorm.*\[3\]/);
  });
});
