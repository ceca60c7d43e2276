// avgPool, maxPool, globalAvgPool and upsample2x on 4D and 5D inputs: WebGPU vs the CPU reference,
// gradients vs finite differences, values vs direct computations, and shape errors.
import { afterAll, describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { avgPool, globalAvgPool, maxPool, upsample2x } from '../../src/ops/index.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { checkOp, cpu, gpuBackend, uniform, releaseGpu, use } from '../helpers.ts';

afterAll(releaseGpu);

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const inp = (shape: number[], seed: number) => ({ data: uniform(numel(shape), seed), shape, grad: true });

/** Distinct values at least 0.05 apart (a shuffled ramp), so finite differences never swap a maximum. */
function distinct(shape: number[], seed: number) {
  const n = numel(shape);
  const r = uniform(n, seed);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => r[a] - r[b]);
  const data = new Float32Array(n);
  order.forEach((idx, rank) => (data[idx] = (rank - n / 2) * 0.05));
  return { data, shape, grad: true };
}

/** Run fn on both backends and return the output values from each. */
async function onBoth(fn: () => Tensor): Promise<Float32Array[]> {
  const outs: Float32Array[] = [];
  for (const be of [cpu, await gpuBackend()]) {
    if (!be) continue;
    use(be);
    const t = fn();
    outs.push(await t.data());
    t.dispose();
  }
  use(cpu);
  return outs;
}

describe('avgPool', () => {
  for (const [shape, k] of [
    [[2, 3, 7, 5], 2],
    [[2, 3, 7, 5], 3],
    [[1, 2, 5, 4, 6], 2],
    [[1, 1, 1, 1], 1],
  ] as [number[], number][]) {
    it(`${shape.join('x')} window ${k}`, async () => {
      await checkOp({ inputs: [inp(shape, 1)], fn: (x) => avgPool(x, k) });
    });
  }
  it('averages each window and drops the trailing row and column', async () => {
    const x = Array.from({ length: 15 }, (_, i) => i);
    for (const out of await onBoth(() => avgPool(Tensor.from(x, [1, 1, 3, 5]), 2))) expect(Array.from(out)).toEqual([3, 5]);
  });
});

describe('maxPool', () => {
  for (const [shape, k] of [
    [[2, 3, 7, 5], 2],
    [[2, 3, 7, 5], 3],
    [[1, 2, 5, 4, 6], 2],
  ] as [number[], number][]) {
    it(`${shape.join('x')} window ${k}`, async () => {
      await checkOp({ inputs: [distinct(shape, 2)], fn: (x) => maxPool(x, k) });
    });
  }
  it("sends a tied window's gradient to its first maximum only", async () => {
    const data = [1, 5, 5, 0, 5, 2, 2, 2, 2, 2, 2, 2, -1, -1, -1, -1];
    for (const be of [cpu, await gpuBackend()]) {
      if (!be) continue;
      use(be);
      const x = Tensor.from(data, [1, 1, 4, 4]);
      x.requiresGrad = true;
      const y = maxPool(x, 2);
      expect(Array.from(await y.data())).toEqual([5, 5, 2, 2]);
      y.backward(Tensor.from([1, 2, 3, 4], [1, 1, 2, 2]));
      expect(Array.from(await x.grad!.data())).toEqual([0, 1, 2, 0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 0, 0]);
    }
    use(cpu);
  });
});

describe('globalAvgPool', () => {
  it('4D and 5D, including more values than a workgroup', async () => {
    await checkOp({ inputs: [inp([2, 3, 7, 5], 3)], fn: (x) => globalAvgPool(x) });
    await checkOp({ inputs: [inp([1, 2, 5, 4, 6], 4)], fn: (x) => globalAvgPool(x) });
    await checkOp({ inputs: [inp([3, 5, 1, 1], 5)], fn: (x) => globalAvgPool(x) });
  });
  it('is the mean over space', async () => {
    const x = uniform(2 * 3 * 20, 6);
    for (const out of await onBoth(() => globalAvgPool(Tensor.from(x, [2, 3, 4, 5])))) {
      for (let i = 0; i < 6; i++) expect(out[i]).toBeCloseTo(x.slice(i * 20, i * 20 + 20).reduce((a, b) => a + b, 0) / 20, 5);
    }
  });
});

describe('upsample2x', () => {
  it('4D and 5D, gradients sum the children', async () => {
    await checkOp({ inputs: [inp([2, 3, 3, 5], 7)], fn: (x) => upsample2x(x) });
    await checkOp({ inputs: [inp([1, 2, 3, 1, 2], 8)], fn: (x) => upsample2x(x) });
  });
  it('copies each value into its 2x2 (2x2x2) block', async () => {
    for (const out of await onBoth(() => upsample2x(Tensor.from([1, 2, 3, 4, 5, 6], [1, 1, 2, 3])))) {
      expect(Array.from(out)).toEqual([1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 4, 4, 5, 5, 6, 6]);
    }
    for (const out of await onBoth(() => upsample2x(Tensor.from([1, 2], [1, 1, 2, 1, 1])))) {
      expect(Array.from(out)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2]);
    }
  });
});

describe('pooling shape errors', () => {
  it('name the op and the shape', () => {
    const x3 = Tensor.from(uniform(6, 1), [2, 3]);
    const x4 = Tensor.from(uniform(2 * 3 * 7 * 5, 1), [2, 3, 7, 5]);
    expect(() => avgPool(x3, 2)).toThrow(ShapeError);
    expect(() => avgPool(x3, 2)).toThrow(/avgPool.*\[2, 3\]/);
    expect(() => maxPool(x4, 6)).toThrow(/maxPool.*\[2, 3, 7, 5\].*window 6/);
    expect(() => maxPool(x4, 0)).toThrow(/maxPool: window 0/);
    expect(() => globalAvgPool(x3)).toThrow(/globalAvgPool.*\[2, 3\]/);
    expect(() => upsample2x(x3)).toThrow(/upsample2x.*\[2, 3\]/);
  });
});
