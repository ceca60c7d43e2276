import { afterAll, describe, it } from 'vitest';
import * as ops from '../../src/ops/index.ts';
import { checkOp, uniform, releaseGpu } from '../helpers.ts';

afterAll(releaseGpu);

const inp = (shape: number[], seed: number, lo = -1, hi = 1) => ({
  data: uniform(
    shape.reduce((a, b) => a * b, 1),
    seed,
    lo,
    hi,
  ),
  shape,
  grad: true,
});

describe('elementwise kernels', () => {
  for (const op of ['add', 'sub', 'mul', 'div', 'maximum'] as const) {
    it(`${op} with broadcasting`, async () => {
      const b = op === 'div' ? inp([3, 1], 2, 0.5, 2) : inp([3, 1], 2);
      await checkOp({ inputs: [inp([2, 3, 4], 1), b], fn: (x, y) => ops[op](x, y) });
      await checkOp({ inputs: [inp([1], 3), op === 'div' ? inp([5], 4, 0.5, 2) : inp([5], 4)], fn: (x, y) => ops[op](x, y) });
    });
  }
  for (const op of ['exp', 'relu', 'gelu', 'sigmoid', 'tanh', 'square'] as const) {
    it(`${op}`, async () => {
      await checkOp({ inputs: [inp([7, 3], 5, -3, 3)], fn: (x) => ops[op](x) });
    });
  }
  it('log and sqrt on positive inputs', async () => {
    await checkOp({ inputs: [inp([9], 6, 0.5, 3)], fn: (x) => ops.log(x) });
    await checkOp({ inputs: [inp([9], 7, 0.5, 3)], fn: (x) => ops.sqrt(x) });
  });
  it('affine, expand', async () => {
    await checkOp({ inputs: [inp([4, 2], 8)], fn: (x) => ops.affine(x, -2.5, 0.25) });
    await checkOp({ inputs: [inp([4, 1], 9)], fn: (x) => ops.expand(x, [3, 4, 5]) });
  });
  it('a large tensor spans more than 65535 workgroups in x', async () => {
    const n = 256 * 65535 + 300;
    await checkOp({ inputs: [{ data: uniform(n, 10), shape: [n], grad: false }], fn: (x) => ops.affine(x, 2, 1) }, { skipFd: true });
  });
});

describe('reductions', () => {
  it('sum and mean over axes', async () => {
    await checkOp({ inputs: [inp([2, 3, 4], 11)], fn: (x) => ops.sum(x, [0, 2]) });
    await checkOp({ inputs: [inp([2, 3, 4], 12)], fn: (x) => ops.mean(x, 1, true) });
    await checkOp({ inputs: [inp([5, 7], 13)], fn: (x) => ops.sum(x) });
    await checkOp({ inputs: [inp([1, 1], 14)], fn: (x) => ops.mean(x, -1) });
  });
  it('long reductions stay accurate', async () => {
    await checkOp(
      { inputs: [{ data: uniform(3 * 5000, 15), shape: [3, 5000], grad: false }], fn: (x) => ops.sum(x, 1) },
      { skipFd: true, tol: 1e-4 },
    );
  });
});
