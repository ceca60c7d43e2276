// Sums and means over axes; `sumTo` is the backward of broadcasting.
import { ShapeError } from '../errors.ts';
import { record, shapeStr, type Shape, type Tensor } from '../tensor/tensor.ts';
import { affine, expand } from './elementwise.ts';
import { sumKeep } from './sum_to.ts';

export { sumTo } from './sum_to.ts';

function normAxes(op: string, shape: Shape, axes?: number | readonly number[]): number[] {
  const list = axes === undefined ? shape.map((_, i) => i) : typeof axes === 'number' ? [axes] : [...axes];
  return list.map((a) => {
    const ax = a < 0 ? a + shape.length : a;
    if (ax < 0 || ax >= shape.length) throw new ShapeError(`${op}: axis ${a} out of range for ${shapeStr(shape)}`);
    return ax;
  });
}

export function sum(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  const ax = normAxes('sum', x.shape, axes);
  const kept = sumKeep(x, ax);
  const outShape = keepDims ? kept.shape : x.shape.filter((_, i) => !ax.includes(i));
  const out = keepDims ? kept : kept.reshaped(outShape);
  if (!keepDims) kept.dispose();
  return record(out, 'sum', [x], (g) => [expand(g.reshaped(kept.shape), x.shape)]);
}

export function mean(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  const ax = normAxes('mean', x.shape, axes);
  const count = ax.reduce((n, a) => n * x.shape[a], 1);
  return affine(sum(x, ax, keepDims), 1 / count, 0);
}
