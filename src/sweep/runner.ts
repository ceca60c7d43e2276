// One run of a sweep, as `mf sweep --local` and `mf worker` both do it: write its experiment under the output
// root, decide from its folder whether it is done, resumable or new, check in this process what no retry can fix
// (the experiment, its data, a folder holding another run), then train it in a child `mf run` whose output goes
// to <output>/.sweep/<run>.log.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MfError } from '../errors.ts';
import { loadExperiment } from '../kinds/index.ts';
import { POINTER_FILE, LOCK_FILE } from '../train/checkpoint.ts';
import { RunFolder } from '../train/context.ts';
import { configHash } from '../train/hash.ts';
import { configHashOfFile } from '../train/run.ts';
import { writeJsonAtomic } from '../util/files.ts';

const MF_BIN = path.resolve(import.meta.dirname, '../../bin/mf.js');
const EXIT_WITH_PARENT = path.resolve(import.meta.dirname, 'exit-with-parent.cjs');

/** What a run needs to be trained anywhere: also a queue job's data. */
export interface RunSpec {
  sweep: string;
  run: string;
  /** Absolute output root (the same path on every machine of a queue sweep: a shared filesystem). */
  output: string;
  experiment: Record<string, unknown>;
}

export interface ChildOptions {
  dataDir?: string;
  backend?: string;
  /** Called with each running child, so a shutdown can interrupt it. */
  onStart?: (child: ChildProcess) => void;
  /** Progress lines for the person watching (the full output goes to the run's log). */
  say: (line: string) => void;
}

export const runFolder = (spec: Pick<RunSpec, 'output' | 'run'>): string => path.join(spec.output, spec.run);
export const sweepDir = (output: string): string => path.join(output, '.sweep');
export const runLogFile = (output: string, run: string): string => path.join(sweepDir(output), `${run}.log`);

/** Writes the run's experiment to <output>/.sweep/<run>.json (what `mf run` reads) and returns its path. */
export function writeExperiment(spec: RunSpec): string {
  const file = path.join(sweepDir(spec.output), `${spec.run}.json`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeJsonAtomic(file, spec.experiment);
  return file;
}

export type RunState = 'done' | 'resumable' | 'new';

/** A folder with metrics.json is done, one with a checkpoint resumes, anything else starts fresh. */
export function runState(dir: string): RunState {
  if (fs.existsSync(path.join(dir, 'metrics.json')) && fs.existsSync(path.join(dir, 'config.json'))) return 'done';
  return fs.existsSync(path.join(dir, POINTER_FILE)) ? 'resumable' : 'new';
}

/**
 * Everything that would fail the run again on every retry, checked here before a child starts: the experiment
 * (schema, defaults), a folder holding a run of another config, and the kind's inputs (data files, init weights),
 * which `prepare` reads and checks on the host. Throws the MfError `mf run` would print. Returns the run's state.
 */
export async function preflight(spec: RunSpec, file: string, opts: Pick<ChildOptions, 'dataDir'>): Promise<RunState> {
  const exp = loadExperiment(file);
  const dir = runFolder(spec);
  const hash = configHash(exp.settings);
  const state = runState(dir);
  if (state === 'done') {
    const before = configHashOfFile(path.join(dir, 'config.json'));
    if (before !== null && before !== hash)
      throw new MfError(`${dir} holds a finished run of another config`, 'remove it or give the sweep another output root');
    return state;
  }
  RunFolder.check(dir, { out: dir, resume: state === 'resumable' }, hash, configHashOfFile);
  await exp.prepare({ dataDir: opts.dataDir, outDir: dir });
  return state;
}

/**
 * A run.lock written on another host: `mf run` cannot tell whether that process lives, and refuses it. A queue job
 * is held by one worker at a time, so a lock from another host belongs to a worker that lost the job (died or
 * timed out) and whose run ended with it; the new holder removes it. Returns the host it came from, or null.
 */
export function clearForeignLock(dir: string): string | null {
  const file = path.join(dir, LOCK_FILE);
  let host: unknown;
  try {
    host = (JSON.parse(fs.readFileSync(file, 'utf8')) as { hostname?: unknown }).hostname;
  } catch {
    return null; // no lock, or one mf run itself takes over or refuses
  }
  if (typeof host !== 'string' || host === os.hostname()) return null;
  fs.rmSync(file, { force: true });
  return host;
}

export interface ChildResult {
  ok: boolean;
  /** `mf run`'s last `error:` line, else how it ended. */
  error: string | null;
  wall_s: number;
}

/** Trains the run in a child `mf run ... --out <output>/<run>` (with --resume when asked), logging to its log file. */
export function runChild(spec: RunSpec, file: string, resume: boolean, opts: ChildOptions): Promise<ChildResult> {
  const dir = runFolder(spec);
  const args = ['--require', EXIT_WITH_PARENT, MF_BIN, 'run', file, '--out', dir, '--quiet'];
  if (resume) args.push('--resume');
  if (opts.dataDir) args.push('--data-dir', opts.dataDir);
  if (opts.backend) args.push('--backend', opts.backend);
  const log = fs.openSync(runLogFile(spec.output, spec.run), 'a');
  fs.writeSync(log, `--- ${new Date().toISOString()} ${os.hostname()} pid ${process.pid}: mf run${resume ? ' --resume' : ''} -> ${dir}\n`);
  const started = Date.now();
  // Its own process group: a Ctrl-C at the terminal reaches only the parent, which interrupts the run once (a
  // second signal would make mf run abort without its checkpoint).
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: process.env, detached: true });
  opts.onStart?.(child);
  let lastError: string | null = null;
  let partial = '';
  const onData = (chunk: Buffer) => {
    fs.writeSync(log, chunk);
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (line.startsWith('error: ')) lastError = line.slice('error: '.length);
      if (/^(error|resume|interrupt)/.test(line)) opts.say(`${spec.run}: ${line}`);
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      const wall_s = +((Date.now() - started) / 1000).toFixed(1);
      const how = signal ? `mf run was killed by ${signal}` : `mf run exited with status ${code}`;
      fs.writeSync(log, `--- ${how} after ${wall_s} s\n`);
      fs.closeSync(log);
      resolve({ ok: code === 0, error: code === 0 ? null : (lastError ?? how), wall_s });
    });
  });
}
