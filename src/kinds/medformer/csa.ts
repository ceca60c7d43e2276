// Sum Augmentation, its Cascade (CSA) and Test-Time Sum Augmentation (TTSA), thesis section 5.4.3, as options of
// the supervised, multitask and finetune kinds. A sum-augmented sample is the average of K training images of
// one task; its target the average of their targets (one-hot rows, multi-label flags, or normalised ordinal
// values), trained with the soft-target losses. The cascade trains K = 8, then resumes from that stage's best
// checkpoint with K = 4, and so on down the schedule; each stage is a TrainingPhase named `csa-k<K>`, and
// `csa.json` in the run folder records the stages that finished so a resumed run skips them. TTSA scores a query
// as the mean of the model's scores on R hybrids, each the average of the query and K − 1 random images of the
// evaluated split.
import fs from 'node:fs';
import path from 'node:path';
import { type Static, Type } from '@sinclair/typebox';
import { type Batch, BatchLoader } from '../../data/loader.ts';
import type { LoadedSplit } from '../../data/dataset.ts';
import { numOutputs } from '../../data/registry.ts';
import { ConfigError, MfError } from '../../errors.ts';
import { bceWithLogits, mseLoss, softCrossEntropy } from '../../ops/losses.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { evaluate, type Metrics } from '../../train/metrics.ts';
import { CsaStateSchema, readJsonFile } from '../../train/records.ts';
import { PosInt, Seed, Strict, type TrainingSettings } from '../../train/schema.ts';
import { writeJsonAtomic } from '../../util/files.ts';
import { hashSeed } from '../../util/rng.ts';
import { splitScores } from './evaluate.ts';
import type { TaskData, TaskModel } from './tasks.ts';

/** Largest K of a sum-augmentation stage or a TTSA hybrid: the thesis's cascade starts at 8. */
const MAX_K = 64;
const KValue = Type.Integer({ minimum: 1, maximum: MAX_K, description: `an integer in [1, ${MAX_K}]` });
const Metric = Type.Union([Type.Literal('auc'), Type.Literal('acc')]);

const CsaSchema = Strict({
  /** K of each stage, strictly decreasing, e.g. [8, 4, 2, 1] (the thesis's 8-4-2-1) or [4, 2, 1]. */
  schedule: Type.Array(KValue, { minItems: 1, maxItems: 16 }),
  /** When a stage ends: after `epochs`, or when the validation `metric` has not improved for `patience` validations. */
  stop: Type.Optional(
    Type.Union([Strict({ epochs: PosInt }), Strict({ patience: PosInt, metric: Type.Optional(Metric), max_epochs: PosInt })], {
      description: '{"epochs": n} or {"patience": n, "metric": "auc" | "acc", "max_epochs": n}',
    }),
  ),
});

const TtsaSchema = Strict({
  /** Images per hybrid: the query and K − 1 random images of the split. */
  k: Type.Integer({ minimum: 2, maximum: MAX_K, description: `an integer in [2, ${MAX_K}]` }),
  /** Hybrids per query; their scores are averaged. */
  r: Type.Integer({ minimum: 1, maximum: 1000, description: 'an integer in [1, 1000]' }),
  seed: Type.Optional(Seed),
});

const Update = Type.Union([Type.Literal('backprop'), Type.Literal('backforward')]);
/**
 * Train the model once per update rule, from the same initialisation and data order (thesis 5.3, Figure 5.4:
 * baseline vs backforward), each arm a phase `update-<rule>`; accuracy.svg shows every arm's training and
 * validation accuracy per epoch. The last arm's checkpoints are the run's.
 */
const CompareUpdates = Type.Array(Update, {
  minItems: 2,
  maxItems: 2,
  uniqueItems: true,
  description: '["backprop", "backforward"] in either order',
});

/** The optional sections the supervised, multitask and finetune kinds add to their schema. */
export const CSA_SECTIONS = {
  csa: Type.Optional(CsaSchema),
  ttsa: Type.Optional(TtsaSchema),
  compare_updates: Type.Optional(CompareUpdates),
};
type Chapter5File = { csa?: Static<typeof CsaSchema>; ttsa?: Static<typeof TtsaSchema>; compare_updates?: Static<typeof CompareUpdates> };

export type StageStop =
  | { rule: 'epochs'; epochs: number }
  | { rule: 'patience'; patience: number; metric: 'auc' | 'acc'; max_epochs: number };

export interface CsaSettings {
  schedule: number[];
  stop: StageStop;
}

export interface TtsaSettings {
  k: number;
  r: number;
  seed: number;
}

/** The resolved sections; absent (not null) when the file has none, so the config hash of other runs stays. */
export interface Chapter5Settings {
  csa?: CsaSettings;
  ttsa?: TtsaSettings;
  compare_updates?: ('backprop' | 'backforward')[];
}

/** Defaults and checks of `csa` and `ttsa`: a stage without a stopping rule trains training.epochs epochs. */
export function resolveChapter5(file: Chapter5File, source: string, training: TrainingSettings): Chapter5Settings {
  const out: Chapter5Settings = {};
  if (file.csa) {
    const { schedule } = file.csa;
    if (schedule.some((k, i) => i > 0 && k >= schedule[i - 1])) {
      throw new ConfigError(`${source}: /csa/schedule [${schedule.join(', ')}] must be strictly decreasing`, 'e.g. [8, 4, 2, 1]');
    }
    const stop = file.csa.stop;
    let resolved: StageStop;
    if (stop === undefined) {
      if (training.epochs === null) {
        throw new ConfigError(
          `${source}: /csa/stop is missing and /training/epochs is not set`,
          'set /csa/stop to {"epochs": n} or set /training/epochs',
        );
      }
      resolved = { rule: 'epochs', epochs: training.epochs };
    } else if ('epochs' in stop) resolved = { rule: 'epochs', epochs: stop.epochs };
    else resolved = { rule: 'patience', patience: stop.patience, metric: stop.metric ?? 'auc', max_epochs: stop.max_epochs };
    out.csa = { schedule: [...schedule], stop: resolved };
  }
  if (file.ttsa) out.ttsa = { k: file.ttsa.k, r: file.ttsa.r, seed: file.ttsa.seed ?? 0 };
  if (file.compare_updates) {
    if (file.csa)
      throw new ConfigError(`${source}: /csa and /compare_updates are both set`, 'compare the update rules without a cascade, or drop one');
    if (file.compare_updates.includes('backforward') && training.optimizer !== 'sgd') {
      throw new ConfigError(
        `${source}: /compare_updates has "backforward", which needs /training/optimizer "sgd"`,
        'set /training/optimizer to "sgd" (both arms then use it)',
      );
    }
    if (training.update)
      throw new ConfigError(
        `${source}: /training/update and /compare_updates are both set`,
        'remove /training/update: each arm sets its own',
      );
    out.compare_updates = [...file.compare_updates];
  }
  return out;
}

/** The phase name of the stage with K images per sample. */
export const stageName = (k: number): string => `csa-k${k}`;
/** The phase name of a compare_updates arm. */
export const armName = (update: string): string => `update-${update}`;
/** A stage's best checkpoint by the mean validation metric: where the next stage starts (CSA) or the arm's tested weights. */
export const stageBestFile = (outDir: string, name: string): string => path.join(outDir, `${name}-best.safetensors`);

/** `training` of one stage: the stage's epoch budget in place of training.epochs. */
export function stageTraining(t: TrainingSettings, stop: StageStop): TrainingSettings {
  return { ...t, epochs: stop.rule === 'epochs' ? stop.epochs : stop.max_epochs };
}

/** A sum-augmented batch: the loader's batch fields for the first of the K draws, x their average, and every draw's labels. */
export interface SumBatch extends Batch {
  k: number;
  /** The K draws' split indices, draw-major (draw j's batch at [j·size, (j + 1)·size)). */
  members: Int32Array;
  /** The K draws' labels, draw-major (size × numLabels each). */
  memberLabels: Int32Array;
}

export const isSumBatch = (b: Batch): b is SumBatch => 'members' in b;

/**
 * Batch `index` of epoch `epoch` with K images per sample: draw j is the loader's batch `index` of its virtual epoch
 * `epoch·K + j` (an independent shuffle, and augmentation, per draw), and sample i is the mean of the K draws' i-th
 * images. A pure function of (epoch, index), so a resumed run sees the same batches; K = 1 is the plain batch.
 */
export function sumAugmentBatch(loader: BatchLoader, epoch: number, index: number, k: number): SumBatch {
  const draws = Array.from({ length: k }, (_, j) => loader.batchAt(epoch * k + j, index));
  const first = draws[0];
  const x = new Float32Array(first.x.length);
  for (const d of draws) {
    if (d.size !== first.size) throw new MfError(`sum augmentation: draws of batch ${index} differ in size (${d.size} vs ${first.size})`);
    for (let e = 0; e < x.length; e++) x[e] += d.x[e];
  }
  for (let e = 0; e < x.length; e++) x[e] /= k;
  const members = new Int32Array(k * first.size);
  const memberLabels = new Int32Array(k * first.labels.length);
  draws.forEach((d, j) => {
    members.set(d.indices, j * first.size);
    memberLabels.set(d.labels, j * first.labels.length);
  });
  return { ...first, x, k, members, memberLabels };
}

/**
 * What a task's loss is trained against, per sample (n × width, row-major): the one-hot class for multi-class and
 * ordinal class heads, the 0/1 flags for binary and multi-label, label / (K − 1) for an ordinal regression head.
 */
export function hardTargets(task: Pick<TaskData, 'ds' | 'head'>, labels: Int32Array, n: number): Float32Array {
  const c = numOutputs(task.ds);
  if (task.head === 'regression') return Float32Array.from(labels.subarray(0, n), (y) => y / (c - 1));
  if (task.ds.task === 'multi-class' || task.ds.task === 'ordinal') {
    const t = new Float32Array(n * c);
    for (let i = 0; i < n; i++) t[i * c + labels[i]] = 1;
    return t;
  }
  return Float32Array.from(labels.subarray(0, n * c));
}

/** The sum-augmented targets of a batch: the mean of its K draws' hard targets. */
export function sumTargets(task: Pick<TaskData, 'ds' | 'head'>, batch: SumBatch): Float32Array {
  const per = batch.memberLabels.length / batch.k;
  let out: Float32Array | null = null;
  for (let j = 0; j < batch.k; j++) {
    const t = hardTargets(task, batch.memberLabels.subarray(j * per, (j + 1) * per), batch.size);
    out ??= new Float32Array(t.length);
    for (let e = 0; e < t.length; e++) out[e] += t[e];
  }
  return (out ?? new Float32Array(0)).map((v) => v / batch.k);
}

/** The task's loss against soft targets (sumTargets): soft cross-entropy, BCE with fractions, or MSE for a regression head. */
export function softTaskLoss(task: Pick<TaskData, 'ds' | 'head'>, logits: Tensor, targets: Float32Array): Tensor {
  const b = logits.shape[0];
  const t = Tensor.from(targets, [b, targets.length / b]);
  if (task.head === 'regression') return mseLoss(logits, t);
  if (task.ds.task === 'multi-class' || task.ds.task === 'ordinal') return softCrossEntropy(logits, t);
  return bceWithLogits(logits, t);
}

/**
 * TTSA scores of a split (n × k, split order): hybrid r of query i is the mean of image i and K − 1 images of the
 * split drawn by the seed (draw j of hybrid r is batch b of shuffle r·(K − 1) + j, so every query gets its own
 * partners), and a query's scores are the mean of the model's scores over its R hybrids.
 */
export async function ttsaScores(
  model: TaskModel,
  task: Pick<TaskData, 'ds' | 'head' | 'meta'>,
  split: LoadedSplit,
  batchSize: number,
  ttsa: TtsaSettings,
): Promise<Float32Array> {
  const partners = new BatchLoader(split, {
    batchSize,
    seed: hashSeed(ttsa.seed, 'ttsa'),
    shuffle: true,
    dropLast: false,
    prefetch: false,
  });
  const total = new Float32Array(split.n * numOutputs(task.ds));
  for (let r = 0; r < ttsa.r; r++) {
    const scores = await splitScores(model, task, split, batchSize, (batch) => {
      const x = Float32Array.from(batch.x);
      for (let j = 0; j < ttsa.k - 1; j++) {
        const p = partners.batchAt(r * (ttsa.k - 1) + j, batch.batchIndex);
        for (let e = 0; e < x.length; e++) x[e] += p.x[e];
      }
      return x.map((v) => v / ttsa.k);
    });
    for (let e = 0; e < total.length; e++) total[e] += scores[e];
  }
  return total.map((v) => v / ttsa.r);
}

/** TTSA metrics of a split, as the evaluator computes the plain ones. */
export async function evaluateTtsa(
  model: TaskModel,
  task: Pick<TaskData, 'ds' | 'head' | 'meta'>,
  split: LoadedSplit,
  batchSize: number,
  ttsa: TtsaSettings,
): Promise<Metrics> {
  const scores = await ttsaScores(model, task, split, batchSize, ttsa);
  return evaluate(task.ds.task, scores, split.labels, split.n, numOutputs(task.ds));
}

/** What a finished stage leaves for the ones after it and for metrics.json and report.md. */
export interface StageOutcome {
  k: number;
  /** compare_updates: the arm's update rule. */
  update?: 'backprop' | 'backforward';
  steps: number;
  epochs: number;
  train_seconds: number;
  /** Stopped by the patience rule before its epoch budget. */
  stopped: boolean;
  /** The stage's best validation (mean over tasks), its 1-based epoch, and the file holding those weights. */
  best: { epoch: number; step: number; auc: number | null; acc: number | null } | null;
  /** The file (in the run folder) of the weights the stage started from; null: the model's initialisation. */
  from: string | null;
  /** The trainer's per-task best records and baseline-reached steps (JSON). */
  extra: Record<string, unknown>;
}

export const CSA_STATE_FILE = 'csa.json';
export const ARMS_STATE_FILE = 'arms.json';

/**
 * The record of a run of several stages in one folder (csa.json for a cascade, arms.json for compare_updates): the
 * stage names it was started with and the outcome of every finished stage, so a resumed run skips those.
 */
export class CascadeState {
  private constructor(
    readonly file: string,
    private readonly state: { schedule: (number | string)[]; stages: Record<string, StageOutcome> },
    private readonly names: readonly string[],
  ) {}

  static open(
    outDir: string,
    fileName: string,
    schedule: readonly (number | string)[],
    names: readonly string[],
    resume: boolean,
  ): CascadeState {
    const file = path.join(outDir, fileName);
    const previous =
      resume && fs.existsSync(file)
        ? readJsonFile(file, CsaStateSchema, {
            what: 'the record of finished stages',
            fix: 'remove the run folder (or use --out) and start again',
          })
        : null;
    if (previous && previous.schedule.join(',') !== schedule.join(',')) {
      throw new MfError(
        `${file}: the run was started with stages [${previous.schedule.join(', ')}]`,
        'resume with the same experiment file, or use --out',
      );
    }
    const state = new CascadeState(
      file,
      { schedule: [...schedule], stages: (previous?.stages ?? {}) as Record<string, StageOutcome> },
      names,
    );
    writeJsonAtomic(file, state.state);
    return state;
  }

  finished(name: string): StageOutcome | null {
    return this.state.stages[name] ?? null;
  }

  finish(name: string, outcome: StageOutcome): void {
    this.state.stages[name] = outcome;
    writeJsonAtomic(this.file, this.state);
  }

  get outcomes(): StageOutcome[] {
    return this.names.map((n) => this.state.stages[n]).filter((o): o is StageOutcome => o !== undefined);
  }
}

/** The report.md section of a cascade: one row per stage. */
export function cascadeMarkdown(outcomes: readonly StageOutcome[]): string[] {
  const f = (x: number | null, d: number) => (x === null || Number.isNaN(x) ? 'n/a' : x.toFixed(d));
  const lines = [
    '## Cascading Sum Augmentation',
    '',
    'Each stage trains on averages of K training images with the averaged targets (thesis section 5.4.3), starting from the previous stage’s best validation checkpoint.',
    '',
    '| stage | K | epochs | steps | stopped early | best epoch | best val AUC | best val ACC | started from |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const o of outcomes) {
    lines.push(
      `| ${stageName(o.k)} | ${o.k} | ${o.epochs} | ${o.steps} | ${o.stopped ? 'yes' : 'no'} | ${o.best ? o.best.epoch + 1 : 'n/a'} | ${f(o.best?.auc ?? null, 3)} | ${o.best?.acc == null ? 'n/a' : `${(100 * o.best.acc).toFixed(1)}%`} | ${o.from ?? 'initialisation'} |`,
    );
  }
  lines.push('');
  return lines;
}
