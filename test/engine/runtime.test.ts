import { describe, expect, it } from 'vitest';
import { DawnBackend } from '../../src/backend/dawn.ts';
import { DeviceLostError } from '../../src/errors.ts';
import { ParameterStore } from '../../src/nn/parameters.ts';
import { add, matmul, mul, sum } from '../../src/ops/index.ts';
import { AdamW } from '../../src/train/adamw.ts';
import { setBackend, Tensor, tidy } from '../../src/tensor/tensor.ts';
import { cpu, expectClose, noGpu, uniform } from '../helpers.ts';

describe('WebGPU runtime', () => {
  it('reuses freed buffers from the pool instead of creating new ones', async () => {
    const gpu = (await DawnBackend.create()) ?? noGpu();
    try {
      setBackend(gpu);
      const a = Tensor.from(uniform(64 * 64, 1), [64, 64]);
      const step = () => tidy(() => add(matmul(a, a), a).dispose());
      step();
      await gpu.sync();
      const before = gpu.stats();
      for (let i = 0; i < 20; i++) step();
      await gpu.sync();
      const after = gpu.stats();
      expect(after.created).toBe(before.created);
      expect(after.liveBytes).toBe(before.liveBytes);
      expect(after.dispatches - before.dispatches).toBe(40);
      expect(after.peakBytes).toBeGreaterThanOrEqual(after.liveBytes);
      // The same buffers in the same order each step: every bind group comes from the cache.
      expect(after.bindGroupsCreated).toBe(before.bindGroupsCreated);
      expect(before.bindGroupsCreated).toBeGreaterThan(0);
    } finally {
      gpu.destroy();
      setBackend(cpu);
    }
  });

  it('per-call uniforms stay right across submits: 300 AdamW steps on GPU equal the CPU reference', async () => {
    // Each step's update takes the learning rate and step as uniforms, staged in one arena slot per dispatch of a
    // submit; 300 steps overflow a submit's 256 dispatches, so slots are reused across submits.
    const gpu = (await DawnBackend.create()) ?? noGpu();
    const results: Float32Array[] = [];
    try {
      for (const b of [cpu, gpu]) {
        setBackend(b);
        const store = new ParameterStore(0);
        const w = store.param('w', [8], { kind: 'normal', std: 1 });
        store.finalize();
        const opt = new AdamW(store, { lr: 1e-2, weightDecay: 0, maxGradNorm: 1 });
        for (let i = 0; i < 300; i++) {
          store.zeroGrad();
          tidy(() => sum(mul(w.tensor, w.tensor)).backward());
          opt.step(1e-2 * (1 + (i % 7)));
        }
        results.push(new Float32Array(await w.tensor.data()));
        store.dispose();
      }
      expectClose(results[1], results[0], 1e-5, 'weights after 300 steps');
      // Both started from the same seeded draw; 300 steps of lr >= 1e-2 must have moved it.
      expect(Math.max(...results[0].map(Math.abs))).toBeLessThan(0.5);
    } finally {
      gpu.destroy();
      setBackend(cpu);
    }
  });

  it('a lost device surfaces as a typed error naming the cause', async () => {
    const gpu = (await DawnBackend.create()) ?? noGpu();
    setBackend(gpu);
    try {
      const a = Tensor.from([1, 2, 3, 4], [2, 2]);
      await a.data();
      gpu.destroy();
      expect(() => matmul(a, a)).toThrow(DeviceLostError);
      await expect(a.data()).rejects.toThrow(/GPU device lost.*--resume/);
    } finally {
      setBackend(cpu);
    }
  });

  it('reports the adapter it runs on', async () => {
    const gpu = (await DawnBackend.create()) ?? noGpu();
    expect(gpu.describe()).toMatch(/^webgpu: .+/);
    expect(gpu.adapter.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    gpu.destroy();
  });
});
