// Numerical faults: a diverging run stops with a message naming the step and keeps its last good
// checkpoint, or skips the bad updates when told to.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/train/checkpoint.ts';
import { mf, tinyExperiment, tmpDir } from './helpers.ts';

const env = { MEDMNIST_ROOT: tmpDir('data') };

describe('NaN and Inf during training', () => {
  it('stops with the step named and the last good checkpoint intact', () => {
    const dir = tmpDir('nan');
    // A good first epoch (checkpointed), then a learning rate that blows the weights up.
    const exp = tinyExperiment(dir, { name: 'nan' }, { epochs: 3, lr: 1e9, warmup_epochs: 1, grad_clip: undefined, checkpoint_every: 1 });
    const out = path.join(dir, 'out');
    const r = mf(['run', exp, '--out', out, '--quiet'], env);
    expect(r.status).toBe(1);
    const line = r.stderr.split('\n').find((l) => l.startsWith('error:'));
    expect(line).toMatch(
      /(loss became|gradient norm became|weights of .* became) (NaN|Infinity|-Infinity|NaN\/Inf).* step \d+.*last good checkpoint/,
    );
    const ck = loadCheckpoint(out);
    for (const [, t] of ck.model) expect(Array.from(t.data).every(Number.isFinite)).toBe(true);
  });

  it('with nan_policy "skip" the bad updates are skipped and logged', () => {
    const dir = tmpDir('skip');
    const exp = tinyExperiment(
      dir,
      { name: 'skip' },
      { epochs: 1, lr: 1e9, warmup_epochs: 0, grad_clip: undefined, checkpoint_every: 100, nan_policy: 'skip' },
    );
    const out = path.join(dir, 'out');
    const r = mf(['run', exp, '--out', out, '--quiet'], env);
    const log = fs.readFileSync(path.join(out, 'log.jsonl'), 'utf8');
    expect(log).toMatch(/"event":"skip"/);
    expect(r.stderr).toMatch(/update skipped/);
  });
});

describe('a lost GPU device', () => {
  it('ends the run with a clear error, keeps the last checkpoint, and --resume finishes the run', () => {
    const dir = tmpDir('lost');
    const exp = tinyExperiment(dir, { name: 'lost' }, { epochs: 1, checkpoint_every: 2 });
    const out = path.join(dir, 'out');
    const r = mf(['run', exp, '--out', out, '--quiet'], { ...env, MF_FAULT_LOSE_DEVICE_AT_STEP: '3' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/error: GPU device lost.*--resume/);
    expect(loadCheckpoint(out).step).toBe(2);
    const resumed = mf(['run', exp, '--out', out, '--quiet', '--resume'], env);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8')).synthetic2d.steps).toBe(4);
  });
});
