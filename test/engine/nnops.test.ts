// softmax, losses, layernorm, patch embedding and row gather: WebGPU vs CPU reference, and every
// backward rule vs finite differences.
import { afterAll, describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { gatherRows } from '../../src/ops/indexing.ts';
import { matmul } from '../../src/ops/index.ts';
import { layerNorm } from '../../src/ops/layernorm.ts';
import { bceWithLogits, crossEntropy, mseLoss } from '../../src/ops/losses.ts';
import { patchEmbed } from '../../src/ops/patch_embed.ts';
import { softmax } from '../../src/ops/softmax.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { checkOp, randn, releaseGpu } from '../helpers.ts';

afterAll(releaseGpu);

const inp = (shape: number[], seed: number, grad = true, lo = -1, hi = 1) => ({ data: randn(shape.reduce((a, b) => a * b, 1), seed, lo, hi), shape, grad });
const ints = (values: number[]) => ({ data: Int32Array.from(values), shape: [values.length], dtype: 'i32' as const });

describe('softmax', () => {
  for (const shape of [[1, 1], [3, 7], [2, 5, 33]]) {
    it(`rows of ${shape.join('x')}`, async () => {
      await checkOp({ inputs: [inp(shape, 1, true, -3, 3)], fn: (x) => softmax(x) });
    });
  }
  it('is stable for logits of ±80', async () => {
    const x = Tensor.from([80, -80, 79, 0], [1, 4]);
    const y = await softmax(x).data();
    expect(y.every(Number.isFinite)).toBe(true);
    expect(y[0] + y[2]).toBeCloseTo(1, 5);
  });
});

describe('losses', () => {
  it('cross-entropy matches a direct computation and its gradient', async () => {
    await checkOp({ inputs: [inp([5, 3], 2, true, -2, 2), ints([0, 2, 1, 1, 0])], fn: (x, y) => crossEntropy(x, y) });
    await checkOp({ inputs: [inp([1, 1], 3), ints([0])], fn: (x, y) => crossEntropy(x, y) });
    const logits = [1, 2, 0.5, -1, 0, 3];
    const l = await crossEntropy(Tensor.from(logits, [2, 3]), Tensor.from([1, 2], [2], 'i32')).item();
    const lse = (a: number[]) => Math.log(a.reduce((s, v) => s + Math.exp(v), 0));
    expect(l).toBeCloseTo((lse(logits.slice(0, 3)) - 2 + lse(logits.slice(3)) - 3) / 2, 5);
  });
  it('cross-entropy stays finite for logits of ±80', async () => {
    const x = Tensor.from([80, -80, 0, -80, 80, 0], [2, 3]);
    x.requiresGrad = true;
    const l = crossEntropy(x, Tensor.from([1, 0], [2], 'i32'));
    l.backward();
    expect(await l.item()).toBeCloseTo(160, 3);
    expect((await x.grad!.data()).every(Number.isFinite)).toBe(true);
  });
  it('sigmoid BCE with logits matches a direct computation and its gradient', async () => {
    const targets = { data: Float32Array.from([1, 0, 1, 1, 0, 0, 1]), shape: [7, 1] };
    await checkOp({ inputs: [inp([7, 1], 4, true, -3, 3), targets], fn: (x, t) => bceWithLogits(x, t) });
    const l = await bceWithLogits(Tensor.from([2, -1], [2, 1]), Tensor.from([1, 1], [2, 1])).item();
    expect(l).toBeCloseTo((Math.log(1 + Math.exp(-2)) + Math.log(1 + Math.exp(1))) / 2, 5);
    const big = await bceWithLogits(Tensor.from([80, -80], [2, 1]), Tensor.from([0, 1], [2, 1])).item();
    expect(big).toBeCloseTo(80, 3);
  });
  it('MSE has gradients to both inputs', async () => {
    await checkOp({ inputs: [inp([3, 4], 5), inp([3, 4], 6)], fn: (a, b) => mseLoss(a, b) });
  });
  it('errors name the loss and the shapes', () => {
    expect(() => crossEntropy(Tensor.from(randn(6, 1), [2, 3]), Tensor.from([0, 1, 2], [3], 'i32'))).toThrow(/crossEntropy.*\[2, 3\].*\[3\]/);
    expect(() => bceWithLogits(Tensor.from(randn(6, 1), [2, 3]), Tensor.from(randn(4, 1), [2, 2]))).toThrow(ShapeError);
  });
});

describe('layernorm', () => {
  for (const shape of [[1, 1], [3, 7], [2, 5, 33]]) {
    it(`over the last dim of ${shape.join('x')}`, async () => {
      const d = shape.at(-1)!;
      await checkOp({ inputs: [inp(shape, 7, true, -2, 2), inp([d], 8, true, 0.5, 1.5), inp([d], 9)], fn: (x, g, b) => layerNorm(x, g, b) }, { gradTol: 3e-2 });
    });
  }
  it('rejects mismatched gamma', () => {
    expect(() => layerNorm(Tensor.from(randn(6, 1), [2, 3]), Tensor.from(randn(2, 1), [2]), Tensor.from(randn(3, 1), [3]))).toThrow(/layerNorm.*\[2, 3\].*\[2\]/);
  });
});

/** Explicit patchify (the plain composition the fused kernel must equal). */
function patchify(x: Float32Array, shape: number[], p: number): { data: Float32Array; shape: number[] } {
  const is3d = shape.length === 5;
  const [B, C] = shape;
  const [D, H, W] = is3d ? shape.slice(2) : [1, ...shape.slice(2)];
  const pd = is3d ? p : 1;
  const [gd, gh, gw] = [D / pd, H / p, W / p];
  const T = gd * gh * gw;
  const K = C * pd * p * p;
  const out = new Float32Array(B * T * K);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let k = 0; k < K; k++) {
        const c = Math.floor(k / (pd * p * p));
        const r = k % (pd * p * p);
        const [zd, zh, zw] = [Math.floor(r / (p * p)), Math.floor(r / p) % p, r % p];
        const [td, th, tw] = [Math.floor(t / (gh * gw)), Math.floor(t / gw) % gh, t % gw];
        out[(b * T + t) * K + k] = x[(((b * C + c) * D + td * pd + zd) * H + th * p + zh) * W + tw * p + zw];
      }
  return { data: out, shape: [B * T, K] };
}

describe('patch embedding', () => {
  const cases: [string, number[], number, number][] = [
    ['2D 1ch', [2, 1, 8, 8], 4, 5],
    ['2D 3ch', [1, 3, 12, 12], 4, 7],
    ['3D', [2, 1, 8, 8, 8], 4, 6],
  ];
  for (const [name, shape, p, e] of cases) {
    it(`${name}: fused kernel equals patchify @ W + bias + pos, with gradients`, async () => {
      const spatial = shape.slice(2);
      const T = spatial.reduce((a, s) => a * (s / p), 1);
      const K = shape[1] * p ** spatial.length;
      const x = inp(shape, 10, false);
      await checkOp({ inputs: [x, inp([K, e], 11), inp([e], 12), inp([T, e], 13)], fn: (xx, w, b, pos) => patchEmbed(xx, w, b, pos, p) }, { gradTol: 3e-2 });
      const w = randn(K * e, 11);
      const bias = randn(e, 12);
      const pos = randn(T * e, 13);
      const fused = await patchEmbed(Tensor.from(x.data, shape), Tensor.from(w, [K, e]), Tensor.from(bias, [e]), Tensor.from(pos, [T, e]), p).data();
      const pt = patchify(x.data, shape, p);
      const mm = await matmul(Tensor.from(pt.data, pt.shape), Tensor.from(w, [K, e])).data();
      for (let i = 0; i < mm.length; i++) {
        const t = Math.floor(i / e) % T;
        mm[i] += bias[i % e] + pos[t * e + (i % e)];
      }
      for (let i = 0; i < mm.length; i++) expect(fused[i]).toBeCloseTo(mm[i], 4);
    });
  }
  it('rejects sizes that do not divide into patches', () => {
    const x = Tensor.from(randn(2 * 9 * 9, 1), [2, 1, 9, 9]);
    expect(() => patchEmbed(x, Tensor.from(randn(16 * 4, 1), [16, 4]), Tensor.from(randn(4, 1), [4]), Tensor.from(randn(16, 1), [4, 4]), 4)).toThrow(/patchEmbed.*\[2, 1, 9, 9\]/);
  });
});

describe('gatherRows', () => {
  it('looks up rows and sums gradients of repeated indices', async () => {
    await checkOp({ inputs: [inp([4, 3], 14), ints([2, 0, 2, 3, 2])], fn: (t, i) => gatherRows(t, i) });
    await checkOp({ inputs: [inp([1, 1], 15), ints([0])], fn: (t, i) => gatherRows(t, i) });
  });
  it('rejects a float index', () => {
    expect(() => gatherRows(Tensor.from(randn(4, 1), [2, 2]), Tensor.from([0, 1], [2]))).toThrow(/gatherRows/);
  });
});
