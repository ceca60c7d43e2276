import { afterAll, describe, expect, it } from 'vitest';
import { attention } from '../../src/ops/index.ts';
import { ShapeError } from '../../src/errors.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { checkOp, expectClose, uniform, releaseGpu, type Case, onEachBackend } from '../helpers.ts';

afterAll(releaseGpu);

const inp = (shape: number[], seed: number, grad = true, scale = 1) => {
  const data = uniform(
    shape.reduce((a, b) => a * b, 1),
    seed,
  );
  if (scale !== 1) data.forEach((x, i) => (data[i] = x * scale));
  return { data, shape, grad };
};

interface Dims {
  B: number;
  LQ: number;
  LK: number;
  H: number;
  DH: number;
}

const qkv = ({ B, LQ, LK, H, DH }: Dims, seed = 1, grads: [boolean, boolean, boolean] = [true, true, true]) => [
  inp([B, LQ, H * DH], seed, grads[0]),
  inp([B, LK, H * DH], seed + 1, grads[1]),
  inp([B, LK, H * DH], seed + 2, grads[2]),
];

const attn = (H: number) => (q: Tensor, k: Tensor, v: Tensor) => attention(q, k, v, H);

/** The unfused composition in float64: scores = q kᵀ / sqrt(Dh), softmax over keys, times v. */
function plainAttention(q: Float32Array, k: Float32Array, v: Float32Array, { B, LQ, LK, H, DH }: Dims): Float64Array {
  const HD = H * DH;
  const out = new Float64Array(B * LQ * HD);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const scores: number[][] = [];
      for (let i = 0; i < LQ; i++) {
        scores.push([]);
        for (let j = 0; j < LK; j++) {
          let s = 0;
          for (let d = 0; d < DH; d++) s += q[(b * LQ + i) * HD + h * DH + d] * k[(b * LK + j) * HD + h * DH + d];
          scores[i].push(s / Math.sqrt(DH));
        }
      }
      for (let i = 0; i < LQ; i++) {
        const mx = Math.max(...scores[i]);
        const e = scores[i].map((s) => Math.exp(s - mx));
        const z = e.reduce((a, x) => a + x, 0);
        for (let d = 0; d < DH; d++) {
          let o = 0;
          for (let j = 0; j < LK; j++) o += (e[j] / z) * v[(b * LK + j) * HD + h * DH + d];
          out[(b * LQ + i) * HD + h * DH + d] = o;
        }
      }
    }
  }
  return out;
}

describe('attention kernel', () => {
  it('self-attention, odd sizes (B=2, L=5, H=2, Dh=3): forward, finite-difference and webgpu gradients', async () => {
    const dims = { B: 2, LQ: 5, LK: 5, H: 2, DH: 3 };
    await checkOp({ inputs: qkv(dims, 1), fn: attn(2) });
  });

  it('cross-attention, odd sizes (B=2, Lq=5, Lk=7, H=2, Dh=3): forward, finite-difference and webgpu gradients', async () => {
    const dims = { B: 2, LQ: 5, LK: 7, H: 2, DH: 3 };
    await checkOp({ inputs: qkv(dims, 4), fn: attn(2) });
  });

  it('one query, one key (B=1, Lq=1, Lk=1): output is v, q and k get zero gradient', async () => {
    const dims = { B: 1, LQ: 1, LK: 1, H: 2, DH: 3 };
    await checkOp({ inputs: qkv(dims, 7), fn: attn(2) });
    const c: Case = { inputs: qkv(dims, 7), fn: attn(2) };
    await onEachBackend(c, (r, name) => {
      expectClose(r.out, c.inputs[2].data as Float32Array, 1e-6, `${name}: output equals v`);
      expect(Math.max(...r.grads[0]!.map(Math.abs)), `${name}: dq`).toBeLessThan(1e-6);
      expect(Math.max(...r.grads[1]!.map(Math.abs)), `${name}: dk`).toBeLessThan(1e-6);
    });
  });

  it('larger odd sizes (B=2, H=4, Dh=16, Lq=33, Lk=49) match the reference (no finite differences)', async () => {
    const dims = { B: 2, LQ: 33, LK: 49, H: 4, DH: 16 };
    await checkOp({ inputs: qkv(dims, 10), fn: attn(4) }, { skipFd: true, tol: 1e-4 });
    // Also longer than one workgroup (64 rows) on both axes.
    await checkOp({ inputs: qkv({ B: 1, LQ: 70, LK: 67, H: 2, DH: 8 }, 13), fn: attn(2) }, { skipFd: true, tol: 1e-4 });
  });

  it('the widest head (Dh=128, over two workgroups) and Medformer head widths 32 and 64', async () => {
    await checkOp({ inputs: qkv({ B: 1, LQ: 70, LK: 67, H: 1, DH: 128 }, 16), fn: attn(1) }, { skipFd: true });
    await checkOp({ inputs: qkv({ B: 2, LQ: 9, LK: 6, H: 2, DH: 32 }, 19), fn: attn(2) }, { skipFd: true });
    await checkOp({ inputs: qkv({ B: 1, LQ: 4, LK: 11, H: 1, DH: 64 }, 22), fn: attn(1) }, { skipFd: true });
  });

  it('no queries: an empty output, zero gradients for k and v', async () => {
    let shape: readonly number[] = [];
    const fn = (q: Tensor, k: Tensor, v: Tensor) => {
      const out = attention(q, k, v, 1);
      shape = out.shape;
      return out;
    };
    await onEachBackend({ inputs: qkv({ B: 2, LQ: 0, LK: 3, H: 1, DH: 4 }, 40, [false, true, true]), fn }, (r, name) => {
      expect(shape, `${name}: output shape`).toEqual([2, 0, 4]);
      expect(
        r.grads[1]!.every((x) => x === 0),
        `${name}: dk`,
      ).toBe(true);
      expect(
        r.grads[2]!.every((x) => x === 0),
        `${name}: dv`,
      ).toBe(true);
    });
  });

  it('gradients for a subset of inputs, and none at all', async () => {
    const dims = { B: 2, LQ: 3, LK: 4, H: 2, DH: 2 };
    await checkOp({ inputs: qkv(dims, 25, [true, false, false]), fn: attn(2) });
    await checkOp({ inputs: qkv(dims, 25, [false, true, false]), fn: attn(2) });
    await checkOp({ inputs: qkv(dims, 25, [false, false, true]), fn: attn(2) });
    await checkOp({ inputs: qkv(dims, 25, [false, false, false]), fn: attn(2) });
  });

  it('one tensor as q, k and v accumulates all three gradients', async () => {
    await checkOp({ inputs: [inp([2, 4, 6], 28)], fn: (x) => attention(x, x, x, 3) });
  });

  it('equals the plain composition matmul -> softmax -> matmul (float64, in TS)', async () => {
    for (const dims of [
      { B: 2, LQ: 5, LK: 7, H: 2, DH: 3 },
      { B: 1, LQ: 33, LK: 49, H: 4, DH: 16 },
    ]) {
      const c: Case = { inputs: qkv(dims, 31, [false, false, false]), fn: attn(dims.H) };
      const [q, k, v] = c.inputs.map((i) => i.data as Float32Array);
      const want = Float32Array.from(plainAttention(q, k, v, dims));
      await onEachBackend(c, (r, name) => expectClose(r.out, want, 2e-6, `${name} vs composition`));
    }
  });

  it('stays finite with scores of ±60 and beyond (max-subtracted online softmax)', async () => {
    const dims = { B: 2, LQ: 5, LK: 7, H: 2, DH: 4 };
    // Inputs in [-8, 8): q.k/sqrt(4) reaches about ±60 on aligned rows; [-30, 30) reaches the hundreds.
    for (const amp of [8, 30]) {
      const inputs = [inp([2, 5, 8], 34, true, amp), inp([2, 7, 8], 35, true, amp), inp([2, 7, 8], 36)];
      const c: Case = { inputs, fn: attn(2) };
      const [q, k, v] = inputs.map((i) => i.data);
      const want = Float32Array.from(plainAttention(q, k, v, dims));
      let maxScore = 0;
      for (let b = 0; b < 2; b++)
        for (let h = 0; h < 2; h++)
          for (let i = 0; i < 5; i++)
            for (let j = 0; j < 7; j++) {
              let s = 0;
              for (let d = 0; d < 4; d++) s += q[(b * 5 + i) * 8 + h * 4 + d] * k[(b * 7 + j) * 8 + h * 4 + d];
              maxScore = Math.max(maxScore, Math.abs(s / 2));
            }
      expect(maxScore).toBeGreaterThan(amp === 8 ? 40 : 300);
      await onEachBackend(c, (r, name) => {
        expect(r.out.every(Number.isFinite), `${name}: finite output`).toBe(true);
        r.grads.forEach((g, i) => expect(g!.every(Number.isFinite), `${name}: finite grad ${i}`).toBe(true));
        expectClose(r.out, want, 1e-4, `${name} vs composition`);
      });
      await checkOp(c, { skipFd: true, tol: 1e-3 });
    }
  });

  it('names the op and the shapes on bad inputs', () => {
    const t = (shape: number[]) =>
      Tensor.from(
        uniform(
          shape.reduce((a, b) => a * b, 1),
          1,
        ),
        shape,
      );
    const q = t([2, 5, 6]);
    const k = t([2, 7, 6]);
    const v = t([2, 7, 6]);
    expect(() => attention(q, t([2, 7, 8]), v, 2)).toThrow(ShapeError);
    expect(() => attention(q, t([2, 7, 8]), v, 2)).toThrow(/attention: widths differ: q \[2, 5, 6\], k \[2, 7, 8\], v \[2, 7, 6\]/);
    expect(() => attention(q, k, t([2, 6, 6]), 2)).toThrow(/attention: k and v lengths differ.*v \[2, 6, 6\]/);
    expect(() => attention(q, t([3, 7, 6]), t([3, 7, 6]), 2)).toThrow(/attention: batch sizes differ.*k \[3, 7, 6\]/);
    expect(() => attention(q, k, v, 4)).toThrow(/attention: width is not a multiple of numHeads: q \[2, 5, 6\].*numHeads 4/);
    expect(() => attention(t([10, 6]), k, v, 2)).toThrow(/attention: need \[batch, length, heads\*headDim\].*q \[10, 6\]/);
    expect(() => attention(t([1, 2, 258]), t([1, 2, 258]), t([1, 2, 258]), 2)).toThrow(/attention: head width 129 exceeds 128/);
  });
});
