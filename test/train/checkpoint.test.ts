import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { FileFormatError, MfError } from '../../src/errors.ts';
import {
  acquireRunLock,
  loadCheckpoint,
  LOCK_FILE,
  POINTER_FILE,
  saveCheckpoint,
  writeFileAtomic,
  type CheckpointInput,
} from '../../src/train/checkpoint.ts';
import { writeJsonAtomic } from '../../src/util/files.ts';
import { obeyingPermissions } from '../helpers.ts';
import { readSafetensors, type TensorInput } from '../../src/train/safetensors.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-ckpt-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

let dirCount = 0;
const freshDir = (): string => path.join(root, `d${dirCount++}`);

function input(step: number): CheckpointInput {
  return {
    model: new Map<string, TensorInput>([
      ['encoder.w', { shape: [2, 2], data: Float32Array.from([step, 1, 2, 3]) }],
      ['head.b', { shape: [2], data: Float32Array.from([0.5, -0.5]) }],
    ]),
    optimizer: new Map<string, TensorInput>([
      ['encoder.w.m', { shape: [2, 2], data: Float32Array.from([0.1, 0.2, 0.3, step]) }],
      ['encoder.w.v', { shape: [2, 2], data: Float32Array.from([1, 1, 1, 1]) }],
    ]),
    state: { step, epoch: 1, batch_position: 7, rng: { data: 123, augment: 456 }, config_hash: 'abc', extra: { best_auc: 0.9 } },
  };
}

const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`${code}: simulated`), { code });
const leftovers = (dir: string): string[] => fs.readdirSync(dir).filter((n) => n.includes('.tmp-'));

describe('checkpoints', () => {
  it('round-trips model, optimizer and training state; model file is plain safetensors', () => {
    const dir = freshDir();
    const paths = saveCheckpoint(dir, input(5));
    const ck = loadCheckpoint(dir);
    expect(ck.step).toBe(5);
    expect(Array.from(ck.model.get('encoder.w')!.data)).toEqual([5, 1, 2, 3]);
    expect(ck.model.get('head.b')!.shape).toEqual([2]);
    expect(Array.from(ck.optimizer.get('encoder.w.m')!.data)).toEqual([0.1, 0.2, 0.3, 5].map(Math.fround));
    expect(ck.state).toEqual(input(5).state);
    // Weights-only file readable with no knowledge of our pointer.
    const plain = readSafetensors(paths.model);
    expect([...plain.tensors.keys()]).toEqual(['encoder.w', 'head.b']);
    expect(plain.metadata.get('step')).toBe('5');
  });

  it('moves the pointer and deletes the old pair on the next save', () => {
    const dir = freshDir();
    const first = saveCheckpoint(dir, input(1));
    const second = saveCheckpoint(dir, input(2));
    expect(fs.existsSync(first.model)).toBe(false);
    expect(fs.existsSync(first.state)).toBe(false);
    expect(loadCheckpoint(dir).step).toBe(2);
    expect(fs.readdirSync(dir).sort()).toEqual([POINTER_FILE, path.basename(second.model), path.basename(second.state)].sort());
    // re-saving the same step never overwrites the live pair in place
    const again = saveCheckpoint(dir, input(2));
    expect(again.model).not.toBe(second.model);
    expect(loadCheckpoint(dir).step).toBe(2);
  });

  it('a failure mid-write (disk full on the state file) leaves the old checkpoint loadable', () => {
    const dir = freshDir();
    saveCheckpoint(dir, input(1));
    const realWrite = fs.writeSync;
    let calls = 0;
    vi.spyOn(fs, 'writeSync').mockImplementation(((fd: number, buf: Uint8Array, off: number, len: number) => {
      calls++;
      // writeFileAtomic writes each file in two halves (a kill point between them): call 3 is the state file's first.
      if (calls === 3) {
        realWrite(fd, buf, off, Math.floor(len / 2)); // half the state file reaches the disk
        throw errno('ENOSPC');
      }
      return realWrite(fd, buf, off, len);
    }) as typeof fs.writeSync);
    expect(() => saveCheckpoint(dir, input(2))).toThrow(
      /^disk full writing .*state-000000002-[0-9a-f]{8}\.safetensors: free space and rerun with --resume$/,
    );
    vi.restoreAllMocks();
    const ck = loadCheckpoint(dir);
    expect(ck.step).toBe(1);
    expect(Array.from(ck.model.get('encoder.w')!.data)).toEqual([1, 1, 2, 3]);
    expect(leftovers(dir)).toEqual([]);
    expect(fs.readdirSync(dir).filter((n) => n.includes('000000002'))).toEqual([]);
  });

  it('a failure replacing the pointer leaves the old checkpoint loadable', () => {
    const dir = freshDir();
    saveCheckpoint(dir, input(1));
    const realRename = fs.renameSync;
    vi.spyOn(fs, 'renameSync').mockImplementation((from: fs.PathLike, to: fs.PathLike) => {
      if (String(to).endsWith(POINTER_FILE)) throw errno('EIO');
      realRename(from, to);
    });
    expect(() => saveCheckpoint(dir, input(2))).toThrow(MfError);
    vi.restoreAllMocks();
    expect(loadCheckpoint(dir).step).toBe(1);
    expect(leftovers(dir)).toEqual([]);
  });

  it('an I/O error after the pointer moved keeps the new pair it names', () => {
    const dir = freshDir();
    saveCheckpoint(dir, input(1));
    const realFsync = fs.fsyncSync;
    let calls = 0;
    // fsync order per save: model file, dir, state file, dir, pointer file, dir -> fail the last directory fsync
    vi.spyOn(fs, 'fsyncSync').mockImplementation((fd: number) => {
      if (++calls === 6) throw errno('EIO');
      realFsync(fd);
    });
    expect(() => saveCheckpoint(dir, input(2))).toThrow(MfError);
    vi.restoreAllMocks();
    expect(calls).toBe(6);
    expect(loadCheckpoint(dir).step).toBe(2);
  });

  it('a crash between the pair and the pointer is harmless, and the next save cleans up', () => {
    const dir = freshDir();
    saveCheckpoint(dir, input(1));
    // what a kill -9 after writing the new pair (and one torn temp file) leaves behind
    fs.writeFileSync(path.join(dir, 'model-000000002-deadbeef.safetensors'), 'garbage');
    fs.writeFileSync(path.join(dir, 'state-000000002-deadbeef.safetensors.tmp-99999-0badf00d'), 'torn');
    expect(loadCheckpoint(dir).step).toBe(1);
    saveCheckpoint(dir, input(3));
    expect(fs.readdirSync(dir).filter((n) => n.includes('deadbeef'))).toEqual([]);
    expect(loadCheckpoint(dir).step).toBe(3);
  });

  it('refuses a damaged pair, a hostile pointer and a missing checkpoint with one-line errors', () => {
    const dir = freshDir();
    const paths = saveCheckpoint(dir, input(4));
    const bytes = fs.readFileSync(paths.model);
    bytes[bytes.length - 1] ^= 0xff;
    fs.writeFileSync(paths.model, bytes);
    expect(() => loadCheckpoint(dir)).toThrow(FileFormatError);
    expect(() => loadCheckpoint(dir)).toThrow(/do not match the SHA-256/);

    const pointer = JSON.parse(fs.readFileSync(path.join(dir, POINTER_FILE), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(path.join(dir, POINTER_FILE), JSON.stringify({ ...pointer, model: '../../etc/passwd' }));
    expect(() => loadCheckpoint(dir)).toThrow(/checkpoint\.json: \/model is "\.\.\/\.\.\/etc\/passwd", not a model file name/);
    fs.writeFileSync(path.join(dir, POINTER_FILE), '{not json');
    expect(() => loadCheckpoint(dir)).toThrow(/checkpoint\.json: not valid JSON/);

    expect(() => loadCheckpoint(freshDir())).toThrow(/^no checkpoint in .*: .*checkpoint\.json does not exist; run without --resume/);
  });

  it('checks the pointer and the training state against their schemas, naming the JSON path', () => {
    const dir = freshDir();
    saveCheckpoint(dir, input(4));
    const file = path.join(dir, POINTER_FILE);
    const pointer = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(file, JSON.stringify({ ...pointer, version: 2 }));
    expect(() => loadCheckpoint(dir)).toThrow(
      /^.*checkpoint\.json: \/version is 2, not 1, the only pointer version this build reads; restore the file or run without --resume/,
    );
    const { state_sha256: _sha, ...noSha } = pointer;
    fs.writeFileSync(file, JSON.stringify(noSha));
    expect(() => loadCheckpoint(dir)).toThrow(/\/state_sha256 is missing \(expected a SHA-256 hex digest\)/);
    fs.writeFileSync(file, '[]');
    expect(() => loadCheckpoint(dir)).toThrow(FileFormatError);

    // A training state that the schema refuses (here saved by a buggy caller) is refused on load, with its path.
    const bad = { ...input(5), state: { ...input(5).state, rng: { data: 'x' as unknown as number } } };
    const paths = saveCheckpoint(dir, bad);
    expect(() => loadCheckpoint(dir)).toThrow(
      `${paths.state}: training_state/rng/data is "x", not a number; restore the checkpoint or run without --resume to start fresh`,
    );
  });

  it('writeJsonAtomic writes 2-space JSON with a trailing newline, NaN as null', () => {
    const dir = freshDir();
    fs.mkdirSync(dir);
    const file = path.join(dir, 'x.json');
    writeJsonAtomic(file, { a: [1, 2], b: NaN });
    expect(fs.readFileSync(file, 'utf8')).toBe('{\n  "a": [\n    1,\n    2\n  ],\n  "b": null\n}\n');
    expect(fs.readdirSync(dir)).toEqual(['x.json']);
  });

  it('an unwritable directory gives an error naming the path', () => {
    const file = path.join(root, 'plain-file');
    fs.writeFileSync(file, 'x');
    // a directory that cannot exist: its parent is a regular file
    const dir = path.join(file, 'ckpt');
    expect(() => saveCheckpoint(dir, input(1))).toThrow(new RegExp(`^cannot write ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    // permission denied, injected so the test also holds when run as root
    const dir2 = freshDir();
    fs.mkdirSync(dir2);
    vi.spyOn(fs, 'openSync').mockImplementation(() => {
      throw errno('EACCES');
    });
    expect(() => saveCheckpoint(dir2, input(1))).toThrow(/^cannot write .*model-000000001-[0-9a-f]{8}\.safetensors: permission denied/);
  });

  it('a read-only directory (real permissions, also as root) names the path and leaves the directory empty', () => {
    // Root ignores permission bits, so as root (as in CI) the write runs in a child process without root's
    // permission override (obeyingPermissions); otherwise in a child as this user. Either way the kernel refuses
    // it: nothing here is injected.
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-readonly-'));
    fs.chmodSync(base, 0o755);
    const dir = path.join(base, 'ro');
    fs.mkdirSync(dir);
    fs.chmodSync(dir, 0o555);
    const file = path.join(dir, 'x.bin');
    const repo = path.resolve(import.meta.dirname, '../..');
    const script = `import { writeFileAtomic } from ${JSON.stringify(path.join(repo, 'src/util/files.ts'))};
try { writeFileAtomic(${JSON.stringify(file)}, new Uint8Array(4)); console.log('written'); } catch (e) { console.log(e.constructor.name + ': ' + e.message); }`;
    const [command, args] = obeyingPermissions(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script]);
    const r = spawnSync(command, args, { cwd: repo, encoding: 'utf8', timeout: 60_000, env: { ...process.env, HOME: base } });
    try {
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe(
        `MfError: cannot write ${file}: permission denied; fix the directory's permissions or pick another --out`,
      );
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      fs.chmodSync(dir, 0o755);
      fs.rmSync(base, { recursive: true, force: true });
    }
  });

  it('writeFileAtomic replaces contents whole and removes its temp file on failure', () => {
    const dir = freshDir();
    fs.mkdirSync(dir);
    const file = path.join(dir, 'f.bin');
    writeFileAtomic(file, Uint8Array.from([1, 2, 3]));
    vi.spyOn(fs, 'fsyncSync').mockImplementation(() => {
      throw errno('ENOSPC');
    });
    expect(() => writeFileAtomic(file, Uint8Array.from([9, 9, 9, 9]))).toThrow(
      `disk full writing ${file}: free space and rerun with --resume`,
    );
    vi.restoreAllMocks();
    expect(Array.from(fs.readFileSync(file))).toEqual([1, 2, 3]);
    expect(fs.readdirSync(dir)).toEqual(['f.bin']);
  });
});

describe('run lock', () => {
  it('refuses a second acquire while held and allows it after release', () => {
    const dir = freshDir();
    const lock = acquireRunLock(dir);
    const held = JSON.parse(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8')) as { pid: number; hostname: string };
    expect(held.pid).toBe(process.pid);
    expect(held.hostname).toBe(os.hostname());
    expect(process.listeners('exit')).toContain(lock.release);
    expect(() => acquireRunLock(dir)).toThrow(`another mf run (pid ${process.pid}) is using ${dir}; wait for it or pick another --out`);
    lock.release();
    expect(fs.existsSync(path.join(dir, LOCK_FILE))).toBe(false);
    expect(process.listeners('exit')).not.toContain(lock.release);
    lock.release(); // idempotent
    const again = acquireRunLock(dir);
    again.release();
  });

  it('takes over a stale lock whose process is gone, and says so', () => {
    const dir = freshDir();
    fs.mkdirSync(dir);
    const dead = spawnSync(process.execPath, ['-e', '']).pid!; // exited by the time spawnSync returns
    const stale = { pid: dead, hostname: os.hostname(), started: '2020-01-01T00:00:00.000Z', token: 'old' };
    fs.writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify(stale));
    const messages: string[] = [];
    const lock = acquireRunLock(dir, (m) => messages.push(m));
    expect(lock.tookOverFrom).toEqual(stale);
    expect(messages.join('\n')).toMatch(new RegExp(`stale lock .*pid ${dead}.*no longer running`));
    expect(JSON.parse(fs.readFileSync(lock.path, 'utf8'))).toMatchObject({ pid: process.pid });
    lock.release();
  });

  it('refuses a lock held from another host, and never deletes a lock that is not its own', () => {
    const dir = freshDir();
    fs.mkdirSync(dir);
    const other = { pid: 1, hostname: 'elsewhere.example', started: '2020-01-01T00:00:00.000Z', token: 't' };
    fs.writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify(other));
    expect(() => acquireRunLock(dir)).toThrow(/held by pid 1 on host elsewhere\.example/);

    fs.rmSync(path.join(dir, LOCK_FILE));
    const lock = acquireRunLock(dir);
    // someone else replaced it (e.g. after deleting ours by hand); our release must leave theirs alone
    fs.writeFileSync(lock.path, JSON.stringify({ ...other, hostname: os.hostname() }));
    lock.release();
    expect(fs.existsSync(lock.path)).toBe(true);
  });

  it('treats a fresh unreadable lock as a run that is starting', () => {
    const dir = freshDir();
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, LOCK_FILE), '');
    expect(() => acquireRunLock(dir)).toThrow(/another mf run is starting in/);
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(path.join(dir, LOCK_FILE), old, old);
    const messages: string[] = [];
    const lock = acquireRunLock(dir, (m) => messages.push(m));
    expect(messages[0]).toMatch(/unreadable/);
    lock.release();
  });
});
