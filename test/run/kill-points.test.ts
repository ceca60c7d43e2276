// Crash safety as a property. An uninterrupted run of each kind records every kill point it passes
// (MF_FAULT_TRACE, src/util/faults.ts): after a queued training step, inside evaluation, before a checkpoint is
// written, between the file operations of every atomic write (half written, before and after the rename: the
// checkpoint pair, its pointer, reports, metrics), before a checkpoint's cleanup of the previous pair. Kill points drawn from a seed then each SIGKILL a fresh
// run exactly there (MF_FAULT_KILL_AT); the run is resumed to the end, and must end with bit-identical weights
// and the same metrics (timings aside) as the uninterrupted run. A draw whose kill did not happen fails.
// CI draws MF_KILL_POINTS (default 2) points per kind; set it higher for a longer search. The brain kinds
// (brainfuse-interp, brainage) run on a synthetic IXI folder and are killed at their middle training step plus
// MF_KILL_POINTS (default 1) seeded draws; their interpolator, backbone and fusion files must end the same too.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/train/checkpoint.ts';
import { Rng } from '../../src/util/rng.ts';
import { syntheticIxiFolder } from '../brain/helpers.ts';
import { mf, TINY_MODEL_3D, tinyExperiment, tmpDir } from './helpers.ts';

const POINTS = Number(process.env.MF_KILL_POINTS ?? 2);
/** Seeded draws per brain kind, besides the kill at its middle training step (MF_KILL_POINTS when set). */
const BRAIN_POINTS = Number(process.env.MF_KILL_POINTS ?? 1);
const SEED = Number(process.env.MF_KILL_SEED ?? 7);
const env = { MEDMNIST_ROOT: tmpDir('data') };

interface KindCase {
  kind: string;
  /** Writes the experiment into `dir` (given the uninterrupted SSL run, for finetune). */
  experiment(dir: string, sslRun: string): string;
  /** Kill points the trace must hold (default: steps, checkpoints, every file operation, evaluation). */
  expectPoints?: string[];
  /** Seeded draws (default POINTS). */
  points?: number;
  /** Also kill at the middle `step` point of the trace, so one kill always lands inside training. */
  midStep?: boolean;
  /** Files of the run folder, besides the checkpoint, that must end byte-identical. */
  sameFiles?: string[];
  /** JSON files of the run folder that must end the same, timings aside. */
  sameJson?: string[];
  /** More checks of a finished (uninterrupted or resumed) run folder. */
  check?(out: string): void;
}

/** A tiny experiment of a brain kind on the synthetic IXI folder (10 subjects, 32³ at 5 mm, T1 and T2). */
function brainExperiment(dir: string, exp: Record<string, unknown>): string {
  const file = path.join(dir, `${exp.name as string}.json`);
  fs.writeFileSync(file, JSON.stringify(exp, null, 2));
  return file;
}
let ixi: string | null = null;
const ixiData = (dir: string) => (ixi ??= syntheticIxiFolder(path.join(dir, 'ixi')));
const BRAIN_POINTS_SEEN = ['step', 'checkpoint', 'write:partial', 'write:before-rename', 'write:renamed', 'checkpoint:before-cleanup'];

/** PSNR and SSIM of the network and of linear interpolation, per gap, are finite numbers in range. */
function expectInterpQuality(out: string): void {
  const m = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8')).interp;
  expect(Object.keys(m.by_gap)).toEqual(['2', '4']);
  for (const [gap, g] of Object.entries(m.by_gap) as [string, Record<string, { psnr: number; ssim: number }> & { slices: number }][]) {
    expect(g.slices, `gap ${gap}`).toBeGreaterThan(0);
    for (const who of ['model', 'linear']) {
      const { psnr, ssim } = g[who]!;
      expect(Number.isFinite(psnr) && psnr > 0 && psnr < 100, `gap ${gap} ${who} PSNR ${psnr}`).toBe(true);
      expect(Number.isFinite(ssim) && ssim > -1 && ssim <= 1, `gap ${gap} ${who} SSIM ${ssim}`).toBe(true);
    }
  }
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
  {
    kind: 'brainfuse-interp',
    points: BRAIN_POINTS,
    midStep: true,
    expectPoints: BRAIN_POINTS_SEEN,
    sameFiles: ['model.safetensors'],
    check: expectInterpQuality,
    experiment: (dir) =>
      brainExperiment(dir, {
        name: 'interp',
        kind: 'brainfuse-interp',
        data: { data_dir: ixiData(dir), cache_dir: 'cache', shape: 16, split: { seed: 0, test: 3, val: 1 } },
        model: { base: 4, depth: 2, groups: 2 },
        training: { epochs: 2, steps_per_epoch: 3, batch_size: 4, lr: 0.003, weight_decay: 0, warmup_epochs: 0, seed: 0, log_every: 1 },
        interp: { gap: { start: 2, max: 4, every_epochs: 1 }, eval: { per_axis: 2 } },
      }),
  },
  {
    kind: 'brainage (2 channels; Barlow Twins on fused chains, BrainFuse and raw arms)',
    points: BRAIN_POINTS,
    midStep: true,
    expectPoints: BRAIN_POINTS_SEEN,
    sameFiles: ['BT-s0-backbone.safetensors', 'fusions.json', 'ssl-fusions.json'],
    sameJson: ['study.json'],
    experiment: (dir) =>
      brainExperiment(dir, {
        name: 'brainage',
        kind: 'brainage',
        data: {
          data_dir: ixiData(dir),
          cache_dir: 'cache',
          shape: 16,
          split: { seed: 0, test: 3, val: 1 },
          size: 16,
          modalities: ['T1', 'T2'],
        },
        model: { width: 4, blocks: [1, 1], groups: 2 },
        training: { epochs: 2, batch_size: 4, lr: 0.003, weight_decay: 0, warmup_epochs: 0, seed: 0, log_every: 1, steps_per_epoch: 2 },
        study: { arms: ['NT', 'NT+BT+BrainFuse', 'NT+RawBrainFuse+ConsistencyReg'], seeds: 1 },
        bt: { steps_per_epoch: 2, dim: 8 },
        fusion: { interp_run: null, per_subject: 1, transition: 3, threshold: 100 },
      }),
  },
];

/** A JSON file of the run (metrics.json) without what depends on the clock (wall_s, eval_s, train_s, samples_per_s, ...). */
function stableJson(out: string, file = 'metrics.json'): unknown {
  const text = fs.readFileSync(path.join(out, file), 'utf8');
  return JSON.parse(text, (k, v) => (k === 't' || /wall|per_s|seconds|_s$/.test(k) ? undefined : v));
}

function expectSameEnd(straight: string, resumed: string, what: string, c: Pick<KindCase, 'sameFiles' | 'sameJson'> = {}): void {
  for (const f of c.sameFiles ?? [])
    expect(fs.readFileSync(path.join(resumed, f)).equals(fs.readFileSync(path.join(straight, f))), `${what}: ${f} byte for byte`).toBe(
      true,
    );
  for (const f of c.sameJson ?? []) expect(stableJson(resumed, f), `${what}: ${f}`).toEqual(stableJson(straight, f));
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
  expect(stableJson(resumed), what).toEqual(stableJson(straight));
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
      for (const name of c.expectPoints ?? [
        'step',
        'checkpoint',
        'write:partial',
        'write:before-rename',
        'write:renamed',
        'checkpoint:before-cleanup',
        ...(c.kind === 'ssl' ? [] : ['evaluate']),
      ])
        expect(trace, name).toContain(name);
      c.check?.(straight);

      const steps = trace.flatMap((name, k) => (name === 'step' ? [k + 1] : []));
      const mid = c.midStep ? [steps[Math.floor(steps.length / 2)]!] : [];
      for (const at of [...new Set([...mid, ...draw(trace.length, c.points ?? POINTS, SEED + i)])].sort((x, y) => x - y)) {
        const out = path.join(caseDir, `killed-at-${at}`);
        const killed = mf(['run', exp, '--out', out, '--quiet'], { ...env, MF_FAULT_KILL_AT: String(at) });
        expect(killed.signal, `kill point ${at} (${trace[at - 1]}) never fired: ${killed.stderr}`).toBe('SIGKILL');
        const resumed = mf(['run', exp, '--out', out, '--quiet', '--resume'], env);
        expect(resumed.status, `resume after kill point ${at} (${trace[at - 1]}): ${resumed.stderr}`).toBe(0);
        expectSameEnd(straight, out, `${c.kind}, killed at point ${at} of ${trace.length} (${trace[at - 1]})`, c);
        c.check?.(out);
      }
    }, 1_200_000);
  }
});
