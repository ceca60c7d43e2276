// The section 5.3 perceptron and MNIST in the supervised kind: the model built for the run's tasks, and MNIST's
// splits (the user's IDX files, or the generated digits) as a task, so the trainer treats both like any other.
import { loadMnist, MNIST } from '../../data/mnist.ts';
import type { LoadedSplit } from '../../data/dataset.ts';
import type { BatchMeta } from '../../models/medformer.ts';
import { ConfigError } from '../../errors.ts';
import { ParameterStore } from '../../nn/parameters.ts';
import { type HeadKind, headOutputs, newMlp, type OrdinalHead, type TaskModel } from './task-model.ts';

/** The perceptron over the tasks' flattened images (one channel count, 2D), its parameters from the run's seed. */
export function buildMlp(
  say: (line: string) => void,
  seed: number,
  hidden: readonly number[],
  tasks: readonly (HeadKind & { meta: BatchMeta; train: LoadedSplit })[],
): { model: TaskModel; store: ParameterStore } {
  const inputs = [...new Set(tasks.map((t) => t.train.shape.reduce((a, b) => a * b, 1)))];
  if (inputs.length !== 1 || tasks.some((t) => t.meta.dim !== 2)) {
    throw new ConfigError(
      `mlp: needs 2D data sets of one image shape, got ${tasks.map((t) => `${t.ds.key} (${t.train.shape.join('×')})`).join(', ')}`,
    );
  }
  const store = new ParameterStore(seed);
  const model = newMlp(
    store,
    inputs[0],
    hidden,
    tasks.map((t) => ({ name: t.ds.key, outputs: headOutputs(t) })),
  );
  store.finalize();
  say(
    `model: MLP ${[inputs[0], ...hidden, ...tasks.map((t) => headOutputs(t))].join('-')} (ReLU), ${store.count().toLocaleString('en-US')} parameters`,
  );
  return { model, store };
}

/** MNIST as a task of the run: its user-supplied files under `<root>/mnist/`, or the generated digits. */
export function mnistTask(root: string): {
  ds: typeof MNIST;
  head: OrdinalHead;
  meta: BatchMeta;
  train: LoadedSplit;
  val: LoadedSplit;
  test: LoadedSplit;
} {
  const { train, val, test, real } = loadMnist(root);
  if (!real) process.stderr.write(`mnist: no IDX files in ${root}/mnist; training on the generated seven-segment digits instead\n`);
  const meta: BatchMeta = { dim: 2, channels: 1, modality: MNIST.latent.modality, bodyPart: MNIST.latent.bodyPart };
  return { ds: MNIST, head: 'classes', meta, train, val, test };
}
