// Broken and hostile inputs reach the user as one clear line and a non-zero exit, never a stack trace.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeSafetensors } from '../../src/train/safetensors.ts';
import { ensureSynthetic } from '../../src/data/synthetic.ts';
import { obeyingPermissions } from '../helpers.ts';
import { mf, type MfResult, MF, ROOT, tinyExperiment, tmpDir } from './helpers.ts';

/** Every path under `dir` with its size (a folder as -1), sorted: what a refused run must leave unchanged. */
function listing(dir: string): [string, number][] {
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .map((f): [string, number] => {
      const st = fs.statSync(path.join(dir, f));
      return [f, st.isDirectory() ? -1 : st.size];
    })
    .sort((a, b) => a[0].localeCompare(b[0]));
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `mf` obeying file permission bits even when this process is root (test/helpers.ts obeyingPermissions). */
function mfObeyingPermissions(args: string[], env: Record<string, string>): MfResult {
  const [command, argv] = obeyingPermissions(process.execPath, [MF, ...args]);
  const r = spawnSync(command, argv, { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

function expectOneLineError(r: { status: number | null; stderr: string }, pattern: RegExp): void {
  expect(r.status).toBe(1);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '' && !/^(warning|Warning):/.test(l));
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe('hostile inputs to mf run', () => {
  const dir = tmpDir('hostile');

  it('an experiment with an unknown key names the key', () => {
    const file = path.join(dir, 'unknown.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        name: 'x',
        kind: 'supervised',
        model: { preset: 'small' },
        data: { datasets: ['synthetic2d'] },
        training: { batch_size: 8, lr: 1e-3, weight_decay: 0, warmup_epochs: 0, lrr: 1 },
      }),
    );
    expectOneLineError(mf(['run', file, '--out', path.join(dir, 'o1')]), /lrr/);
  });

  it('a wrong type and a missing data set are named', () => {
    const file = path.join(dir, 'types.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        name: 'x',
        kind: 'supervised',
        model: { preset: 'small' },
        data: { datasets: ['synthetic2d'] },
        training: { batch_size: '8', lr: 1e-3, weight_decay: 0, warmup_epochs: 0 },
      }),
    );
    expectOneLineError(mf(['run', file, '--out', path.join(dir, 'o2')]), /batch_size/);
    const file2 = path.join(dir, 'nods.json');
    fs.writeFileSync(
      file2,
      JSON.stringify({
        name: 'x',
        kind: 'supervised',
        model: { preset: 'small' },
        data: { datasets: ['notamnist'] },
        training: { batch_size: 8, lr: 1e-3, weight_decay: 0, warmup_epochs: 0 },
      }),
    );
    expectOneLineError(mf(['run', file2, '--out', path.join(dir, 'o3')]), /notamnist/);
  });

  it('malformed JSON gives the line and column', () => {
    const file = path.join(dir, 'bad.json');
    fs.writeFileSync(file, '{\n  "name": "x",\n  "kind": supervised\n}');
    expectOneLineError(mf(['run', file]), /bad\.json.*line 3/);
  });

  it('a run name that escapes runs/ is refused', () => {
    const file = path.join(dir, 'escape.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        name: '../../etc',
        kind: 'supervised',
        model: { preset: 'small' },
        data: { datasets: ['synthetic2d'] },
        training: { batch_size: 8, lr: 1e-3, weight_decay: 0, warmup_epochs: 0 },
      }),
    );
    expectOneLineError(mf(['run', file]), /name/);
  });

  it('a truncated npz names the file', () => {
    const data = tmpDir('trunc');
    const real = process.env.MEDFORMER_SHARED_DATA;
    const bytes =
      real && fs.existsSync(path.join(real, 'breastmnist.npz'))
        ? fs.readFileSync(path.join(real, 'breastmnist.npz'))
        : Buffer.from('PK\x03\x04 not really a zip');
    fs.writeFileSync(path.join(data, 'breastmnist.npz'), bytes.subarray(0, Math.floor(bytes.length / 2)));
    const exp = tinyExperiment(dir, { name: 'trunc', data: { datasets: ['breastmnist'], augment: false } });
    expectOneLineError(mf(['run', exp, '--out', path.join(dir, 'o4'), '--data-dir', data]), /breastmnist\.npz/);
  });

  it('a missing data file says where to put it', () => {
    const exp = tinyExperiment(dir, { name: 'missing', data: { datasets: ['pathmnist'], augment: false } });
    expectOneLineError(mf(['run', exp, '--out', path.join(dir, 'o5'), '--data-dir', tmpDir('empty')]), /pathmnist/);
  });

  it('a safetensors file whose header lies is refused as a fine-tuning init', () => {
    const good = encodeSafetensors(new Map([['w', { shape: [2, 2], data: new Float32Array(4) }]]));
    const lying = Buffer.from(good);
    lying.writeUInt32LE(1 << 30, 0);
    const init = path.join(dir, 'lying.safetensors');
    fs.writeFileSync(init, lying);
    const exp = tinyExperiment(dir, { name: 'ft', kind: 'finetune', finetune: { init } });
    expectOneLineError(mf(['run', exp, '--out', path.join(dir, 'o6')], { MEDMNIST_ROOT: tmpDir('d') }), /lying\.safetensors/);
  });

  it('a non-number for --max-steps is quoted with the range wanted, not "got NaN"', () => {
    const exp = tinyExperiment(dir, { name: 'flags' });
    const r = mf(['run', exp, '--max-steps', 'abc', '--out', path.join(dir, 'o7')]);
    expectOneLineError(r, /--max-steps "abc" is not a whole number in \[1, 1000000000\]; give one, e.g. --max-steps 1000$/);
    expect(r.stderr).not.toMatch(/NaN/);
  });

  it('one data set listed twice in different case is refused naming both entries', () => {
    const exp = tinyExperiment(dir, { name: 'dup', data: { datasets: ['breastmnist', 'BreastMNIST'], augment: false } });
    expectOneLineError(
      mf(['run', exp, '--out', path.join(dir, 'o8')]),
      /"breastmnist" and \/data\/datasets\/1 "BreastMNIST" are the same data set/,
    );
  });

  it('an absurd batch size in the experiment is refused naming the key and the bound', () => {
    const exp = tinyExperiment(dir, { name: 'huge' }, { batch_size: 1e300 });
    expectOneLineError(mf(['run', exp, '--out', path.join(dir, 'o9')]), /\/training\/batch_size must be <= 65536/);
  });

  it('an unwritable output folder (a regular file in its place or above it, a read-only parent) names the path, exits 1, writes nothing', () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-nowrite-'));
    fs.chmodSync(base, 0o755);
    const data = path.join(base, 'data');
    ensureSynthetic(data, 'synthetic2d');
    const env = { MEDMNIST_ROOT: data };
    const exp = tinyExperiment(base, { name: 'nowrite' });
    const blocker = path.join(base, 'afile');
    fs.writeFileSync(blocker, 'x');
    const readOnly = path.join(base, 'read-only');
    fs.mkdirSync(readOnly, { mode: 0o555 });
    fs.chmodSync(readOnly, 0o555);
    const before = listing(base);
    const cases: [string, RegExp, (args: string[]) => MfResult][] = [
      [path.join(blocker, 'sub'), /ENOTDIR: not a directory/, (args) => mf(args, env)],
      [blocker, /EEXIST: file already exists/, (args) => mf(args, env)],
      // Real permissions: root ignores mode bits, so as root (as in CI) the command runs without that override.
      [path.join(readOnly, 'run'), /EACCES: permission denied/, (args) => mfObeyingPermissions(args, env)],
    ];
    for (const [out, why, run] of cases) {
      const r = run(['run', exp, '--out', out]);
      expectOneLineError(r, new RegExp(`^error: cannot create output folder ${escapeRe(out)}: .*${why.source}.*\\(pick another --out\\)$`));
      expect(listing(base), `--out ${out}: nothing written`).toEqual(before);
    }
    expect(fs.readFileSync(blocker, 'utf8')).toBe('x');
    fs.rmSync(base, { recursive: true, force: true });
  });

  it('mf bench train --only with a name that picks nothing is refused, naming the choices', () => {
    expectOneLineError(mf(['bench', 'train', '--only', 'small-4d']), /unknown --only "small-4d".*small-2d, small-3d, large-2d/);
  });

  it('mf bench train --compare torch without a PyTorch, or for a case it has no peer for, is refused in one line', () => {
    expectOneLineError(
      mf(['bench', 'train', '--compare', 'torch', '--only', 'small-3d']),
      /PyTorch peer for small-2d only, not "small-3d"/,
    );
    expectOneLineError(
      mf(['bench', 'train', '--compare', 'torch'], { MF_PYTHON: '/nonexistent/python3' }),
      /the PyTorch peer did not run .*install it with `apt-get install python3-torch libopenblas0-pthread`/,
    );
    expectOneLineError(mf(['bench', 'kernels', '--compare', 'torch']), /--compare torch applies to `mf bench train`/);
  });
});
