// The MedMNIST tasks of a Medformer run: their splits loaded and checked before the device starts, the model
// built for them, and each task type's loss and scores as thesis Table 4.1 and the MedMNIST evaluator define them.
// An ordinal task (RetinaMNIST) has two heads to choose from (data.ordinal): "classes", K-way classification with
// cross-entropy, which the official evaluator scores exactly like a multi-class task (the default, and what this
// project's tables use); or "regression", the thesis's "label normalisation ... mean-squared error": one output
// trained with MSE against label / (K − 1), decoded for the evaluator into K class scores (ordinalScores).
import { type LoadedSplit, loadSplit, resolveDataRoot } from '../../data/dataset.ts';
import { neededFile } from '../../data/download.ts';
import { type DatasetInfo, getDataset, numOutputs } from '../../data/registry.ts';
import { ConfigError } from '../../errors.ts';
import type { BatchMeta, Medformer } from '../../models/medformer.ts';
import { ParameterStore } from '../../nn/parameters.ts';
import { buildMlp, mnistTask } from './mlp-task.ts';
import { isMnist, MNIST } from '../../data/mnist.ts';
import { cifarInfo, isCifar } from '../../data/cifar.ts';
import { buildWrn, cifarTask } from './wrn-task.ts';
import { bceWithLogits, crossEntropy, mseLoss } from '../../ops/losses.ts';
import { Tensor } from '../../tensor/tensor.ts';
import type { DataNeeds } from '../kind.ts';
import type { AnyModelSettings, MedformerSettings } from './schema.ts';
import {
  headOutputs,
  inputKinds,
  newMedformer,
  newResNet18,
  type OrdinalHead,
  ordinalScores,
  type TaskModel,
  taskScores,
} from './task-model.ts';

export type { OrdinalHead, TaskModel };
export { headOutputs, inputKinds, newMedformer, newResNet18, ordinalScores, taskScores };

export interface TaskData {
  ds: DatasetInfo;
  /** 'regression' only for an ordinal task with data.ordinal "regression". */
  head: OrdinalHead;
  meta: BatchMeta;
  train: LoadedSplit;
  val: LoadedSplit;
  test: LoadedSplit;
}

/** The side of data set `key`'s files the model reads: image_size_2d or image_size_3d. */
function fileSize(s: AnyModelSettings, key: string): number {
  const ds = isMnist(key) ? MNIST : isCifar(key) ? cifarInfo(key) : getDataset(key);
  const size = ds.dim === 2 ? s.model.image_size_2d : 'image_size_3d' in s.model ? s.model.image_size_3d : null;
  if (size === null) throw new ConfigError(`${s.source}: ${key} is 3D; /model/preset "${s.model.preset}" is a 2D model`);
  return size;
}

/** The official files loadTasks reads (generated sets left out), for `mf run --download` and `mf data list`. */
export function medformerData(s: AnyModelSettings, dataDir: string | undefined): DataNeeds {
  // MNIST's and CIFAR's files are the user's (src/data/mnist.ts, src/data/cifar.ts): nothing to download.
  const files = s.data.datasets
    .filter((key) => !isMnist(key) && !isCifar(key))
    .map((key) => neededFile(key, fileSize(s, key)))
    .filter((f) => f !== null);
  return { root: resolveDataRoot(dataDir ?? s.data.root ?? undefined), files, download: s.data.download };
}

/** Train/val/test of each data set of the experiment. */
export function loadTasks(s: AnyModelSettings, dataDir: string | undefined): TaskData[] {
  const root = resolveDataRoot(dataDir ?? s.data.root ?? undefined);
  return s.data.datasets.map((key) => {
    if (isMnist(key)) return mnistTask(root);
    if (isCifar(key))
      return cifarTask(root, key, {
        samplesPerClass: s.data.samples_per_class ?? null,
        seed: s.training.seed,
        side: s.model.image_size_2d,
      });
    const ds = getDataset(key);
    const size = fileSize(s, key);
    const load = (split: 'train' | 'val' | 'test') => loadSplit(ds, split, { root, size });
    const train = load('train');
    const channels = train.shape[0];
    const meta: BatchMeta = { dim: ds.dim, channels, modality: ds.latent.modality, bodyPart: ds.latent.bodyPart };
    const head: OrdinalHead = ds.task === 'ordinal' ? s.data.ordinal : 'classes';
    return { ds, head, meta, train, val: load('val'), test: load('test') };
  });
}

/**
 * The model the settings name (a Medformer preset or the ResNet-18 baseline), with a head per task; `say` hears
 * the one line that describes it.
 */
export function buildModel(
  say: (line: string) => void,
  s: AnyModelSettings,
  tasks: TaskData[],
): { model: TaskModel; store: ParameterStore } {
  if (s.model.preset === 'mlp') return buildMlp(say, s.training.seed, s.model.hidden, tasks);
  if ('widen_factor' in s.model) return buildWrn(say, s.training.seed, s.model, tasks);
  if (s.model.preset !== 'resnet18') return buildMedformer(say, { ...s, model: s.model }, tasks);
  const channels = [...new Set(tasks.map((t) => t.meta.channels))];
  if (channels.length !== 1 || tasks.some((t) => t.meta.dim !== 2)) {
    throw new ConfigError(
      `resnet18: needs 2D data sets of one channel count, got ${tasks.map((t) => `${t.ds.key} (${t.meta.dim}D×${t.meta.channels}ch)`).join(', ')}`,
    );
  }
  const store = new ParameterStore(s.training.seed);
  const model = newResNet18(
    store,
    channels[0],
    tasks.map((t) => ({ name: t.ds.key, outputs: headOutputs(t) })),
  );
  store.finalize();
  const buffers = store.bufferCount();
  say(
    `model: ResNet-18 (28), ${(store.count() - buffers).toLocaleString('en-US')} parameters and ${buffers.toLocaleString('en-US')} BatchNorm running statistics (${channels[0]}ch)`,
  );
  return { model, store };
}

/** The Medformer for these data sets, its parameters initialised from the run's seed. */
export function buildMedformer<E = null>(
  say: (line: string) => void,
  s: MedformerSettings,
  tasks: TaskData[],
  opts: { withHeads?: boolean; extend?: (ps: ParameterStore) => E } = {},
): { model: Medformer; store: ParameterStore; extension: E | null } {
  const withHeads = opts.withHeads ?? true;
  const store = new ParameterStore(s.training.seed);
  const kinds = inputKinds(tasks.map((t) => t.meta));
  const model = newMedformer(store, s.model, kinds, withHeads ? tasks.map((t) => ({ name: t.ds.key, outputs: headOutputs(t) })) : []);
  const extension = opts.extend ? opts.extend(store) : null;
  store.finalize();
  const inputs = kinds.map((k) => `${k.dim}D×${k.channels}ch`).join(', ');
  say(`model: Medformer-${s.model.preset}, ${store.count().toLocaleString('en-US')} parameters (${inputs})`);
  return { model, store, extension };
}

export function taskLoss(t: Pick<TaskData, 'ds' | 'head'>, logits: Tensor, labels: Int32Array): Tensor {
  const { ds } = t;
  const b = logits.shape[0];
  if (t.head === 'regression') {
    const top = numOutputs(ds) - 1;
    return mseLoss(
      logits,
      Tensor.from(
        Float32Array.from(labels.subarray(0, b), (y) => y / top),
        [b, 1],
      ),
    );
  }
  if (ds.task === 'multi-class' || ds.task === 'ordinal') {
    return crossEntropy(logits, Tensor.from(labels.subarray(0, b), [b], 'i32'));
  }
  // binary: one logit per sample; multi-label: one per label. Targets are the 0/1 labels.
  const k = numOutputs(ds);
  return bceWithLogits(logits, Tensor.from(Float32Array.from(labels.subarray(0, b * k)), [b, k]));
}
