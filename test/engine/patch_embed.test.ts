// Fused patch embedding: the one-kernel implicit-im2col forward and its weight/bias/pos gradients, checked
// against finite differences, the CPU reference, and a plain composition (explicit patchify, matmul, adds).
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backend/backend.ts';
import { ShapeError } from '../../src/errors.ts';
import { add, matmul, mul, reshape, sum } from '../../src/ops/index.ts';
import { patchEmbed } from '../../src/ops/patch_embed.ts';
import { backend, tidy, Tensor } from '../../src/tensor/tensor.ts';
import { checkOp, cpu, expectClose, gpuBackend, uniform, releaseGpu, use } from '../helpers.ts';

afterAll(releaseGpu);

const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
const inp = (shape: number[], seed: number, grad = true) => ({ data: uniform(numel(shape), seed), shape, grad });

/** Tokens and fan-in of an input shape for patch side p. */
function dims(shape: number[], p: number): { T: number; K: number } {
  const spatial = shape.slice(2);
  return { T: spatial.reduce((a, s) => a * (s / p), 1), K: shape[1] * p ** spatial.length };
}

/** Explicit patchify: [B*T, K] with rows in token order and columns in (c, pd, ph, pw) order. */
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
    for (let td = 0; td < gd; td++)
      for (let th = 0; th < gh; th++)
        for (let tw = 0; tw < gw; tw++) {
          const t = (td * gh + th) * gw + tw;
          let k = 0;
          for (let c = 0; c < C; c++)
            for (let zd = 0; zd < pd; zd++)
              for (let zh = 0; zh < p; zh++)
                for (let zw = 0; zw < p; zw++, k++) {
                  out[(b * T + t) * K + k] = x[(((b * C + c) * D + td * pd + zd) * H + th * p + zh) * W + tw * p + zw];
                }
        }
  return { data: out, shape: [B * T, K] };
}

/** Output and weight/bias/pos gradients of sum(out * probe) for the fused op or the composition. */
async function run(fused: boolean, shape: number[], p: number, e: number): Promise<Float32Array[]> {
  const { T, K } = dims(shape, p);
  const x = uniform(numel(shape), 21);
  const w = Tensor.from(uniform(K * e, 22), [K, e]);
  const bias = Tensor.from(uniform(e, 23), [e]);
  const pos = Tensor.from(uniform(T * e, 24), [T, e]);
  [w, bias, pos].forEach((t) => (t.requiresGrad = true));
  const out = tidy(() => {
    let y: Tensor;
    if (fused) {
      y = patchEmbed(Tensor.from(x, shape), w, bias, pos, p);
    } else {
      const pt = patchify(x, shape, p);
      y = add(add(reshape(matmul(Tensor.from(pt.data, pt.shape), w), [shape[0], T, e]), bias), pos);
    }
    sum(mul(y, Tensor.from(uniform(y.size, 25), y.shape))).backward();
    return y;
  });
  const res = [await out.data(), await w.grad!.data(), await bias.grad!.data(), await pos.grad!.data()];
  [out, w, bias, pos, w.grad!, bias.grad!, pos.grad!].forEach((t) => t.dispose());
  return res;
}

const cases: [string, number[], number, number][] = [
  ['2D, 1 channel', [2, 1, 8, 8], 4, 5],
  ['2D, 3 channels', [2, 3, 12, 12], 4, 7],
  ['3D, 1 channel', [2, 1, 8, 8, 8], 4, 6],
  ['2D, non-square, 2 channels', [3, 2, 4, 12], 2, 9],
  ['3D, non-cubic, 2 channels', [1, 2, 4, 2, 6], 2, 3],
  ['2D, patch 1', [1, 2, 3, 5], 1, 1],
];

describe('patchEmbed', () => {
  for (const [name, shape, p, e] of cases) {
    it(`${name} ${shape.join('x')} p${p} E${e}: gradients vs finite differences, WebGPU vs CPU`, async () => {
      const { T, K } = dims(shape, p);
      await checkOp(
        {
          inputs: [inp(shape, 10, false), inp([K, e], 11), inp([e], 12), inp([T, e], 13)],
          fn: (x, w, b, pos) => patchEmbed(x, w, b, pos, p),
        },
        { tol: 1e-4, gradTol: 2e-2 },
      );
    });
  }

  it('edge blocks: rows and columns not multiples of the 32x32 workgroup tile (CPU vs WebGPU)', async () => {
    const shape = [2, 1, 16, 20];
    const { T, K } = dims(shape, 2);
    await checkOp(
      {
        inputs: [inp(shape, 14, false), inp([K, 37], 15), inp([37], 16), inp([T, 37], 17)],
        fn: (x, w, b, pos) => patchEmbed(x, w, b, pos, 2),
      },
      { skipFd: true, tol: 1e-4 },
    );
  });

  for (const [name, shape, p, e] of cases.slice(0, 3)) {
    it(`${name}: equals patchify @ W + bias + pos, outputs and gradients, on every backend`, async () => {
      const prev = backend();
      const backends: Backend[] = [cpu];
      const g = await gpuBackend();
      if (g) backends.push(g);
      try {
        for (const b of backends) {
          use(b);
          const fused = await run(true, shape, p, e);
          const composed = await run(false, shape, p, e);
          ['output', 'dweight', 'dbias', 'dpos'].forEach((what, i) => expectClose(fused[i], composed[i], 1e-5, `${b.name} ${what}`));
        }
      } finally {
        use(prev);
      }
    });
  }

  it('gives the image no gradient even when it asks for one', async () => {
    const x = Tensor.from(uniform(64, 30), [1, 1, 8, 8]);
    x.requiresGrad = true;
    const w = Tensor.from(uniform(16 * 3, 31), [16, 3]);
    w.requiresGrad = true;
    const y = patchEmbed(x, w, Tensor.from(uniform(3, 32), [3]), Tensor.from(uniform(12, 33), [4, 3]), 4);
    sum(y).backward();
    expect(x.grad).toBeNull();
    expect(w.grad?.shape).toEqual([16, 3]);
  });

  it('errors name the op and the shapes', () => {
    const t = (shape: number[]) => Tensor.from(uniform(numel(shape), 40), shape);
    const x = t([2, 1, 9, 9]);
    expect(() => patchEmbed(x, t([16, 4]), t([4]), t([4, 4]), 4)).toThrow(ShapeError);
    expect(() => patchEmbed(x, t([16, 4]), t([4]), t([4, 4]), 4)).toThrow(/patchEmbed.*divisible.*\[2, 1, 9, 9\].*patch 4/);
    const ok = t([2, 1, 8, 8]);
    expect(() => patchEmbed(ok, t([15, 4]), t([4]), t([4, 4]), 4)).toThrow(
      /patchEmbed: weight must be \[16, E\].*\[2, 1, 8, 8\].*\[15, 4\]/,
    );
    expect(() => patchEmbed(ok, t([16, 4]), t([5]), t([4, 4]), 4)).toThrow(/patchEmbed: bias must be \[4\].*bias \[5\]/);
    expect(() => patchEmbed(ok, t([16, 4]), t([4]), t([3, 4]), 4)).toThrow(/patchEmbed: pos must be \[4, 4\].*pos \[3, 4\]/);
    expect(() => patchEmbed(t([2, 8, 8]), t([16, 4]), t([4]), t([4, 4]), 4)).toThrow(/patchEmbed.*\[2, 8, 8\]/);
    expect(() => patchEmbed(ok, t([16, 4]), t([4]), t([4, 4]), 0)).toThrow(/patchEmbed: patch must be a positive integer/);
    expect(() => patchEmbed(t([1, 1, 8, 8, 6]), t([64, 4]), t([4]), t([2, 4]), 4)).toThrow(/patchEmbed.*\[1, 1, 8, 8, 6\]/);
  });
});
