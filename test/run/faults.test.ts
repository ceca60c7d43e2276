// Numerical faults: a NaN at any step (injected with MF_FAULT_NAN_AT_STEP: the schema bounds lr at 1, so a run
// cannot be made to diverge on purpose) stops the run with a message naming that step and keeps its last good
// checkpoint, or skips the bad update when told to; non-finite weights on disk are refused.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCheckpoint, saveCheckpoint } from '../../src/train/checkpoint.ts';
import { type TensorInput, writeSafetensors } from '../../src/train/safetensors.ts';
import { mf, tinyExperiment, tmpDir } from './helpers.ts';

const env = { MEDMNIST_ROOT: tmpDir('data') };

describe('a NaN gradient at a step that is not logged (MF_FAULT_NAN_AT_STEP)', () => {
  // 4 steps an epoch, 2 epochs; only step 8 is logged, so step 3 is seen by the device-side guard alone.
  const training = { epochs: 2, log_every: 50, checkpoint_every: 2 };
  const faultEnv = { ...env, MF_FAULT_NAN_AT_STEP: '3' };
  const finiteWeights = (out: string) => {
    const ck = loadCheckpoint(out);
    for (const [name, t] of ck.model) expect(Array.from(t.data).every(Number.isFinite), name).toBe(true);
    return ck;
  };

  it('"stop" asserts exit 1, names step 3 exactly, and keeps the step-2 checkpoint with finite weights', () => {
    const dir = tmpDir('nan-stop');
    const exp = tinyExperiment(dir, { name: 'nan-stop' }, training);
    const out = path.join(dir, 'out');
    const r = mf(['run', exp, '--out', out, '--quiet'], faultEnv);
    expect(r.status, r.stderr).toBe(1);
    const line = r.stderr.split('\n').find((l) => l.startsWith('error:'));
    expect(line).toMatch(/NaN\/Inf at step 3; its update was not applied.*last good checkpoint/);
    expect(finiteWeights(out).step).toBe(2);
  });

  it('"skip" asserts the run finishes, logs the one skipped step and ends with finite weights', () => {
    const dir = tmpDir('nan-skip');
    const exp = tinyExperiment(dir, { name: 'nan-skip' }, { ...training, nan_policy: 'skip' });
    const out = path.join(dir, 'out');
    const r = mf(['run', exp, '--out', out, '--quiet'], faultEnv);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/1 step with a NaN\/Inf loss or gradient norm \(the last at step 3\); update skipped/);
    const skips = fs
      .readFileSync(path.join(out, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string })
      .filter((e) => e.event === 'skip');
    expect(skips).toEqual([expect.objectContaining({ step: 3, skipped: 1, total: 1, first_step: 3 })]);
    expect(finiteWeights(out).step).toBe(8);
  });
});

describe('non-finite weights on disk', () => {
  it('asserts --resume refuses a checkpoint holding a NaN weight, naming its model file', () => {
    const dir = tmpDir('nan-ck');
    const exp = tinyExperiment(dir, { name: 'nan-ck' }, { epochs: 1, checkpoint_every: 2 });
    const out = path.join(dir, 'out');
    // Stop the run after its step-2 checkpoint, then put a NaN into that checkpoint (with valid hashes).
    expect(mf(['run', exp, '--out', out, '--quiet'], { ...env, MF_FAULT_LOSE_DEVICE_AT_STEP: '3' }).status).toBe(1);
    const ck = loadCheckpoint(out);
    const [name, t] = [...ck.model][0];
    const data = Float32Array.from(t.data as Float32Array);
    data[1] = Number.NaN;
    const model = new Map<string, TensorInput>(ck.model);
    model.set(name, { shape: t.shape, data });
    saveCheckpoint(out, { model, optimizer: ck.optimizer, state: ck.state });
    const bad = loadCheckpoint(out).modelPath;
    const r = mf(['run', exp, '--out', out, '--quiet', '--resume'], env);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`error: ${bad}: tensor ${name} holds NaN at element 1`);
  });

  it('asserts finetune.init refuses a .safetensors file holding an Inf, naming the file', () => {
    const dir = tmpDir('nan-init');
    const init = path.join(dir, 'init.safetensors');
    writeSafetensors(init, new Map([['input.latents', { shape: [2], data: new Float32Array([1, Number.POSITIVE_INFINITY]) }]]));
    const exp = tinyExperiment(dir, { name: 'ft-nan', kind: 'finetune', finetune: { init } }, { epochs: 1 });
    const r = mf(['run', exp, '--out', path.join(dir, 'out'), '--quiet'], env);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`error: ${init}: tensor input.latents holds Infinity at element 1`);
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
