// softmax and logSoftmax over the last dimension: backward rules vs finite differences, WebGPU vs the
// CPU reference, values vs a direct float64 computation, stability for logits of ±80, shape errors.
import { afterAll, describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { logSoftmax, softmax } from '../../src/ops/softmax.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { checkOp, expectClose, uniform, releaseGpu, onEachBackend } from '../helpers.ts';

afterAll(releaseGpu);

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const inp = (shape: number[], seed: number, lo = -3, hi = 3) => ({ data: uniform(numel(shape), seed, lo, hi), shape, grad: true });

/** float64 softmax / log-softmax of each row of length d. */
function direct(x: Float32Array, d: number, log: boolean): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < x.length; b += d) {
    const row = Array.from(x.subarray(b, b + d));
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    row.forEach((v, j) => (out[b + j] = log ? v - lse : Math.exp(v - lse)));
  }
  return out;
}

const ops = [
  ['softmax', softmax, false],
  ['logSoftmax', logSoftmax, true],
] as const;

for (const [name, op, log] of ops) {
  describe(name, () => {
    // [1, 1]: a single element; 7 and 33: rows that are no multiple of anything; 70 rows: more than one workgroup.
    for (const shape of [[1, 1], [5], [3, 7], [2, 5, 33], [70, 3]]) {
      it(`gradients and WebGPU over ${shape.join('x')} (tol 1e-4, finite differences 2e-2)`, async () => {
        await checkOp({ inputs: [inp(shape, shape.length + shape[0])], fn: (x) => op(x) });
      });
    }

    it('matches a float64 computation to 1e-5 on both backends', async () => {
      const x = inp([4, 9], 21, -6, 6);
      await onEachBackend({ inputs: [x], fn: (t) => op(t) }, (r, be) => expectClose(r.out, direct(x.data, 9, log), 1e-5, `${be} ${name}`));
    });

    it('is finite with exact values and gradients for logits of ±80', async () => {
      const data = Float32Array.from([80, -80, 79, 0, -80, -80, -80, -79]);
      await onEachBackend({ inputs: [{ data, shape: [2, 4], grad: true }], fn: (t) => op(t) }, (r, be) => {
        expect(r.out.every(Number.isFinite), `${be} values finite`).toBe(true);
        expect(r.grads[0]!.every(Number.isFinite), `${be} gradients finite`).toBe(true);
        expectClose(r.out, direct(data, 4, log), 1e-5, `${be} ${name} at ±80`);
      });
    });

    it('handles an empty row set and rejects scalars and i32 tensors, naming the op and shape', async () => {
      expect(op(Tensor.empty([0, 3])).shape).toEqual([0, 3]);
      expect(() => op(Tensor.from([1], []))).toThrow(ShapeError);
      expect(() => op(Tensor.from([1], []))).toThrow(new RegExp(`${name}: .*\\[\\]`));
      expect(() => op(Tensor.from([1, 2], [2], 'i32'))).toThrow(new RegExp(`${name}: .*i32 \\[2\\]`));
    });
  });
}

describe('softmax and logSoftmax together', () => {
  it('softmax rows sum to 1 and exp(logSoftmax) equals softmax', async () => {
    const data = uniform(6 * 11, 5, -10, 10);
    const y = await softmax(Tensor.from(data, [6, 11])).data();
    const ly = await logSoftmax(Tensor.from(data, [6, 11])).data();
    for (let r = 0; r < 6; r++) {
      let s = 0;
      for (let j = 0; j < 11; j++) {
        s += y[r * 11 + j];
        expect(Math.exp(ly[r * 11 + j])).toBeCloseTo(y[r * 11 + j], 6);
      }
      expect(s).toBeCloseTo(1, 6);
    }
  });
});
