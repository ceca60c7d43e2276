// Medformer forward and backward on small shapes: WebGPU against the CPU reference, 2D and 3D inputs,
// every parameter's gradient.
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backend/backend.ts';
import { Medformer, type BatchMeta } from '../../src/models/medformer.ts';
import { ParameterStore } from '../../src/nn/parameters.ts';
import { crossEntropy } from '../../src/ops/losses.ts';
import { resolveModelConfig } from '../../src/models/medformer_config.ts';
import { backend, setBackend, Tensor, tidy } from '../../src/tensor/tensor.ts';
import { cpu, expectClose, gpuBackend, uniform, releaseGpu } from '../helpers.ts';

afterAll(releaseGpu);

const config = resolveModelConfig('small', {
  image_size_2d: 8,
  image_size_3d: 8,
  patch_size_2d: 4,
  patch_size_3d: 4,
  hidden_dim: 16,
  num_layers: 2,
  num_heads: 2,
  latent_dim: 8,
  num_latent_tokens: 4,
  num_task_latents: 2,
});

async function run(b: Backend, meta: BatchMeta): Promise<{ logits: Float32Array; loss: number; grads: Map<string, Float32Array> }> {
  const prev = backend();
  setBackend(b);
  try {
    const store = new ParameterStore(5);
    const model = new Medformer(store, {
      config,
      inputs: [
        { dim: 2, channels: 1 },
        { dim: 3, channels: 1 },
      ],
      tasks: [{ name: 'a', outputs: 3 }],
      numModalities: 4,
      numBodyParts: 4,
    });
    store.finalize();
    const B = 3;
    const shape = meta.dim === 2 ? [B, 1, 8, 8] : [B, 1, 8, 8, 8];
    const x = Tensor.from(
      uniform(
        shape.reduce((a, c) => a * c, 1),
        9,
      ),
      shape,
    );
    const y = Tensor.from([0, 2, 1], [3], 'i32');
    const { logits, loss } = tidy(() => {
      const logits = model.forward(x, meta, 'a');
      const loss = crossEntropy(logits, y);
      loss.backward();
      return { logits, loss };
    });
    const out = { logits: await logits.data(), loss: await loss.item(), grads: new Map<string, Float32Array>() };
    for (const [k, v] of await store.exportGrads()) out.grads.set(k, v.data);
    store.dispose();
    return out;
  } finally {
    setBackend(prev);
  }
}

describe('Medformer', () => {
  for (const dim of [2, 3] as const) {
    it(`${dim}D forward and backward on WebGPU match the CPU reference`, async () => {
      const meta: BatchMeta = { dim, channels: 1, modality: 1, bodyPart: 2 };
      const ref = await run(cpu, meta);
      expect(ref.logits.length).toBe(9);
      expect(Number.isFinite(ref.loss)).toBe(true);
      // Every parameter on the path of this input gets a gradient; the other dimensionality's patch path does not.
      const other = dim === 2 ? '3d' : '2d';
      for (const [k, g] of ref.grads) {
        const touched = g.some((v) => v !== 0);
        if (k.includes(`patch_${other}`) || k.includes(`pos_${other}`)) expect(touched, k).toBe(false);
        else if (!k.includes('embed')) expect(touched, k).toBe(true);
      }
      const gpu = await gpuBackend();
      if (!gpu) return;
      const got = await run(gpu, meta);
      expectClose(got.logits, ref.logits, 1e-4, 'logits');
      expect(Math.abs(got.loss - ref.loss)).toBeLessThan(1e-4);
      for (const [k, g] of ref.grads) expectClose(got.grads.get(k)!, g, 2e-4, `grad ${k}`);
    });
  }
});
