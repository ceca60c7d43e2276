// `mf sweep --local --jobs 2` on a tiny sweep of three runs, one a fine-tuning of another: every run finishes, the
// fine-tuning starts from its parent's folder under the output root and only after it, `mf table`'s run index
// finds them all, and a second invocation keeps the finished runs instead of training them again.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { indexRuns } from '../../src/cli/table-runs.ts';
import { mf, tmpDir } from '../run/helpers.ts';
import { starts, tinyRun, writeSweep } from './helpers.ts';

describe('mf sweep --local', () => {
  it('runs the sweep two at a time in dependency order and keeps finished runs when run again', () => {
    const dir = tmpDir('sweep-local');
    const env = { MEDMNIST_ROOT: path.join(dir, 'data') };
    for (const name of ['st-a', 'st-b']) tinyRun(dir, name, 4);
    tinyRun(dir, 'ft-a', 4, { kind: 'finetune', finetune: { init: 'runs/st-a', baseline: 'runs/st-a' } });
    const out = path.join(dir, 'out');
    const sweep = writeSweep(dir, {
      name: 'local',
      output: out,
      experiments: ['st-a', 'st-b', 'ft-a'].map((n) => path.join(dir, `${n}.json`)),
    });

    const started = Date.now();
    const r = mf(['sweep', sweep, '--local', '--jobs', '2', '--json'], env);
    const wall = (Date.now() - started) / 1000;
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as { runs: { run: string; state: string }[] };
    expect(summary.runs.map((x) => [x.run, x.state])).toEqual([
      ['st-a', 'done'],
      ['st-b', 'done'],
      ['ft-a', 'done'],
    ]);
    for (const run of ['st-a', 'st-b', 'ft-a']) {
      expect(fs.existsSync(path.join(out, run, 'metrics.json')), run).toBe(true);
      expect(starts(out, run), run).toHaveLength(1);
    }
    // The fine-tuning read its parent's folder under the output root, and started after that run finished.
    const ft = JSON.parse(fs.readFileSync(path.join(out, 'ft-a', 'config.json'), 'utf8'));
    expect(ft.finetune.init).toBe(path.join(out, 'st-a'));
    expect(ft.finetune.baseline).toBe(path.join(out, 'st-a'));
    expect(fs.statSync(path.join(out, 'ft-a', 'config.json')).mtimeMs).toBeGreaterThan(
      fs.statSync(path.join(out, 'st-a', 'metrics.json')).mtimeMs,
    );
    // The two independent runs overlapped (--jobs 2): st-b started before st-a finished.
    expect(fs.statSync(path.join(out, 'st-b', 'config.json')).mtimeMs).toBeLessThan(
      fs.statSync(path.join(out, 'st-a', 'metrics.json')).mtimeMs,
    );
    // `mf table --runs <output root>` sees every run of the sweep.
    const index = indexRuns(out);
    expect(index.runs.map((x) => x.ref.name).sort()).toEqual(['ft-a', 'st-a', 'st-b']);
    process.stderr.write(`mf sweep --local --jobs 2: 3 runs in ${wall.toFixed(1)} s\n`);

    const again = mf(['sweep', sweep, '--local', '--jobs', '2'], env);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).toContain('done st-a (already finished)');
    for (const run of ['st-a', 'st-b', 'ft-a']) expect(starts(out, run), run).toHaveLength(1);
    // A Slurm task's `mf worker --sweep --run` finds its run finished too.
    const task = mf(['worker', '--sweep', sweep, '--run', 'ft-a'], env);
    expect(task.status, task.stderr).toBe(0);
    expect(task.stderr).toContain('done ft-a (already finished)');
  });

  it('reports a run whose data is missing in one line and skips the runs that wait for it', () => {
    const dir = tmpDir('sweep-local-bad');
    tinyRun(dir, 'nodata', 2, { data: { datasets: ['breastmnist'], augment: false } });
    tinyRun(dir, 'after', 2, { kind: 'finetune', finetune: { init: 'runs/nodata' } });
    const sweep = writeSweep(dir, {
      name: 'bad',
      output: path.join(dir, 'out'),
      experiments: [path.join(dir, 'nodata.json'), path.join(dir, 'after.json')],
    });
    const r = mf(['sweep', sweep, '--local'], { MEDMNIST_ROOT: path.join(dir, 'empty') });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^failed +nodata +.*breastmnist/m);
    expect(r.stdout).toMatch(/^skipped +after +waits for nodata/m);
    expect(starts(path.join(dir, 'out'), 'nodata')).toHaveLength(0);
    const task = mf(['worker', '--sweep', sweep, '--run', 'after'], { MEDMNIST_ROOT: path.join(dir, 'empty') });
    expect(task.status).toBe(1);
    expect(task.stderr).toMatch(/^error: after waits for nodata, not finished in /m);
  });
});
