// End to end on the engine: a tiny MLP and a tiny transformer block learn a synthetic task on WebGPU
// and on the CPU reference, with matching losses for the first steps.
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backend/backend.ts';
import { Block, Linear } from '../../src/nn/layers.ts';
import { ParameterStore } from '../../src/nn/parameters.ts';
import { mean } from '../../src/ops/index.ts';
import { crossEntropy } from '../../src/ops/losses.ts';
import { AdamW } from '../../src/train/adamw.ts';
import { backend, setBackend, Tensor, tidy } from '../../src/tensor/tensor.ts';
import { cpu, requireGpu, uniform, releaseGpu } from '../helpers.ts';

afterAll(releaseGpu);

/** Labels: which of 4 fixed random directions a point is closest to (learnable, not linearly trivial). */
function task(n: number, d: number, classes: number, seed: number): { x: Float32Array; y: Int32Array } {
  const x = uniform(n * d, seed);
  const dirs = uniform(classes * d, seed + 100);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = -Infinity;
    for (let c = 0; c < classes; c++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += x[i * d + j] * dirs[c * d + j];
      if (s > best) {
        best = s;
        y[i] = c;
      }
    }
  }
  return { x, y };
}

async function train(b: Backend, kind: 'mlp' | 'transformer', steps: number): Promise<number[]> {
  const prev = backend();
  setBackend(b);
  try {
    const store = new ParameterStore(7);
    const T = 6;
    const D = 16;
    const data = kind === 'mlp' ? task(32, 8, 4, 1) : task(16, T * D, 3, 2);
    let forward: (x: Tensor) => Tensor;
    if (kind === 'mlp') {
      const l1 = new Linear(store, 'l1', 8, 32);
      const l2 = new Linear(store, 'l2', 32, 4);
      forward = (x) => l2.forward(l1.forward(x, 'gelu'));
    } else {
      const embed = new Linear(store, 'embed', D, D);
      const block = new Block(store, 'block', D, 2, 2);
      const head = new Linear(store, 'head', D, 3);
      forward = (x) => head.forward(mean(block.forward(embed.forward(x)), 1));
    }
    store.finalize();
    const opt = new AdamW(store, { lr: kind === 'mlp' ? 1e-2 : 3e-3, weightDecay: 0, maxGradNorm: 5 });
    const shape = kind === 'mlp' ? [32, 8] : [16, T, D];
    const x = Tensor.from(data.x, shape).keep();
    const y = Tensor.from(data.y, [data.y.length], 'i32').keep();
    const losses: number[] = [];
    for (let s = 0; s < steps; s++) {
      store.zeroGrad();
      const loss = tidy(() => {
        const l = crossEntropy(forward(x), y);
        l.backward();
        return l;
      });
      opt.step();
      losses.push(await loss.item());
      loss.dispose();
    }
    x.dispose();
    y.dispose();
    opt.dispose();
    store.dispose();
    return losses;
  } finally {
    setBackend(prev);
  }
}

describe('training end to end', () => {
  for (const [kind, steps, factor] of [
    ['mlp', 60, 4],
    ['transformer', 60, 3],
  ] as const) {
    it(`a tiny ${kind} cuts its loss by ${factor}x in ${steps} steps on both backends`, async () => {
      const onCpu = await train(cpu, kind, steps);
      expect(onCpu[steps - 1]).toBeLessThan(onCpu[0] / factor);
      const gpu = await requireGpu();
      const onGpu = await train(gpu, kind, steps);
      expect(onGpu[steps - 1]).toBeLessThan(onGpu[0] / factor);
      for (let s = 0; s < 5; s++) expect(Math.abs(onGpu[s] - onCpu[s]) / onCpu[s], `step ${s}`).toBeLessThan(1e-3);
    });
  }
});
