import { describe, expect, it } from 'vitest';
import { WebGpuBackend } from '../../src/backend/webgpu.ts';
import { DeviceLostError } from '../../src/errors.ts';
import { add, matmul } from '../../src/ops/index.ts';
import { setBackend, Tensor, tidy } from '../../src/tensor/tensor.ts';
import { cpu, noGpu, uniform } from '../helpers.ts';

describe('WebGPU runtime', () => {
  it('reuses freed buffers from the pool instead of creating new ones', async () => {
    const gpu = (await WebGpuBackend.create()) ?? noGpu();
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
    } finally {
      gpu.destroy();
      setBackend(cpu);
    }
  });

  it('a lost device surfaces as a typed error naming the cause', async () => {
    const gpu = (await WebGpuBackend.create()) ?? noGpu();
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
    const gpu = (await WebGpuBackend.create()) ?? noGpu();
    expect(gpu.describe()).toMatch(/^webgpu: .+/);
    expect(gpu.adapter.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    gpu.destroy();
  });
});
