// conv2d / conv3d: WebGPU vs the CPU reference, every gradient vs finite differences, conv2d vs an
// explicit im2col + matmul, the layers' parameters, and shape errors.
import { afterAll, describe, expect, it } from 'vitest';
import { ShapeError } from '../../src/errors.ts';
import { conv2d, conv3d, matmul } from '../../src/ops/index.ts';
import { Conv2d, Conv3d, GroupNorm } from '../../src/nn/conv_layers.ts';
import { ParameterStore } from '../../src/nn/parameters.ts';
import { Tensor, tidy } from '../../src/tensor/tensor.ts';
import { checkOp, cpu, expectClose, gpuBackend, uniform, releaseGpu, use } from '../helpers.ts';

afterAll(releaseGpu);

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const inp = (shape: number[], seed: number, grad = true) => ({ data: uniform(numel(shape), seed), shape, grad });

describe('conv2d', () => {
  // B=2, Cin=3, Cout=4 on a 7x5 image with a 3x3 kernel: every stride/padding combination.
  for (const stride of [1, 2]) {
    for (const padding of [0, 1]) {
      it(`7x5, k=3, stride ${stride}, padding ${padding}: outputs and dx, dw, dbias`, async () => {
        await checkOp({
          inputs: [inp([2, 3, 7, 5], 1), inp([4, 3, 3, 3], 2), inp([4], 3)],
          fn: (x, w, b) => conv2d(x, w, b, { stride, padding }),
        });
      });
    }
  }

  it('odd channel counts (not multiples of the 4-channel block), 9 columns, no bias', async () => {
    await checkOp({ inputs: [inp([1, 5, 6, 9], 4), inp([5, 5, 3, 3], 5)], fn: (x, w) => conv2d(x, w, null, { padding: 1 }) });
  });

  it('1x1 kernels and 1-element dims', async () => {
    await checkOp({ inputs: [inp([1, 1, 1, 1], 6), inp([1, 1, 1, 1], 7), inp([1], 8)], fn: (x, w, b) => conv2d(x, w, b) });
    await checkOp({
      inputs: [inp([2, 3, 1, 1], 9), inp([2, 3, 3, 3], 10), inp([2], 11)],
      fn: (x, w, b) => conv2d(x, w, b, { padding: 1 }),
    });
    await checkOp({
      inputs: [inp([2, 3, 4, 5], 12), inp([6, 3, 1, 1], 13), inp([6], 14)],
      fn: (x, w, b) => conv2d(x, w, b, { stride: 2 }),
    });
  });

  it('larger shapes match the reference: 16-column runs, uneven dW row chunks, strided gather', async () => {
    // 21 output columns: forward and the stride-1 dX run 16-column blocks plus a ragged one.
    await checkOp(
      { inputs: [inp([2, 5, 9, 21], 15), inp([6, 5, 3, 3], 16), inp([6], 17)], fn: (x, w, b) => conv2d(x, w, b, { padding: 1 }) },
      { skipFd: true },
    );
    // 21 output rows in dW chunks of 4 (the last holds 1); stride 2 takes the gathering dX kernel.
    await checkOp(
      { inputs: [inp([7, 44, 3, 5], 18), inp([44, 44, 3, 3], 19), inp([44], 20)], fn: (x, w, b) => conv2d(x, w, b, { padding: 1 }) },
      { skipFd: true },
    );
    await checkOp(
      {
        inputs: [inp([3, 6, 13, 11], 21), inp([9, 6, 3, 3], 22), inp([9], 23)],
        fn: (x, w, b) => conv2d(x, w, b, { stride: 2, padding: 1 }),
      },
      { skipFd: true },
    );
  });

  it('padding at least the kernel size (stride-1 dX falls back to the gather kernel)', async () => {
    await checkOp({
      inputs: [inp([1, 2, 3, 4], 24), inp([3, 2, 1, 1], 25), inp([3], 26)],
      fn: (x, w, b) => conv2d(x, w, b, { padding: 1 }),
    });
    await checkOp({ inputs: [inp([1, 2, 3, 4], 27), inp([3, 2, 3, 3], 28)], fn: (x, w) => conv2d(x, w, null, { padding: 3 }) });
  });

  it('equals an explicit im2col + matmul', async () => {
    const [B, CI, H, W, CO, K] = [2, 3, 7, 5, 4, 3];
    const xd = uniform(B * CI * H * W, 31);
    const wd = uniform(CO * CI * K * K, 32);
    for (const [stride, padding] of [
      [1, 0],
      [1, 1],
      [2, 0],
      [2, 1],
    ]) {
      const OH = Math.floor((H + 2 * padding - K) / stride) + 1;
      const OW = Math.floor((W + 2 * padding - K) / stride) + 1;
      // cols [CI*K*K, B*OH*OW]: column (b, oh, ow) holds the zero-padded window under output (oh, ow).
      const cols = new Float32Array(CI * K * K * B * OH * OW);
      const n = B * OH * OW;
      for (let ci = 0; ci < CI; ci++)
        for (let kh = 0; kh < K; kh++)
          for (let kw = 0; kw < K; kw++)
            for (let b = 0; b < B; b++)
              for (let oh = 0; oh < OH; oh++)
                for (let ow = 0; ow < OW; ow++) {
                  const ih = oh * stride + kh - padding;
                  const iw = ow * stride + kw - padding;
                  const inside = ih >= 0 && ih < H && iw >= 0 && iw < W;
                  cols[((ci * K + kh) * K + kw) * n + (b * OH + oh) * OW + ow] = inside ? xd[((b * CI + ci) * H + ih) * W + iw] : 0;
                }
      for (const be of [cpu, await gpuBackend()]) {
        if (!be) continue;
        use(be);
        const outs = tidy(() => [
          conv2d(Tensor.from(xd, [B, CI, H, W]), Tensor.from(wd, [CO, CI, K, K]), null, { stride, padding }),
          matmul(Tensor.from(wd, [CO, CI * K * K]), Tensor.from(cols, [CI * K * K, n])),
        ]);
        const [got, want] = await Promise.all(outs.map((t) => t.data()));
        outs.forEach((t) => t.dispose());
        // conv is [B, CO, OH, OW]; the product is [CO, B, OH, OW].
        const perm = new Float32Array(want.length);
        for (let co = 0; co < CO; co++)
          for (let b = 0; b < B; b++)
            for (let p = 0; p < OH * OW; p++) perm[(b * CO + co) * OH * OW + p] = want[(co * B + b) * OH * OW + p];
        expectClose(got, perm, 1e-5, `${be.name} conv2d vs im2col, stride ${stride} padding ${padding}`);
      }
      use(cpu);
    }
  });

  it('names the op and the shapes on bad input', () => {
    const x = Tensor.from(uniform(2 * 3 * 7 * 5, 1), [2, 3, 7, 5]);
    expect(() => conv2d(x, Tensor.from(uniform(4 * 2 * 9, 1), [4, 2, 3, 3]))).toThrow(ShapeError);
    expect(() => conv2d(x, Tensor.from(uniform(4 * 2 * 9, 1), [4, 2, 3, 3]))).toThrow(/conv2d.*\[2, 3, 7, 5\].*\[4, 2, 3, 3\]/);
    expect(() => conv2d(x, Tensor.from(uniform(4 * 3 * 6, 1), [4, 3, 3, 2]))).toThrow(/conv2d.*square/);
    expect(() => conv2d(x, Tensor.from(uniform(4 * 3 * 9, 1), [4, 3, 3, 3]), Tensor.from(uniform(3, 1), [3]))).toThrow(
      /conv2d: bias \[3\]/,
    );
    expect(() => conv2d(x, Tensor.from(uniform(4 * 3 * 64, 1), [4, 3, 8, 8]))).toThrow(/conv2d.*no output/);
    expect(() => conv2d(x, Tensor.from(uniform(4 * 3 * 9, 1), [4, 3, 3, 3]), null, { stride: 0 })).toThrow(/conv2d: stride 0/);
    expect(() => conv3d(x, Tensor.from(uniform(4 * 3 * 9, 1), [4, 3, 3, 3]))).toThrow(/conv3d.*\[2, 3, 7, 5\]/);
  });
});

describe('conv3d', () => {
  for (const [stride, padding] of [
    [1, 0],
    [1, 1],
    [2, 0],
    [2, 1],
  ]) {
    it(`5x4x6, k=3, stride ${stride}, padding ${padding}: outputs and dx, dw, dbias`, async () => {
      await checkOp({
        inputs: [inp([1, 2, 5, 4, 6], 23), inp([3, 2, 3, 3, 3], 24), inp([3], 25)],
        fn: (x, w, b) => conv3d(x, w, b, { stride, padding }),
      });
    });
  }

  it('batch 2, 5 output channels, 1x1x1 kernel', async () => {
    await checkOp({ inputs: [inp([2, 3, 3, 2, 5], 26), inp([5, 3, 1, 1, 1], 27), inp([5], 28)], fn: (x, w, b) => conv3d(x, w, b) });
  });
});

describe('conv layers', () => {
  it('declare He-initialised weights and zero biases, and run', async () => {
    use(cpu);
    const ps = new ParameterStore(3);
    const c2 = new Conv2d(ps, 'enc.conv', 16, 32, 3, { padding: 1 });
    const c3 = new Conv3d(ps, 'res.conv', 8, 4, 3, { stride: 2, padding: 1, bias: false });
    const gn = new GroupNorm(ps, 'enc.norm', 8, 32);
    ps.finalize();
    expect(c2.weight.shape).toEqual([32, 16, 3, 3]);
    expect(c2.bias!.shape).toEqual([32]);
    expect(c3.weight.shape).toEqual([4, 8, 3, 3, 3]);
    expect(c3.bias).toBeNull();
    expect(gn.gamma.shape).toEqual([32]);
    const w = await c2.weight.tensor.data();
    const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
    expect(std).toBeGreaterThan(Math.sqrt(2 / 144) * 0.95);
    expect(std).toBeLessThan(Math.sqrt(2 / 144) * 1.05);
    expect(Array.from(await c2.bias!.tensor.data()).every((v) => v === 0)).toBe(true);
    const y = tidy(() => gn.forward(c2.forward(Tensor.from(uniform(2 * 16 * 5 * 6, 1), [2, 16, 5, 6]))));
    expect(y.shape).toEqual([2, 32, 5, 6]);
    const z = tidy(() => c3.forward(Tensor.from(uniform(8 * 5 * 4 * 3, 2), [1, 8, 5, 4, 3])));
    expect(z.shape).toEqual([1, 4, 3, 2, 2]);
    expect(() => new GroupNorm(ps, 'bad', 3, 32)).toThrow(ShapeError);
    ps.dispose();
  });
});
