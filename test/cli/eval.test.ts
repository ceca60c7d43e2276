// `mf eval` end to end on a tiny synthetic run trained here: the numbers of metrics.json again, from the run folder,
// from a model file alone (its metadata) and from an older run whose files carry none; an SSL run refused in one line.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readSafetensors, writeSafetensors } from '../../src/train/safetensors.ts';
import { MF, mf, ROOT, tinyExperiment, tmpDir } from '../run/helpers.ts';

const env = { MEDMNIST_ROOT: tmpDir('eval-data'), LP_NUM_THREADS: '1' };
const run = path.join(tmpDir('eval'), 'run');

interface EvalJson {
  split: string;
  name: string;
  tasks: Record<string, { auc: number; acc: number; majority_acc: number; beats_majority: boolean; n: number; weights: string }>;
}

const evalJson = (args: string[]): EvalJson => {
  const r = mf(['eval', ...args, '--json'], env);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as EvalJson;
};

beforeAll(() => {
  const r = mf(['run', tinyExperiment(tmpDir('eval-exp'), { name: 'evaltiny' }), '--out', run, '--quiet'], env);
  if (r.status !== 0) throw new Error(`training the tiny run failed: ${r.stderr}`);
});

describe('mf eval', () => {
  it('gives exactly the test and validation numbers of metrics.json from the run folder and from its best checkpoint alone', () => {
    const metrics = JSON.parse(fs.readFileSync(path.join(run, 'metrics.json'), 'utf8')).synthetic2d;
    const test = evalJson([run, '--split', 'test']).tasks.synthetic2d;
    expect({ auc: test.auc, acc: test.acc }).toEqual(metrics.test);
    expect(test.majority_acc).toBe(metrics.majority_acc);
    expect(test.beats_majority).toBe(metrics.beats_majority);
    expect(test.n).toBe(128);
    expect(path.basename(test.weights)).toBe('best-synthetic2d.safetensors');
    // The best checkpoint is the one saved at the best validation epoch: its val scores are the recorded ones.
    const val = evalJson([run, '--split', 'val']).tasks.synthetic2d;
    expect({ auc: val.auc, acc: val.acc }).toEqual(metrics.val);

    // The model file alone, copied out of its folder, rebuilds the model from its own metadata.
    const lone = path.join(tmpDir('eval-lone'), 'best.safetensors');
    fs.copyFileSync(path.join(run, 'best-synthetic2d.safetensors'), lone);
    const meta = readSafetensors(lone).metadata;
    expect(meta.get('format')).toBe('medformer-model');
    expect(meta.get('name')).toBe('evaltiny');
    expect(JSON.parse(meta.get('model')!)).toMatchObject({ preset: 'small', hidden_dim: 32, num_layers: 1 });
    expect(JSON.parse(meta.get('tasks')!)).toEqual([
      { key: 'synthetic2d', task: 'multi-class', outputs: 4, head: 'classes', dim: 2, channels: 1, modality: 8, body_part: 9 },
    ]);
    expect(JSON.parse(meta.get('inputs')!)).toEqual([{ dim: 2, channels: 1 }]);
    const alone = evalJson([lone]);
    expect(alone.name).toBe('evaltiny');
    expect({ auc: alone.tasks.synthetic2d.auc, acc: alone.tasks.synthetic2d.acc }).toEqual(metrics.test);

    // The final checkpoint's model file carries the same description.
    const final = fs.readdirSync(run).find((f) => /^model-\d+-[0-9a-f]+\.safetensors$/.test(f))!;
    expect(readSafetensors(path.join(run, final)).metadata.get('tasks')).toBe(meta.get('tasks'));
  });

  it("keeps Dawn's two adapter-limit warnings off stderr (a file here, as in a terminal), and shows them with --verbose", () => {
    // stderr goes to a file: a terminal, a file or a pipe can be reopened for the duration of the call that prints
    // them; the socket pair a Node parent (like the mf helper) gives a child cannot, and is left alone.
    const raw = (args: string[]) => {
      const file = path.join(tmpDir('eval-stderr'), 'stderr.txt');
      const fd = fs.openSync(file, 'w');
      try {
        const r = spawnSync(process.execPath, [MF, ...args], {
          cwd: ROOT,
          env: { ...process.env, ...env },
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', fd],
          timeout: 300_000,
        });
        return { status: r.status, stdout: r.stdout, stderr: fs.readFileSync(file, 'utf8') };
      } finally {
        fs.closeSync(fd);
      }
    };
    const quiet = raw(['eval', run]);
    expect(quiet.status, quiet.stderr).toBe(0);
    expect(quiet.stdout).toMatch(/^synthetic2d {2}AUC 0\.\d{4} {2}ACC \d+\.\d% \(majority class 25\.0%, (above|NOT above)\)/m);
    expect(quiet.stderr).not.toMatch(/artificially reduced/);
    const verbose = raw(['eval', run, '--verbose']);
    expect(verbose.status, verbose.stderr).toBe(0);
    // Only where the driver prints them (lavapipe and other Vulkan drivers with large dynamic-buffer limits).
    if (/llvmpipe|lavapipe/i.test(mf(['devices'], env).stdout)) expect(verbose.stderr).toMatch(/artificially reduced/);
  });

  it('reads a run whose checkpoints predate model metadata through its config.json, and names a bare old file with the fix', () => {
    const old = path.join(tmpDir('eval-old'), 'run');
    fs.cpSync(run, old, { recursive: true });
    const best = path.join(old, 'best-synthetic2d.safetensors');
    writeSafetensors(best, readSafetensors(best).tensors, { step: '4', epoch: '0' });
    const metrics = JSON.parse(fs.readFileSync(path.join(old, 'metrics.json'), 'utf8')).synthetic2d;
    const r = evalJson([old]).tasks.synthetic2d;
    expect({ auc: r.auc, acc: r.acc }).toEqual(metrics.test);

    const bare = path.join(tmpDir('eval-bare'), 'old.safetensors');
    fs.copyFileSync(best, bare);
    const refused = mf(['eval', bare], env);
    expect(refused.status).toBe(1);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(/^error: .*old\.safetensors: .*does not describe the model.*pass the run folder/);
  });

  it('says in one line that an SSL run has no heads to evaluate or predict, and exits non-zero', () => {
    const ssl = tmpDir('eval-ssl');
    fs.writeFileSync(path.join(ssl, 'config.json'), JSON.stringify({ name: 'pre', kind: 'ssl', model: { preset: 'small' } }));
    for (const cmd of [
      ['eval', ssl],
      ['predict', ssl, 'x.png'],
    ]) {
      const r = mf(cmd, env);
      expect(r.status, cmd[0]).toBe(1);
      expect(r.stderr.trim().split('\n'), cmd[0]).toHaveLength(1);
      expect(r.stderr).toMatch(/self-supervised \(ssl\) run: .*no task heads.*"finetune" run/);
    }
  });
});
