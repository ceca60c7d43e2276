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
import { taskSource } from '../../data/provenance.ts';
import { TrainingPhase } from '../../train/phase.ts';
import type { SupervisedMetrics } from '../../train/records.ts';
import { lineChartSvg, readLog, reportMarkdown, type Series, series } from '../../train/report.ts';
import { readSafetensors } from '../../train/safetensors.ts';
import { writeFileAtomic, writeJsonAtomic } from '../../util/files.ts';
import { better, evalBatchSize, evaluateSplit, evaluateSplitWithScores } from './evaluate.ts';
import { confusionMarkdown, confusionMatrix, rocSeries } from '../../train/diagnostics.ts';
import { add, scale } from '../../ops/index.ts';
import { epochOrder, loaderPosition, occurrences, shuffledOrder, taskBatchCounts, trainLoaders } from './sampling.ts';
import type { AnyModelSettings } from './schema.ts';
import {
  ARMS_STATE_FILE,
  armName,
  CascadeState,
  CSA_STATE_FILE,
  type Chapter5Settings,
  cascadeMarkdown,
  evaluateTtsa,
  type StageOutcome,
  softTaskLoss,
  stageBestFile,
  stageName,
  stageTraining,
  isSumBatch,
  sumAugmentBatch,
  sumTargets,
} from './csa.ts';
import type { TrainingSettings } from '../../train/schema.ts';
import { killPoint } from '../../util/faults.ts';
import { medformerLayerGroups } from '../../models/medformer.ts';
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
 * accepts (`inputs`), how the tested checkpoint was picked (`selection`), the training batch size (evaluation
 * batches are evalBatchSize of it), the run's seed and, for CIFAR, data.samples_per_class. `mf eval` and `mf predict` rebuild the model from it (src/cli/load-model.ts reads it).
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
    // What picks a CIFAR run's images besides the files (and seeds a generated stand-in): mf eval re-creates them.
    seed: String(s.training.seed),
    ...(s.data.samples_per_class !== undefined ? { samples_per_class: JSON.stringify(s.data.samples_per_class) } : {}),
  };
}

/** What trainSupervised reads of the settings: the shared sections and the optional csa and ttsa sections. */
export type SupervisedSettings = AnyModelSettings & Chapter5Settings;

/** One training phase of the trainer: the whole run, or one stage of a cascade (K images per sample). */
interface Stage {
  k: number;
  /** The TrainingPhase's name: null for a run without a cascade, so its checkpoints stay what they were. */
  name: string | null;
  training: TrainingSettings;
  /** The last stage: its per-task best checkpoints are the run's (best-<task>.safetensors), tested once. */
  final: boolean;
  /** Patience on the mean validation metric; null: the epoch budget alone. */
  patience: { n: number; metric: 'auc' | 'acc' } | null;
  /** Where the weights come from: the previous stage's best (CSA), or the model's initialisation (compare_updates). */
  start: 'previous' | 'init';
  /** compare_updates: the arm's update rule (its training's `update`); null otherwise. */
  update: 'backprop' | 'backforward' | null;
}

/** `training` of a compare_updates arm: the run's, with the arm's update rule (absent for backprop, as in a plain run). */
function withUpdate(t: TrainingSettings, update: 'backprop' | 'backforward'): TrainingSettings {
  const { update: _update, ...rest } = t;
  return update === 'backforward' ? { ...rest, update } : rest;
}

export async function trainSupervised(
  ctx: RunContext,
  s: SupervisedSettings,
  tasks: TaskData[],
  options: SupervisedOptions = {},
): Promise<void> {
  const described = modelMetadata(s, tasks, options.select ?? 'per-task');
  const t = s.training;
  const { model, store } = buildModel((line) => ctx.say(line), s, tasks);
  if (options.init) await options.init(store, model);
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
  /** The batch at a position, each sample the average of `images` training images of its task (1: the plain batch). */
  const batchAt = (epoch: number, position: number, images: number) => {
    const p = plan(epoch);
    const ti = p.order[position];
    const at = loaderPosition(epoch, p.index[position], counts[ti], loaders[ti].batchesPerEpoch);
    const loader = loaders[ti];
    return {
      task: tasks[ti],
      batch: images === 1 ? loader.batchAt(at.epoch, at.index) : sumAugmentBatch(loader, at.epoch, at.index, images),
    };
  };

  const csa = s.csa ?? null;
  const arms = s.compare_updates ?? null;
  const stages: Stage[] = csa
    ? csa.schedule.map((images, i) => ({
        k: images,
        name: stageName(images),
        training: stageTraining(t, csa.stop),
        final: i === csa.schedule.length - 1,
        patience: csa.stop.rule === 'patience' ? { n: csa.stop.patience, metric: csa.stop.metric } : null,
        start: 'previous',
        update: null,
      }))
    : arms
      ? arms.map((update, i) => ({
          k: 1,
          name: armName(update),
          training: withUpdate(t, update),
          final: i === arms.length - 1,
          patience: null,
          start: 'init',
          update,
        }))
      : [{ k: 1, name: null, training: t, final: true, patience: null, start: 'previous', update: null }];
  const cascade = csa
    ? CascadeState.open(
        ctx.outDir,
        CSA_STATE_FILE,
        csa.schedule,
        stages.map((x) => x.name!),
        ctx.resume,
      )
    : arms
      ? CascadeState.open(
          ctx.outDir,
          ARMS_STATE_FILE,
          arms,
          stages.map((x) => x.name!),
          ctx.resume,
        )
      : null;
  const bestFile = (key: string) => path.join(ctx.outDir, `best-${key}.safetensors`);
  // The stage-best file a stage writes: every CSA stage but the last (the next one starts from it), every arm (it is tested).
  const stageFile = (stage: Stage) => (stage.name !== null && (arms || !stage.final) ? stageBestFile(ctx.outDir, stage.name) : null);
  const outcomes: StageOutcome[] = [];
  // Arms start from the model's initialisation (after options.init): the same weights for each.
  const initial = arms ? await store.export() : null;
  // Backforward updates one layer group at a time: each Linear of the MLP (its own groups), each block of Medformer.
  const groups =
    t.update === 'backforward' || arms?.includes('backforward')
      ? (model.layerGroups?.() ??
        (s.model.preset === 'small' || s.model.preset === 'large' ? medformerLayerGroups(store.names(), s.model.num_layers) : undefined))
      : undefined;

  // Training mode (batch statistics) for the steps; evaluateSplit switches to eval mode and back around each evaluation.
  model.setTraining?.(true);
  for (const [i, stage] of stages.entries()) {
    const finished = stage.name === null ? null : cascade?.finished(stage.name);
    if (finished) {
      outcomes.push(finished);
      continue;
    }
    // A cascade stage starts from the previous stage's best weights, an arm from the initialisation; a checkpoint of
    // its own (a resumed stage) then replaces them.
    const from = stage.start === 'previous' && i > 0 ? stageFile(stages[i - 1]) : null;
    if (from && fs.existsSync(from)) store.load(asF32(readSafetensors(from).tensors), { strict: true });
    if (initial) store.load(initial, { strict: true });
    if (stage.name !== null) {
      killPoint('csa-stage');
      const what = stage.update ? `update "${stage.update}"` : `${stage.k} image${stage.k > 1 ? 's' : ''} per sample`;
      ctx.say(`--- ${stage.name}: ${what}${from ? `, from ${path.basename(from)}` : ''}`);
      ctx.log({ event: 'phase', phase: stage.name, k: stage.k, from: from ? path.basename(from) : null });
    }
    const outcome = await trainStage(stage, from);
    if (!outcome) {
      store.dispose();
      return;
    }
    outcomes.push(outcome);
    if (stage.name !== null) cascade?.finish(stage.name, outcome);
  }

  async function trainStage(stage: Stage, from: string | null): Promise<StageOutcome | null> {
    const st = stage.training;
    const phase = new TrainingPhase(ctx, { store, training: st, name: stage.name, layerGroups: groups });
    const bestOfStage = stageFile(stage);
    const restored = phase.restored;
    const tag = stage.name === null ? {} : { phase: stage.name };
    const best: Record<string, BestRecord | null> = (restored?.extra?.best as Record<string, BestRecord | null>) ?? {};
    const reached: Record<string, number | null> =
      (restored?.extra?.reached as Record<string, number | null>) ??
      (outcomes.at(-1)?.extra.reached as Record<string, number | null>) ??
      {};
    // The stage's best by the mean validation metric over tasks: the next stage's start, and what patience watches.
    let stageBest = (restored?.extra?.stage_best as BestRecord | null) ?? null;
    let sinceBest = Number(restored?.extra?.since_best ?? 0);
    let stopped = restored?.extra?.stopped === true;
    for (const task of tasks) {
      if (stage.final) best[task.ds.key] ??= null;
      reached[task.ds.key] ??= null;
    }
    if (stage.final && select === 'mean') best[ALL_TASKS] ??= null;
    const saveBest = async (key: string, rec: BestRecord) => {
      best[key] = rec;
      writeSafetensors(bestFile(key), await store.export(), { ...described, step: String(rec.step), epoch: String(rec.epoch) });
    };
    const metric = stage.patience?.metric ?? 'auc';
    const improves = (a: Metrics, b: Metrics | null) =>
      metric === 'auc' ? better(a, b) : b === null || a.acc > b.acc || (a.acc === b.acc && better(a, b));

    const result = await phase.run({
      stepsPerEpoch: Math.floor(order.length / k),
      step(epoch, position) {
        const drawn = Array.from({ length: k }, (_, i) => batchAt(epoch, position * k + i, stage.k));
        const loss = tidy(() => {
          const losses = drawn.map(({ task, batch }) => {
            const logits = model.forward(Tensor.from(batch.x, batch.shape), task.meta, task.ds.key);
            return isSumBatch(batch) ? softTaskLoss(task, logits, sumTargets(task, batch)) : taskLoss(task, logits, batch.labels);
          });
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
          ctx.log({ event: 'val', epoch, step, task: key, auc: val.auc, acc: val.acc, ...tag });
          ctx.say(`epoch ${epoch + 1} step ${step} ${key}: val AUC ${val.auc.toFixed(4)} ACC ${(100 * val.acc).toFixed(1)}%`);
          if (arms) {
            // Figure 5.4 plots training accuracy too: the training split (as data.train_limit cuts it), in eval mode.
            const limit = s.data.train_limit;
            const n = Math.min(limit ?? task.train.n, task.train.n);
            const per = task.train.images.length / task.train.n;
            const train = {
              ...task.train,
              n,
              images: task.train.images.subarray(0, n * per),
              labels: task.train.labels.subarray(0, n * task.train.numLabels),
            };
            const tr = await evaluateSplit(model, task, train, evalBatchSize(t.batch_size));
            ctx.log({ event: 'val', epoch, step, task: key, split: 'train', auc: tr.auc, acc: tr.acc, ...tag });
          }
          const goal = options.baselineAuc?.[key];
          if (goal !== undefined && reached[key] === null && val.auc >= goal) reached[key] = step;
          if (stage.final && select === 'per-task' && better(val, best[key]?.val ?? null)) await saveBest(key, { epoch, step, val });
        }
        const mean = { auc: vals.reduce((a, v) => a + v.auc, 0) / vals.length, acc: vals.reduce((a, v) => a + v.acc, 0) / vals.length };
        if (stage.final && select === 'mean') {
          ctx.log({ event: 'val', epoch, step, task: ALL_TASKS, auc: mean.auc, acc: mean.acc, ...tag });
          ctx.say(
            `epoch ${epoch + 1} step ${step}: mean val AUC ${mean.auc.toFixed(4)} ACC ${(100 * mean.acc).toFixed(1)}% over ${vals.length} tasks`,
          );
          if (better(mean, best[ALL_TASKS]?.val ?? null)) {
            await saveBest(ALL_TASKS, { epoch, step, val: mean });
            // Every task's validation scores at the chosen checkpoint, for metrics.json.
            tasks.forEach((task, i) => (best[task.ds.key] = { epoch, step, val: vals[i] }));
          }
        }
        if (improves(mean, stageBest?.val ?? null)) {
          stageBest = { epoch, step, val: mean };
          sinceBest = 0;
          if (bestOfStage) writeSafetensors(bestOfStage, await store.export(), { ...described, step: String(step) });
        } else if (stage.patience && ++sinceBest >= stage.patience.n) {
          stopped = true;
          ctx.say(`${stage.name ?? 'training'}: no better validation ${metric.toUpperCase()} for ${sinceBest} validations; stage ends`);
        }
      },
      done: () => stopped,
      extra: () => ({ best, reached, stage_best: stageBest, since_best: sinceBest, stopped }),
      modelMetadata: described,
    });
    if (!result) return null;
    // A stage that never validated (e.g. --max-steps below an epoch) hands its last weights on.
    if (bestOfStage && !stageBest) writeSafetensors(bestOfStage, await store.export(), described);
    return {
      k: stage.k,
      ...(stage.update ? { update: stage.update } : {}),
      steps: result.step,
      epochs: result.epoch,
      train_seconds: +result.trainSeconds.toFixed(3),
      stopped,
      best: stageBest ? { epoch: stageBest.epoch, step: stageBest.step, auc: stageBest.val.auc, acc: stageBest.val.acc } : null,
      from: from ? path.basename(from) : null,
      extra: { best, reached },
    };
  }

  // Test once per task, with that task's best validation checkpoint of the last stage (or the one chosen for all tasks).
  const last = outcomes[outcomes.length - 1];
  const best = last.extra.best as Record<string, BestRecord | null>;
  const reached = last.extra.reached as Record<string, number | null>;
  const steps = outcomes.reduce((a, o) => a + o.steps, 0);
  const trainSeconds = outcomes.reduce((a, o) => a + o.train_seconds, 0);
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
      steps,
      wall_s: +trainSeconds.toFixed(1),
      samples_per_s: +((steps * t.batch_size) / Math.max(1e-3, trainSeconds)).toFixed(2),
      ...(options.baselineAuc ? { ssl_steps: reached[key] } : {}),
      majority_acc: majority,
      beats_majority: test.acc > majority,
      data_source: taskSource(task),
    };
    if (csa) {
      results[key].csa = {
        schedule: csa.schedule,
        stages: outcomes.map((o) => ({
          k: o.k,
          steps: o.steps,
          epochs: o.epochs,
          best_epoch: o.best ? o.best.epoch + 1 : 0,
          val: { auc: o.best?.auc ?? Number.NaN, acc: o.best?.acc ?? Number.NaN },
        })),
      };
    }
    const verdict = test.acc > majority ? 'above' : 'NOT above';
    ctx.say(
      `${key}: test AUC ${test.auc.toFixed(4)} ACC ${(100 * test.acc).toFixed(1)}% (best epoch ${results[key].best_epoch}; ${verdict} the majority class, ${(100 * majority).toFixed(1)}%)`,
    );
    if (s.ttsa) {
      const tt = await evaluateTtsa(model, task, task.test, evalBatchSize(t.batch_size), s.ttsa);
      results[key].ttsa = { ...s.ttsa, test: tt };
      ctx.say(`${key}: TTSA (K ${s.ttsa.k}, R ${s.ttsa.r}) test AUC ${tt.auc.toFixed(4)} ACC ${(100 * tt.acc).toFixed(1)}%`);
    }
  }
  if (arms) {
    // Every arm tested with its own best validation checkpoint (by the mean over tasks).
    for (const o of outcomes) {
      const file = stageBestFile(ctx.outDir, armName(o.update ?? 'backprop'));
      if (fs.existsSync(file)) store.load(asF32(readSafetensors(file).tensors), { strict: true });
      for (const task of tasks) {
        const test = await evaluateSplit(model, task, task.test, evalBatchSize(t.batch_size));
        const val = o.best ? { auc: o.best.auc ?? Number.NaN, acc: o.best.acc ?? Number.NaN } : { auc: Number.NaN, acc: Number.NaN };
        const rows = results[task.ds.key].arms ?? [];
        results[task.ds.key].arms = rows;
        rows.push({
          update: o.update ?? 'backprop',
          steps: o.steps,
          best_epoch: o.best ? o.best.epoch + 1 : 0,
          val,
          test,
        });
        ctx.say(`${task.ds.key}, update "${o.update}": test AUC ${test.auc.toFixed(4)} ACC ${(100 * test.acc).toFixed(1)}%`);
      }
    }
  }
  writeJsonAtomic(path.join(ctx.outDir, 'metrics.json'), results);
  writeSupervisedReport(ctx, s, results, tasks, testScores, csa || arms ? outcomes : null);
  store.dispose();
}

function writeSupervisedReport(
  ctx: RunContext,
  s: SupervisedSettings,
  results: SupervisedMetrics,
  tasks: TaskData[],
  testScores: ReadonlyMap<string, Float32Array>,
  stages: readonly StageOutcome[] | null,
): void {
  const pct = (v: number | null) => (v === null || Number.isNaN(v) ? 'n/a' : `${(100 * v).toFixed(1)}%`);
  const fixed = (v: number | null) => (v === null || Number.isNaN(v) ? 'n/a' : v.toFixed(3));
  // A cascade's stages each count steps from 0: one curve per stage (and task), within the stage.
  const records = readLog(ctx.outDir).map((r) => {
    const { phase, task } = r as { phase?: string; task?: string };
    return { ...r, curve: phase ? `${phase} ${task ?? ''}`.trim() : task };
  });
  const by = stages ? 'curve' : 'task';
  const enc = (x: string) => new TextEncoder().encode(x);
  const x = stages ? 'step within the stage' : 'step';
  writeFileAtomic(
    path.join(ctx.outDir, 'loss.svg'),
    enc(lineChartSvg('training loss', x, series(records, 'train', 'loss', by), { logY: true })),
  );
  writeFileAtomic(
    path.join(ctx.outDir, 'val_auc.svg'),
    enc(
      lineChartSvg(
        'validation AUC',
        x,
        series(
          records.filter((r) => !('split' in r)),
          'val',
          'auc',
          by,
        ),
      ),
    ),
  );
  const charts = ['loss.svg', 'val_auc.svg'];
  if (s.compare_updates) {
    // Thesis Figure 5.4: training and validation accuracy per epoch of each update rule.
    const curves: Series[] = [];
    for (const update of s.compare_updates) {
      for (const which of ['train', 'val'] as const) {
        const points = records
          .filter(
            (r) =>
              r.event === 'val' &&
              (r as { phase?: string }).phase === armName(update) &&
              ((r as { split?: string }).split ?? 'val') === which,
          )
          .map((r) => r as { epoch: number; acc?: number | null })
          .filter((r) => typeof r.acc === 'number')
          .map((r): [number, number] => [r.epoch + 1, r.acc as number]);
        curves.push({ label: `${update} ${which}`, points });
      }
    }
    writeFileAtomic(
      path.join(ctx.outDir, 'accuracy.svg'),
      enc(lineChartSvg('accuracy per epoch (training and validation)', 'epoch', curves)),
    );
    charts.push('accuracy.svg');
  }
  // The test split of each task, as the evaluator scored it: its confusion matrix and ROC curves (roc-<task>.svg).
  const sections: string[] = stages && s.csa ? cascadeMarkdown(stages) : [];
  const armRows = Object.entries(results).flatMap(([key, r]) =>
    (r.arms ?? []).map(
      (a) => `| ${key} | ${a.update} | ${a.steps} | ${a.best_epoch} | ${pct(a.val.acc)} | ${pct(a.test.acc)} | ${fixed(a.test.auc)} |`,
    ),
  );
  if (armRows.length) {
    sections.push(
      '## Update rules compared (thesis section 5.3)',
      '',
      'Each arm trained from the same initialisation and data order; each tested with its best validation checkpoint.',
      '',
      '| dataset | update | steps | best epoch | val ACC | test ACC | test AUC |',
      '|---|---|---|---|---|---|---|',
      ...armRows,
      '',
    );
  }
  for (const [key, r] of Object.entries(results)) {
    if (r.ttsa) {
      if (!sections.includes('## Test-Time Sum Augmentation')) sections.push('## Test-Time Sum Augmentation', '');
      const f = (v: number | null) => (v === null || Number.isNaN(v) ? 'n/a' : v.toFixed(3));
      sections.push(
        `${key}: test AUC ${f(r.ttsa.test.auc)} / ACC ${f(r.ttsa.test.acc)} as the mean over ${r.ttsa.r} hybrids of ${r.ttsa.k} images (seed ${r.ttsa.seed}); plain: AUC ${f(r.test.auc)} / ACC ${f(r.test.acc)}.`,
        '',
      );
    }
  }
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
    enc(`${reportMarkdown(s.name, s.description, ctx.backend.describe(), results, charts)}\n${sections.join('\n')}`),
  );
}
