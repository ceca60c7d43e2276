// Sum Augmentation, the Cascade (CSA) and Test-Time Sum Augmentation (TTSA), thesis section 5.4.3: the mixed
// batches and their targets exactly; the experiment sections' checks; TTSA's hybrids and averaging on a model
// whose scores can be computed by hand; and, end to end on the synthetic set, a cascade 4-2-1 whose stages each
// start from the previous stage's best, stop by patience as their validation log says, and resume in the right
// stage after a SIGKILL to the same metrics as an uninterrupted run.
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { LoadedSplit } from '../../src/data/dataset.ts';
import { BatchLoader } from '../../src/data/loader.ts';
import { getDataset } from '../../src/data/registry.ts';
import { ConfigError } from '../../src/errors.ts';
import { loadExperiment } from '../../src/kinds/index.ts';
import { hardTargets, sumAugmentBatch, sumTargets, ttsaScores } from '../../src/kinds/medformer/csa.ts';
import type { TaskModel } from '../../src/kinds/medformer/tasks.ts';
import { matmul, reshape } from '../../src/ops/index.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { readSafetensors } from '../../src/train/safetensors.ts';
import { hashSeed } from '../../src/util/rng.ts';
import { cpu, gpuBackend, use } from '../helpers.ts';
import { mf, tinyExperiment, tmpDir } from '../run/helpers.ts';

/** A split of n images of `side`² whose pixel values and labels are known: image i is filled with i, label i mod c. */
function knownSplit(key: string, n: number, side = 4, labelsPer = 1, c = 4): LoadedSplit {
  const L = side * side;
  const images = new Uint8Array(n * L);
  for (let i = 0; i < n; i++) images.fill(i, i * L, (i + 1) * L);
  const labels = Int32Array.from({ length: n * labelsPer }, (_, e) => (labelsPer === 1 ? e % c : (e * 7 + Math.floor(e / labelsPer)) % 2));
  return {
    ds: getDataset(key),
    split: 'train',
    size: side,
    file: `${key}.npz`,
    n,
    images,
    labels,
    numLabels: labelsPer,
    shape: [1, side, side],
  };
}

const signed = (u8: number) => (u8 / 255) * 2 - 1;

describe('sum-augmented batches', () => {
  const split = knownSplit('synthetic2d', 40);
  const loader = new BatchLoader(split, { batchSize: 8, seed: 5, shuffle: true, dropLast: true, prefetch: false });
  const task = { ds: split.ds, head: 'classes' as const };

  it('each sample is exactly the mean of K training images, one from each of K independent shuffles', () => {
    const b = sumAugmentBatch(loader, 3, 2, 4);
    expect(b.k).toBe(4);
    expect(b.size).toBe(8);
    expect(b.members.length).toBe(32);
    for (let j = 0; j < 4; j++)
      expect(Array.from(b.members.subarray(j * 8, (j + 1) * 8))).toEqual(Array.from(loader.batchAt(3 * 4 + j, 2).indices));
    for (let i = 0; i < 8; i++) {
      const idx = [0, 1, 2, 3].map((j) => b.members[j * 8 + i]);
      const want = idx.reduce((a, v) => a + signed(v), 0) / 4;
      // Every pixel of image v is v: the mixed image is constant at the mean of the normalised values.
      for (let e = 0; e < 16; e++) expect(b.x[i * 16 + e]).toBeCloseTo(want, 6);
    }
    // The draws are different shuffles, so the K images of a sample are not all one image.
    expect(new Set(b.members.subarray(0, 8)).size + new Set(b.members.subarray(8, 16)).size).toBe(16);
    expect(Array.from(b.members.subarray(0, 8))).not.toEqual(Array.from(b.members.subarray(8, 16)));
  });

  it('targets are the mean of the K one-hot labels (multi-class)', () => {
    const b = sumAugmentBatch(loader, 0, 1, 4);
    const t = sumTargets(task, b);
    expect(t.length).toBe(8 * 4);
    for (let i = 0; i < 8; i++) {
      const want = [0, 0, 0, 0];
      for (let j = 0; j < 4; j++) want[split.labels[b.members[j * 8 + i]]] += 0.25;
      expect(Array.from(t.subarray(i * 4, i * 4 + 4))).toEqual(want);
    }
  });

  it('K = 1 is the plain batch, and a hard target row is one-hot', () => {
    const b = sumAugmentBatch(loader, 2, 0, 1);
    const plain = loader.batchAt(2, 0);
    expect(Array.from(b.x)).toEqual(Array.from(plain.x));
    expect(Array.from(hardTargets(task, plain.labels, 2))).toEqual(
      [0, 1, 2, 3].flatMap((c) => (c === plain.labels[0] ? 1 : 0)).concat([0, 1, 2, 3].map((c) => (c === plain.labels[1] ? 1 : 0))),
    );
  });

  it('multi-label targets are the fraction of the K images carrying each label; ordinal regression the mean normalised label', () => {
    const ml = knownSplit('chestmnist', 24, 4, 14);
    const mlLoader = new BatchLoader(ml, { batchSize: 6, seed: 1, shuffle: true, dropLast: true, prefetch: false });
    const b = sumAugmentBatch(mlLoader, 1, 1, 2);
    const t = sumTargets({ ds: ml.ds, head: 'classes' }, b);
    for (let i = 0; i < 6; i++)
      for (let l = 0; l < 14; l++) {
        const want = (ml.labels[b.members[i] * 14 + l] + ml.labels[b.members[6 + i] * 14 + l]) / 2;
        expect(t[i * 14 + l]).toBe(want);
      }
    const retina = knownSplit('retinamnist', 20, 4, 1, 5);
    const rLoader = new BatchLoader(retina, { batchSize: 5, seed: 2, shuffle: true, dropLast: true, prefetch: false });
    const rb = sumAugmentBatch(rLoader, 0, 0, 2);
    const rt = sumTargets({ ds: retina.ds, head: 'regression' }, rb);
    for (let i = 0; i < 5; i++) expect(rt[i]).toBeCloseTo((retina.labels[rb.members[i]] / 4 + retina.labels[rb.members[5 + i]] / 4) / 2, 6);
  });
});

describe('the csa and ttsa sections', () => {
  const base = (extra: Record<string, unknown>) => ({
    name: 'x',
    kind: 'supervised',
    model: { preset: 'small' },
    data: { datasets: ['synthetic2d'] },
    training: { epochs: 3, batch_size: 8, lr: 0.001, weight_decay: 0, warmup_epochs: 0 },
    ...extra,
  });
  const load = (extra: Record<string, unknown>) => {
    const dir = tmpDir('c5-schema');
    const file = path.join(dir, 'x.json');
    fs.writeFileSync(file, JSON.stringify(base(extra)));
    return loadExperiment(file).settings as unknown as Record<string, unknown>;
  };

  it('resolve the stopping rule (default: training.epochs per stage) and the TTSA seed', () => {
    expect(load({ csa: { schedule: [8, 4, 2, 1] } }).csa).toEqual({ schedule: [8, 4, 2, 1], stop: { rule: 'epochs', epochs: 3 } });
    expect(load({ csa: { schedule: [2, 1], stop: { patience: 2, max_epochs: 9 } } }).csa).toEqual({
      schedule: [2, 1],
      stop: { rule: 'patience', patience: 2, metric: 'auc', max_epochs: 9 },
    });
    expect(load({ ttsa: { k: 2, r: 8 } }).ttsa).toEqual({ k: 2, r: 8, seed: 0 });
    // Absent sections stay absent: the config hash of every other run is unchanged.
    const plain = load({});
    expect('csa' in plain || 'ttsa' in plain).toBe(false);
  });

  it('refuse a schedule that does not decrease, an unknown key and a TTSA K of 1, each in one line', () => {
    expect(() => load({ csa: { schedule: [2, 4, 1] } })).toThrow(ConfigError);
    expect(() => load({ csa: { schedule: [2, 4, 1] } })).toThrow(/\/csa\/schedule \[2, 4, 1\] must be strictly decreasing/);
    expect(() => load({ csa: { schedule: [2, 1], stop: { epoch: 2 } } })).toThrow(/\/csa\/stop must be/);
    expect(() => load({ ttsa: { k: 1, r: 2 } })).toThrow(/\/ttsa\/k/);
  });
});

describe('TTSA', () => {
  it('scores each query as the mean over R hybrids of the query and K − 1 split images', async () => {
    use(cpu);
    const split = { ...knownSplit('synthetic2d', 10), split: 'test' as const };
    // A "model" whose logits are (mean pixel, 0, −mean pixel, 0): its softmax is known in closed form.
    const w = new Float32Array(16 * 4);
    for (let e = 0; e < 16; e++) {
      w[e * 4] = 1 / 16;
      w[e * 4 + 2] = -1 / 16;
    }
    const weight = Tensor.from(w, [16, 4]).keep();
    const model: TaskModel = { forward: (x: Tensor) => matmul(reshape(x, [x.shape[0], 16]), weight) };
    const task = { ds: split.ds, head: 'classes' as const, meta: { dim: 2 as const, channels: 1, modality: 0, bodyPart: 0 } };
    const ttsa = { k: 3, r: 4, seed: 7 };
    const scores = await ttsaScores(model, task, split, 4, ttsa);
    // Rebuild the hybrids from the same partner shuffles and average softmax by hand.
    const partners = new BatchLoader(split, { batchSize: 4, seed: hashSeed(7, 'ttsa'), shuffle: true, prefetch: false });
    const plain = new BatchLoader(split, { batchSize: 4, seed: 0, shuffle: false, prefetch: false });
    const want = new Float32Array(40);
    for (let b = 0; b < plain.batchesPerEpoch; b++) {
      const q = plain.batchAt(0, b);
      for (let r = 0; r < 4; r++) {
        const ps = [0, 1].map((j) => partners.batchAt(r * 2 + j, b));
        for (let i = 0; i < q.size; i++) {
          const m = (signed(q.indices[i]) + signed(ps[0].indices[i]) + signed(ps[1].indices[i])) / 3;
          const z = [m, 0, -m, 0].map(Math.exp);
          const s = z.reduce((a, v) => a + v, 0);
          z.forEach((v, c) => (want[q.indices[i] * 4 + c] += v / s / 4));
        }
      }
    }
    for (let e = 0; e < 40; e++) expect(scores[e]).toBeCloseTo(want[e], 5);
    // With the partners averaged in, the scores differ from the plain ones.
    const { splitScores } = await import('../../src/kinds/medformer/evaluate.ts');
    const plainScores = await splitScores(model, task, split, 4);
    expect(Array.from(plainScores)).not.toEqual(Array.from(scores));
    weight.dispose();
  });
});

describe('a cascade 4-2-1 with TTSA, end to end', () => {
  let dir: string;
  let full: string;
  const csa = { schedule: [4, 2, 1], stop: { patience: 1, max_epochs: 3 } };
  const runIn = (out: string, env: Record<string, string> = {}, extra: string[] = []) =>
    mf(['run', path.join(dir, 'tiny.json'), '--out', out, '--quiet', ...extra], env);
  const readJson = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));
  const logOf = (run: string) =>
    fs
      .readFileSync(path.join(run, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));

  beforeAll(async () => {
    if (!(await gpuBackend())) return;
    dir = tmpDir('c5-csa');
    tinyExperiment(dir, { csa, ttsa: { k: 2, r: 2, seed: 1 } }, { epochs: 3 });
    full = path.join(dir, 'full');
    const r = runIn(full, { MF_FAULT_TRACE: path.join(dir, 'trace.txt') });
    expect(r.status, r.stderr).toBe(0);
  }, 300_000);

  it('runs the stages in order, each from the previous stage’s best checkpoint, and reports them', async (ctx) => {
    if (!dir) return ctx.skip();
    const phases = logOf(full).filter((r) => r.event === 'phase');
    expect(phases.map((p) => [p.phase, p.k, p.from])).toEqual([
      ['csa-k4', 4, null],
      ['csa-k2', 2, 'csa-k4-best.safetensors'],
      ['csa-k1', 1, 'csa-k2-best.safetensors'],
    ]);
    const state = readJson(path.join(full, 'csa.json'));
    // Each stage's best file holds the weights of the stage's best validation step.
    for (const k of [4, 2]) {
      const best = state.stages[`csa-k${k}`].best;
      const meta = readSafetensors(path.join(full, `csa-k${k}-best.safetensors`)).metadata;
      expect(Number(meta.get('step'))).toBe(best.step);
    }
    const m = readJson(path.join(full, 'metrics.json')).synthetic2d;
    expect(m.csa.schedule).toEqual([4, 2, 1]);
    expect(m.csa.stages.map((s: { k: number }) => s.k)).toEqual([4, 2, 1]);
    expect(m.steps).toBe(m.csa.stages.reduce((a: number, s: { steps: number }) => a + s.steps, 0));
    expect(m.ttsa.k).toBe(2);
    expect(m.ttsa.test.auc).toBeGreaterThanOrEqual(0);
    expect(m.ttsa.test.auc).not.toBe(m.test.auc);
    // `mf eval --ttsa K,R,SEED` gives the run's TTSA numbers again, beside the plain ones.
    const ev = mf(['eval', full, '--ttsa', '2,2,1', '--json']);
    expect(ev.status, ev.stderr).toBe(0);
    const task = JSON.parse(ev.stdout).tasks.synthetic2d;
    expect({ auc: task.auc, acc: task.acc }).toEqual(m.test);
    expect(task.ttsa).toEqual({ k: 2, r: 2, seed: 1, ...m.ttsa.test });
    const bad = mf(['eval', full, '--ttsa', '1,2']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--ttsa 1,2: give K,R or K,R,SEED/);
    const report = fs.readFileSync(path.join(full, 'report.md'), 'utf8');
    expect(report).toMatch(/## Cascading Sum Augmentation/);
    expect(report).toMatch(/\| csa-k2 \| 2 \| \d \| \d+ \| (yes|no) \| \d \| [0-9.]+ \| [0-9.]+% \| csa-k4-best.safetensors \|/);
    expect(report).toMatch(/## Test-Time Sum Augmentation/);
  });

  it('each stage trains until its validation AUC has not improved for `patience` validations, or max_epochs', async (ctx) => {
    if (!dir) return ctx.skip();
    const vals = logOf(full).filter((r) => r.event === 'val');
    const state = readJson(path.join(full, 'csa.json'));
    for (const k of [4, 2, 1]) {
      const seen = vals.filter((v) => v.phase === `csa-k${k}`).map((v) => ({ auc: v.auc as number, acc: v.acc as number }));
      // Patience 1: the stage ends at its first validation that is not better (AUC, ties by ACC) than the best before it.
      let best: { auc: number; acc: number } | null = null;
      let expected = 0;
      let stopped = false;
      for (const v of seen) {
        expected++;
        if (best === null || v.auc > best.auc || (v.auc === best.auc && v.acc > best.acc)) best = v;
        else {
          stopped = true;
          break;
        }
      }
      expect(seen.length, `csa-k${k}`).toBe(Math.min(expected, 3));
      expect(state.stages[`csa-k${k}`].epochs).toBe(seen.length);
      expect(state.stages[`csa-k${k}`].stopped).toBe(stopped);
    }
  });

  it('killed inside stage K=2, resumes in that stage (not from K=4) to the same metrics', async (ctx) => {
    if (!dir) return ctx.skip();
    const trace = fs.readFileSync(path.join(dir, 'trace.txt'), 'utf8').trim().split('\n');
    const stageStarts = trace.flatMap((n, i) => (n === 'csa-stage' ? [i] : []));
    expect(stageStarts.length).toBe(3);
    // The third training step of stage K=2: one checkpoint of that stage (checkpoint_every 2) is on disk.
    const steps = trace.flatMap((n, i) => (n === 'step' && i > stageStarts[1] ? [i] : []));
    const killAt = steps[2] + 1;
    const out = path.join(dir, 'killed');
    const killed = runIn(out, { MF_FAULT_KILL_AT: String(killAt) });
    expect(killed.signal).toBe('SIGKILL');
    expect(Object.keys(readJson(path.join(out, 'csa.json')).stages)).toEqual(['csa-k4']);
    const resumed = mf(['run', path.join(dir, 'tiny.json'), '--out', out, '--resume']);
    expect(resumed.status, resumed.stderr).toBe(0);
    const said = resumed.stdout + resumed.stderr;
    expect(said).toMatch(/resume: continuing csa-k2 from step 2 /);
    expect(said).not.toMatch(/--- csa-k4/);
    expect(said).toMatch(/--- csa-k2: 2 images per sample, from csa-k4-best.safetensors/);
    const a = readJson(path.join(full, 'metrics.json')).synthetic2d;
    const b = readJson(path.join(out, 'metrics.json')).synthetic2d;
    expect(b.test).toEqual(a.test);
    expect(b.ttsa).toEqual(a.ttsa);
    expect(b.csa).toEqual(a.csa);
  });
});
