// The sweep planner: grid expansion, dependencies read from fine-tunings' paths and `after`, order and waves,
// one-line errors; the committed thesis sweeps; the Slurm submission script, run against a fake sbatch.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import { flowTrees } from '../../src/sweep/queue.ts';
import { planSweep, waves } from '../../src/sweep/plan.ts';
import { slurmScript } from '../../src/sweep/slurm.ts';
import { tmpDir } from '../run/helpers.ts';
import { tinyRun, writeSweep } from './helpers.ts';

function gridSweep(dir: string, extra: Record<string, unknown> = {}): string {
  tinyRun(dir, 'ssl', 2);
  for (const d of ['a', 'b']) {
    tinyRun(dir, `st-${d}`, 2);
    tinyRun(dir, `ft-${d}`, 2, { kind: 'finetune', finetune: { init: 'runs/ssl', baseline: `runs/st-${d}` } });
  }
  return writeSweep(dir, {
    name: 'grid',
    output: path.join(dir, 'out'),
    experiments: [path.join(dir, 'ssl.json')],
    grid: {
      experiments: [path.join(dir, 'st-{dataset}.json'), path.join(dir, 'ft-{dataset}.json')],
      datasets: ['a', 'b'],
      seeds: [0, 1],
    },
    set: { training: { max_steps: 3 } },
    ...extra,
  });
}

describe('sweep plan', () => {
  it('expands experiments x datasets x seeds, merges `set` and the seed, and orders fine-tunings after their parents', () => {
    const dir = tmpDir('plan');
    const plan = planSweep(gridSweep(dir));
    const ids = plan.runs.map((r) => r.id);
    expect(ids.sort()).toEqual(
      ['ssl', 'st-a-seed0', 'st-a-seed1', 'st-b-seed0', 'st-b-seed1', 'ft-a-seed0', 'ft-a-seed1', 'ft-b-seed0', 'ft-b-seed1'].sort(),
    );
    const ft = plan.runs.find((r) => r.id === 'ft-b-seed1')!;
    // The same seed's baseline, the one SSL run; their paths now name the folders under the output root.
    expect(ft.after.sort()).toEqual(['ssl', 'st-b-seed1']);
    const e = ft.experiment as {
      name: string;
      training: { seed: number; max_steps: number };
      finetune: { init: string; baseline: string };
    };
    expect(e.name).toBe('ft-b-seed1');
    expect(e.training.seed).toBe(1);
    expect(e.training.max_steps).toBe(3);
    expect(e.finetune.init).toBe(path.join(dir, 'out', 'ssl'));
    expect(e.finetune.baseline).toBe(path.join(dir, 'out', 'st-b-seed1'));
    // Dependency order, and waves: nothing waits for a run of its own or a later wave.
    const pos = new Map(plan.runs.map((r, i) => [r.id, i]));
    for (const r of plan.runs) for (const d of r.after) expect(pos.get(d)!, `${d} before ${r.id}`).toBeLessThan(pos.get(r.id)!);
    expect(waves(plan).map((w) => w.map((r) => r.id).sort())).toEqual([
      ['ssl', 'st-a-seed0', 'st-a-seed1', 'st-b-seed0', 'st-b-seed1'],
      ['ft-a-seed0', 'ft-a-seed1', 'ft-b-seed0', 'ft-b-seed1'],
    ]);
  });

  it('puts each run under the first run that waits for it in the flow trees, the other dependencies as waits', () => {
    const plan = planSweep(gridSweep(tmpDir('flow')));
    const trees = flowTrees(plan);
    const seen: string[] = [];
    const walk = (n: (typeof trees)[number], parent: string | null) => {
      seen.push(n.name);
      const data = n.data as { waitFor: string[] };
      const run = plan.runs.find((r) => r.id === n.name)!;
      const children = (n.children ?? []).map((c) => c.name);
      // Every dependency is either a child in the tree or a wait, never both, never lost.
      expect([...children, ...data.waitFor].sort(), n.name).toEqual([...run.after].sort());
      if (parent) expect(run.id === parent || plan.runs.find((r) => r.id === parent)!.after.includes(run.id)).toBe(true);
      for (const c of n.children ?? []) walk(c, n.name);
    };
    for (const t of trees) walk(t, null);
    expect(seen.sort()).toEqual(plan.runs.map((r) => r.id).sort());
  });

  it('refuses cycles, unknown keys and unknown runs in one line naming the sweep file', () => {
    const dir = tmpDir('plan-bad');
    tinyRun(dir, 'x', 2);
    tinyRun(dir, 'y', 2);
    const two = { experiments: [path.join(dir, 'x.json'), path.join(dir, 'y.json')] };
    const cycle = writeSweep(dir, { name: 'cycle', ...two, after: { x: ['y'], y: ['x'] } });
    expect(() => planSweep(cycle)).toThrow(ConfigError);
    expect(() => planSweep(cycle)).toThrow(/cycle\.sweep\.json: runs wait for each other in a cycle: x, y/);
    const typo = writeSweep(dir, { name: 'typo', ...two, jobz: 2 });
    expect(() => planSweep(typo)).toThrow(/typo\.sweep\.json: unknown key \/jobz/);
    const unknown = writeSweep(dir, { name: 'unknown', ...two, after: { x: ['nope'] } });
    expect(() => planSweep(unknown)).toThrow(/\/after\/x: nope names no run of the sweep/);
    const badExperiment = writeSweep(dir, { name: 'badexp', ...two, set: { training: { lr: 'fast' } } });
    expect(() => planSweep(badExperiment)).toThrow(/badexp\.sweep\.json: run x .*\/training\/lr/);
  });

  it('describes Chapter 4 in sweeps/thesis-small.json and sweeps/thesis-large.json', () => {
    for (const size of ['small', 'large']) {
      const plan = planSweep(`sweeps/thesis-${size}.json`, tmpDir('thesis'));
      expect(plan.runs.length, size).toBe(38); // 18 single-task, 1 multi-task, 1 SSL, 18 fine-tunings
      const [first, second] = waves(plan);
      expect(first!.length).toBe(20);
      expect(second!.every((r) => r.experiment.kind === 'finetune')).toBe(true);
      for (const ft of second!) expect(ft.after.sort()).toEqual([`ssl-${size}`, ft.id.replace('finetune-', 'st-')].sort());
    }
  });
});

describe('mf sweep --slurm script', () => {
  it('submits one job array per wave, each after the previous wave succeeded, each task one run', () => {
    const dir = tmpDir('slurm');
    const plan = planSweep(gridSweep(dir));
    const script = path.join(dir, 'submit.sh');
    fs.writeFileSync(script, slurmScript(plan, { sweepFile: '/shared/grid.json', repo: dir, sbatch: ['--gres=gpu:1'] }));
    expect(spawnSync('bash', ['-n', script]).status).toBe(0);
    // A fake sbatch records its arguments and the batch script it is given, and answers a job id.
    const bin = path.join(dir, 'bin');
    fs.mkdirSync(bin);
    fs.writeFileSync(
      path.join(bin, 'sbatch'),
      `#!/bin/bash\nn=$(ls ${dir}/job-*.args 2>/dev/null | wc -l)\necho "$@" > ${dir}/job-$n.args\ncat > ${dir}/job-$n.sh\necho $((100 + n))\n`,
      { mode: 0o755 },
    );
    const r = spawnSync('bash', [script], { env: { ...process.env, PATH: `${bin}:${process.env.PATH}` }, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'job-0.args'), 'utf8').trim()).toBe('--parsable');
    expect(fs.readFileSync(path.join(dir, 'job-1.args'), 'utf8').trim()).toBe('--parsable --dependency=afterok:100');
    expect(fs.existsSync(path.join(dir, 'job-2.args'))).toBe(false);
    const wave1 = fs.readFileSync(path.join(dir, 'job-1.sh'), 'utf8');
    expect(wave1).toContain('#SBATCH --array=0-3');
    expect(wave1).toContain('#SBATCH --gres=gpu:1');
    expect(wave1).toMatch(/^runs=\(ft-a-seed0 ft-a-seed1 ft-b-seed0 ft-b-seed1\)$/m);
    expect(wave1).toContain(`exec npx mf worker --sweep '/shared/grid.json' --run "\${runs[$SLURM_ARRAY_TASK_ID]}"`);
    // Task 2 of wave 1 is the third run of the wave.
    const task = spawnSync(
      'bash',
      ['-c', `${wave1.match(/^runs=.*$/m)![0]}; SLURM_ARRAY_TASK_ID=2; echo "\${runs[$SLURM_ARRAY_TASK_ID]}"`],
      {
        encoding: 'utf8',
      },
    );
    expect(task.stdout.trim()).toBe('ft-b-seed0');
  });
});
