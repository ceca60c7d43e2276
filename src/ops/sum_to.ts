// The raw sum over axes (no autograd) and `sumTo`, the backward of broadcasting. Kept apart from
// reduce.ts, whose differentiable sum and mean build on elementwise ops, so that elementwise ops can
// use sumTo without an import cycle.
import { UNARY } from '../backend/kernels/elementwise.ts';
import { ShapeError } from '../errors.ts';
import { shapeStr, Tensor, type Shape } from '../tensor/tensor.ts';
import { contiguousStrides, launch, pad6, sameShape } from './launch.ts';

/** Sum x over `axes`, keeping them as size-1 dims (no autograd; the building block). */
export function sumKeep(x: Tensor, axes: readonly number[]): Tensor {
  const rank = x.shape.length;
  const outShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = Tensor.empty(outShape);
  const inShape = pad6(x.shape);
  const strides = contiguousStrides(inShape);
  const off = 6 - rank;
  const reduced = inShape.map((_, d) => d >= off && axes.includes(d - off));
  const O = inShape.map((n, d) => (reduced[d] ? 1 : n));
  const R = inShape.map((n, d) => (reduced[d] ? n : 1));
  const S = strides;
  const RTOT = R.reduce((a, b) => a * b, 1);
  // In the kernel's constant order (it shows in the compiled prelude): NOUT, RTOT, then O, R, S per dimension.
  const consts = {
    NOUT: out.size,
    RTOT,
    O0: O[0],
    R0: R[0],
    S0: S[0],
    O1: O[1],
    R1: R[1],
    S1: S[1],
    O2: O[2],
    R2: R[2],
    S2: S[2],
    O3: O[3],
    R3: R[3],
    S3: S[3],
    O4: O[4],
    R4: R[4],
    S4: S[4],
    O5: O[5],
    R5: R[5],
    S5: S[5],
  };
  launch('reduce', 'sum', consts, { x, out });
  return out;
}

/** Reduce a broadcast gradient back to `shape` (sums the broadcast dims); no autograd. */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  if (g.size === 0) return Tensor.empty(shape);
  const lead = g.shape.length - shape.length;
  if (lead < 0) throw new ShapeError(`sumTo: cannot reduce ${shapeStr(g.shape)} to ${shapeStr(shape)}`);
  const axes: number[] = [];
  g.shape.forEach((d, i) => {
    if (i < lead || (shape[i - lead] === 1 && d !== 1)) axes.push(i);
  });
  if (axes.length === 0) {
    // Same size, other shape: a copy (the kernel call of `copy`) viewed as `shape`.
    const c = Tensor.empty(g.shape);
    launch('elementwise', 'unary', { N: g.size, OP: UNARY.affine }, { x: g, out: c }, { ALPHA: 1, BETA: 0 });
    return c.reshaped(shape);
  }
  const kept = sumKeep(g, axes);
  const out = kept.reshaped(shape);
  kept.dispose();
  return out;
}
