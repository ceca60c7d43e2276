// Index-mapping ops: gatherRows (with index clamping), concat, slice and transpose. Each is checked for
// exact values against a plain-TS oracle, its backward against finite differences, WebGPU against the CPU
// reference, and its shape errors.
import { afterAll, describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { concat, gatherRows, slice, transpose } from '../../src/ops/indexing.ts';
import { backend, Tensor } from '../../src/tensor/tensor.ts';
import { checkOp, cpu, gpuBackend, uniform, releaseGpu, use } from '../helpers.ts';

afterAll(releaseGpu);

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const inp = (shape: number[], seed: number, grad = true) => ({ data: uniform(numel(shape), seed), shape, grad });
const ints = (values: number[]) => ({ data: Int32Array.from(values), shape: [values.length], dtype: 'i32' as const });
const t = (shape: number[], seed = 1) => Tensor.from(uniform(numel(shape), seed), shape);

/** Row-major strides. */
const strides = (shape: readonly number[]) => shape.map((_, i) => numel(shape.slice(i + 1)));

/** Plain-TS transpose: output dim d is input dim perm[d]. */
function transposeRef(x: Float32Array, shape: number[], perm: number[]): Float32Array {
  const outShape = perm.map((p) => shape[p]);
  const st = strides(shape);
  const out = new Float32Array(x.length);
  for (let i = 0; i < out.length; i++) {
    let rem = i;
    let src = 0;
    for (let d = outShape.length - 1; d >= 0; d--) {
      src += (rem % outShape[d]) * st[perm[d]];
      rem = Math.floor(rem / outShape[d]);
    }
    out[i] = x[src];
  }
  return out;
}

/** Output values on the CPU and, when present, on WebGPU (exact: these ops only move values). */
async function onEveryBackend(fn: () => Tensor): Promise<Float32Array[]> {
  const prev = backend();
  const results: Float32Array[] = [];
  try {
    const g = await gpuBackend();
    for (const b of g ? [cpu, g] : [cpu]) {
      use(b);
      const out = fn();
      results.push(await out.data());
      out.dispose();
    }
  } finally {
    use(prev);
  }
  return results;
}

describe('gatherRows', () => {
  it('looks up rows; repeated indices sum their gradients', async () => {
    await checkOp({ inputs: [inp([5, 7], 1), ints([2, 0, 2, 4, 2, 1])], fn: (tb, i) => gatherRows(tb, i) });
    await checkOp({ inputs: [inp([1, 1], 2), ints([0])], fn: (tb, i) => gatherRows(tb, i) });
  });
  it('spans several workgroups (N*E and R*E > 256) and rows nobody picked get zero gradient', async () => {
    await checkOp({ inputs: [inp([4, 129], 3), ints([3, 1, 3])], fn: (tb, i) => gatherRows(tb, i) }, { skipFd: true });
  });
  it('clamps out-of-range indices to the nearest row, on every backend', async () => {
    const table = [0, 1, 10, 11, 20, 21];
    for (const got of await onEveryBackend(() => gatherRows(Tensor.from(table, [3, 2]), Tensor.from([-5, 7, 1, 3], [4], 'i32')))) {
      expect(Array.from(got)).toEqual([0, 1, 20, 21, 10, 11, 20, 21]);
    }
    await checkOp({ inputs: [inp([3, 2], 4), ints([-1, 9, 0])], fn: (tb, i) => gatherRows(tb, i) });
  });
  it('errors name the op and the shapes', () => {
    expect(() => gatherRows(t([2, 2]), Tensor.from([0, 1], [2]))).toThrow(/gatherRows.*table f32 \[2, 2\].*index f32 \[2\]/);
    expect(() => gatherRows(t([4]), Tensor.from([0], [1], 'i32'))).toThrow(/gatherRows.*\[4\]/);
    expect(() => gatherRows(t([2, 2]), Tensor.from([0, 1], [1, 2], 'i32'))).toThrow(/gatherRows.*\[1, 2\]/);
    expect(() => gatherRows(t([2, 2]), Tensor.from([0, 1], [1, 2], 'i32'))).toThrow(ShapeError);
  });
});

describe('concat', () => {
  it('joins along a middle axis with exact values', async () => {
    const a = uniform(2 * 3 * 5, 10);
    const b = uniform(2 * 1 * 5, 11);
    const expected = new Float32Array(2 * 4 * 5);
    for (let o = 0; o < 2; o++) {
      expected.set(a.subarray(o * 15, o * 15 + 15), o * 20);
      expected.set(b.subarray(o * 5, o * 5 + 5), o * 20 + 15);
    }
    for (const got of await onEveryBackend(() => concat([Tensor.from(a, [2, 3, 5]), Tensor.from(b, [2, 1, 5])], 1)))
      expect(got).toEqual(expected);
  });
  it('2 inputs, middle axis: gradients are slices of g', async () => {
    await checkOp({ inputs: [inp([2, 3, 5], 12), inp([2, 1, 5], 13)], fn: (a, b) => concat([a, b], 1) });
  });
  it('3 inputs along axis 0, one without a gradient', async () => {
    await checkOp({ inputs: [inp([1, 4], 14), inp([3, 4], 15, false), inp([2, 4], 16)], fn: (a, b, c) => concat([a, b, c], 0) });
  });
  it('4 inputs along the last axis (negative axis), 1-element extents', async () => {
    await checkOp({
      inputs: [inp([3, 1], 17), inp([3, 2], 18), inp([3, 1], 19), inp([3, 3], 20)],
      fn: (a, b, c, d) => concat([a, b, c, d], -1),
    });
  });
  it('spans several workgroups; the same tensor twice accumulates both slices', async () => {
    await checkOp({ inputs: [inp([7, 33], 21), inp([7, 5], 22)], fn: (a, b) => concat([a, b, a], 1) }, { skipFd: true });
    await checkOp({ inputs: [inp([2, 3], 23)], fn: (a) => concat([a, a], 0) });
  });
  it('errors name the op and the shapes', () => {
    expect(() => concat([t([2, 3]), t([3, 3])], 1)).toThrow(/concat: shapes \[2, 3\], \[3, 3\] differ outside axis 1/);
    expect(() => concat([t([2, 3]), t([2, 3, 1])], 0)).toThrow(/concat.*\[2, 3\], \[2, 3, 1\]/);
    expect(() => concat([t([2, 3])], 0)).toThrow(/concat: needs 2 to 4 tensors, got 1: \[2, 3\]/);
    expect(() => concat([t([1]), t([1]), t([1]), t([1]), t([1])], 0)).toThrow(/concat: needs 2 to 4/);
    expect(() => concat([t([2, 3]), t([2, 3])], 2)).toThrow(/concat: axis 2 out of range for \[2, 3\], \[2, 3\]/);
    expect(() => concat([t([2, 3]), Tensor.from([1, 2, 3, 4, 5, 6], [2, 3], 'i32')], 0)).toThrow(ShapeError);
  });
});

describe('slice', () => {
  it('takes a window of a middle axis with exact values', async () => {
    const x = uniform(3 * 7 * 2, 30);
    const expected = new Float32Array(3 * 4 * 2);
    for (let o = 0; o < 3; o++) expected.set(x.subarray(o * 14 + 2 * 2, o * 14 + 6 * 2), o * 8);
    for (const got of await onEveryBackend(() => slice(Tensor.from(x, [3, 7, 2]), 1, 2, 4))) expect(got).toEqual(expected);
  });
  it('backward places g back into zeros of the input shape', async () => {
    await checkOp({ inputs: [inp([3, 7, 2], 31)], fn: (x) => slice(x, 1, 2, 4) });
    await checkOp({ inputs: [inp([5, 3], 32)], fn: (x) => slice(x, -1, 2, 1) });
    await checkOp({ inputs: [inp([5, 3], 33)], fn: (x) => slice(x, 0, 0, 5) });
    await checkOp({ inputs: [inp([1], 34)], fn: (x) => slice(x, 0, 0, 1) });
  });
  it('spans several workgroups', async () => {
    await checkOp({ inputs: [inp([3, 101, 3], 35)], fn: (x) => slice(x, 1, 17, 60) }, { skipFd: true });
  });
  it('errors name the op and the shapes', () => {
    expect(() => slice(t([3, 7]), 1, 5, 3)).toThrow(/slice: \[5, 5 \+ 3\) is not a non-empty range inside axis 1 of \[3, 7\]/);
    expect(() => slice(t([3, 7]), 0, 0, 0)).toThrow(/slice.*\[3, 7\]/);
    expect(() => slice(t([3, 7]), 0, -1, 2)).toThrow(/slice.*\[3, 7\]/);
    expect(() => slice(t([3, 7]), 2, 0, 1)).toThrow(/slice: axis 2 out of range for \[3, 7\]/);
  });
});

describe('transpose', () => {
  const perms: [number[], number[]][] = [
    [
      [3, 5],
      [1, 0],
    ],
    [
      [2, 3, 5],
      [2, 0, 1],
    ],
    [
      [2, 3, 5],
      [0, 2, 1],
    ],
    [
      [2, 1, 3, 1, 2, 3],
      [5, 3, 1, 0, 4, 2],
    ],
    [
      [3, 1, 4, 2],
      [2, 3, 0, 1],
    ],
    [
      [4, 3],
      [0, 1],
    ],
  ];
  for (const [shape, perm] of perms) {
    it(`${shape.join('x')} by [${perm.join(', ')}]: exact values, gradients, WebGPU vs CPU`, async () => {
      const x = uniform(numel(shape), 40);
      const expected = transposeRef(x, shape, perm);
      for (const got of await onEveryBackend(() => transpose(Tensor.from(x, shape), perm))) expect(got).toEqual(expected);
      await checkOp({ inputs: [inp(shape, 41)], fn: (xx) => transpose(xx, perm) });
    });
  }
  it('spans several workgroups', async () => {
    const shape = [5, 17, 9, 2];
    const x = uniform(numel(shape), 42);
    for (const got of await onEveryBackend(() => transpose(Tensor.from(x, shape), [2, 0, 3, 1])))
      expect(got).toEqual(transposeRef(x, shape, [2, 0, 3, 1]));
    await checkOp({ inputs: [inp(shape, 43)], fn: (xx) => transpose(xx, [3, 1, 0, 2]) }, { skipFd: true });
  });
  it('errors name the op and the shapes', () => {
    expect(() => transpose(t([2, 3]), [0, 0])).toThrow(/transpose: \[0, 0\] is not a permutation of the axes of \[2, 3\]/);
    expect(() => transpose(t([2, 3]), [1, 0, 2])).toThrow(/transpose.*\[2, 3\]/);
    expect(() => transpose(t([2, 3]), [1, 2])).toThrow(ShapeError);
    expect(() => transpose(t([1, 1, 1, 1, 1, 1, 2]), [6, 5, 4, 3, 2, 1, 0])).toThrow(/transpose: rank 7 > 6.*\[1, 1, 1, 1, 1, 1, 2\]/);
  });
});
