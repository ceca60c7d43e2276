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
// The JSON shapes (pointer, training state, lock) are schemas in ./records.ts.
//
// All file I/O goes through the default `fs` export (not named imports) so tests can inject failures with spies.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import { FileFormatError, MfError } from '../errors.ts';
import { MAX_BINARY_BYTES, readRegularFile, writeError, writeFileAtomic, writeJsonAtomic } from '../util/files.ts';
import { parseJsonText } from '../util/json.ts';
import {
  checkJson,
  CheckpointPointerSchema,
  jsonProblem,
  LockInfoSchema,
  parseJson,
  readJsonFile,
  TrainingStateSchema,
  type CheckpointPointer,
  type LockInfo,
  type TrainingState,
} from './records.ts';
import { decodeSafetensors, encodeSafetensors, type SafeTensor, type TensorInput } from './safetensors.ts';
import { killPoint } from '../util/faults.ts';

// Re-exported for the code that imports them from here; their homes are src/util/files.ts, ./safetensors.ts
// and ./records.ts.
export { writeFileAtomic } from '../util/files.ts';
export { writeSafetensors } from './safetensors.ts';
export type { LockInfo, TrainingState } from './records.ts';

// ---------------------------------------------------------------------------------------------------------------
// Checkpoints

export interface CheckpointInput {
  model: ReadonlyMap<string, TensorInput>;
  optimizer: ReadonlyMap<string, TensorInput>;
  state: TrainingState;
  /** Extra `__metadata__` of the model file (a kind's description of its model, e.g. for `mf eval`). */
  modelMetadata?: Readonly<Record<string, string>>;
}

export interface LoadedCheckpoint {
  step: number;
  model: Map<string, SafeTensor>;
  optimizer: Map<string, SafeTensor>;
  state: TrainingState;
  modelPath: string;
  statePath: string;
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
  const modelBytes = encodeSafetensors(input.model, { ...input.modelMetadata, producer: 'medformer', step: String(state.step) });
  const stateBytes = encodeSafetensors(input.optimizer, { producer: 'medformer', training_state: JSON.stringify(state) });

  const pointer: CheckpointPointer = {
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
    writeJsonAtomic(path.join(dir, POINTER_FILE), pointer);
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
  killPoint('checkpoint:before-cleanup');
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

/** checkpoint.json is a few hundred bytes; anything near this is not one. */
const MAX_POINTER_BYTES = 1024 * 1024;

function readPointer(dir: string): CheckpointPointer {
  const file = path.join(dir, POINTER_FILE);
  return readJsonFile(file, CheckpointPointerSchema, {
    what: 'the checkpoint pointer',
    fix: 'restore the file or run without --resume to start fresh',
    maxBytes: MAX_POINTER_BYTES,
    missing: () => new MfError(`no checkpoint in ${dir}: ${file} does not exist; run without --resume to start fresh`),
  });
}

function readVerified(dir: string, name: string, expectedSha: string): Uint8Array {
  const file = path.join(dir, name);
  const bytes = readRegularFile(file, {
    what: `named by ${POINTER_FILE}`,
    fix: 'restore it or run without --resume',
    maxBytes: MAX_BINARY_BYTES,
  });
  if (sha256(bytes) !== expectedSha) {
    throw new FileFormatError(
      `${file}: contents do not match the SHA-256 in ${POINTER_FILE}; the checkpoint is damaged, restore it or run without --resume`,
    );
  }
  return bytes;
}

const NonNegInt = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'a non-negative integer' });

/**
 * The keys of training_state.extra that the training code writes and later reads back without further checks:
 * AdamW's step (src/train/context.ts), the phase name and training time (src/train/phase.ts), the best validation
 * record and the step a baseline was reached per task (src/kinds/medformer/trainer.ts). Other keys pass (open
 * object); these must have the shape their readers assume, or a damaged checkpoint would crash the run later.
 */
export const TrainingExtraSchema = Type.Object(
  {
    adam_step: Type.Optional(NonNegInt),
    phase: Type.Optional(Type.String()),
    train_seconds: Type.Optional(Type.Number({ minimum: 0, description: 'a non-negative number' })),
    best: Type.Optional(
      Type.Record(
        Type.String(),
        Type.Union([Type.Object({ epoch: NonNegInt, step: NonNegInt, val: Type.Object({}) }), Type.Null()], {
          description: '{epoch, step, val} or null',
        }),
        { description: 'an object of best-validation records' },
      ),
    ),
    reached: Type.Optional(
      Type.Record(Type.String(), Type.Union([NonNegInt, Type.Null()], { description: 'a step or null' }), {
        description: 'an object of steps',
      }),
    ),
  },
  { description: 'an object' },
);

function parseTrainingState(raw: string | undefined, file: string, step: number): TrainingState {
  const fix = 'restore the checkpoint or run without --resume to start fresh';
  if (raw === undefined) throw new FileFormatError(`${file}: __metadata__ has no training_state; ${fix}`);
  const state = parseJson(raw, TrainingStateSchema, { file, at: 'training_state', fix });
  if (state.extra !== undefined) checkJson(TrainingExtraSchema, state.extra, { file, at: 'training_state/extra', fix });
  if (state.step !== step)
    throw new FileFormatError(`${file}: training_state/step ${state.step} differs from the pointer's step ${step}; ${fix}`);
  return state;
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

class LockMissing extends MfError {}

function readLock(file: string): LockInfo | 'missing' | 'unreadable' {
  // A FIFO, a device or a huge file in place of the lock is 'unreadable' (and taken over when old), never read.
  let bytes: Uint8Array;
  try {
    const missing = () => new LockMissing(file);
    bytes = readRegularFile(file, { what: 'the run lock', fix: 'delete it', maxBytes: 64 * 1024, missing });
  } catch (e) {
    return e instanceof LockMissing ? 'missing' : 'unreadable';
  }
  let v: unknown;
  try {
    v = parseJsonText(new TextDecoder().decode(bytes), { file });
  } catch {
    return 'unreadable';
  }
  return jsonProblem(LockInfoSchema, v) === undefined ? (v as LockInfo) : 'unreadable';
}

/**
 * Takes `<dir>/run.lock` (O_EXCL create) for this process. Refuses while another live run holds it; takes over a
 * lock whose process is gone (same host only) and reports that through `log`. Released on process exit; a run
 * killed by a signal leaves a stale lock that the next run takes over.
 *
 * Race note: two runs that find the same stale lock in the same instant can both delete it; the O_EXCL create
 * that follows still lets only one of them win in the common case, and the window is milliseconds.
 */
export function acquireRunLock(dir: string, log: (message: string) => void = (m) => process.stderr.write(`warning: ${m}\n`)): RunLock {
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
        throw new MfError(
          `${file} is held by pid ${held.pid} on host ${held.hostname}; wait for it, pick another --out, or delete the lock if that run is dead`,
        );
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
      fs.writeSync(fd, `${JSON.stringify(info)}\n`);
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
