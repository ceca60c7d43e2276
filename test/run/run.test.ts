// `mf run` end to end: the quickstart experiment, its output files, kill -9 and --resume.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensors } from '../../src/train/safetensors.ts';
import { loadCheckpoint } from '../../src/train/checkpoint.ts';
import { exited, mf, mfAsync, tinyExperiment, tmpDir } from './helpers.ts';

const data = tmpDir('data');
const env = { MEDMNIST_ROOT: data };

function finalWeights(out: string): Map<string, Float32Array> {
  const ck = loadCheckpoint(out);
  const m = new Map<string, Float32Array>();
  for (const [k, v] of ck.model) m.set(k, Float32Array.from(v.data));
  return m;
}

const bytesOf = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** metrics.json without what depends on the clock (wall time, throughput). */
function stableMetrics(out: string): unknown {
  return JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'), (k, v) => (/wall|per_s|seconds/.test(k) ? undefined : v));
}

describe('mf run', () => {
  it('runs the quickstart experiment, learns the synthetic set (a stated margin over chance and majority), writes what a researcher reads', () => {
    // The shipped quickstart cut to its first epoch's worth of steps (8 of 80: the full run takes many minutes
    // on lavapipe). Four balanced classes: chance and the majority class are both 25% accuracy, chance AUC 0.5.
    // Measured here, seeds 0/1/2: test ACC 42.2/41.4/51.6%, AUC 0.748/0.729/0.746; the test runs the shipped seed 0.
    const out = path.join(tmpDir('qs'), 'run');
    const r = mf(['run', 'experiments/quickstart.json', '--max-steps', '8', '--out', out, '--quiet'], env);
    expect(r.status, r.stderr).toBe(0);
    for (const f of [
      'config.json',
      'log.jsonl',
      'metrics.json',
      'report.md',
      'loss.svg',
      'val_auc.svg',
      'roc-synthetic2d.svg',
      'checkpoint.json',
    ]) {
      expect(fs.existsSync(path.join(out, f)), f).toBe(true);
    }
    const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    const m = metrics.synthetic2d;
    expect(m.steps).toBe(8);
    expect(m.majority_acc).toBe(0.25);
    expect(m.test.auc, 'test AUC at least 0.15 over chance (0.5)').toBeGreaterThanOrEqual(0.65);
    expect(m.test.auc).toBeLessThanOrEqual(1);
    expect(m.test.acc, 'test ACC at least 10 points over the majority class').toBeGreaterThanOrEqual(m.majority_acc + 0.1);
    expect(m.val.acc, 'val ACC at least 10 points over the majority class').toBeGreaterThanOrEqual(m.majority_acc + 0.1);
    expect(m.beats_majority).toBe(true);
    const best = readSafetensors(path.join(out, 'best-synthetic2d.safetensors'));
    expect(best.tensors.get('input.latents')?.shape).toEqual([32, 64]);
    const report = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
    expect(report).toMatch(/\| synthetic2d \| \d\.\d{3} \|/);
    // The test split's confusion matrix: 4 classes, rows summing to the test split's 128 images (src/data/registry.ts).
    const rows = [...report.matchAll(/^\| (?!true|---)[^|]+ \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$/gm)];
    expect(rows).toHaveLength(4);
    expect(rows.flatMap((r) => r.slice(1, 5).map(Number)).reduce((a, b) => a + b, 0)).toBe(128);
    expect(report).toContain('![roc-synthetic2d.svg](roc-synthetic2d.svg)');
    const log = fs
      .readFileSync(path.join(out, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const train = log.filter((r: { event: string }) => r.event === 'train') as { step: number; loss: number }[];
    expect(train.map((x) => x.step)).toEqual([2, 4, 6, 8]);
    expect(train.every((x) => Number.isFinite(x.loss))).toBe(true);
    // A second run into the same folder without --resume refuses rather than overwriting it.
    const again = mf(['run', 'experiments/quickstart.json', '--max-steps', '3', '--out', out, '--quiet'], env);
    expect(again.status).not.toBe(0);
    expect(again.stderr).toMatch(/already holds a run.*--resume/);
  });

  it('asserts a run refused before its first step (its data missing) leaves no output folder', () => {
    const dir = tmpDir('nofolder');
    const exp = tinyExperiment(dir, { name: 'nofolder', data: { datasets: ['breastmnist'], augment: false } });
    const out = path.join(dir, 'out');
    const r = mf(['run', exp, '--out', out, '--quiet'], { MEDMNIST_ROOT: tmpDir('empty-data') });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^error: .*breastmnist/m);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('asserts a --resume refused for a changed config leaves config.json and the checkpoint as they were', () => {
    const dir = tmpDir('refused');
    const exp = tinyExperiment(dir, { name: 'refused' }, { epochs: 1 });
    const out = path.join(dir, 'out');
    expect(mf(['run', exp, '--out', out, '--quiet'], { ...env, MF_FAULT_LOSE_DEVICE_AT_STEP: '3' }).status).toBe(1);
    const config = fs.readFileSync(path.join(out, 'config.json'));
    const pointer = fs.readFileSync(path.join(out, 'checkpoint.json'));
    const changed = tinyExperiment(tmpDir('refused-changed'), { name: 'refused' }, { epochs: 1, lr: 0.01 });
    const r = mf(['run', changed, '--out', out, '--quiet', '--resume'], env);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/error: .*the checkpoint was made with a different config/);
    expect(fs.readFileSync(path.join(out, 'config.json')).equals(config)).toBe(true);
    expect(fs.readFileSync(path.join(out, 'checkpoint.json')).equals(pointer)).toBe(true);
    // The unchanged experiment still resumes to the end.
    const resumed = mf(['run', exp, '--out', out, '--quiet', '--resume'], env);
    expect(resumed.status, resumed.stderr).toBe(0);
  });

  it('a run killed with SIGKILL and resumed ends with the same weights and metrics as one that never stopped', async () => {
    const dir = tmpDir('resume');
    const exp = tinyExperiment(dir);
    const straight = path.join(dir, 'straight');
    const r = mf(['run', exp, '--out', straight, '--quiet'], env);
    expect(r.status, r.stderr).toBe(0);

    const killed = path.join(dir, 'killed');
    // Kill at several points: once mid-training, once right as a checkpoint is being written.
    for (const waitForCheckpoints of [1, 3]) {
      const child = mfAsync(
        ['run', exp, '--out', killed, '--quiet', ...(fs.existsSync(path.join(killed, 'checkpoint.json')) ? ['--resume'] : [])],
        env,
      );
      await new Promise<void>((resolve) => {
        const poll = setInterval(() => {
          const log = path.join(killed, 'log.jsonl');
          const n = fs.existsSync(log) ? (fs.readFileSync(log, 'utf8').match(/"checkpoint"/g) ?? []).length : 0;
          if (n >= waitForCheckpoints || child.exitCode !== null) {
            clearInterval(poll);
            child.kill('SIGKILL');
            resolve();
          }
        }, 20);
      });
      await exited(child);
      // Whatever instant the kill hit, the checkpoint on disk is whole.
      expect(() => loadCheckpoint(killed)).not.toThrow();
    }
    const resumed = mf(['run', exp, '--out', killed, '--quiet', '--resume'], env);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/resume: continuing from step/);

    const a = finalWeights(straight);
    const b = finalWeights(killed);
    expect([...b.keys()]).toEqual([...a.keys()]);
    for (const [k, v] of a) expect(Buffer.compare(Buffer.from(v.buffer), Buffer.from(b.get(k)!.buffer)), k).toBe(0);
    const ma = JSON.parse(fs.readFileSync(path.join(straight, 'metrics.json'), 'utf8'));
    const mb = JSON.parse(fs.readFileSync(path.join(killed, 'metrics.json'), 'utf8'));
    expect(mb.synthetic2d.test).toEqual(ma.synthetic2d.test);
    expect(mb.synthetic2d.val).toEqual(ma.synthetic2d.val);
  });

  it('Ctrl-C (SIGINT) saves a checkpoint at the end of the step and exits 130; --resume ends bit-identical to an uninterrupted run', async () => {
    const dir = tmpDir('sigint');
    // No periodic checkpoint is due before the end: the one on disk after Ctrl-C is the interrupt's own.
    const exp = tinyExperiment(dir, {}, { epochs: 2, checkpoint_every: 100 });
    const straight = path.join(dir, 'straight');
    const r = mf(['run', exp, '--out', straight, '--quiet'], env);
    expect(r.status, r.stderr).toBe(0);
    const total = loadCheckpoint(straight).step;
    expect(total).toBe(8);

    const out = path.join(dir, 'out');
    const child = mfAsync(['run', exp, '--out', out, '--quiet'], env);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (/step 2\//.test(stderr) || child.exitCode !== null) {
          clearInterval(poll);
          child.kill('SIGINT');
          resolve();
        }
      }, 20);
    });
    expect(await exited(child), stderr).toBe(130);
    expect(stderr).toMatch(/interrupted: checkpoint saved at step \d+/);
    const step = loadCheckpoint(out).step;
    expect(step).toBeGreaterThanOrEqual(2);
    expect(step, 'interrupted before the end').toBeLessThan(total);
    expect(stderr).toContain(`interrupted: checkpoint saved at step ${step} `);
    expect(fs.existsSync(path.join(out, 'metrics.json')), 'no metrics from an interrupted run').toBe(false);
    const resumed = mf(['run', exp, '--out', out, '--quiet', '--resume'], env);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(new RegExp(`resume: continuing from step ${step} `));

    // The resumed run ends where the uninterrupted one did: the final weights file and the best-epoch weights
    // byte for byte, the AdamW moments tensor for tensor, the same metrics (timings aside).
    const ca = loadCheckpoint(straight);
    const cb = loadCheckpoint(out);
    expect(cb.step).toBe(total);
    expect(fs.readFileSync(cb.modelPath).equals(fs.readFileSync(ca.modelPath)), 'final model safetensors').toBe(true);
    for (const f of ['best-synthetic2d.safetensors'])
      expect(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(straight, f))), f).toBe(true);
    expect([...cb.optimizer.keys()]).toEqual([...ca.optimizer.keys()]);
    for (const [k, t] of ca.optimizer) expect(bytesOf(cb.optimizer.get(k)!.data).equals(bytesOf(t.data)), k).toBe(true);
    expect(stableMetrics(out)).toEqual(stableMetrics(straight));
  });

  it('a second mf run on the same folder is refused while the first holds the lock', async () => {
    const dir = tmpDir('lock');
    const exp = tinyExperiment(dir, {}, { epochs: 3 });
    const out = path.join(dir, 'out');
    const first = mfAsync(['run', exp, '--out', out, '--quiet'], env);
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (fs.existsSync(path.join(out, 'run.lock')) || first.exitCode !== null) {
          clearInterval(poll);
          resolve();
        }
      }, 20);
    });
    const second = mf(['run', exp, '--out', out, '--quiet', '--resume'], env);
    first.kill('SIGKILL');
    await exited(first);
    expect(second.status).not.toBe(0);
    expect(second.stderr).toMatch(/another mf run \(pid \d+\) is using/);
    // The first run died without releasing its lock: a new run detects the stale lock and continues.
    const third = mf(['run', exp, '--out', out, '--quiet', '--resume', '--max-steps', '2'], env);
    expect(third.stderr).not.toMatch(/another mf run/);
  });
});
