// Crash-safe checkpoints and the run lock.
//
// Layout of a checkpoint directory:
//   checkpoint.json                              pointer to the current pair, written last and atomically
//   model-<step 9 digits>-<8 hex>.safetensors    weights only, plain safetensors any tool can read
//   state-<step 9 digits>-<8 hex>.safetensors    optimizer moments; JSON training state in __metadata__
//   run.lock                                     pid/host/start of the run that owns the directory
//
// A save writes the new pair under fresh names (the random suffix keeps a re-save of the same step from touching
// the live pair), then atomically replaces checkpoint.json, then deletes the old pair. A crash at any point
// leaves checkpoint.json naming a complete pair: before the pointer moves it names the old one, after it the new
// one. The pointer also stores each file's SHA-256, so a pair damaged afterwards is refused instead of loaded.
//
// All file I/O goes through the default `fs` export (not named imports) so tests can inject failures with spies.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileFormatError, MfError } from '../errors.ts';
import { decodeSafetensors, encodeSafetensors, type SafeTensor, type TensorInput } from './safetensors.ts';

// ---------------------------------------------------------------------------------------------------------------
// Atomic file writes

/** One line naming the path and the fix, from a Node fs error. */
function writeError(file: string, e: unknown): MfError {
  if (e instanceof MfError) return e;
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new MfError(`disk full writing ${file}: free space and rerun with --resume`);
    case 'EACCES':
    case 'EPERM':
      return new MfError(`cannot write ${file}: permission denied; fix the directory's permissions or pick another --out`);
    case 'EROFS':
      return new MfError(`cannot write ${file}: the file system is read-only; pick another --out`);
    case 'ENOENT':
    case 'ENOTDIR':
      return new MfError(`cannot write ${file}: ${path.dirname(file)} is not an existing directory; create it or pick another --out`);
    default:
      return new MfError(`cannot write ${file}: ${err.code ?? ''} ${err.message ?? String(e)}`.replace(/\s+/g, ' ').trim());
  }
}

function fsyncDir(dir: string): void {
  // Makes the rename itself durable. Some platforms cannot fsync a directory (EISDIR/EINVAL/EPERM on Windows and
  // some network file systems); only an I/O error is worth failing the save for.
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EIO') throw writeError(dir, e);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Writes `bytes` to `file` so that readers see either the old contents or the new, never a torn file:
 * temp file in the same directory, fsync, rename over `file`, fsync the directory.
 * On failure the temp file is removed and an MfError names `file`.
 */
export function writeFileAtomic(file: string, bytes: Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx', 0o644);
    let off = 0;
    while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // already failing; the original error is the one to report
      }
    }
    fs.rmSync(tmp, { force: true });
    throw writeError(file, e);
  }
  fsyncDir(path.dirname(file));
}

/** Writes a safetensors file atomically (see writeFileAtomic). */
export function writeSafetensors(
  file: string,
  tensors: ReadonlyMap<string, TensorInput>,
  metadata: ReadonlyMap<string, string> | Record<string, string> = {},
): void {
  writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}

// ---------------------------------------------------------------------------------------------------------------
// Checkpoints

/** Everything besides tensors that a resumed run needs to continue bit-for-bit. */
export interface TrainingState {
  /** Optimizer steps taken so far. */
  step: number;
  /** Epoch in progress (0-based). */
  epoch: number;
  /** Batches of `epoch` already consumed, so the loader can seek past them. */
  batch_position: number;
  /** State of each named Rng (src/util/rng.ts keeps its whole state in one uint32). */
  rng: Record<string, number>;
  /** Hash of the resolved experiment config; a resume under a different config is refused by the caller. */
  config_hash: string;
  /** Anything else worth carrying (best metric so far, scheduler position, ...); must be JSON. */
  extra?: Record<string, unknown>;
}

export interface CheckpointInput {
  model: ReadonlyMap<string, TensorInput>;
  optimizer: ReadonlyMap<string, TensorInput>;
  state: TrainingState;
}

export interface LoadedCheckpoint {
  step: number;
  model: Map<string, SafeTensor>;
  optimizer: Map<string, SafeTensor>;
  state: TrainingState;
  modelPath: string;
  statePath: string;
}

interface Pointer {
  format: 'medformer-checkpoint';
  version: 1;
  step: number;
  model: string;
  state: string;
  model_sha256: string;
  state_sha256: string;
  written: string;
}

export const POINTER_FILE = 'checkpoint.json';
const PAIR_FILE = /^(model|state)-\d{9,}-[0-9a-f]{8}\.safetensors$/;
const OUR_TEMP_FILE = /^((model|state)-\d{9,}-[0-9a-f]{8}\.safetensors|checkpoint\.json)\.tmp-\d+-[0-9a-f]{8}$/;

const sha256 = (bytes: Uint8Array): string => crypto.createHash('sha256').update(bytes).digest('hex');

/** Saves a consistent model/state pair and moves the pointer to it. Returns the paths written. */
export function saveCheckpoint(dir: string, input: CheckpointInput): { pointer: string; model: string; state: string } {
  const { state } = input;
  if (!Number.isSafeInteger(state.step) || state.step < 0) {
    throw new MfError(`saveCheckpoint: step ${state.step} is not a non-negative integer`);
  }
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw writeError(path.join(dir, POINTER_FILE), e);
  }

  const tag = `${String(state.step).padStart(9, '0')}-${crypto.randomBytes(4).toString('hex')}`;
  const modelName = `model-${tag}.safetensors`;
  const stateName = `state-${tag}.safetensors`;
  const modelBytes = encodeSafetensors(input.model, { producer: 'medformer', step: String(state.step) });
  const stateBytes = encodeSafetensors(input.optimizer, { producer: 'medformer', training_state: JSON.stringify(state) });

  const pointer: Pointer = {
    format: 'medformer-checkpoint',
    version: 1,
    step: state.step,
    model: modelName,
    state: stateName,
    model_sha256: sha256(modelBytes),
    state_sha256: sha256(stateBytes),
    written: new Date().toISOString(),
  };
  try {
    writeFileAtomic(path.join(dir, modelName), modelBytes);
    writeFileAtomic(path.join(dir, stateName), stateBytes);
    writeFileAtomic(path.join(dir, POINTER_FILE), new TextEncoder().encode(JSON.stringify(pointer, null, 2) + '\n'));
  } catch (e) {
    // Normally the pointer still names the previous pair and the new one is garbage. But the pointer's rename may
    // have landed before a later step (the directory fsync) failed, so check before deleting what it names.
    let live = false;
    try {
      live = readPointer(dir).model === modelName;
    } catch {
      // no readable pointer: nothing can name the new pair
    }
    if (!live) removeQuietly(dir, [modelName, stateName]);
    throw e;
  }

  // The pointer has moved: drop the old pair, plus leftovers of saves that crashed (the run lock guarantees no
  // other writer is mid-save here). A failed delete only wastes disk, so it does not fail the save.
  const stale = safeReaddir(dir).filter(
    (name) => (PAIR_FILE.test(name) && name !== modelName && name !== stateName) || OUR_TEMP_FILE.test(name),
  );
  removeQuietly(dir, stale);
  return { pointer: path.join(dir, POINTER_FILE), model: path.join(dir, modelName), state: path.join(dir, stateName) };
}

function removeQuietly(dir: string, names: readonly string[]): void {
  for (const name of names) {
    try {
      fs.rmSync(path.join(dir, name), { force: true });
    } catch {
      // cleanup only; leaving a file behind costs disk, not correctness
    }
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

function readPointer(dir: string): Pointer {
  const file = path.join(dir, POINTER_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new MfError(`no checkpoint in ${dir}: ${file} does not exist; run without --resume to start fresh`);
    }
    throw new MfError(`cannot read ${file}: ${(e as Error).message}`);
  }
  const bad = (why: string): FileFormatError =>
    new FileFormatError(`${file}: ${why}; restore the file or run without --resume to start fresh`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw bad(`not valid JSON (${(e as Error).message})`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw bad('not a JSON object');
  const p = raw as Record<string, unknown>;
  if (p['format'] !== 'medformer-checkpoint' || p['version'] !== 1) throw bad('not a version-1 medformer checkpoint pointer');
  if (!Number.isSafeInteger(p['step']) || (p['step'] as number) < 0) throw bad('"step" is not a non-negative integer');
  // The names must be bare pair file names: a pointer saying "../../x" must not make us read outside `dir`.
  for (const key of ['model', 'state'] as const) {
    const name = p[key];
    if (typeof name !== 'string' || !PAIR_FILE.test(name) || !name.startsWith(key)) throw bad(`"${key}" is not a ${key} file name`);
    const hash = p[`${key}_sha256`];
    if (typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash)) throw bad(`"${key}_sha256" is not a SHA-256 hex digest`);
  }
  return p as unknown as Pointer;
}

function readVerified(dir: string, name: string, expectedSha: string): Uint8Array {
  const file = path.join(dir, name);
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new FileFormatError(
      `${file}: named by ${POINTER_FILE} but cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)}); restore it or run without --resume`,
    );
  }
  if (sha256(bytes) !== expectedSha) {
    throw new FileFormatError(`${file}: contents do not match the SHA-256 in ${POINTER_FILE}; the checkpoint is damaged, restore it or run without --resume`);
  }
  return bytes;
}

function parseTrainingState(raw: string | undefined, file: string, step: number): TrainingState {
  const bad = (why: string): FileFormatError => new FileFormatError(`${file}: ${why}`);
  if (raw === undefined) throw bad('__metadata__ has no training_state');
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (e) {
    throw bad(`training_state is not JSON (${(e as Error).message})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad('training_state is not an object');
  const s = v as Record<string, unknown>;
  for (const k of ['step', 'epoch', 'batch_position'] as const) {
    if (!Number.isSafeInteger(s[k]) || (s[k] as number) < 0) throw bad(`training_state.${k} is not a non-negative integer`);
  }
  if (s['step'] !== step) throw bad(`training_state.step ${String(s['step'])} differs from the pointer's step ${step}`);
  if (typeof s['config_hash'] !== 'string') throw bad('training_state.config_hash is not a string');
  const rng = s['rng'];
  if (rng === null || typeof rng !== 'object' || Array.isArray(rng) || !Object.values(rng).every((x) => Number.isFinite(x))) {
    throw bad('training_state.rng is not an object of numbers');
  }
  if (s['extra'] !== undefined && (s['extra'] === null || typeof s['extra'] !== 'object' || Array.isArray(s['extra']))) {
    throw bad('training_state.extra is not an object');
  }
  return s as unknown as TrainingState;
}

/** Loads the pair named by `<dir>/checkpoint.json`, verifying hashes, structure and the training state. */
export function loadCheckpoint(dir: string): LoadedCheckpoint {
  const p = readPointer(dir);
  const modelPath = path.join(dir, p.model);
  const statePath = path.join(dir, p.state);
  const model = decodeSafetensors(readVerified(dir, p.model, p.model_sha256), modelPath);
  const st = decodeSafetensors(readVerified(dir, p.state, p.state_sha256), statePath);
  const state = parseTrainingState(st.metadata.get('training_state'), statePath, p.step);
  return { step: p.step, model: model.tensors, optimizer: st.tensors, state, modelPath, statePath };
}

// ---------------------------------------------------------------------------------------------------------------
// Run lock

export interface LockInfo {
  pid: number;
  hostname: string;
  started: string;
  /** Random per acquisition, so release() never deletes a lock some other run has since taken. */
  token: string;
}

export interface RunLock {
  path: string;
  info: LockInfo;
  /** Set when a stale lock (its process gone) was taken over. */
  tookOverFrom?: LockInfo;
  /** Removes the lock if it is still ours; idempotent. Also runs on process exit. */
  release(): void;
}

export const LOCK_FILE = 'run.lock';
/** An unreadable lock younger than this is probably being written by a run that is starting right now. */
const FRESH_LOCK_MS = 10_000;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0); // signal 0: existence/permission check only
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by another user
  }
}

function readLock(file: string): LockInfo | 'missing' | 'unreadable' {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'unreadable';
  }
  try {
    const v = JSON.parse(text) as Partial<LockInfo> | null;
    if (v && Number.isSafeInteger(v.pid) && typeof v.hostname === 'string' && typeof v.started === 'string' && typeof v.token === 'string') {
      return v as LockInfo;
    }
  } catch {
    // fall through
  }
  return 'unreadable';
}

/**
 * Takes `<dir>/run.lock` (O_EXCL create) for this process. Refuses while another live run holds it; takes over a
 * lock whose process is gone (same host only) and reports that through `log`. Released on process exit; a run
 * killed by a signal leaves a stale lock that the next run takes over.
 *
 * Race note: two runs that find the same stale lock in the same instant can both delete it; the O_EXCL create
 * that follows still lets only one of them win in the common case, and the window is milliseconds.
 */
export function acquireRunLock(
  dir: string,
  log: (message: string) => void = (m) => process.stderr.write(`warning: ${m}\n`),
): RunLock {
  const file = path.join(dir, LOCK_FILE);
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw writeError(file, e);
  }
  const info: LockInfo = {
    pid: process.pid,
    hostname: os.hostname(),
    started: new Date().toISOString(),
    token: crypto.randomBytes(8).toString('hex'),
  };
  let tookOverFrom: LockInfo | undefined;

  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = fs.openSync(file, 'wx', 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw writeError(file, e);
      const held = readLock(file);
      if (held === 'missing') continue; // released between our open and read
      if (held === 'unreadable') {
        const age = Date.now() - safeMtime(file);
        if (age < FRESH_LOCK_MS) throw new MfError(`another mf run is starting in ${dir}; wait for it or pick another --out`);
        log(`${file} is unreadable and ${Math.round(age / 1000)} s old; taking it over`);
      } else if (held.hostname !== info.hostname) {
        throw new MfError(`${file} is held by pid ${held.pid} on host ${held.hostname}; wait for it, pick another --out, or delete the lock if that run is dead`);
      } else if (pidAlive(held.pid)) {
        throw new MfError(`another mf run (pid ${held.pid}) is using ${dir}; wait for it or pick another --out`);
      } else {
        log(`taking over stale lock ${file}: pid ${held.pid} (started ${held.started}) is no longer running`);
        tookOverFrom = held;
      }
      fs.rmSync(file, { force: true });
      continue;
    }
    try {
      fs.writeSync(fd, JSON.stringify(info) + '\n');
      fs.fsyncSync(fd);
    } catch (e) {
      fs.closeSync(fd);
      fs.rmSync(file, { force: true });
      throw writeError(file, e);
    }
    fs.closeSync(fd);

    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      process.removeListener('exit', release);
      const now = readLock(file);
      if (typeof now === 'object' && now.token === info.token) fs.rmSync(file, { force: true });
    };
    process.on('exit', release);
    return { path: file, info, ...(tookOverFrom ? { tookOverFrom } : {}), release };
  }
  throw new MfError(`could not take ${file}: other runs keep creating it; wait for them or pick another --out`);
}

function safeMtime(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}
