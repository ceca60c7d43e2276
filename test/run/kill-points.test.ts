// Crash safety as a property. An uninterrupted run of each kind records every kill point it passes
// (MF_FAULT_TRACE, src/util/faults.ts): after a queued training step, inside evaluation, before a checkpoint is
// written, between the file operations of every atomic write (half written, before and after the rename: the
// checkpoint pair, its pointer, reports, metrics), before a checkpoint's cleanup of the previous pair. Kill points drawn from a seed then each SIGKILL a fresh
// run exactly there (MF_FAULT_KILL_AT); the run is resumed to the end, and must end with bit-identical weights
// and the same metrics (timings aside) as the uninterrupted run. A draw whose kill did not happen fails.
// CI draws MF_KILL_POINTS (default 2) points per kind; set it higher for a longer search.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/train/checkpoint.ts';
import { Rng } from '../../src/util/rng.ts';
import { mf, TINY_MODEL_3D, tinyExperiment, tmpDir } from './helpers.ts';

const POINTS = Number(process.env.MF_KILL_POINTS ?? 2);
const SEED = Number(process.env.MF_KILL_SEED ?? 7);
const env = { MEDMNIST_ROOT: tmpDir('data') };

interface KindCase {
  kind: string;
  /** Writes the experiment into `dir` (given the uninterrupted SSL run, for finetune). */
  experiment(dir: string, sslRun: string): string;
}

const CASES: KindCase[] = [
  {
    kind: 'supervised (augmented)',
    experiment: (dir) =>
      tinyExperiment(
        dir,
        { name: 'sup', data: { datasets: ['synthetic2d'], augment: true, train_limit: 48 } },
        { epochs: 2, checkpoint_every: 2 },
      ),
  },
  {
    kind: 'multitask',
    experiment: (dir) =>
      tinyExperiment(
        dir,
        {
          name: 'mt',
          kind: 'multitask',
          model: TINY_MODEL_3D,
          data: { datasets: ['synthetic2d', 'synthetic3d'], augment: true, train_limit: 16 },
          multitask: { sub_batches: 2 },
        },
        { epochs: 2, batch_size: 8, checkpoint_every: 2 },
      ),
  },
  {
    kind: 'ssl',
    experiment: (dir) =>
      tinyExperiment(
        dir,
        {
          name: 'ssl',
          kind: 'ssl',
          data: { datasets: ['synthetic2d'], augment: 'ssl', train_limit: 32 },
          ssl: { expander: [32, 32], sim_coeff: 5, std_coeff: 25, cov_coeff: 1, cosine_coeff: 1 },
        },
        { epochs: 2, checkpoint_every: 2 },
      ),
  },
  {
    kind: 'finetune',
    experiment: (dir, sslRun) =>
      tinyExperiment(
        dir,
        { name: 'ft', kind: 'finetune', data: { datasets: ['synthetic2d'], augment: true, train_limit: 32 }, finetune: { init: sslRun } },
        { epochs: 2, checkpoint_every: 2 },
      ),
  },
];

/** metrics.json without what depends on the clock. */
function stableMetrics(out: string): unknown {
  const text = fs.readFileSync(path.join(out, 'metrics.json'), 'utf8');
  return JSON.parse(text, (k, v) => (k === 't' || /wall|per_s|seconds/.test(k) ? undefined : v));
}

function expectSameEnd(straight: string, resumed: string, what: string): void {
  const a = loadCheckpoint(straight).model;
  const b = loadCheckpoint(resumed).model;
  expect([...b.keys()], what).toEqual([...a.keys()]);
  for (const [k, t] of a) {
    const u = b.get(k)!;
    expect(
      Buffer.from(u.data.buffer, u.data.byteOffset, u.data.byteLength).equals(
        Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength),
      ),
      `${what}: ${k}`,
    ).toBe(true);
  }
  expect(stableMetrics(resumed), what).toEqual(stableMetrics(straight));
}

/** `count` distinct kill points in 1..total, drawn from `seed`. */
function draw(total: number, count: number, seed: number): number[] {
  const rng = new Rng(seed);
  const picked = new Set<number>();
  while (picked.size < Math.min(count, total)) picked.add(1 + Math.floor(rng.uniform(0, total)));
  return [...picked].sort((x, y) => x - y);
}

describe(`kill -9 at ${POINTS} seeded kill points per kind, then --resume`, () => {
  const dir = tmpDir('killpoints');
  const sslRun = path.join(dir, 'ssl-straight');

  for (const [i, c] of CASES.entries()) {
    it(`${c.kind}: asserts every killed-and-resumed run ends bit-identical to the uninterrupted one`, () => {
      const caseDir = path.join(dir, `case-${i}`);
      fs.mkdirSync(caseDir, { recursive: true });
      const exp = c.experiment(caseDir, sslRun);
      const straight = c.kind === 'ssl' ? sslRun : path.join(caseDir, 'straight');
      const traceFile = path.join(caseDir, 'trace.txt');
      const r = mf(['run', exp, '--out', straight, '--quiet'], { ...env, MF_FAULT_TRACE: traceFile });
      expect(r.status, r.stderr).toBe(0);
      const trace = fs.readFileSync(traceFile, 'utf8').trim().split('\n');
      // The run passes every kind of point: steps, evaluation (not in ssl) and checkpoints.
      for (const name of [
        'step',
        'checkpoint',
        'write:partial',
        'write:before-rename',
        'write:renamed',
        'checkpoint:before-cleanup',
        ...(c.kind === 'ssl' ? [] : ['evaluate']),
      ])
        expect(trace, name).toContain(name);

      for (const at of draw(trace.length, POINTS, SEED + i)) {
        const out = path.join(caseDir, `killed-at-${at}`);
        const killed = mf(['run', exp, '--out', out, '--quiet'], { ...env, MF_FAULT_KILL_AT: String(at) });
        expect(killed.signal, `kill point ${at} (${trace[at - 1]}) never fired: ${killed.stderr}`).toBe('SIGKILL');
        const resumed = mf(['run', exp, '--out', out, '--quiet', '--resume'], env);
        expect(resumed.status, `resume after kill point ${at} (${trace[at - 1]}): ${resumed.stderr}`).toBe(0);
        expectSameEnd(straight, out, `${c.kind}, killed at point ${at} of ${trace.length} (${trace[at - 1]})`);
      }
    }, 1_200_000);
  }
});
