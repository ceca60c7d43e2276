// A trained task model as data to compute with, with nothing of the host: the model its description builds, and
// what each head's outputs mean to the evaluator. The trainer, `mf eval` / `mf predict` (through tasks.ts and
// load-model.ts) and the page of `mf serve` (web/try-model.ts, on the browser's WebGPU) share it, so it imports
// no Node module.
import { BODY_PARTS, type DatasetInfo, MODALITIES, numOutputs } from '../../data/registry.ts';
import { ConfigError } from '../../errors.ts';
import { type BatchMeta, type InputKind, Medformer, type TaskHead } from '../../models/medformer.ts';
import type { ModelConfig } from '../../models/medformer_config.ts';
import { Mlp } from '../../models/mlp.ts';
import { ResNet18 } from '../../models/resnet18.ts';
import { WideResNet } from '../../models/wrn.ts';
import type { ParameterStore } from '../../nn/parameters.ts';
import { sigmoid } from '../../ops/index.ts';
import { softmax } from '../../ops/softmax.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { ACC_THRESHOLD } from '../../train/metrics.ts';
import type { ModelSettings } from './schema.ts';

/** The head of an ordinal task: K class logits, or one normalised regression output. */
export type OrdinalHead = 'classes' | 'regression';

/** A head's data set and type: what its outputs mean. */
export interface HeadKind {
  ds: DatasetInfo;
  /** 'regression' only for an ordinal task with data.ordinal "regression". */
  head: OrdinalHead;
}

/**
 * What the supervised trainer and the evaluator need of a model: one task's logits for a batch, and, for a model
 * with BatchNorm, the switch between training mode (batch statistics) and eval mode (running statistics).
 */
export interface TaskModel {
  forward(x: Tensor, meta: BatchMeta, task: string): Tensor;
  /** Absent for a model that behaves the same in training and evaluation (Medformer: no dropout, no BatchNorm). */
  setTraining?(on: boolean): void;
  /** Parameter names per layer group from the input side, for training.update "backforward"; absent: not supported. */
  layerGroups?(): string[][];
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

/** A Wide ResNet (CIFAR, thesis Tables 5.1/5.2) as a TaskModel: one input channel count, a head per entry of `heads`. */
export function newWrn(store: ParameterStore, inChannels: number, depth: number, widenFactor: number, heads: TaskHead[]): TaskModel {
  const net = new WideResNet(store, { depth, widenFactor, inChannels, tasks: heads });
  return { forward: (x, _meta, task) => net.forward(x, task), setTraining: (on) => net.setTraining(on) };
}

/** The section 5.3 perceptron as a TaskModel over `inputs` values per sample, a head per entry of `heads`. */
export function newMlp(store: ParameterStore, inputs: number, hidden: readonly number[], heads: TaskHead[]): TaskModel {
  const net = new Mlp(store, { inputs, hidden, tasks: heads });
  return { forward: (x, _meta, task) => net.forward(x, task), layerGroups: () => net.layerGroups() };
}

/** The model a trained model's description builds (a run's config.json or a model file's metadata), in `store`. */
export function describedModel(
  store: ParameterStore,
  d: { model: ModelSettings; heads: readonly { key: string; outputs: number }[]; inputs: InputKind[] },
): TaskModel {
  const tasks = d.heads.map((h) => ({ name: h.key, outputs: h.outputs }));
  if (d.model.preset === 'resnet18') {
    const channels = [...new Set(d.inputs.map((k) => k.channels))];
    if (channels.length !== 1 || d.inputs.some((k) => k.dim !== 2)) {
      throw new ConfigError(`resnet18: needs 2D inputs of one channel count, the description has ${JSON.stringify(d.inputs)}`);
    }
    return newResNet18(store, channels[0]!, tasks);
  }
  if (d.model.preset === 'mlp') {
    const { model } = d;
    return newMlp(store, (d.inputs[0]?.channels ?? 1) * model.image_size_2d ** 2, model.hidden, tasks);
  }
  if ('widen_factor' in d.model) {
    return newWrn(store, d.inputs[0]?.channels ?? 3, d.model.depth, d.model.widen_factor, tasks);
  }
  return newMedformer(store, d.model, d.inputs, tasks);
}

/** Outputs of a task's head. */
export const headOutputs = (t: HeadKind): number => (t.head === 'regression' ? 1 : numOutputs(t.ds));

/**
 * What the evaluator ranks: softmax for classes, sigmoid for binary and multi-label; an ordinal regression
 * head's raw output, which ordinalScores turns into class scores on the host.
 */
export function taskScores(t: HeadKind, logits: Tensor): Tensor {
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

/** The host-side rows of a head's scores: k per sample, an ordinal regression head's single output decoded. */
export function scoreRows(t: HeadKind, data: Float32Array, n: number): Float32Array[] {
  const k = numOutputs(t.ds);
  const width = headOutputs(t);
  return Array.from({ length: n }, (_, i) => (width === k ? data.slice(i * k, (i + 1) * k) : ordinalScores(data[i]!, k)));
}

export interface Prediction {
  input: string;
  task: string;
  /** The predicted class; for a multi-label task every finding scored above 0.5. */
  predicted: string | string[];
  /**
   * Per label name: softmax probabilities (multi-class, ordinal), the sigmoid and its complement (binary), each
   * finding's sigmoid (multi-label); an ordinal regression head's class scores (see ordinalScores).
   */
  probabilities: Record<string, number>;
}

/** Scores in the evaluator's layout (k per sample; one for binary) as named probabilities and a decision. */
export function toPrediction(input: string, task: Pick<HeadKind, 'ds'>, row: Float32Array): Prediction {
  const labels = task.ds.labels;
  const probabilities: Record<string, number> = {};
  const set = (name: string, v: number) => {
    probabilities[name] = v;
  };
  let predicted: string | string[];
  if (task.ds.task === 'binary') {
    const p = row[row.length - 1]!;
    set(labels[0]!, 1 - p);
    set(labels[1]!, p);
    predicted = p > ACC_THRESHOLD ? labels[1]! : labels[0]!;
  } else if (task.ds.task === 'multi-label') {
    labels.forEach((l, j) => set(l, row[j]!));
    predicted = labels.filter((_, j) => row[j]! > ACC_THRESHOLD);
  } else {
    labels.forEach((l, j) => set(l, row[j]!));
    let best = 0;
    for (let j = 1; j < row.length; j++) if (row[j]! > row[best]!) best = j;
    predicted = labels[best]!;
  }
  return { input, task: task.ds.key, predicted, probabilities };
}
