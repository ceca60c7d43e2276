// What a running kind gets from `mf run`: its folder and lock, the log, progress display, Ctrl-C handling,
// the checkpoint store, and the device. Data loading and model building belong to the kinds.
import fs from 'node:fs';
import path from 'node:path';
import { Presets, SingleBar } from 'cli-progress';
import type { Backend } from '../backend/backend.ts';
import { FileFormatError, MfError, NumericalError } from '../errors.ts';
import type { ParameterStore } from '../nn/parameters.ts';
import type { AdamW } from './adamw.ts';
import { killPoint } from '../util/faults.ts';
import type { LogEntry } from './records.ts';
import { acquireRunLock, loadCheckpoint, POINTER_FILE, type RunLock, saveCheckpoint, type TrainingState } from './checkpoint.ts';

type Tensors = Map<string, { shape: number[]; data: Float32Array }>;

export function asF32(m: ReadonlyMap<string, { shape: number[]; data: ArrayLike<number> }>): Tensors {
  const out: Tensors = new Map();
  for (const [k, v] of m) out.set(k, { shape: v.shape, data: v.data instanceof Float32Array ? v.data : Float32Array.from(v.data) });
  return out;
}

/**
 * Refuses tensors with a NaN or Inf element: a checkpoint or initial weights that hold one would train into
 * NaN from the first step (the guard would then skip every update), so the file is named at load instead.
 */
export function assertFinite(tensors: ReadonlyMap<string, { data: Float32Array }>, file: string, fix: string): void {
  for (const [name, t] of tensors) {
    const at = t.data.findIndex((x) => !Number.isFinite(x));
    if (at >= 0) throw new FileFormatError(`${file}: tensor ${name} holds ${t.data[at]} at element ${at}`, fix);
  }
}

export interface RunFolderOptions {
  out?: string;
  resume?: boolean;
  quiet?: boolean;
}

/** The run folder, locked against a second `mf run`; refuses to start over an existing run without --resume. */
export class RunFolder {
  private constructor(
    readonly dir: string,
    readonly lock: RunLock,
    readonly opts: RunFolderOptions,
  ) {}

  /** Where a run named `name` writes: --out, or runs/<name>. Creates nothing. */
  static pathFor(name: string, opts: RunFolderOptions): string {
    return path.resolve(opts.out ?? path.join('runs', name));
  }

  /**
   * Refuses, before anything is read or written, to start over an existing run without --resume, and to resume a
   * run under another config (by the hash of the config.json it was started with), so that a refused command
   * leaves the folder exactly as it was.
   */
  static check(dir: string, opts: RunFolderOptions, configHash: string, hashOf: (configFile: string) => string | null): void {
    if (!fs.existsSync(path.join(dir, POINTER_FILE))) return;
    if (!opts.resume) throw new MfError(`${dir} already holds a run`, 'pass --resume to continue it, or --out for a new folder');
    const before = hashOf(path.join(dir, 'config.json'));
    if (before !== null && before !== configHash) {
      throw new MfError(
        `${dir}: the checkpoint was made with a different config`,
        'resume with the same experiment file and flags, or use --out',
      );
    }
  }

  static open(name: string, opts: RunFolderOptions): RunFolder {
    const dir = RunFolder.pathFor(name, opts);
    try {
      fs.mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new MfError(`cannot create output folder ${dir}: ${(e as Error).message}`, 'pick another --out');
    }
    const lock = acquireRunLock(dir, (l) => process.stderr.write(`${l}\n`));
    if (fs.existsSync(path.join(dir, POINTER_FILE)) && !opts.resume) {
      lock.release();
      throw new MfError(`${dir} already holds a run`, 'pass --resume to continue it, or --out for a new folder');
    }
    return new RunFolder(dir, lock, opts);
  }
}

/**
 * Checkpoints of the run folder: weights, AdamW moments and loop state, tagged with the config hash (a resume
 * under another config is refused) and with the training phase that wrote them (a study of several phases
 * restores a checkpoint only into the phase that made it).
 */
export class CheckpointStore {
  constructor(
    private readonly ctx: RunContext,
    readonly configHash: string,
  ) {}

  async save(
    store: ParameterStore,
    opt: AdamW,
    state: Omit<TrainingState, 'config_hash'>,
    modelMetadata?: Readonly<Record<string, string>>,
  ): Promise<void> {
    const model = await store.export();
    // Never replace a good checkpoint with a broken one: NaN/Inf weights stop the run here.
    for (const [name, t] of model) {
      if (!t.data.every(Number.isFinite)) {
        throw new NumericalError(
          `weights of ${name} became NaN/Inf before step ${state.step}`,
          `the last good checkpoint in ${this.ctx.outDir} is kept; lower training.lr or set training.grad_clip, then --resume`,
        );
      }
    }
    const os = await opt.exportState();
    const optimizer: Tensors = new Map();
    for (const [k, v] of os.m) optimizer.set(`m.${k}`, v);
    for (const [k, v] of os.v) optimizer.set(`v.${k}`, v);
    killPoint('checkpoint');
    saveCheckpoint(this.ctx.outDir, {
      model,
      optimizer,
      state: { ...state, config_hash: this.configHash, extra: { ...state.extra, adam_step: os.step } },
      modelMetadata,
    });
  }

  /** Restores weights, optimizer and loop state; null when there is nothing (of this phase) to resume. */
  restore(store: ParameterStore, opt: AdamW, phase: string | null): TrainingState | null {
    const dir = this.ctx.outDir;
    if (!fs.existsSync(path.join(dir, POINTER_FILE))) {
      if (this.ctx.resume && phase === null) this.ctx.say('resume: no checkpoint yet, starting from scratch');
      return null;
    }
    const ck = loadCheckpoint(dir);
    if ((ck.state.extra?.phase ?? null) !== phase) return null;
    if (ck.state.config_hash !== this.configHash) {
      throw new MfError(
        `${dir}: the checkpoint was made with a different config`,
        'resume with the same experiment file and flags, or use --out',
      );
    }
    const weights = asF32(ck.model);
    const moments = asF32(ck.optimizer);
    const fix = 'the run cannot resume from it; remove the run folder (or use --out) and start again';
    assertFinite(weights, ck.modelPath, fix);
    assertFinite(moments, ck.statePath, fix);
    const r = store.load(weights, { strict: true });
    if (r.missing.length || r.mismatched.length) {
      throw new MfError(
        `${ck.modelPath}: checkpoint does not match the model (missing ${r.missing.length}, mismatched ${r.mismatched.length})`,
      );
    }
    const m: Tensors = new Map();
    const v: Tensors = new Map();
    for (const [k, t] of moments) (k.startsWith('m.') ? m : v).set(k.slice(2), t);
    opt.loadState({ step: Number(ck.state.extra?.adam_step ?? ck.state.step), m, v });
    this.ctx.say(`resume: continuing${phase ? ` ${phase}` : ''} from step ${ck.state.step} (epoch ${ck.state.epoch + 1})`);
    return ck.state;
  }
}

export class RunContext {
  readonly started = Date.now();
  /** Set by the first Ctrl-C (or SIGTERM): loops finish their step, checkpoint and return. */
  interrupted = false;
  readonly checkpoints: CheckpointStore;
  private readonly logFd: number;
  private bar: SingleBar | null = null;

  constructor(
    private readonly folder: RunFolder,
    readonly backend: Backend,
    configHash: string,
  ) {
    this.logFd = fs.openSync(path.join(folder.dir, 'log.jsonl'), 'a');
    this.checkpoints = new CheckpointStore(this, configHash);
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
  }

  get outDir(): string {
    return this.folder.dir;
  }
  get resume(): boolean {
    return this.folder.opts.resume ?? false;
  }
  get quiet(): boolean {
    return this.folder.opts.quiet ?? false;
  }

  private onSignal = () => {
    if (this.interrupted) process.exit(130);
    this.interrupted = true;
    this.say('interrupt: finishing the current step and saving a checkpoint (Ctrl-C again to abort)');
  };

  close(): void {
    this.endProgress();
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    fs.closeSync(this.logFd);
    this.folder.lock.release();
  }

  /** One record of log.jsonl, stamped with seconds since the run started. */
  log(record: LogEntry): void {
    fs.writeSync(this.logFd, `${JSON.stringify({ t: +((Date.now() - this.started) / 1000).toFixed(3), ...record })}\n`);
  }

  say(line: string): void {
    if (this.bar) process.stderr.write('\n');
    process.stderr.write(`${line}\n`);
  }

  /** Whether step lines are printed (no progress bar: --quiet or not a terminal). */
  get plain(): boolean {
    return this.quiet || !process.stderr.isTTY;
  }

  startProgress(title: string, total: number, start = 0): void {
    this.endProgress();
    if (this.plain) {
      this.say(`${title}: ${total} steps`);
      return;
    }
    this.bar = new SingleBar(
      {
        format: `${title} |{bar}| {value}/{total} loss {loss} lr {lr} {sps} samples/s eta {eta_formatted}{note}`,
        hideCursor: true,
        etaBuffer: 20,
      },
      Presets.shades_classic,
    );
    this.bar.start(total, start, { loss: '-', lr: '-', sps: '-', note: '' });
  }

  progress(value: number, payload: { loss?: number; lr: number; sps: number }): void {
    this.bar?.update(value, {
      loss: payload.loss === undefined ? '-' : payload.loss.toFixed(4),
      lr: payload.lr.toExponential(2),
      sps: payload.sps.toFixed(1),
    });
  }

  /**
   * Waits for the step just encoded when it created kernel pipelines, with the bar saying so: on a CPU rasteriser
   * each new kernel specialisation costs seconds of LLVM the first time on a machine (Mesa caches them), and the bar
   * would otherwise sit at its first step without a word. Log lines (--quiet, no terminal) stay as they are.
   */
  async awaitCompiles(pipelinesBefore: number): Promise<void> {
    const created = this.backend.stats().pipelines - pipelinesBefore;
    if (created <= 0 || !this.bar) return;
    const started = Date.now();
    const note = `preparing ${created} new kernel${created > 1 ? 's' : ''} (on a CPU rasteriser seconds each the first time; cached after)`;
    const show = () => this.bar?.update({ note: ` | ${note} ${Math.round((Date.now() - started) / 1000)} s` });
    show();
    const tick = setInterval(show, 1000);
    try {
      await this.backend.sync();
    } finally {
      clearInterval(tick);
      this.bar?.update({ note: '' });
    }
  }

  endProgress(): void {
    this.bar?.stop();
    this.bar = null;
  }
}
