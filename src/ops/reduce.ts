// Sums and means over axes; `sumTo` is the backward of broadcasting.
import { ShapeError } from '../errors.ts';
import { record, shapeStr, Tensor, type Shape } from '../tensor/tensor.ts';
import { contiguousStrides, launch, pad6, sameShape } from './launch.ts';
import { affine, copy, expand } from './elementwise.ts';

/** Sum x over `axes`, keeping them as size-1 dims (no autograd; the building block). */
function sumKeep(x: Tensor, axes: readonly number[]): Tensor {
  const rank = x.shape.length;
  const outShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = Tensor.empty(outShape);
  const inShape = pad6(x.shape);
  const strides = contiguousStrides(inShape);
  const off = 6 - rank;
  const consts: Record<string, number> = { NOUT: out.size, RTOT: 1 };
  for (let d = 0; d < 6; d++) {
    const reduced = d >= off && axes.includes(d - off);
    consts[`O${d}`] = reduced ? 1 : inShape[d];
    consts[`R${d}`] = reduced ? inShape[d] : 1;
    consts[`S${d}`] = strides[d];
    if (reduced) consts.RTOT *= inShape[d];
  }
  launch('reduce', 'sum', consts, [x, out]);
  return out;
}

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

/** Reduce a broadcast gradient back to `shape` (sums the broadcast dims). */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  if (g.size === 0) return Tensor.empty(shape);
  const lead = g.shape.length - shape.length;
  if (lead < 0) throw new ShapeError(`sumTo: cannot reduce ${shapeStr(g.shape)} to ${shapeStr(shape)}`);
  const axes: number[] = [];
  g.shape.forEach((d, i) => {
    if (i < lead || (shape[i - lead] === 1 && d !== 1)) axes.push(i);
  });
  if (axes.length === 0) return copy(g).reshaped(shape);
  const kept = sumKeep(g, axes);
  const out = kept.reshaped(shape);
  kept.dispose();
  return out;
}
