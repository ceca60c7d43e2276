import { afterAll, describe, it, expect } from 'vitest';
import { linear, matmul } from '../../src/ops/index.ts';
import { ShapeError } from '../../src/errors.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { checkOp, uniform, releaseGpu } from '../helpers.ts';

afterAll(releaseGpu);

const inp = (shape: number[], seed: number, grad = true) => ({
  data: uniform(
    shape.reduce((a, b) => a * b, 1),
    seed,
  ),
  shape,
  grad,
});

describe('matmul kernel', () => {
  for (const [m, k, n] of [
    [1, 1, 1],
    [3, 5, 7],
    [33, 17, 65],
    [4, 8, 4],
  ]) {
    it(`[${m},${k}] @ [${k},${n}] forward and backward`, async () => {
      await checkOp({ inputs: [inp([m, k], 1), inp([k, n], 2)], fn: (a, b) => matmul(a, b) });
    });
  }

  it('transposes as flags, batched, with a shared operand', async () => {
    await checkOp({ inputs: [inp([2, 6, 5], 3), inp([7, 6], 4)], fn: (a, b) => matmul(a, b, { transA: true, transB: true }) });
    await checkOp({ inputs: [inp([3, 5, 6], 5), inp([3, 6, 4], 6)], fn: (a, b) => matmul(a, b) });
    await checkOp({ inputs: [inp([3, 5, 6], 7), inp([6, 4], 8)], fn: (a, b) => matmul(a, b) });
  });

  it('the vec4 variant (dimensions multiples of 4) with every transpose, edge blocks and batches', async () => {
    for (const [ta, tb] of [
      [false, false],
      [false, true],
      [true, false],
      [true, true],
    ]) {
      const a = ta ? inp([2, 12, 36], 21) : inp([2, 36, 12], 21);
      const b = tb ? inp([20, 12], 22) : inp([12, 20], 22);
      await checkOp({ inputs: [a, b], fn: (x, y) => matmul(x, y, { transA: ta, transB: tb }) }, { skipFd: true });
    }
    await checkOp({ inputs: [inp([72, 8], 23), inp([8, 68], 24)], fn: (x, y) => matmul(x, y) }, { skipFd: true });
    await checkOp({ inputs: [inp([9, 8], 25), inp([8, 8], 26)], fn: (x, y) => matmul(x, y) });
  });

  it('large odd sizes match the reference (no gradient check)', async () => {
    await checkOp({ inputs: [inp([70, 129], 9), inp([129, 45], 10)], fn: (a, b) => matmul(a, b) }, { skipFd: true, tol: 1e-4 });
  });

  for (const act of ['none', 'gelu', 'relu'] as const) {
    it(`linear with bias and ${act} epilogue`, async () => {
      await checkOp({ inputs: [inp([2, 3, 5], 11), inp([5, 6], 12), inp([6], 13)], fn: (x, w, b) => linear(x, w, b, act) });
      // ReLU's kink makes finite differences unreliable once 200 pre-activations are drawn; the
      // small case above checks its rule, this one the vec4 epilogue against the reference.
      await checkOp(
        { inputs: [inp([2, 9, 8], 14), inp([8, 12], 15), inp([12], 16)], fn: (x, w, b) => linear(x, w, b, act) },
        { skipFd: act === 'relu' },
      );
    });
  }

  it('names the op and both shapes on a mismatch', () => {
    const a = Tensor.from(uniform(6, 1), [2, 3]);
    const b = Tensor.from(uniform(8, 1), [4, 2]);
    expect(() => matmul(a, b)).toThrow(ShapeError);
    expect(() => matmul(a, b)).toThrow(/matmul.*\[2, 3\].*\[4, 2\]/);
  });
});
