// Multi-task, VICReg self-supervised pre-training and fine-tuning, end to end on small settings.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/train/checkpoint.ts';
import { readSafetensors } from '../../src/train/safetensors.ts';
import { mf, TINY_MODEL_3D, tinyExperiment, tmpDir } from './helpers.ts';

const env = { MEDMNIST_ROOT: tmpDir('data') };
const records = (out: string) =>
  fs
    .readFileSync(path.join(out, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('other kinds of run', () => {
  const dir = tmpDir('kinds');
  const ssl = path.join(dir, 'ssl');

  it('multitask mixes a 2D and a 3D data set in one step and reports every task from one checkpoint', () => {
    const exp = tinyExperiment(
      dir,
      {
        name: 'mt',
        kind: 'multitask',
        model: TINY_MODEL_3D,
        data: { datasets: ['synthetic2d', 'synthetic3d'], augment: false, train_limit: 16 },
        multitask: { sub_batches: 2 },
      },
      { epochs: 1, batch_size: 8 },
    );
    const out = path.join(dir, 'mt');
    const r = mf(['run', exp, '--out', out, '--quiet'], env);
    expect(r.status, r.stderr).toBe(0);
    // 16 samples a task in sub-batches of 4: 8 sub-batches, 4 steps of 2, drawn from a shuffled combined order.
    const tasks = records(out)
      .filter((x) => x.event === 'train')
      .map((x) => String(x.task));
    expect(tasks).toHaveLength(4);
    expect(tasks.some((t) => t.split('+').sort().join('+') === 'synthetic2d+synthetic3d')).toBe(true);
    const counts = { synthetic2d: 0, synthetic3d: 0 };
    for (const t of tasks) for (const k of t.split('+') as (keyof typeof counts)[]) counts[k] += t.includes('+') ? 1 : 2;
    expect(counts).toEqual({ synthetic2d: 4, synthetic3d: 4 });
    const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    expect(Object.keys(metrics).sort()).toEqual(['synthetic2d', 'synthetic3d']);
    expect(metrics.synthetic2d.best_epoch).toBe(metrics.synthetic3d.best_epoch);
    expect(fs.existsSync(path.join(out, 'best-all.safetensors'))).toBe(true);
    expect(records(out).some((x) => x.event === 'val' && x.task === 'all')).toBe(true);
    expect(fs.readFileSync(path.join(out, 'report.md'), 'utf8')).toMatch(/\| synthetic3d \|/);
  }, 600_000);

  it('ssl logs finite VICReg terms whose variance term falls, and saves no task heads', () => {
    const exp = tinyExperiment(
      dir,
      {
        name: 'ssl',
        kind: 'ssl',
        data: { datasets: ['synthetic2d'], augment: true, train_limit: 64 },
        // Invariance weighted 5 rather than the reference 25: in 24 steps of this tiny model at 25 the
        // invariance pull dominates and the embeddings first contract (variance term 0.66 -> 0.69); at 5 the
        // variance hinge visibly does its job (0.62 -> 0.48, measured).
        ssl: { expander: [32, 32], sim_coeff: 5, std_coeff: 25, cov_coeff: 1 },
      },
      { epochs: 6, batch_size: 16, lr: 0.003, warmup_epochs: 0 },
    );
    const r = mf(['run', exp, '--out', ssl, '--quiet'], env);
    expect(r.status, r.stderr).toBe(0);
    const train = records(ssl).filter((x) => x.event === 'train');
    for (const t of train) for (const k of ['invariance', 'variance', 'covariance', 'loss']) expect(Number.isFinite(t[k]), k).toBe(true);
    const first = train.slice(0, 3).reduce((a, t) => a + (t.variance as number), 0) / 3;
    const last = train.slice(-3).reduce((a, t) => a + (t.variance as number), 0) / 3;
    expect(last).toBeLessThan(first);
    const names = [...loadCheckpoint(ssl).model.keys()];
    expect(names.some((n) => n.startsWith('output.'))).toBe(false);
    expect(names.some((n) => n.startsWith('ssl.expander.'))).toBe(true);
    expect(fs.existsSync(path.join(ssl, 'vicreg.svg'))).toBe(true);
    // Where the images came from: the synthetic set's generated file.
    const source = JSON.parse(fs.readFileSync(path.join(ssl, 'metrics.json'), 'utf8')).ssl.data_source.synthetic2d;
    expect(source.origin).toBe('synthetic');
    expect(source.files).toHaveLength(1);
    expect(source.files[0].bytes).toBe(fs.statSync(source.files[0].path).size);
  });

  it('finetune loads the pre-trained backbone exactly and trains fresh heads', () => {
    const exp = tinyExperiment(dir, { name: 'ft', kind: 'finetune', finetune: { init: ssl, freeze_body: true } }, { epochs: 1, lr: 0.003 });
    const out = path.join(dir, 'ft');
    const r = mf(['run', exp, '--out', out, '--quiet'], env);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/finetune: loaded \d+ tensors/);
    expect(r.stderr).toMatch(/initialised fresh: .*output\./);
    const init = records(out).find((x) => x.event === 'init')!;
    expect((init.fresh as string[]).every((n) => n.startsWith('output.'))).toBe(true);
    // The body was frozen: its weights after fine-tuning are the SSL checkpoint's, bit for bit.
    const pre = loadCheckpoint(ssl).model;
    const post = readSafetensors(path.join(out, 'best-synthetic2d.safetensors')).tensors;
    let compared = 0;
    for (const [k, v] of post) {
      if (!k.startsWith('body.')) continue;
      expect(
        Buffer.compare(Buffer.from(Float32Array.from(v.data).buffer), Buffer.from(Float32Array.from(pre.get(k)!.data).buffer)),
        k,
      ).toBe(0);
      compared++;
    }
    expect(compared).toBeGreaterThan(0);
  });
});
