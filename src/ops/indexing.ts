// Index mapping ops: row gather (per-sample embedding lookups: dimensionality, modality, body-part
// latents), concat, slice and general transpose. Each is one index-mapping kernel; each backward is
// another (scatter-free, so no atomics).
import { ShapeError } from '../errors.ts';
import { record, shapeStr, Tensor, type Shape } from '../tensor/tensor.ts';
import { contiguousStrides, launch, MAX_RANK } from './launch.ts';

/**
 * table [R, E], index i32 [N] → [N, E] with row n = table[index[n]]. Indices outside [0, R) are clamped
 * to the nearest row by the kernel (no bounds error is raised on the device). The gradient reaches the
 * table only; rows picked several times sum their gradients.
 */
export function gatherRows(table: Tensor, index: Tensor): Tensor {
  const op = 'gatherRows';
  if (table.shape.length !== 2 || table.shape[0] < 1 || table.dtype !== 'f32' || index.shape.length !== 1 || index.dtype !== 'i32') {
    throw new ShapeError(
      `${op}: table must be an f32 [R >= 1, E] and index an i32 [N]; got table ${table.dtype} ${shapeStr(table.shape)} and index ${index.dtype} ${shapeStr(index.shape)}`,
    );
  }
  const [R, E] = table.shape;
  const N = index.shape[0];
  const out = Tensor.empty([N, E]);
  launch('indexing', 'gather', { N, R, E }, { x: table, index, out });
  return record(out, op, [table], (g) => {
    const dt = Tensor.empty(table.shape);
    launch('indexing', 'gather_backward', { N, R, E }, { x: g, index, out: dt });
    return [dt];
  });
}

function normAxis(op: string, axis: number, shape: Shape, what: string): number {
  const ax = axis < 0 ? axis + shape.length : axis;
  if (!Number.isInteger(axis) || ax < 0 || ax >= shape.length) throw new ShapeError(`${op}: axis ${axis} out of range for ${what}`);
  return ax;
}

const prod = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

/** x viewed as [OUTER, A, INNER] around `axis`. */
function around(shape: Shape, axis: number): { OUTER: number; A: number; INNER: number } {
  return { OUTER: prod(shape.slice(0, axis)), A: shape[axis], INNER: prod(shape.slice(axis + 1)) };
}

function requireF32(op: string, xs: readonly Tensor[]): void {
  const bad = xs.find((t) => t.dtype !== 'f32');
  if (bad) throw new ShapeError(`${op}: only f32 tensors are supported; got ${bad.dtype} ${shapeStr(bad.shape)}`);
}

function sliceRaw(x: Tensor, axis: number, start: number, length: number): Tensor {
  const shape = x.shape.map((d, i) => (i === axis ? length : d));
  const out = Tensor.empty(shape);
  launch('indexing', 'slice', { ...around(x.shape, axis), START: start, L: length }, { x, out });
  return out;
}

/** x[..., start : start + length, ...] along `axis` (negative counts from the end); a copy. */
export function slice(x: Tensor, axis: number, start: number, length: number): Tensor {
  const op = 'slice';
  requireF32(op, [x]);
  const ax = normAxis(op, axis, x.shape, shapeStr(x.shape));
  if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 1 || start + length > x.shape[ax]) {
    throw new ShapeError(`${op}: [${start}, ${start} + ${length}) is not a non-empty range inside axis ${axis} of ${shapeStr(x.shape)}`);
  }
  const out = sliceRaw(x, ax, start, length);
  return record(out, op, [x], (g) => {
    const dx = Tensor.empty(x.shape);
    launch('indexing', 'pad', { ...around(x.shape, ax), START: start, L: length }, { x: g, out: dx });
    return [dx];
  });
}

/** Join 2 to 4 tensors of equal rank along `axis`; every other extent must match. */
export function concat(tensors: readonly Tensor[], axis: number): Tensor {
  const op = 'concat';
  const shapes = tensors.map((t) => shapeStr(t.shape)).join(', ');
  if (tensors.length < 2 || tensors.length > 4) throw new ShapeError(`${op}: needs 2 to 4 tensors, got ${tensors.length}: ${shapes}`);
  requireF32(op, tensors);
  const first = tensors[0].shape;
  const ax = normAxis(op, axis, first, shapes);
  const mismatch = tensors.some((t) => t.shape.length !== first.length || t.shape.some((d, i) => i !== ax && d !== first[i]));
  if (mismatch) throw new ShapeError(`${op}: shapes ${shapes} differ outside axis ${axis}`);
  const lens = tensors.map((t) => t.shape[ax]);
  const ATOT = lens.reduce((a, b) => a + b, 0);
  const { OUTER, INNER } = around(first, ax);
  const out = Tensor.empty(first.map((d, i) => (i === ax ? ATOT : d)));
  const [A0, A1, A2 = 0, A3 = 0] = lens;
  const [x0, x1, x2, x3] = tensors;
  launch('indexing', 'concat', { OUTER, INNER, ATOT, A0, A1, A2, A3 }, { x0, x1, x2, x3, out });
  return record(out, op, tensors, (g) => {
    let offset = 0;
    return tensors.map((t, j) => {
      const start = offset;
      offset += lens[j];
      return t.requiresGrad ? sliceRaw(g, ax, start, lens[j]) : null;
    });
  });
}

function transposeRaw(x: Tensor, perm: readonly number[]): Tensor {
  const outShape = perm.map((p) => x.shape[p]);
  const out = Tensor.empty(outShape);
  const st = contiguousStrides(x.shape);
  // Drop unit dims and merge output dims that stay contiguous in the input, so common cases (identity,
  // swapping two blocks) run with fewer divisions per element.
  const dims: [number, number][] = [];
  for (let d = 0; d < perm.length; d++) {
    const size = outShape[d];
    const stride = st[perm[d]];
    if (size === 1) continue;
    const last = dims.at(-1);
    if (last && last[1] === size * stride) {
      last[0] *= size;
      last[1] = stride;
    } else {
      dims.push([size, stride]);
    }
  }
  while (dims.length < MAX_RANK) dims.unshift([1, 0]);
  const [[O0, S0], [O1, S1], [O2, S2], [O3, S3], [O4, S4], [O5, S5]] = dims;
  launch('indexing', 'transpose', { NOUT: out.size, O0, S0, O1, S1, O2, S2, O3, S3, O4, S4, O5, S5 }, { x, out });
  return out;
}

/** Permute the dimensions of x (rank <= 6): output dim d is input dim perm[d]; a copy. */
export function transpose(x: Tensor, perm: readonly number[]): Tensor {
  const op = 'transpose';
  requireF32(op, [x]);
  const r = x.shape.length;
  const valid = perm.length === r && perm.every((p) => Number.isInteger(p) && p >= 0 && p < r) && new Set(perm).size === r;
  if (!valid) throw new ShapeError(`${op}: [${perm.join(', ')}] is not a permutation of the axes of ${shapeStr(x.shape)}`);
  if (r > MAX_RANK) throw new ShapeError(`${op}: rank ${r} > ${MAX_RANK} is not supported: ${shapeStr(x.shape)}`);
  const out = transposeRaw(x, perm);
  const inverse = new Array<number>(r);
  perm.forEach((p, d) => (inverse[p] = d));
  return record(out, op, [x], (g) => [transposeRaw(g, inverse)]);
}
