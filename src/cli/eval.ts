// `mf eval <run folder | model.safetensors>`: the official MedMNIST metrics (AUC, ACC) of a trained model on its
// data sets' val or test split, with the majority-class baseline beside ACC. The model is rebuilt from the run's
// config.json or the file's metadata and scored by the trainer's own evaluator (evaluateSplit) with the weights the
// trainer tested, in the trainer's evaluation batch size, so a run folder's test numbers are its metrics.json's.
// MNIST and CIFAR runs are evaluated on the splits their trainer made (src/data/mnist.ts, src/data/cifar.ts: the
// same validation images, the same test file), or, without their files, on the same generated stand-in, said loudly.
import path from 'node:path';
import { initEngine } from '../backend/index.ts';
import { isCifar, loadCifar } from '../data/cifar.ts';
import { type LoadedLabels, type LoadedSplit, loadLabels, loadSplit, resolveDataRoot } from '../data/dataset.ts';
import { isMnist, loadMnist } from '../data/mnist.ts';
import { type DataSource, isStandIn, splitSource } from '../data/provenance.ts';
import { numOutputs } from '../data/registry.ts';
import { ConfigError } from '../errors.ts';
import { evaluateTtsa, type TtsaSettings } from '../kinds/medformer/csa.ts';
import { evalBatchSize, evaluateSplit } from '../kinds/medformer/evaluate.ts';
import { majorityAccuracy } from '../train/metrics.ts';
import { buildModel, type HeadTask, headTask, inputSize, type ModelDescription, readModel, selectHeads } from './load-model.ts';

export interface EvalFlags {
  dataset?: string;
  split: string;
  dataDir?: string;
  json?: boolean;
  /** `K,R` or `K,R,SEED`: also score with Test-Time Sum Augmentation (src/kinds/medformer/csa.ts). */
  ttsa?: string;
  backend?: string;
}

export interface EvalTaskResult {
  auc: number;
  acc: number;
  /** ACC of always answering the training split's most frequent class (the trainer's majority_acc). */
  majority_acc: number;
  beats_majority: boolean;
  /** Samples in the split. */
  n: number;
  /** The weights file scored. */
  weights: string;
  /** Where the split came from: its files, or a generated stand-in for missing ones (whose numbers mean nothing). */
  data_source: DataSource;
  /** With --ttsa: the split scored as the mean over R hybrids of K images. */
  ttsa?: { k: number; r: number; seed: number; auc: number; acc: number };
}

export interface EvalReport {
  source: string;
  name: string;
  kind: string;
  split: 'val' | 'test';
  tasks: Record<string, EvalTaskResult>;
}

/** `--ttsa K,R[,SEED]`: K images per hybrid (at least 2), R hybrids per image, the partners' seed (default 0). */
export function parseTtsa(text: string): TtsaSettings {
  const parts = text.split(',').map((p) => p.trim());
  const [k, r, seed = 0] = parts.map(Number);
  const whole = (v: number, lo: number) => Number.isInteger(v) && v >= lo;
  if (parts.length < 2 || parts.length > 3 || !parts.every((p) => /^\d+$/.test(p)) || !whole(k, 2) || !whole(r, 1)) {
    throw new ConfigError(`--ttsa ${text}: give K,R or K,R,SEED (whole numbers, K >= 2, R >= 1)`, 'e.g. --ttsa 2,8');
  }
  return { k, r, seed };
}

/**
 * The split to score and the training split's labels (for the majority class), as the trainer made them: MedMNIST
 * from its npz (the train split's labels only), MNIST and CIFAR from their loaders (CIFAR with the run's samples per
 * class and seed, which also seed the stand-in; a model file from before the seed was recorded gets seed 0).
 */
function evalSplits(
  d: ModelDescription,
  task: HeadTask,
  split: 'val' | 'test',
  root: string,
  size: number,
): { train: LoadedLabels; eval: LoadedSplit } {
  const key = task.ds.key;
  if (isMnist(key) || isCifar(key)) {
    const splits = isMnist(key)
      ? loadMnist(root)
      : loadCifar(root, key, { samplesPerClass: d.samplesPerClass, seed: d.seed ?? 0, side: size });
    return { train: splits.train, eval: splits[split] };
  }
  return { train: loadLabels(task.ds, 'train', { root, size }), eval: loadSplit(task.ds, split, { root, size }) };
}

export async function evalCommand(target: string, flags: EvalFlags): Promise<void> {
  if (flags.split !== 'val' && flags.split !== 'test') throw new ConfigError(`--split ${flags.split}: give val or test`);
  const split = flags.split;
  const ttsa = flags.ttsa === undefined ? null : parseTtsa(flags.ttsa);
  // Everything from disk first: the model description, its weights, every split it needs.
  const source = readModel(target);
  const d = source.description;
  const heads = selectHeads(d, flags.dataset, '--dataset');
  const root = resolveDataRoot(flags.dataDir ?? d.dataRoot ?? undefined);
  const data = heads.map((h) => {
    const task = headTask(h);
    return { h, task, ...evalSplits(d, task, split, root, inputSize(d, h)) };
  });
  for (const { task, eval: s } of data) {
    if (isStandIn(splitSource(s)))
      process.stderr.write(
        `${task.ds.key}: NO ${task.ds.name} FILES in ${root}; evaluating on the GENERATED stand-in the trainer uses without them; these numbers say nothing about ${task.ds.name}\n`,
      );
  }

  await initEngine({ backend: (flags.backend ?? 'auto') as 'auto' | 'webgpu' | 'cpu' });
  const loaded = buildModel(source);
  const tasks: Record<string, EvalTaskResult> = {};
  try {
    for (const { h, task, train, eval: s } of data) {
      const weights = loaded.use(h.key);
      const m = await evaluateSplit(loaded.model, task, s, evalBatchSize(d.batchSize));
      const majority = majorityAccuracy(task.ds.task, train, s.labels, s.n, numOutputs(task.ds));
      tasks[h.key] = {
        auc: m.auc,
        acc: m.acc,
        majority_acc: majority,
        beats_majority: m.acc > majority,
        n: s.n,
        weights,
        data_source: splitSource(s),
      };
      if (ttsa) tasks[h.key].ttsa = { ...ttsa, ...(await evaluateTtsa(loaded.model, task, s, evalBatchSize(d.batchSize), ttsa)) };
    }
  } finally {
    loaded.dispose();
  }
  const report: EvalReport = { source: path.resolve(target), name: d.name, kind: d.kind, split, tasks };
  if (flags.json) {
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  console.log(`${d.name} (${d.kind}), ${split} split, from ${target}`);
  const width = Math.max(...Object.keys(tasks).map((k) => k.length));
  for (const [key, r] of Object.entries(tasks)) {
    const verdict = r.beats_majority ? 'above' : 'NOT above';
    console.log(
      `${key.padEnd(width)}  AUC ${r.auc.toFixed(4)}  ACC ${(100 * r.acc).toFixed(1)}% (majority class ${(100 * r.majority_acc).toFixed(1)}%, ${verdict})  n ${r.n}  weights ${path.basename(r.weights)}${isStandIn(r.data_source) ? '  on GENERATED data' : ''}`,
    );
    if (r.ttsa)
      console.log(
        `${''.padEnd(width)}  TTSA (K ${r.ttsa.k}, R ${r.ttsa.r}, seed ${r.ttsa.seed}): AUC ${r.ttsa.auc.toFixed(4)}  ACC ${(100 * r.ttsa.acc).toFixed(1)}%`,
      );
  }
}
