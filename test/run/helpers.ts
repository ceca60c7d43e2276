// Helpers for tests that drive the `mf` command as a user would, in a child process.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const MF = path.join(ROOT, 'bin/mf.js');

export function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `mf-${prefix}-`));
}

/** A tiny Medformer experiment on the synthetic set: seconds per step on lavapipe. */
/** A Medformer small enough that a test run takes seconds on a CPU rasteriser. */
export const TINY_MODEL = {
  preset: 'small',
  hidden_dim: 32,
  num_layers: 1,
  num_heads: 2,
  mlp_ratio: 2,
  latent_dim: 16,
  num_latent_tokens: 8,
  num_task_latents: 2,
};
/** TINY_MODEL with a 3D input path of 28³ volumes in 7³ patches. */
export const TINY_MODEL_3D = { ...TINY_MODEL, image_size_3d: 28, patch_size_3d: 7 };

export function tinyExperiment(dir: string, over: Record<string, unknown> = {}, training: Record<string, unknown> = {}): string {
  const exp = {
    name: 'tiny',
    kind: 'supervised',
    model: TINY_MODEL,
    data: { datasets: ['synthetic2d'], augment: false, train_limit: 64 },
    training: {
      epochs: 2,
      batch_size: 16,
      lr: 0.003,
      weight_decay: 0.001,
      warmup_epochs: 0.5,
      grad_clip: 1,
      seed: 3,
      log_every: 1,
      checkpoint_every: 2,
      ...training,
    },
    ...over,
  };
  const file = path.join(dir, `${exp.name}.json`);
  fs.writeFileSync(file, JSON.stringify(exp, null, 2));
  return file;
}

export interface MfResult {
  status: number | null;
  /** The signal that ended the process (e.g. SIGKILL from a kill point), or null. */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function mf(args: string[], env: Record<string, string> = {}, timeoutMs = 600_000): MfResult {
  const r = spawnSync(process.execPath, [MF, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  return {
    status: r.status,
    signal: r.signal,
    stdout: r.stdout,
    stderr: r.stderr
      .split('\n')
      .filter((l) => !/artificially reduced/.test(l))
      .join('\n'),
  };
}

export function mfAsync(args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [MF, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

export function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
}
