// Soft-target losses for sum augmentation (thesis 5.4.3): softCrossEntropy against finite differences, WebGPU vs
// the CPU reference, a float64 computation and, for one-hot targets, the hard-label crossEntropy; bceWithLogits
// with fractional targets against its float64 form.
import { afterAll, describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { bceWithLogits, crossEntropy, softCrossEntropy } from '../../src/ops/losses.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { checkOp, expectClose, onEachBackend, releaseGpu, uniform } from '../helpers.ts';

afterAll(releaseGpu);

/** Rows of `c` probabilities: the average of `k` random one-hot labels, as a sum-augmented target is. */
function softTargets(n: number, c: number, k: number, seed: number): Float32Array {
  const u = uniform(n * k, seed, 0, c);
  const t = new Float32Array(n * c);
  for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) t[i * c + Math.min(c - 1, Math.floor(u[i * k + j]))] += 1 / k;
  return t;
}

function softCeDirect(x: Float32Array, t: Float32Array, n: number, c: number): { loss: number; grad: Float64Array } {
  let loss = 0;
  const grad = new Float64Array(n * c);
  for (let i = 0; i < n; i++) {
    const row = Array.from(x.subarray(i * c, (i + 1) * c));
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    const mass = Array.from(t.subarray(i * c, (i + 1) * c)).reduce((a, b) => a + b, 0);
    row.forEach((v, j) => {
      loss += t[i * c + j] * (lse - v);
      grad[i * c + j] = (Math.exp(v - lse) * mass - t[i * c + j]) / n;
    });
  }
  return { loss: loss / n, grad };
}

describe('softCrossEntropy', () => {
  for (const [n, c, k] of [
    [1, 1, 1],
    [5, 3, 4],
    [3, 7, 8],
  ] as const) {
    it(`[${n}, ${c}] averaged over ${k} labels: gradients vs finite differences and WebGPU vs CPU`, async () => {
      const x = { data: uniform(n * c, n + c, -2, 2), shape: [n, c], grad: true };
      const t = { data: softTargets(n, c, k, 7 * n), shape: [n, c] };
      await checkOp({ inputs: [x, t], fn: (a, b) => softCrossEntropy(a, b) });
    });
  }

  it('70 rows (two partial sums): loss and gradient equal a float64 computation on both backends', async () => {
    const [n, c] = [70, 5];
    const x = uniform(n * c, 31, -4, 4);
    const t = softTargets(n, c, 4, 32);
    const want = softCeDirect(x, t, n, c);
    // evaluate() backpropagates sum(loss * w) with w = uniform(1, 99).
    const w = uniform(1, 99)[0];
    await onEachBackend(
      {
        inputs: [
          { data: x, shape: [n, c], grad: true },
          { data: t, shape: [n, c] },
        ],
        fn: (a, b) => softCrossEntropy(a, b),
      },
      (r, be) => {
        expect(r.out[0], `${be} loss`).toBeCloseTo(want.loss, 5);
        expectClose(
          r.grads[0]!,
          Float32Array.from(want.grad, (g) => g * w),
          1e-5,
          `${be} dlogits`,
        );
      },
    );
  });

  it('with one-hot targets equals the hard-label crossEntropy', async () => {
    const [n, c] = [9, 4];
    const x = uniform(n * c, 5, -3, 3);
    const labels = Int32Array.from({ length: n }, (_, i) => (i * 3) % c);
    const onehot = new Float32Array(n * c);
    labels.forEach((y, i) => (onehot[i * c + y] = 1));
    const got: Float32Array[] = [];
    await onEachBackend(
      {
        inputs: [
          { data: x, shape: [n, c], grad: true },
          { data: onehot, shape: [n, c] },
        ],
        fn: (a, b) => softCrossEntropy(a, b),
      },
      (r) => {
        got.push(r.out, r.grads[0]!);
      },
    );
    const hard: Float32Array[] = [];
    await onEachBackend(
      {
        inputs: [
          { data: x, shape: [n, c], grad: true },
          { data: labels, shape: [n], dtype: 'i32' },
        ],
        fn: (a, b) => crossEntropy(a, b),
      },
      (r) => {
        hard.push(r.out, r.grads[0]!);
      },
    );
    expect(got.length).toBe(hard.length);
    got.forEach((g, i) => expectClose(g, hard[i], 1e-5, `soft vs hard ${i}`));
  });

  it('rejects targets of another shape with one line naming both', () => {
    const x = Tensor.from(new Float32Array(6), [2, 3]);
    const t = Tensor.from(new Float32Array(4), [2, 2]);
    expect(() => softCrossEntropy(x, t)).toThrow(ShapeError);
    expect(() => softCrossEntropy(x, t)).toThrow(/logits f32 \[2, 3\] and targets f32 \[2, 2\]/);
    x.dispose();
    t.dispose();
  });
});

describe('bceWithLogits with fractional targets', () => {
  it('gradients vs finite differences, WebGPU vs CPU, and the float64 loss', async () => {
    const [n, l] = [6, 3];
    const x = uniform(n * l, 11, -3, 3);
    // Averages of 4 binary labels: multiples of 1/4.
    const t = Float32Array.from(uniform(n * l, 12, 0, 5), (v) => Math.min(4, Math.floor(v)) / 4);
    const c = {
      inputs: [
        { data: x, shape: [n, l], grad: true },
        { data: t, shape: [n, l] },
      ],
      fn: (a: Tensor, b: Tensor) => bceWithLogits(a, b),
    };
    await checkOp(c);
    let want = 0;
    x.forEach((v, e) => (want += Math.max(v, 0) - v * t[e] + Math.log1p(Math.exp(-Math.abs(v)))));
    want /= n * l;
    await onEachBackend(c, (r, be) => expect(r.out[0], `${be} loss`).toBeCloseTo(want, 5));
  });
});
