// Supervised training, single-task (kind "supervised") or several data sets at once (kind "multitask"):
// AdamW with a OneCycle schedule, per-epoch validation, the best checkpoint per task by validation AUC
// evaluated once on test. Every random choice is a function of (seed, epoch, position), so a run killed
// at any point and resumed with --resume ends with the same weights as one that never stopped.
import fs from 'node:fs';
import path from 'node:path';
import { BatchLoader } from '../data/loader.ts';
import { NumericalError } from '../errors.ts';
import { Tensor, tidy } from '../tensor/tensor.ts';
import { AdamW } from './adamw.ts';
import { writeSafetensors } from './checkpoint.ts';
import { better, evaluateSplit } from './evaluate.ts';
import type { Metrics } from './metrics.ts';
import { lineChartSvg, reportMarkdown, type DatasetResult } from './report.ts';
import { oneCycle, warmupSteps } from './schedule.ts';
import { readSafetensors } from './safetensors.ts';
import type { Session } from './session.ts';
import { taskLoss } from './tasks.ts';
import { writeFileAtomic } from './checkpoint.ts';
import type { Medformer } from '../models/medformer.ts';
import type { ParameterStore } from '../nn/parameters.ts';

/**
 * The order of batches in an epoch: every task's batches once, spread evenly so consecutive batches
 * alternate data sets (each batch holds one data set, so shapes stay static).
 */
export function epochOrder(batchesPerTask: number[]): Int32Array {
  const slots: { task: number; key: number }[] = [];
  batchesPerTask.forEach((n, task) => {
    for (let j = 0; j < n; j++) slots.push({ task, key: (j + 0.5) / n });
  });
  slots.sort((a, b) => a.key - b.key || a.task - b.task);
  return Int32Array.from(slots.map((s) => s.task));
}

interface BestRecord {
  epoch: number;
  val: Metrics;
}

export async function trainSupervised(session: Session, init?: (store: ParameterStore, model: Medformer) => Promise<void>): Promise<void> {
  const { exp } = session;
  const t = exp.training;
  const tasks = session.loadData();
  const { model, store } = session.buildModel(tasks);
  if (init) await init(store, model);
  const opt = new AdamW(store, { lr: t.lr, weightDecay: t.weight_decay, maxGradNorm: t.grad_clip ?? undefined });

  const loaders = tasks.map((task, i) => {
    const limit = exp.data.train_limit;
    const train = limit ? { ...task.train, n: Math.min(limit, task.train.n) } : task.train;
    return new BatchLoader(train, {
      batchSize: t.batch_size,
      seed: t.seed * 1000 + i,
      shuffle: true,
      dropLast: train.n >= t.batch_size,
      augment: exp.data.augment ? augmentFor(exp.data.augment, task.ds.dim) : null,
      prefetch: false,
    });
  });
  const order = epochOrder(loaders.map((l) => l.batchesPerEpoch));
  const stepsPerEpoch = order.length;
  const epochs = t.epochs ?? Math.ceil((t.max_steps ?? stepsPerEpoch) / stepsPerEpoch);
  const totalSteps = Math.min(epochs * stepsPerEpoch, t.max_steps ?? Infinity);
  const schedule = oneCycle({ maxLr: t.lr, totalSteps: Math.max(1, totalSteps), warmupSteps: warmupSteps(t.warmup_epochs, stepsPerEpoch) });

  const state = session.restore(store, opt);
  let step = state?.step ?? 0;
  let epoch = state?.epoch ?? 0;
  let position = state?.batch_position ?? 0;
  const best: Record<string, BestRecord | null> = (state?.extra?.best as Record<string, BestRecord | null>) ?? {};
  for (const task of tasks) best[task.ds.key] ??= null;

  const bestFile = (key: string) => path.join(session.outDir, `best-${key}.safetensors`);
  const checkpoint = async () => {
    await session.saveCheckpoint(store, opt, { step, epoch, batch_position: position, rng: {}, extra: { best } });
    session.log({ event: 'checkpoint', step });
  };
  const evalEvery = t.eval_every;
  let samplesSinceLog = 0;
  let lastLogTime = Date.now();
  let trainSeconds = Number(state?.extra?.train_seconds ?? 0);
  let segmentStart = Date.now();
  let lastLoss: number | undefined;

  const validate = async () => {
    for (const task of tasks) {
      const val = await evaluateSplit(model, task.ds, task.meta, task.val, t.batch_size * 2);
      session.log({ event: 'val', epoch, step, task: task.ds.key, auc: val.auc, acc: val.acc });
      session.say(`epoch ${epoch + 1} step ${step} ${task.ds.key}: val AUC ${val.auc.toFixed(4)} ACC ${(100 * val.acc).toFixed(1)}%`);
      if (better(val, best[task.ds.key]?.val ?? null)) {
        best[task.ds.key] = { epoch, val };
        writeSafetensors(bestFile(task.ds.key), await store.export(), { step: String(step), epoch: String(epoch) });
      }
    }
  };

  while (step < totalSteps && epoch < epochs && !session.interrupted) {
    session.startProgress(`epoch ${epoch + 1}/${epochs}`, stepsPerEpoch, position);
    while (position < stepsPerEpoch && step < totalSteps && !session.interrupted) {
      const ti = order[position];
      const task = tasks[ti];
      let j = 0;
      for (let p = 0; p < position; p++) if (order[p] === ti) j++;
      const batch = loaders[ti].batchAt(epoch, j);
      const lr = schedule.lr(step);
      store.zeroGrad();
      const loss = tidy(() => {
        const logits = model.forward(Tensor.from(batch.x, batch.shape), task.meta, task.ds.key);
        const l = taskLoss(task.ds, logits, batch.labels);
        l.backward();
        return l;
      });
      const logNow = (step + 1) % t.log_every === 0 || step + 1 === totalSteps;
      if (logNow) {
        const v = await loss.item();
        if (!Number.isFinite(v)) {
          loss.dispose();
          if (t.nan_policy === 'skip') {
            session.say(`warning: loss is ${v} at step ${step + 1}; skipping the update (nan_policy "skip")`);
            step++;
            position++;
            continue;
          }
          throw new NumericalError(`loss became ${v} at step ${step + 1}`, `the last good checkpoint in ${session.outDir} is kept; lower training.lr or set training.grad_clip, then --resume`);
        }
        lastLoss = v;
      }
      opt.step(lr);
      loss.dispose();
      step++;
      position++;
      samplesSinceLog += batch.size;
      if (logNow) {
        const now = Date.now();
        const sps = samplesSinceLog / Math.max(1e-3, (now - lastLogTime) / 1000);
        session.log({ event: 'train', step, epoch, task: task.ds.key, loss: lastLoss, lr, samples_per_s: +sps.toFixed(2) });
        session.progress(position, { loss: lastLoss, lr, sps });
        if (session.opts.quiet || !process.stderr.isTTY) session.say(`step ${step}/${totalSteps} loss ${lastLoss?.toFixed(4)} lr ${lr.toExponential(2)} ${sps.toFixed(1)} samples/s`);
        samplesSinceLog = 0;
        lastLogTime = now;
      } else {
        session.progress(position, { loss: lastLoss, lr, sps: 0 });
      }
      if (typeof evalEvery === 'number' && step % evalEvery === 0) await validate();
      if (t.checkpoint_every && step % t.checkpoint_every === 0) {
        trainSeconds += (Date.now() - segmentStart) / 1000;
        segmentStart = Date.now();
        await checkpoint();
      }
    }
    session.endProgress();
    if (session.interrupted) break;
    if (position >= stepsPerEpoch) {
      if (evalEvery === 'epoch') await validate();
      epoch++;
      position = 0;
    } else if (step >= totalSteps && evalEvery === 'epoch') {
      await validate();
    }
    trainSeconds += (Date.now() - segmentStart) / 1000;
    segmentStart = Date.now();
    await checkpoint();
  }

  if (session.interrupted) {
    await checkpoint();
    session.say(`interrupted: checkpoint saved at step ${step} in ${session.outDir}; continue with --resume`);
    process.exitCode = 130;
    store.dispose();
    return;
  }

  // Test once per task with its best validation checkpoint.
  const results: Record<string, DatasetResult> = {};
  for (const task of tasks) {
    const rec = best[task.ds.key];
    if (rec && fs.existsSync(bestFile(task.ds.key))) {
      const w = readSafetensors(bestFile(task.ds.key)).tensors;
      const m = new Map<string, { shape: number[]; data: Float32Array }>();
      for (const [k, v] of w) m.set(k, { shape: v.shape, data: Float32Array.from(v.data) });
      store.load(m, { strict: true });
    }
    const test = await evaluateSplit(model, task.ds, task.meta, task.test, t.batch_size * 2);
    session.log({ event: 'test', task: task.ds.key, auc: test.auc, acc: test.acc, best_epoch: rec?.epoch ?? null });
    const totalSamples = step * t.batch_size;
    results[task.ds.key] = {
      test,
      val: rec?.val ?? { auc: NaN, acc: NaN },
      best_epoch: (rec?.epoch ?? -1) + 1,
      steps: step,
      wall_s: +trainSeconds.toFixed(1),
      samples_per_s: +(totalSamples / Math.max(1e-3, trainSeconds)).toFixed(2),
    };
    session.say(`${task.ds.key}: test AUC ${test.auc.toFixed(4)} ACC ${(100 * test.acc).toFixed(1)}% (best epoch ${results[task.ds.key].best_epoch})`);
  }
  writeFileAtomic(path.join(session.outDir, 'metrics.json'), new TextEncoder().encode(JSON.stringify(results, null, 2) + '\n'));
  writeCharts(session, results);
  store.dispose();
}

function writeCharts(session: Session, results: Record<string, DatasetResult>): void {
  const lines = fs.readFileSync(path.join(session.outDir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  // A resumed run re-logs the steps after its last checkpoint: keep the last record of each step.
  const lossByStep = new Map<number, number>();
  const valByTask = new Map<string, Map<number, number>>();
  for (const r of lines) {
    if (r.event === 'train' && typeof r.loss === 'number') lossByStep.set(r.step as number, r.loss);
    if (r.event === 'val') {
      const m = valByTask.get(r.task as string) ?? new Map<number, number>();
      m.set(r.step as number, r.auc as number);
      valByTask.set(r.task as string, m);
    }
  }
  const loss = lineChartSvg('training loss', 'step', [{ label: 'loss', points: [...lossByStep].sort((a, b) => a[0] - b[0]) }], { logY: true });
  const val = lineChartSvg('validation AUC', 'step', [...valByTask].map(([task, m]) => ({ label: task, points: [...m].sort((a, b) => a[0] - b[0]) })));
  const enc = (s: string) => new TextEncoder().encode(s);
  writeFileAtomic(path.join(session.outDir, 'loss.svg'), enc(loss));
  writeFileAtomic(path.join(session.outDir, 'val_auc.svg'), enc(val));
  writeFileAtomic(
    path.join(session.outDir, 'report.md'),
    enc(reportMarkdown(session.exp.name, session.exp.description, session.backend.describe(), results, ['loss.svg', 'val_auc.svg'])),
  );
}

import { defaultAugment, type AugmentConfig as SampleAugment } from '../data/augment.ts';
import type { AugmentConfig as ExperimentAugment } from './config.ts';

/** The experiment's augmentation switches mapped onto the sample augmenter, per dimensionality. */
function augmentFor(a: ExperimentAugment, dim: 2 | 3): SampleAugment {
  const base = defaultAugment(dim);
  return {
    flip: a.flips,
    rotate: a.rotate,
    randAugment: dim === 2 && a.randaugment.n > 0 ? { n: a.randaugment.n, m: Math.min(10, a.randaugment.m) } : null,
    intensity: a.intensity ? (base.intensity ?? { scale: 0.1, shift: 0.1 }) : null,
  };
}
