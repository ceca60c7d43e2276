// Fused losses (crossEntropy, bceWithLogits, mseLoss): backward rules vs finite differences, WebGPU vs
// the CPU reference, loss values and gradients vs a direct float64 computation, stability for logits
// of ±80, label clamping, multi-workgroup reductions, and shape errors.
import { afterAll, describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { bceWithLogits, crossEntropy, mseLoss } from '../../src/ops/losses.ts';
import { backend, Tensor } from '../../src/tensor/tensor.ts';
import { checkOp, cpu, expectClose, gpuBackend, uniform, releaseGpu, use, onEachBackend } from '../helpers.ts';

afterAll(releaseGpu);

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const inp = (shape: number[], seed: number, grad = true, lo = -2, hi = 2) => ({ data: uniform(numel(shape), seed, lo, hi), shape, grad });
const ints = (values: number[]) => ({ data: Int32Array.from(values), shape: [values.length], dtype: 'i32' as const });
const labelsFor = (n: number, c: number, seed: number) => Array.from(uniform(n, seed, 0, c), (v) => Math.min(c - 1, Math.floor(v)));
const bits = (n: number, seed: number) => Float32Array.from(uniform(n, seed, 0, 1), (v) => (v < 0.5 ? 0 : 1));

/** Loss alone (no gradient) on each backend. */
async function lossOnEach(fn: () => Tensor): Promise<number[]> {
  const prev = backend();
  const out: number[] = [];
  try {
    for (const be of [cpu, await gpuBackend()]) {
      if (!be) continue;
      use(be);
      const l = fn();
      expect(l.shape).toEqual([]);
      out.push(await l.item());
    }
  } finally {
    use(prev);
  }
  return out;
}

/** float64 cross-entropy of logits [n, c] and its gradient for an upstream gradient of 1. */
function ceDirect(x: Float32Array, labels: number[], c: number): { loss: number; grad: Float32Array } {
  const n = labels.length;
  let loss = 0;
  const grad = new Float32Array(x.length);
  for (let i = 0; i < n; i++) {
    const row = Array.from(x.subarray(i * c, i * c + c));
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    loss += lse - row[labels[i]];
    row.forEach((v, j) => (grad[i * c + j] = (Math.exp(v - lse) - (j === labels[i] ? 1 : 0)) / n));
  }
  return { loss: loss / n, grad };
}

const bceTerm = (x: number, t: number) => Math.max(x, 0) - x * t + Math.log1p(Math.exp(-Math.abs(x)));

describe('crossEntropy', () => {
  // [70, 4]: 70 rows span two workgroups, so the loss goes through two partial sums.
  const cases: [number, number][] = [
    [1, 1],
    [5, 3],
    [3, 7],
    [70, 4],
  ];
  for (const [n, c] of cases) {
    it(`[${n}, ${c}]: gradients vs finite differences (2e-2) and WebGPU vs CPU (1e-4)`, async () => {
      await checkOp({ inputs: [inp([n, c], n + c), ints(labelsFor(n, c, n))], fn: (x, y) => crossEntropy(x, y) }, { skipFd: n * c > 100 });
    });
  }

  it('loss and gradient equal a direct float64 computation on both backends', async () => {
    const x = inp([70, 5], 31, true, -4, 4);
    const labels = labelsFor(70, 5, 32);
    const want = ceDirect(x.data, labels, 5);
    // evaluate() backpropagates sum(loss * w): scale the expected gradient by that w.
    const w = (await lossOnEach(() => Tensor.from(uniform(1, 99), [])))[0];
    await onEachBackend({ inputs: [x, ints(labels)], fn: (t, y) => crossEntropy(t, y) }, (r, be) => {
      expect(r.out[0], `${be} loss`).toBeCloseTo(want.loss, 5);
      expectClose(
        r.grads[0]!,
        want.grad.map((g) => g * w),
        1e-6,
        `${be} dlogits`,
      );
    });
    const small = [1, 2, 0.5, -1, 0, 3];
    for (const l of await lossOnEach(() => crossEntropy(Tensor.from(small, [2, 3]), Tensor.from([1, 2], [2], 'i32')))) {
      expect(l).toBeCloseTo(ceDirect(Float32Array.from(small), [1, 2], 3).loss, 6);
    }
  });

  it('stays finite and exact for logits of ±80', async () => {
    const data = Float32Array.from([80, -80, 0, -80, 80, 0, 80, 80, -80]);
    const labels = [1, 0, 2];
    const want = ceDirect(data, labels, 3);
    await onEachBackend({ inputs: [{ data, shape: [3, 3], grad: true }, ints(labels)], fn: (t, y) => crossEntropy(t, y) }, (r, be) => {
      expect(Number.isFinite(r.out[0]), `${be} loss finite`).toBe(true);
      expect(r.out[0] / want.loss, `${be} loss vs ${want.loss}`).toBeCloseTo(1, 5);
      expect(r.grads[0]!.every(Number.isFinite), `${be} gradient finite`).toBe(true);
    });
  });

  it('clamps out-of-range labels into [0, C) without reading out of bounds', async () => {
    const x = uniform(12, 41);
    const wild = await lossOnEach(() => crossEntropy(Tensor.from(x, [4, 3]), Tensor.from([5, -1, 1, 1 << 30], [4], 'i32')));
    const clamped = await lossOnEach(() => crossEntropy(Tensor.from(x, [4, 3]), Tensor.from([2, 0, 1, 2], [4], 'i32')));
    expect(wild).toEqual(clamped);
    expect(clamped[0]).toBeCloseTo(ceDirect(x, [2, 0, 1, 2], 3).loss, 5);
  });

  it('names the op and both shapes in its errors', () => {
    const logits = Tensor.from(uniform(6, 1), [2, 3]);
    expect(() => crossEntropy(logits, Tensor.from([0, 1, 2], [3], 'i32'))).toThrow(/crossEntropy: .*f32 \[2, 3\].*i32 \[3\]/);
    expect(() => crossEntropy(logits, Tensor.from([0, 1], [2]))).toThrow(/crossEntropy: .*labels f32 \[2\]/);
    expect(() => crossEntropy(Tensor.from(uniform(6, 1), [6]), Tensor.from([0], [1], 'i32'))).toThrow(/crossEntropy: .*\[6\]/);
    expect(() => crossEntropy(Tensor.empty([0, 3]), Tensor.empty([0], 'i32'))).toThrow(ShapeError);
  });
});

describe('bceWithLogits', () => {
  // [9, 14]: 126 elements, two workgroups of partial sums.
  for (const shape of [
    [1, 1],
    [7, 1],
    [3, 5],
    [9, 14],
  ]) {
    it(`${shape.join('x')}: gradients vs finite differences (2e-2) and WebGPU vs CPU (1e-4)`, async () => {
      const n = numel(shape);
      await checkOp(
        { inputs: [inp(shape, n, true, -4, 4), { data: bits(n, n + 1), shape }], fn: (x, t) => bceWithLogits(x, t) },
        { skipFd: n > 100 },
      );
    });
  }

  it('loss and gradient equal a direct float64 computation, soft targets included', async () => {
    const x = inp([9, 14], 51, true, -5, 5);
    const t = { data: uniform(126, 52, 0, 1), shape: [9, 14] };
    const w = (await lossOnEach(() => Tensor.from(uniform(1, 99), [])))[0];
    let want = 0;
    const grad = new Float32Array(126);
    for (let e = 0; e < 126; e++) {
      want += bceTerm(x.data[e], t.data[e]) / 126;
      grad[e] = ((1 / (1 + Math.exp(-x.data[e])) - t.data[e]) / 126) * w;
    }
    await onEachBackend({ inputs: [x, t], fn: (a, b) => bceWithLogits(a, b) }, (r, be) => {
      expect(r.out[0], `${be} loss`).toBeCloseTo(want, 5);
      expectClose(r.grads[0]!, grad, 1e-6, `${be} dlogits`);
    });
  });

  it('stays finite and exact for logits of ±80', async () => {
    const data = Float32Array.from([80, -80, 80, -80]);
    const targets = Float32Array.from([0, 1, 1, 0]);
    await onEachBackend(
      {
        inputs: [
          { data, shape: [2, 2], grad: true },
          { data: targets, shape: [2, 2] },
        ],
        fn: (a, b) => bceWithLogits(a, b),
      },
      (r, be) => {
        expect(r.out[0], `${be} loss`).toBeCloseTo(40, 4);
        expect(r.grads[0]!.every(Number.isFinite), `${be} gradient finite`).toBe(true);
      },
    );
  });

  it('names the op and both shapes in its errors', () => {
    expect(() => bceWithLogits(Tensor.from(uniform(6, 1), [2, 3]), Tensor.from(uniform(6, 1), [3, 2]))).toThrow(
      /bceWithLogits: .*\[2, 3\].*\[3, 2\]/,
    );
    expect(() => bceWithLogits(Tensor.from(uniform(2, 1), [2, 1]), Tensor.from([1, 0], [2, 1], 'i32'))).toThrow(
      /bceWithLogits: .*i32 \[2, 1\]/,
    );
    expect(() => bceWithLogits(Tensor.empty([0, 2]), Tensor.empty([0, 2]))).toThrow(ShapeError);
  });
});

describe('mseLoss', () => {
  const grads: [boolean, boolean][] = [
    [true, true],
    [true, false],
    [false, true],
  ];
  for (const [gp, gt] of grads) {
    it(`gradients to ${gp && gt ? 'both inputs' : gp ? 'pred only' : 'target only'} vs finite differences and WebGPU`, async () => {
      await checkOp({ inputs: [inp([3, 5], 61, gp), inp([3, 5], 62, gt)], fn: (p, t) => mseLoss(p, t) });
    });
  }
  it('[1, 1] and a 7000-element loss that needs 110 partial sums', async () => {
    await checkOp({ inputs: [inp([1, 1], 63), inp([1, 1], 64)], fn: (p, t) => mseLoss(p, t) });
    await checkOp({ inputs: [inp([100, 70], 65), inp([100, 70], 66)], fn: (p, t) => mseLoss(p, t) }, { skipFd: true });
  });

  it('loss and gradients equal a direct float64 computation', async () => {
    const p = inp([100, 70], 67);
    const t = inp([100, 70], 68);
    const n = 7000;
    const w = (await lossOnEach(() => Tensor.from(uniform(1, 99), [])))[0];
    let want = 0;
    for (let e = 0; e < n; e++) want += (p.data[e] - t.data[e]) ** 2 / n;
    const dp = p.data.map((v, e) => ((2 * (v - t.data[e])) / n) * w);
    await onEachBackend({ inputs: [p, t], fn: (a, b) => mseLoss(a, b) }, (r, be) => {
      expect(r.out[0] / want, `${be} loss`).toBeCloseTo(1, 5);
      expectClose(r.grads[0]!, dp, 1e-6, `${be} dpred`);
      expectClose(
        r.grads[1]!,
        dp.map((v) => -v),
        1e-6,
        `${be} dtarget`,
      );
    });
  });

  it('names the op and both shapes in its errors', () => {
    expect(() => mseLoss(Tensor.from(uniform(6, 1), [2, 3]), Tensor.from(uniform(6, 1), [6]))).toThrow(/mseLoss: .*\[2, 3\].*\[6\]/);
    expect(() => mseLoss(Tensor.from(uniform(4, 1), [2, 2]), Tensor.from(uniform(3, 1), [3]))).toThrow(ShapeError);
  });
});
