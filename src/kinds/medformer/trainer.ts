// Supervised training of Medformer, shared by the supervised, multitask and finetune kinds: per-epoch validation,
// the best checkpoint per task by validation AUC (ties by ACC), evaluated once on test.
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../../errors.ts';
import type { ParameterStore } from '../../nn/parameters.ts';
import { Tensor, tidy } from '../../tensor/tensor.ts';
import { writeSafetensors } from '../../train/checkpoint.ts';
import { asF32, type RunContext } from '../../train/context.ts';
import { majorityAccuracy, type Metrics } from '../../train/metrics.ts';
import { numOutputs, type Task } from '../../data/registry.ts';
import { TrainingPhase } from '../../train/phase.ts';
import type { SupervisedMetrics } from '../../train/records.ts';
import { lineChartSvg, readLog, reportMarkdown, series } from '../../train/report.ts';
import { readSafetensors } from '../../train/safetensors.ts';
import { writeFileAtomic, writeJsonAtomic } from '../../util/files.ts';
import { better, evalBatchSize, evaluateSplit, evaluateSplitWithScores } from './evaluate.ts';
import { confusionMarkdown, confusionMatrix, rocSeries } from '../../train/diagnostics.ts';
import { add, scale } from '../../ops/index.ts';
import { epochOrder, loaderPosition, occurrences, shuffledOrder, taskBatchCounts, trainLoaders } from './sampling.ts';
import type { AnyModelSettings } from './schema.ts';
import { buildModel, headOutputs, inputKinds, type OrdinalHead, type TaskData, type TaskModel, taskLoss } from './tasks.ts';

interface BestRecord {
  epoch: number;
  step: number;
  val: Metrics;
}

export interface SupervisedOptions {
  /** Called once the model exists, before a resume is restored: loads a pre-trained backbone, freezes. */
  init?: (store: ParameterStore, model: TaskModel) => Promise<void>;
  /** Validation AUC per task to reach (fine-tuning's "SSL steps" column); the first step that does is recorded. */
  baselineAuc?: Record<string, number>;
  /**
   * Multi-task mixing (thesis 4.7.5): each step is this many sub-batches of batch_size / subBatches samples,
   * taken in turn from a combined shuffled index over every task's batches, their mean loss one gradient step.
   * 1 (the default): a step is one batch of one task, in the order's fixed interleave.
   */
  subBatches?: number;
  /** "per-task": each task tested with its own best validation checkpoint; "mean": one checkpoint for all, by mean validation AUC. */
  select?: 'per-task' | 'mean';
}

/** The record key of the one checkpoint that "mean" selection keeps. */
const ALL_TASKS = 'all';

/** `format` in the `__metadata__` of a model file that says how to rebuild its model (see modelMetadata). */
export const MODEL_METADATA_FORMAT = 'medformer-model';

/** One task head as a model file describes it: enough to rebuild, feed and read it without the data set's files. */
export interface HeadDescription {
  /** The data set's registry key; its label names are in src/data/registry.ts. */
  key: string;
  task: Task;
  /** Width of the head's output layer. */
  outputs: number;
  /** 'regression' only for an ordinal task trained with data.ordinal "regression". */
  head: OrdinalHead;
  dim: 2 | 3;
  channels: number;
  /** Latent ids (src/data/registry.ts MODALITIES and BODY_PARTS) the input Adaptformer is conditioned on. */
  modality: number;
  body_part: number;
}

/**
 * The `__metadata__` (string values, structured ones JSON) of every model file this trainer writes (best-*.safetensors
 * and the checkpoints' model files): the format mark, the experiment's name and kind, the resolved model config
 * (`model`), the task heads (`tasks`, HeadDescription[] in the run's data set order), the input kinds the model
 * accepts (`inputs`), how the tested checkpoint was picked (`selection`) and the training batch size (evaluation
 * batches are evalBatchSize of it). `mf eval` and `mf predict` rebuild the model from it (src/cli/load-model.ts reads it).
 */
export function modelMetadata(s: AnyModelSettings, tasks: TaskData[], selection: 'per-task' | 'mean'): Record<string, string> {
  const heads: HeadDescription[] = tasks.map((t) => ({
    key: t.ds.key,
    task: t.ds.task,
    outputs: headOutputs(t),
    head: t.head,
    dim: t.meta.dim,
    channels: t.meta.channels,
    modality: t.meta.modality,
    body_part: t.meta.bodyPart,
  }));
  const inputs = inputKinds(heads);
  return {
    format: MODEL_METADATA_FORMAT,
    format_version: '1',
    name: s.name,
    kind: s.kind,
    model: JSON.stringify(s.model),
    tasks: JSON.stringify(heads),
    inputs: JSON.stringify(inputs),
    selection,
    batch_size: String(s.training.batch_size),
  };
}

export async function trainSupervised(
  ctx: RunContext,
  s: AnyModelSettings,
  tasks: TaskData[],
  options: SupervisedOptions = {},
): Promise<void> {
  const described = modelMetadata(s, tasks, options.select ?? 'per-task');
  const t = s.training;
  const { model, store } = buildModel((line) => ctx.say(line), s, tasks);
  if (options.init) await options.init(store, model);
  const phase = new TrainingPhase(ctx, { store, training: t });
  const k = options.subBatches ?? 1;
  if (t.batch_size % k !== 0)
    throw new ConfigError(
      `batch size ${t.batch_size} is not a multiple of ${k} sub-batches`,
      'pick a --batch-size that multitask.sub_batches divides',
    );
  const select = options.select ?? 'per-task';
  const loaders = trainLoaders(s, tasks, undefined, t.batch_size / k);
  const counts = taskBatchCounts(
    loaders.map((l) => l.batchesPerEpoch),
    s.data.sampling,
    s.data.temperature,
  );
  const order = epochOrder(counts);
  // The order of an epoch and each position's batch index within its task, computed once per epoch.
  let planned: { epoch: number; order: Int32Array; index: Int32Array } | null = null;
  const plan = (epoch: number) => {
    if (planned?.epoch !== epoch) {
      const o = k > 1 ? shuffledOrder(order, t.seed, epoch) : order;
      planned = { epoch, order: o, index: occurrences(o) };
    }
    return planned;
  };
  const batchAt = (epoch: number, position: number) => {
    const p = plan(epoch);
    const ti = p.order[position];
    const at = loaderPosition(epoch, p.index[position], counts[ti], loaders[ti].batchesPerEpoch);
    return { task: tasks[ti], batch: loaders[ti].batchAt(at.epoch, at.index) };
  };

  const restored = phase.restored;
  const best: Record<string, BestRecord | null> = (restored?.extra?.best as Record<string, BestRecord | null>) ?? {};
  const reached: Record<string, number | null> = (restored?.extra?.reached as Record<string, number | null>) ?? {};
  for (const task of tasks) {
    best[task.ds.key] ??= null;
    reached[task.ds.key] ??= null;
  }
  if (select === 'mean') best[ALL_TASKS] ??= null;
  const bestFile = (key: string) => path.join(ctx.outDir, `best-${key}.safetensors`);
  const saveBest = async (key: string, rec: BestRecord) => {
    best[key] = rec;
    writeSafetensors(bestFile(key), await store.export(), { ...described, step: String(rec.step), epoch: String(rec.epoch) });
  };

  // Training mode (batch statistics) for the steps; evaluateSplit switches to eval mode and back around each evaluation.
  model.setTraining?.(true);
  const result = await phase.run({
    stepsPerEpoch: Math.floor(order.length / k),
    step(epoch, position) {
      const drawn = Array.from({ length: k }, (_, i) => batchAt(epoch, position * k + i));
      const loss = tidy(() => {
        const losses = drawn.map(({ task, batch }) =>
          taskLoss(task, model.forward(Tensor.from(batch.x, batch.shape), task.meta, task.ds.key), batch.labels),
        );
        // Equal sub-batches: the mean of their mean losses is the mean loss over the whole step's samples.
        const l =
          k === 1
            ? losses[0]
            : scale(
                losses.reduce((a, b) => add(a, b)),
                1 / k,
              );
        l.backward();
        return l;
      });
      const keys = [...new Set(drawn.map((d) => d.task.ds.key))];
      return { loss, samples: drawn.reduce((a, d) => a + d.batch.size, 0), tag: { task: keys.join('+') } };
    },
    async validate(epoch, step) {
      const vals: Metrics[] = [];
      for (const task of tasks) {
        const key = task.ds.key;
        const val = await evaluateSplit(model, task, task.val, evalBatchSize(t.batch_size));
        vals.push(val);
        ctx.log({ event: 'val', epoch, step, task: key, auc: val.auc, acc: val.acc });
        ctx.say(`epoch ${epoch + 1} step ${step} ${key}: val AUC ${val.auc.toFixed(4)} ACC ${(100 * val.acc).toFixed(1)}%`);
        const goal = options.baselineAuc?.[key];
        if (goal !== undefined && reached[key] === null && val.auc >= goal) reached[key] = step;
        if (select === 'per-task' && better(val, best[key]?.val ?? null)) await saveBest(key, { epoch, step, val });
      }
      if (select === 'mean') {
        const mean = { auc: vals.reduce((a, v) => a + v.auc, 0) / vals.length, acc: vals.reduce((a, v) => a + v.acc, 0) / vals.length };
        ctx.log({ event: 'val', epoch, step, task: ALL_TASKS, auc: mean.auc, acc: mean.acc });
        ctx.say(
          `epoch ${epoch + 1} step ${step}: mean val AUC ${mean.auc.toFixed(4)} ACC ${(100 * mean.acc).toFixed(1)}% over ${vals.length} tasks`,
        );
        if (better(mean, best[ALL_TASKS]?.val ?? null)) {
          await saveBest(ALL_TASKS, { epoch, step, val: mean });
          // Every task's validation scores at the chosen checkpoint, for metrics.json.
          tasks.forEach((task, i) => (best[task.ds.key] = { epoch, step, val: vals[i] }));
        }
      }
    },
    extra: () => ({ best, reached }),
    modelMetadata: described,
  });
  if (!result) {
    store.dispose();
    return;
  }

  // Test once per task, with that task's best validation checkpoint (or the one chosen for all tasks).
  const results: SupervisedMetrics = {};
  const testScores = new Map<string, Float32Array>();
  const loadBest = (key: string) => {
    if (best[key] && fs.existsSync(bestFile(key))) store.load(asF32(readSafetensors(bestFile(key)).tensors), { strict: true });
  };
  if (select === 'mean') loadBest(ALL_TASKS);
  for (const task of tasks) {
    const key = task.ds.key;
    const rec = best[key];
    if (select === 'per-task') loadBest(key);
    const { metrics: test, scores } = await evaluateSplitWithScores(model, task, task.test, evalBatchSize(t.batch_size));
    testScores.set(key, scores);
    const majority = majorityAccuracy(task.ds.task, task.train, task.test.labels, task.test.n, numOutputs(task.ds));
    ctx.log({ event: 'test', task: key, auc: test.auc, acc: test.acc, best_epoch: rec ? rec.epoch + 1 : null });
    results[key] = {
      test,
      val: rec?.val ?? { auc: Number.NaN, acc: Number.NaN },
      best_epoch: rec ? rec.epoch + 1 : 0,
      steps: result.step,
      wall_s: +result.trainSeconds.toFixed(1),
      samples_per_s: +((result.step * t.batch_size) / Math.max(1e-3, result.trainSeconds)).toFixed(2),
      ...(options.baselineAuc ? { ssl_steps: reached[key] } : {}),
      majority_acc: majority,
      beats_majority: test.acc > majority,
    };
    const verdict = test.acc > majority ? 'above' : 'NOT above';
    ctx.say(
      `${key}: test AUC ${test.auc.toFixed(4)} ACC ${(100 * test.acc).toFixed(1)}% (best epoch ${results[key].best_epoch}; ${verdict} the majority class, ${(100 * majority).toFixed(1)}%)`,
    );
  }
  writeJsonAtomic(path.join(ctx.outDir, 'metrics.json'), results);
  writeSupervisedReport(ctx, s, results, tasks, testScores);
  store.dispose();
}

function writeSupervisedReport(
  ctx: RunContext,
  s: AnyModelSettings,
  results: SupervisedMetrics,
  tasks: TaskData[],
  testScores: ReadonlyMap<string, Float32Array>,
): void {
  const records = readLog(ctx.outDir);
  const enc = (x: string) => new TextEncoder().encode(x);
  writeFileAtomic(
    path.join(ctx.outDir, 'loss.svg'),
    enc(lineChartSvg('training loss', 'step', series(records, 'train', 'loss', 'task'), { logY: true })),
  );
  writeFileAtomic(path.join(ctx.outDir, 'val_auc.svg'), enc(lineChartSvg('validation AUC', 'step', series(records, 'val', 'auc', 'task'))));
  // The test split of each task, as the evaluator scored it: its confusion matrix and ROC curves (roc-<task>.svg).
  const sections: string[] = [];
  for (const task of tasks) {
    const key = task.ds.key;
    const scores = testScores.get(key);
    if (!scores) continue;
    const { n, labels } = task.test;
    const k = numOutputs(task.ds);
    const roc = rocSeries(task.ds.task, scores, labels, n, k, task.ds.labels);
    const rocFile = `roc-${key}.svg`;
    writeFileAtomic(path.join(ctx.outDir, rocFile), enc(lineChartSvg(`test ROC, ${key} (false-positive rate →)`, 'FPR', roc)));
    const matrix = confusionMatrix(task.ds.task, scores, labels, n, k);
    sections.push(`## ${key}: test split`, '');
    if (matrix)
      sections.push(
        'Confusion matrix (rows: true class, columns: predicted; the evaluator’s ACC rule):',
        '',
        ...confusionMarkdown(matrix, task.ds.labels),
        '',
      );
    else sections.push('Multi-label: no single confusion matrix; the ROC curves below are per label.', '');
    sections.push(`![${rocFile}](${rocFile})`, '');
  }
  writeFileAtomic(
    path.join(ctx.outDir, 'report.md'),
    enc(`${reportMarkdown(s.name, s.description, ctx.backend.describe(), results, ['loss.svg', 'val_auc.svg'])}\n${sections.join('\n')}`),
  );
}
