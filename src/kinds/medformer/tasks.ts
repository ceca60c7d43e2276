// The MedMNIST tasks of a Medformer run: their splits loaded and checked before the device starts, the model
// built for them, and each task type's loss and scores as thesis Table 4.1 and the MedMNIST evaluator define them.
// An ordinal task (RetinaMNIST) has two heads to choose from (data.ordinal): "classes", K-way classification with
// cross-entropy, which the official evaluator scores exactly like a multi-class task (the default, and what this
// project's tables use); or "regression", the thesis's "label normalisation ... mean-squared error": one output
// trained with MSE against label / (K − 1), decoded for the evaluator into K class scores (ordinalScores).
import { type LoadedSplit, loadSplit, resolveDataRoot } from '../../data/dataset.ts';
import { BODY_PARTS, type DatasetInfo, getDataset, MODALITIES, numOutputs } from '../../data/registry.ts';
import { ConfigError } from '../../errors.ts';
import { type BatchMeta, type InputKind, Medformer, type TaskHead } from '../../models/medformer.ts';
import type { ModelConfig } from '../../models/medformer_config.ts';
import { ResNet18 } from '../../models/resnet18.ts';
import { ParameterStore } from '../../nn/parameters.ts';
import { sigmoid } from '../../ops/index.ts';
import { bceWithLogits, crossEntropy, mseLoss } from '../../ops/losses.ts';
import { softmax } from '../../ops/softmax.ts';
import { Tensor } from '../../tensor/tensor.ts';
import type { AnyModelSettings, MedformerSettings } from './schema.ts';

/** The head of an ordinal task: K class logits, or one normalised regression output. */
export type OrdinalHead = 'classes' | 'regression';

export interface TaskData {
  ds: DatasetInfo;
  /** 'regression' only for an ordinal task with data.ordinal "regression". */
  head: OrdinalHead;
  meta: BatchMeta;
  train: LoadedSplit;
  val: LoadedSplit;
  test: LoadedSplit;
}

/** Train/val/test of each data set of the experiment. */
export function loadTasks(s: AnyModelSettings, dataDir: string | undefined): TaskData[] {
  const root = resolveDataRoot(dataDir ?? s.data.root ?? undefined);
  return s.data.datasets.map((key) => {
    const ds = getDataset(key);
    const size = ds.dim === 2 ? s.model.image_size_2d : 'image_size_3d' in s.model ? s.model.image_size_3d : null;
    if (size === null) throw new ConfigError(`${s.source}: ${key} is 3D; /model/preset "${s.model.preset}" is a 2D model`);
    const load = (split: 'train' | 'val' | 'test') => loadSplit(ds, split, { root, size });
    const train = load('train');
    const channels = train.shape[0];
    const meta: BatchMeta = { dim: ds.dim, channels, modality: ds.latent.modality, bodyPart: ds.latent.bodyPart };
    const head: OrdinalHead = ds.task === 'ordinal' ? s.data.ordinal : 'classes';
    return { ds, head, meta, train, val: load('val'), test: load('test') };
  });
}

/**
 * What the supervised trainer and the evaluator need of a model: one task's logits for a batch, and, for a model
 * with BatchNorm, the switch between training mode (batch statistics) and eval mode (running statistics).
 */
export interface TaskModel {
  forward(x: Tensor, meta: BatchMeta, task: string): Tensor;
  /** Absent for a model that behaves the same in training and evaluation (Medformer: no dropout, no BatchNorm). */
  setTraining?(on: boolean): void;
}

/** The distinct input kinds (dimensionality, channels) of these batches, in first-seen order: one patch path each. */
export function inputKinds(metas: readonly Pick<BatchMeta, 'dim' | 'channels'>[]): InputKind[] {
  const kinds: InputKind[] = [];
  for (const m of metas)
    if (!kinds.some((k) => k.dim === m.dim && k.channels === m.channels)) kinds.push({ dim: m.dim, channels: m.channels });
  return kinds;
}

/** Medformer over `inputs` with one head per entry of `heads` (none for self-supervised pre-training). */
export function newMedformer(store: ParameterStore, config: ModelConfig, inputs: InputKind[], heads: TaskHead[]): Medformer {
  return new Medformer(store, { config, inputs, tasks: heads, numModalities: MODALITIES.length, numBodyParts: BODY_PARTS.length });
}

/** The MedMNIST ResNet-18 (28) baseline as a TaskModel: one input channel count, a head per entry of `heads`. */
export function newResNet18(store: ParameterStore, inChannels: number, heads: TaskHead[]): TaskModel {
  const net = new ResNet18(store, { inChannels, tasks: heads });
  return { forward: (x, _meta, task) => net.forward(x, task), setTraining: (on) => net.setTraining(on) };
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

/** Outputs of a task's head. */
export const headOutputs = (t: Pick<TaskData, 'ds' | 'head'>): number => (t.head === 'regression' ? 1 : numOutputs(t.ds));

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

/**
 * What the evaluator ranks: softmax for classes, sigmoid for binary and multi-label; an ordinal regression
 * head's raw output, which ordinalScores turns into class scores on the host.
 */
export function taskScores(t: Pick<TaskData, 'ds' | 'head'>, logits: Tensor): Tensor {
  if (t.head === 'regression') return logits;
  return t.ds.task === 'multi-class' || t.ds.task === 'ordinal' ? softmax(logits) : sigmoid(logits);
}

/**
 * K class scores from a normalised ordinal prediction v (target label / (K − 1)): a triangle of width one class
 * around v·(K − 1), clamped to [0, K − 1], so the top score is the nearest class (argmax, the evaluator's ACC)
 * and each class's scores rank the samples by closeness to it (its one-vs-rest AUC). This project's decoding;
 * the thesis names the regression head but not how it was scored.
 */
export function ordinalScores(v: number, k: number): Float32Array {
  const x = Math.min(k - 1, Math.max(0, v * (k - 1)));
  return Float32Array.from({ length: k }, (_, c) => Math.max(0, 1 - Math.abs(x - c)));
}
