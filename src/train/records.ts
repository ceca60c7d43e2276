// The JSON a run writes and the project reads back, as TypeBox schemas (JSON Schema, with the TypeScript types
// derived from them), so that writers and readers share one definition:
//
//   metrics.json     one shape per kind: MetricsSchemaFor(kind)
//   checkpoint.json  the checkpoint pointer; the training state sits in the state file's __metadata__
//   run.lock         who holds a run folder
//   log.jsonl        one record a line, a union discriminated by `event`
//
// Read them with readJsonFile / checkJson (src/util/files.ts, re-exported here): the first problem becomes one
// FileFormatError line naming the file, the JSON path (a JSON pointer, as experiment-file errors give it) and
// the fix, e.g.
//   runs/x/checkpoint.json: /step is -1, not a non-negative integer; restore the file or run without --resume
//
// Conventions: a schema's `description` is the phrase an error puts after "not" ("a non-negative integer").
// Objects are open (unknown keys pass), so a reader accepts what a newer writer adds. Measured numbers may be
// NaN (the AUC of a split without a class) or ±Infinity (the PSNR of identical images), which JSON.stringify
// writes as null: such fields are `number | null` here.
import { type Static, type TProperties, Type } from '@sinclair/typebox';
import { checkJson, readTextFile } from '../util/files.ts';
import { parseJsonText } from '../util/json.ts';

// The validating readers, re-exported so that a reader imports schemas and helpers from one place.
export { checkJson, jsonProblem, parseJson, pointer, readJsonFile, type JsonSource, type ReadJsonOptions } from '../util/files.ts';

// ---------------------------------------------------------------------------------------------------------------
// Building blocks

const NonNegInt = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'a non-negative integer' });
const NonNeg = Type.Number({ minimum: 0, description: 'a non-negative number' });
/** A measured value; null where it was NaN or ±Infinity. */
const Measured = Type.Union([Type.Number(), Type.Null()], { description: 'a number or null' });
/** AUC or accuracy as the evaluator gives it; null where it was NaN. */
const Fraction = Type.Union([Type.Number({ minimum: 0, maximum: 1 }), Type.Null()], { description: 'a fraction in [0, 1] or null' });
const Ids = Type.Array(Type.String(), { description: 'a list of subject ids' });
const MeanStd = Type.Tuple([Measured, Measured], { description: '[mean, std]' });

/** A subject-level split as the brain kinds record it: its seed and the subject ids of each part. */
const SubjectSplit = Type.Object({ seed: NonNegInt, train: Ids, val: Ids, test: Ids });

// ---------------------------------------------------------------------------------------------------------------
// log.jsonl

/** A log record: `t` (seconds since the run opened its log), `event`, then the event's fields. */
const logEvent = <E extends string, P extends TProperties>(event: E, properties: P) =>
  Type.Object({ t: Type.Number({ description: 'seconds since the log was opened' }), event: Type.Literal(event), ...properties });

/** A logged training step (every training.log_every steps): loss, gradient norm, learning rate, throughput. */
export const LogTrainSchema = logEvent('train', {
  /** Optimizer steps done, this one included. */
  step: NonNegInt,
  epoch: NonNegInt,
  loss: Type.Number(),
  grad_norm: Type.Number(),
  lr: Type.Number(),
  samples_per_s: NonNeg,
  /** The task of the batch (supervised, multitask, finetune, ssl). */
  task: Type.Optional(Type.String()),
  /** The phase of a brain-age study. */
  phase: Type.Optional(Type.String()),
  /** brainfuse-interp: the curriculum's largest gap this epoch. */
  max_gap: Type.Optional(NonNegInt),
  // Loss terms, by kind: VICReg (ssl), Barlow Twins and consistency (brainage), reconstruction (brainfuse-interp).
  invariance: Type.Optional(Measured),
  variance: Type.Optional(Measured),
  covariance: Type.Optional(Measured),
  cosine: Type.Optional(Measured),
  on_diag: Type.Optional(Measured),
  off_diag: Type.Optional(Measured),
  ce: Type.Optional(Measured),
  consistency: Type.Optional(Measured),
  recon: Type.Optional(Measured),
  grad: Type.Optional(Measured),
});

/** A validation pass; which fields it has depends on the kind. */
export const LogValSchema = logEvent('val', {
  epoch: NonNegInt,
  step: NonNegInt,
  // supervised, multitask, finetune: one record a task; split "train" for the training split's scores (compare_updates)
  task: Type.Optional(Type.String()),
  split: Type.Optional(Type.String()),
  auc: Type.Optional(Measured),
  acc: Type.Optional(Measured),
  // brainfuse-interp: PSNR (dB) of the network and of the linear blend at the largest gap
  gap: Type.Optional(NonNegInt),
  max_gap: Type.Optional(NonNegInt),
  psnr_model: Type.Optional(Measured),
  psnr_linear: Type.Optional(Measured),
  // brainage: top-k accuracy (fractions) and mean absolute error (years) of a phase
  phase: Type.Optional(Type.String()),
  top1: Type.Optional(Measured),
  top3: Type.Optional(Measured),
  top5: Type.Optional(Measured),
  mae: Type.Optional(Measured),
});

/** The test split of a task, evaluated once with the task's best validation checkpoint. */
export const LogTestSchema = logEvent('test', {
  task: Type.String(),
  auc: Measured,
  acc: Measured,
  /** 1-based epoch of the best validation AUC; null where validation never ran. */
  best_epoch: Type.Union([NonNegInt, Type.Null()], { description: 'an epoch number or null' }),
});

export const LogCheckpointSchema = logEvent('checkpoint', { step: NonNegInt });

/**
 * Updates the device-side guard dropped (training.nan_policy "skip"), reported when the loop next reads the
 * guard: `skipped` steps since the last report, the last of them at `step`; `total` and `first_step` over the phase.
 */
export const LogSkipSchema = logEvent('skip', { step: NonNegInt, skipped: NonNegInt, total: NonNegInt, first_step: NonNegInt });

/** finetune: which tensors came from the initial weights. */
export const LogInitSchema = logEvent('init', {
  from: Type.String(),
  loaded: Type.Array(Type.String()),
  fresh: Type.Array(Type.String()),
  mismatched: Type.Array(Type.String()),
  ignored: Type.Array(Type.String()),
});

/** brainfuse-interp: the subject ids of each part of the split. */
export const LogSplitSchema = logEvent('split', { train: Ids, val: Ids, test: Ids });

/**
 * A phase starts: brainage (one arm and seed, or a Barlow Twins pre-training); a cascade stage (`csa-k<K>`, with
 * its K and the weights it starts from, null for the model's initialisation).
 */
export const LogPhaseSchema = logEvent('phase', {
  phase: Type.String(),
  k: Type.Optional(NonNegInt),
  from: Type.Optional(Type.Union([Type.String(), Type.Null()], { description: 'a file name or null' })),
});

const LOG_SCHEMAS = {
  train: LogTrainSchema,
  val: LogValSchema,
  test: LogTestSchema,
  checkpoint: LogCheckpointSchema,
  skip: LogSkipSchema,
  init: LogInitSchema,
  split: LogSplitSchema,
  phase: LogPhaseSchema,
} as const;
export type LogEvent = keyof typeof LOG_SCHEMAS;
export const LOG_EVENTS = Object.keys(LOG_SCHEMAS) as LogEvent[];

/** One line of log.jsonl: a union discriminated by `event`. */
export const LogRecordSchema = Type.Union(
  [LogTrainSchema, LogValSchema, LogTestSchema, LogCheckpointSchema, LogSkipSchema, LogInitSchema, LogSplitSchema, LogPhaseSchema],
  { description: 'a log record' },
);
export type LogRecord = Static<typeof LogRecordSchema>;
/** A record of one event. */
export type LogRecordOf<E extends LogEvent> = Static<(typeof LOG_SCHEMAS)[E]>;
/** What a writer passes to the log: a record without `t`, which the log adds. */
export type LogEntry = LogRecord extends infer R ? (R extends unknown ? Omit<R, 't'> : never) : never;

const EventSchema = Type.Object({ event: Type.Union(LOG_EVENTS.map((e) => Type.Literal(e))) });

/** Checks one parsed log line; `file` and `line` (1-based) only name it in errors. */
export function checkLogRecord(value: unknown, file: string, line: number): LogRecord {
  const where = { file: `${file}:${line}`, fix: 'the log is damaged: repair or delete that line' };
  const { event } = checkJson(EventSchema, value, where);
  return checkJson(LOG_SCHEMAS[event], value, where);
}

/** Reads and checks every record of a log.jsonl. */
export function readLogFile(file: string): LogRecord[] {
  const text = readTextFile(file, 'the run log', 'check the run folder');
  const records: LogRecord[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const value = parseJsonText(line, { file: `${file}:${i + 1}`, fix: 'the log is damaged: repair or delete that line' });
    records.push(checkLogRecord(value, file, i + 1));
  });
  return records;
}

// ---------------------------------------------------------------------------------------------------------------
// metrics.json

/** Test or validation scores of a task: AUC and accuracy, fractions (not percent). */
export const ScoresSchema = Type.Object({ auc: Fraction, acc: Fraction });

/** The origin that marks a run whose numbers say nothing about the real data set (src/data/provenance.ts). */
export const GENERATED_STAND_IN = 'generated stand-in';

/** Where a data set's splits came from (src/data/provenance.ts records it; `mf table` reads it). */
export const DataSourceSchema = Type.Object({
  /**
   * "files": read from the files listed; "generated stand-in": generated because the data set's files were missing;
   * "synthetic": a synthetic data set, generated by design (its generated file listed).
   */
  origin: Type.Union([Type.Literal('files'), Type.Literal(GENERATED_STAND_IN), Type.Literal('synthetic')], {
    description: '"files", "generated stand-in" or "synthetic"',
  }),
  /** The files read (paths as the run saw them) and their sizes in bytes; none for a stand-in. */
  files: Type.Array(Type.Object({ path: Type.String(), bytes: NonNegInt })),
});
export type DataSource = Static<typeof DataSourceSchema>;

/** One task of a supervised, multitask or finetune run (src/train/report.ts DatasetResult, as JSON). */
export const DatasetResultSchema = Type.Object({
  /** Scores on the test split, with the best validation checkpoint. */
  test: ScoresSchema,
  /** The best validation scores (null where validation never ran). */
  val: ScoresSchema,
  /** 1-based epoch of the best validation AUC; 0 where validation never ran. */
  best_epoch: NonNegInt,
  steps: NonNegInt,
  wall_s: NonNeg,
  samples_per_s: NonNeg,
  /** finetune with a baseline: the first step whose validation AUC reached it; null: never. */
  ssl_steps: Type.Optional(Type.Union([NonNegInt, Type.Null()], { description: 'a step or null' })),
  /** Test ACC of always answering the training split's most common class (absent in runs made before it). */
  majority_acc: Type.Optional(Fraction),
  /** Whether the test ACC is above majority_acc. */
  beats_majority: Type.Optional(Type.Boolean()),
  /** A summary over seeds (`mf run --seeds`): `test` holds the means, `test_std` the standard deviations. */
  test_std: Type.Optional(ScoresSchema),
  seeds: Type.Optional(Type.Array(NonNegInt)),
  /** Test-Time Sum Augmentation (thesis 5.4.3): the test split scored as the mean over R hybrids of K images. */
  ttsa: Type.Optional(Type.Object({ k: NonNegInt, r: NonNegInt, seed: NonNegInt, test: ScoresSchema })),
  /** compare_updates: each arm's update rule, steps, best epoch and its best checkpoint's validation and test scores. */
  arms: Type.Optional(
    Type.Array(Type.Object({ update: Type.String(), steps: NonNegInt, best_epoch: NonNegInt, val: ScoresSchema, test: ScoresSchema })),
  ),
  /** Where the data came from: the files read, or a generated stand-in (absent in runs made before it). */
  data_source: Type.Optional(DataSourceSchema),
  /** Cascading Sum Augmentation: the schedule and each stage's steps and best validation (mean over the run's tasks). */
  csa: Type.Optional(
    Type.Object({
      schedule: Type.Array(NonNegInt),
      stages: Type.Array(Type.Object({ k: NonNegInt, steps: NonNegInt, epochs: NonNegInt, best_epoch: NonNegInt, val: ScoresSchema })),
    }),
  ),
});
export type DatasetResultJson = Static<typeof DatasetResultSchema>;

/** metrics.json of supervised, multitask and finetune runs: dataset key -> result. */
export const SupervisedMetricsSchema = Type.Record(Type.String(), DatasetResultSchema);
export type SupervisedMetrics = Static<typeof SupervisedMetricsSchema>;

/** metrics.json of an ssl (VICReg pre-training) run. */
export const SslMetricsSchema = Type.Object({
  ssl: Type.Object({
    steps: NonNegInt,
    wall_s: NonNeg,
    samples_per_s: NonNeg,
    /** The last train record of the log; {} where none was logged. */
    final: Type.Union([LogTrainSchema, Type.Object({}, { additionalProperties: false })], {
      description: 'the last train record of the log, or {}',
    }),
    /** Where each data set's training images came from (SSL reads no labels and no test split); absent in older runs. */
    data_source: Type.Optional(Type.Record(Type.String(), DataSourceSchema)),
  }),
});
export type SslMetrics = Static<typeof SslMetricsSchema>;

const Quality = Type.Object({ psnr: Measured, ssim: Measured });

/** metrics.json of a brainfuse-interp run: the held-out evaluation, by gap (slices between the two inputs). */
export const InterpMetricsSchema = Type.Object({
  interp: Type.Object({
    steps: NonNegInt,
    wall_s: NonNeg,
    eval_s: NonNeg,
    samples_per_s: NonNeg,
    /** Edge of the cubic volumes, voxels. */
    shape: NonNegInt,
    split: SubjectSplit,
    by_gap: Type.Record(
      Type.String(),
      Type.Object({
        slices: NonNegInt,
        model: Quality,
        linear: Quality,
        /** Share of slices where the network's PSNR beats the linear blend's. */
        model_better: Type.Number({ minimum: 0, maximum: 1, description: 'a fraction in [0, 1]' }),
      }),
    ),
  }),
});
export type InterpMetrics = Static<typeof InterpMetricsSchema>;

const TopK = { top1: Measured, top3: Measured, top5: Measured };

/** metrics.json of a brain-age study: each arm over its seeds (percent, mean and std) beside the thesis's table. */
export const BrainAgeMetricsSchema = Type.Object({
  brainage: Type.Object({
    demonstration: Type.Literal(true),
    split: SubjectSplit,
    bins: Type.Object({ edges: Type.Array(Type.Number()), count: NonNegInt, label_sigma: NonNeg }),
    /** The input size in words, e.g. "16³ (preprocessed at 32³, averaged 2×)". */
    input: Type.String(),
    arms: Type.Record(
      Type.String(),
      Type.Object({ top1: MeanStd, top3: MeanStd, top5: MeanStd, mae: MeanStd, spread: Measured, seeds: NonNegInt }),
    ),
    majority_baseline: Type.Object(TopK),
    fusion: Type.Array(
      Type.Object({
        mode: Type.Union([Type.Literal('BrainFuse'), Type.Literal('RawBrainFuse')]),
        transition: Type.String(),
        proposed: NonNegInt,
        kept: NonNegInt,
        rejected: NonNegInt,
        /** Whether the plausibility filter was applied (RawBrainFuse is unfiltered by default). */
        filtered: Type.Optional(Type.Boolean()),
        /** Kept volumes that the filter would have rejected (an unfiltered arm). */
        implausible: Type.Optional(NonNegInt),
      }),
    ),
    /** The input channels, e.g. ["T1"] (the thesis stacks T1, T2, PD). */
    modalities: Type.Optional(Type.Array(Type.String())),
    /** The volumes the subjects' first modality was read from (further modalities sit beside them); absent in older runs. */
    data_source: Type.Optional(DataSourceSchema),
    /** What Barlow Twins pre-trained on: real and fused volumes, by chain length and by generation. */
    ssl: Type.Optional(
      Type.Object({
        real: NonNegInt,
        fused: NonNegInt,
        chain: Type.Array(NonNegInt),
        max_generation: NonNegInt,
        by_generation: Type.Record(Type.String(), NonNegInt),
        by_chain_length: Type.Record(Type.String(), NonNegInt),
      }),
    ),
    wall_s: NonNeg,
    train_s: NonNeg,
    /** Every arm and seed: top-k as fractions, MAE in years. */
    runs: Type.Array(
      Type.Object({
        arm: Type.String(),
        seed: NonNegInt,
        ...TopK,
        mae: Measured,
        steps: NonNegInt,
        wall_s: NonNeg,
        train_samples: NonNegInt,
      }),
    ),
  }),
  thesis: Type.Object({
    citation: Type.String(),
    table: Type.Record(Type.String(), Type.Object({ top1: MeanStd, top3: MeanStd, top5: MeanStd })),
  }),
});
export type BrainAgeMetrics = Static<typeof BrainAgeMetricsSchema>;

const METRICS_SCHEMAS = {
  supervised: SupervisedMetricsSchema,
  multitask: SupervisedMetricsSchema,
  finetune: SupervisedMetricsSchema,
  ssl: SslMetricsSchema,
  'brainfuse-interp': InterpMetricsSchema,
  brainage: BrainAgeMetricsSchema,
} as const;
export type MetricsKind = keyof typeof METRICS_SCHEMAS;

/** The metrics.json schema of a run kind (config.json `kind`). */
export function MetricsSchemaFor<K extends MetricsKind>(kind: K): (typeof METRICS_SCHEMAS)[K] {
  return METRICS_SCHEMAS[kind];
}
export const isMetricsKind = (kind: string): kind is MetricsKind => Object.hasOwn(METRICS_SCHEMAS, kind);

/** Any metrics.json; prefer MetricsSchemaFor(kind), whose errors point at the field. */
export const MetricsSchema = Type.Union([SupervisedMetricsSchema, SslMetricsSchema, InterpMetricsSchema, BrainAgeMetricsSchema], {
  description: 'the metrics of a run',
});
export type Metrics = Static<typeof MetricsSchema>;

/** csa.json (arms.json): the cascade's schedule (the compared update rules) and, by phase name, the outcome of each finished stage (src/kinds/medformer/csa.ts). */
export const CsaStateSchema = Type.Object({
  schedule: Type.Array(Type.Union([NonNegInt, Type.String()]), { description: 'a list of K values or update rules' }),
  stages: Type.Record(
    Type.String(),
    Type.Object({ k: NonNegInt, steps: NonNegInt, epochs: NonNegInt, train_seconds: NonNeg, stopped: Type.Boolean() }),
    { description: 'an object of finished stages' },
  ),
});

// ---------------------------------------------------------------------------------------------------------------
// Checkpoints and the run lock

const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$', description: 'a SHA-256 hex digest' });
// Bare file names only: a pointer saying "../../x" must not make the loader read outside the checkpoint folder.
const pairFile = (kind: 'model' | 'state') =>
  Type.String({
    pattern: `^${kind}-\\d{9,}-[0-9a-f]{8}\\.safetensors$`,
    description: `a ${kind} file name like ${kind}-000000042-0a1b2c3d.safetensors`,
  });

/** checkpoint.json: names the current model/state pair and their SHA-256. */
export const CheckpointPointerSchema = Type.Object({
  format: Type.Literal('medformer-checkpoint', { description: '"medformer-checkpoint", the mark of a medformer checkpoint pointer' }),
  version: Type.Literal(1, { description: '1, the only pointer version this build reads' }),
  step: NonNegInt,
  model: pairFile('model'),
  state: pairFile('state'),
  model_sha256: Sha256,
  state_sha256: Sha256,
  /** When the pair was saved (ISO 8601). */
  written: Type.String(),
});
export type CheckpointPointer = Static<typeof CheckpointPointerSchema>;

/** Everything besides tensors that a resumed run needs to continue bit-for-bit (JSON in the state file). */
export const TrainingStateSchema = Type.Object({
  /** Optimizer steps taken so far. */
  step: NonNegInt,
  /** Epoch in progress (0-based). */
  epoch: NonNegInt,
  /** Batches of `epoch` already consumed, so the loader can seek past them. */
  batch_position: NonNegInt,
  /** State of each named Rng (src/util/rng.ts keeps its whole state in one uint32). */
  rng: Type.Record(Type.String(), Type.Number(), { description: 'an object of numbers' }),
  /** Hash of the resolved experiment config; a resume under a different config is refused by the caller. */
  config_hash: Type.String(),
  /** Anything else worth carrying (best metric so far, scheduler position, ...); must be JSON. */
  extra: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'an object' })),
});
export type TrainingState = Static<typeof TrainingStateSchema>;

/** run.lock: the process that owns a run folder. */
export const LockInfoSchema = Type.Object({
  pid: Type.Integer(),
  hostname: Type.String(),
  started: Type.String(),
  /** Random per acquisition, so release() never deletes a lock some other run has since taken. */
  token: Type.String(),
});
export type LockInfo = Static<typeof LockInfoSchema>;
