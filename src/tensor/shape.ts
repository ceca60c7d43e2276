// Shapes and the rank-6 strided layout the broadcasting, reduction and transpose kernels read.
import { ShapeError } from '../errors.ts';

export type Shape = readonly number[];

export const numel = (shape: Shape): number => shape.reduce((a, b) => a * b, 1);
export const shapeStr = (shape: Shape): string => `[${shape.join(', ')}]`;

export const MAX_RANK = 6;

/** Left-pad a shape with 1s to rank 6, the layout the broadcasting kernels use. */
export function pad6(shape: Shape): number[] {
  if (shape.length > MAX_RANK) throw new ShapeError(`rank ${shape.length} > ${MAX_RANK} is not supported: ${shapeStr(shape)}`);
  return [...Array(MAX_RANK - shape.length).fill(1), ...shape];
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(`${op}: shapes ${shapeStr(a)} and ${shapeStr(b)} do not broadcast`);
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Strides of `shape` when read as the (broadcast) `out` shape: 0 on broadcast dimensions. */
export function broadcastStrides(shape: Shape, out: Shape): number[] {
  const padded = pad6(shape);
  const strides = contiguousStrides(padded);
  const o = pad6(out);
  return padded.map((d, i) => (d === 1 && o[i] !== 1 ? 0 : strides[i]));
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
