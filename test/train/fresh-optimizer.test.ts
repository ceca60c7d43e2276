// A phase starts with a fresh optimizer state. The moments live in the parameter store, so a CSA stage (or a
// compare_updates arm) that follows another phase on the same store used to inherit the previous phase's moments
// while its step count and bias correction restarted: AdamW's first updates of the new stage were then scaled by
// (1 - beta1^t) / sqrt(1 - beta2^t) of moments that were no longer at step t, about 0.3x at t = 1.
import { afterAll, describe, expect, it } from 'vitest';
import { ParameterStore } from '../../src/nn/parameters.ts';
import { backend } from '../../src/tensor/tensor.ts';
import { AdamW } from '../../src/train/adamw.ts';
import { freshOptimizer } from '../../src/train/phase.ts';
import { resolveTraining } from '../../src/train/schema.ts';
import { onEach, releaseGpu, uniform } from '../helpers.ts';

afterAll(releaseGpu);

function store(): ParameterStore {
  const s = new ParameterStore(1);
  s.param('w', [7, 5], { kind: 'normal', std: 1 });
  s.param('b', [5], { kind: 'normal', std: 1 });
  s.finalize();
  return s;
}

function setGrads(s: ParameterStore, seed: number): void {
  let k = 0;
  for (const [, t] of s.entries()) backend().write(t.grad!.buffer, uniform(t.size, seed + k++));
}

const maxAbs = (m: Map<string, { data: Float32Array }>): number => Math.max(...[...m.values()].flatMap((t) => [...t.data].map(Math.abs)));

const common = { epochs: 1, batch_size: 4, weight_decay: 0, warmup_epochs: 0 };

describe('freshOptimizer', () => {
  it('zeros the moments a previous phase left in the store, and starts at step 0 (AdamW and SGD with momentum)', async () => {
    await onEach(async () => {
      for (const file of [
        { ...common, lr: 1e-3 },
        { ...common, lr: 0.1, optimizer: 'sgd' as const, momentum: 0.9 },
      ]) {
        const s = store();
        const first = new AdamW(s, { lr: 1e-3, weightDecay: 0 });
        for (let i = 0; i < 3; i++) {
          setGrads(s, 10 * i);
          first.step();
        }
        const before = await first.exportState();
        expect(maxAbs(before.m)).toBeGreaterThan(0);
        expect(maxAbs(before.v)).toBeGreaterThan(0);
        const next = freshOptimizer(s, resolveTraining(file, 'test.json'));
        expect(next.stepCount).toBe(0);
        const { m, v } = await new AdamW(s, { lr: 1e-3 }).exportState();
        expect(maxAbs(m)).toBe(0);
        expect(maxAbs(v)).toBe(0);
        // The weights are the previous phase's: only the optimizer state is new.
        const w = await s.export();
        expect(maxAbs(w)).toBeGreaterThan(0);
      }
    });
  });
});
