// What every kind of run shares: the output folder and its lock, the resolved config, the log,
// progress display, Ctrl-C handling, the model and its parameters, and checkpoints.
import fs from 'node:fs';
import path from 'node:path';
import { SingleBar, Presets } from 'cli-progress';
import type { Backend } from '../backend/backend.ts';
import { initEngine } from '../backend/index.ts';
import { loadSplit, resolveDataRoot, type LoadedSplit } from '../data/dataset.ts';
import { BODY_PARTS, getDataset, MODALITIES, numOutputs, type DatasetInfo } from '../data/registry.ts';
import { MfError, NumericalError } from '../errors.ts';
import { Medformer, type BatchMeta, type InputKind } from '../models/medformer.ts';
import { ParameterStore } from '../nn/parameters.ts';
import { AdamW } from './adamw.ts';
import { acquireRunLock, loadCheckpoint, saveCheckpoint, writeFileAtomic, type RunLock, type TrainingState } from './checkpoint.ts';
import { configHash, type Experiment } from './config.ts';
import { asF32 } from './supervised.ts';

export interface RunOptions {
  out?: string;
  resume?: boolean;
  quiet?: boolean;
  backend?: string;
  dataDir?: string;
}

export interface TaskData {
  ds: DatasetInfo;
  meta: BatchMeta;
  train: LoadedSplit;
  val: LoadedSplit;
  test: LoadedSplit;
}

/** Load train/val/test of each data set of the experiment. */
function loadData(exp: Experiment, opts: RunOptions): TaskData[] {
  const root = resolveDataRoot(opts.dataDir ?? exp.data.root ?? undefined);
  return exp.data.datasets.map((key) => {
    const ds = getDataset(key);
    const size = ds.dim === 2 ? exp.model.image_size_2d : exp.model.image_size_3d;
    const load = (split: 'train' | 'val' | 'test') => loadSplit(ds, split, { root, size });
    const train = load('train');
    const channels = train.shape[0];
    const meta: BatchMeta = { dim: ds.dim, channels, modality: ds.latent.modality, bodyPart: ds.latent.bodyPart };
    return { ds, meta, train, val: load('val'), test: load('test') };
  });
}

export class Session {
  readonly started = Date.now();
  interrupted = false;
  private logFd: number;
  private bar: SingleBar | null = null;

  private constructor(
    readonly exp: Experiment,
    readonly outDir: string,
    readonly opts: RunOptions,
    readonly backend: Backend,
    readonly lock: RunLock,
    /** Train/val/test of every data set, loaded and validated before anything else is printed. */
    readonly tasks: TaskData[],
  ) {
    this.logFd = fs.openSync(path.join(outDir, 'log.jsonl'), 'a');
    process.on('SIGINT', this.onSigint);
    process.on('SIGTERM', this.onSigint);
  }

  private onSigint = () => {
    if (this.interrupted) process.exit(130);
    this.interrupted = true;
    this.say('interrupt: finishing the current step and saving a checkpoint (Ctrl-C again to abort)');
  };

  static async open(exp: Experiment, opts: RunOptions): Promise<Session> {
    const outDir = path.resolve(opts.out ?? path.join('runs', exp.name));
    try {
      fs.mkdirSync(outDir, { recursive: true });
    } catch (e) {
      throw new MfError(`cannot create output folder ${outDir}: ${(e as Error).message}`, 'pick another --out');
    }
    const lock = acquireRunLock(outDir, (l) => process.stderr.write(`${l}\n`));
    try {
      const hasCheckpoint = fs.existsSync(path.join(outDir, 'checkpoint.json'));
      if (hasCheckpoint && !opts.resume) {
        throw new MfError(`${outDir} already holds a run`, 'pass --resume to continue it, or --out for a new folder');
      }
      const tasks = loadData(exp, opts);
      const backend = await initEngine({ backend: (opts.backend ?? 'auto') as 'auto' | 'webgpu' | 'cpu' });
      writeFileAtomic(path.join(outDir, 'config.json'), new TextEncoder().encode(JSON.stringify(exp, null, 2) + '\n'));
      return new Session(exp, outDir, opts, backend, lock, tasks);
    } catch (e) {
      lock.release();
      throw e;
    }
  }

  close(): void {
    this.endProgress();
    process.off('SIGINT', this.onSigint);
    process.off('SIGTERM', this.onSigint);
    fs.closeSync(this.logFd);
    this.lock.release();
  }

  log(record: Record<string, unknown>): void {
    fs.writeSync(this.logFd, JSON.stringify({ t: +((Date.now() - this.started) / 1000).toFixed(3), ...record }) + '\n');
  }

  say(line: string): void {
    if (this.bar) process.stderr.write('\n');
    process.stderr.write(`${line}\n`);
  }

  startProgress(title: string, total: number, start = 0): void {
    this.endProgress();
    if (this.opts.quiet || !process.stderr.isTTY) {
      this.say(`${title}: ${total} steps`);
      return;
    }
    this.bar = new SingleBar(
      { format: `${title} |{bar}| {value}/{total} loss {loss} lr {lr} {sps} samples/s`, hideCursor: true, etaBuffer: 20 },
      Presets.shades_classic,
    );
    this.bar.start(total, start, { loss: '-', lr: '-', sps: '-' });
  }

  progress(value: number, payload: { loss?: number; lr: number; sps: number }): void {
    this.bar?.update(value, {
      loss: payload.loss === undefined ? '-' : payload.loss.toFixed(4),
      lr: payload.lr.toExponential(2),
      sps: payload.sps.toFixed(1),
    });
  }

  endProgress(): void {
    this.bar?.stop();
    this.bar = null;
  }

  /** Build the Medformer for these data sets, its parameters initialised from the run's seed. */
  buildModel<E = null>(
    tasks: TaskData[],
    opts: { withHeads?: boolean; extend?: (ps: ParameterStore) => E } = {},
  ): { model: Medformer; store: ParameterStore; extension: E | null } {
    const withHeads = opts.withHeads ?? true;
    const store = new ParameterStore(this.exp.training.seed);
    const kinds: InputKind[] = [];
    for (const t of tasks) {
      if (!kinds.some((k) => k.dim === t.meta.dim && k.channels === t.meta.channels)) kinds.push({ dim: t.meta.dim, channels: t.meta.channels });
    }
    const model = new Medformer(store, {
      config: this.exp.model,
      inputs: kinds,
      tasks: withHeads ? tasks.map((t) => ({ name: t.ds.key, outputs: numOutputs(t.ds) })) : [],
      numModalities: MODALITIES.length,
      numBodyParts: BODY_PARTS.length,
    });
    const extension = opts.extend ? opts.extend(store) : null;
    store.finalize();
    this.say(`model: Medformer-${this.exp.model.preset}, ${store.count().toLocaleString('en-US')} parameters (${kinds.map((k) => `${k.dim}D×${k.channels}ch`).join(', ')})`);
    return { model, store, extension };
  }

  hash(): string {
    return configHash(this.exp);
  }

  async saveCheckpoint(store: ParameterStore, opt: AdamW, state: Omit<TrainingState, 'config_hash'>): Promise<void> {
    const model = await store.export();
    // Never replace a good checkpoint with a broken one: NaN/Inf weights stop the run here.
    for (const [name, t] of model) {
      if (!t.data.every(Number.isFinite)) {
        throw new NumericalError(`weights of ${name} became NaN/Inf before step ${state.step}`, `the last good checkpoint in ${this.outDir} is kept; lower training.lr or set training.grad_clip, then --resume`);
      }
    }
    const os = await opt.exportState();
    const optimizer = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [k, v] of os.m) optimizer.set(`m.${k}`, v);
    for (const [k, v] of os.v) optimizer.set(`v.${k}`, v);
    saveCheckpoint(this.outDir, { model, optimizer, state: { ...state, config_hash: this.hash(), extra: { ...state.extra, adam_step: os.step } } });
  }

  /** Restore weights, optimizer and loop state; null when there is nothing to resume. */
  restore(store: ParameterStore, opt: AdamW): TrainingState | null {
    if (!fs.existsSync(path.join(this.outDir, 'checkpoint.json'))) {
      if (this.opts.resume) this.say('resume: no checkpoint yet, starting from scratch');
      return null;
    }
    const ck = loadCheckpoint(this.outDir);
    if (ck.state.config_hash !== this.hash()) {
      throw new MfError(`${this.outDir}: the checkpoint was made with a different config`, 'resume with the same experiment file and flags, or use --out');
    }
    const weights = asF32(ck.model);
    const r = store.load(weights, { strict: true });
    if (r.missing.length || r.mismatched.length) {
      throw new MfError(`${ck.modelPath}: checkpoint does not match the model (missing ${r.missing.length}, mismatched ${r.mismatched.length})`);
    }
    const optim = asF32(ck.optimizer);
    const m = new Map<string, { shape: number[]; data: Float32Array }>();
    const v = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [k, t] of optim) (k.startsWith('m.') ? m : v).set(k.slice(2), t);
    opt.loadState({ step: Number(ck.state.extra?.adam_step ?? ck.state.step), m, v });
    this.say(`resume: continuing from step ${ck.state.step} (epoch ${ck.state.epoch + 1})`);
    return ck.state;
  }
}
