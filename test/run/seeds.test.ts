// `mf run --seeds`: one run per seed in its own folder, a summary with mean ± std, and the majority-class
// baseline beside every test ACC.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { meanStd } from '../../src/train/metrics.ts';
import { mf, tinyExperiment, tmpDir } from './helpers.ts';

const env = { MEDMNIST_ROOT: tmpDir('data') };

describe('repeated runs over seeds', () => {
  it('meanStd is the sample standard deviation', () => {
    expect(meanStd([1, 2, 3])).toEqual([2, 1]);
    expect(meanStd([5])).toEqual([5, 0]);
    expect(Number.isNaN(meanStd([])[0])).toBe(true);
  });

  it('--seeds runs each seed into seed-<s>/ and summarises them; --resume keeps finished seeds', () => {
    const dir = tmpDir('seeds');
    const exp = tinyExperiment(dir, {}, { epochs: 1, checkpoint_every: 100, seed: undefined });
    const out = path.join(dir, 'out');
    const r = mf(['run', exp, '--out', out, '--quiet', '--seeds', '1,2'], env);
    expect(r.status, r.stderr).toBe(0);
    const per = [1, 2].map((s) => JSON.parse(fs.readFileSync(path.join(out, `seed-${s}`, 'metrics.json'), 'utf8')).synthetic2d);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'seed-2', 'config.json'), 'utf8')).training.seed).toBe(2);
    // Different seeds train differently.
    expect(per[0].test.auc).not.toBe(per[1].test.auc);
    const summary = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8')).synthetic2d;
    const aucs = per.map((p) => p.test.auc);
    expect(summary.seeds).toEqual([1, 2]);
    expect(summary.test.auc).toBeCloseTo((aucs[0] + aucs[1]) / 2, 12);
    expect(summary.test_std.auc).toBeCloseTo(Math.abs(aucs[0] - aucs[1]) / Math.SQRT2, 12);
    // The majority baseline is stated and compared with the mean ACC.
    expect(summary.majority_acc).toBeGreaterThan(0);
    expect(summary.beats_majority).toBe(summary.test.acc > summary.majority_acc);
    expect(fs.readFileSync(path.join(out, 'report.md'), 'utf8')).toMatch(/test AUC \(mean ± std\)/);

    const again = mf(['run', exp, '--out', out, '--quiet', '--seeds', '1,2', '--resume'], env);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/seed 1: finished in .*, kept/);
    expect(again.stderr).not.toMatch(/epoch 1\/1/);
  });

  it('refuses malformed seed lists and --seed together with --seeds', () => {
    const dir = tmpDir('seeds-bad');
    const exp = tinyExperiment(dir);
    for (const bad of ['1,1', 'a', '-1', '']) {
      const r = mf(['run', exp, '--out', path.join(dir, 'x'), '--seeds', bad], env);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/^error: --seeds must be distinct non-negative integers/m);
    }
    const both = mf(['run', exp, '--out', path.join(dir, 'y'), '--seeds', '1,2', '--seed', '3'], env);
    expect(both.stderr).toMatch(/--seed and --seeds are both given/);
  });
});
