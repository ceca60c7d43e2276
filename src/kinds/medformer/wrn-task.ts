// CIFAR and the Wide ResNets in the supervised kind (thesis Tables 5.1/5.2): CIFAR's splits (the user's binary
// files, or the generated CIFAR-like set) as a task, and the WRN built for the run's tasks, so the trainer treats
// both like any other task and model.
import { cifarInfo, loadCifar } from '../../data/cifar.ts';
import type { LoadedSplit } from '../../data/dataset.ts';
import type { DatasetInfo } from '../../data/registry.ts';
import { ConfigError } from '../../errors.ts';
import type { BatchMeta } from '../../models/medformer.ts';
import { ParameterStore } from '../../nn/parameters.ts';
import { type HeadKind, headOutputs, newWrn, type OrdinalHead, type TaskModel } from './task-model.ts';
import type { WrnModelSettings } from './schema.ts';

/** The Wide ResNet over the tasks' images (one channel count, 2D), its parameters from the run's seed. */
export function buildWrn(
  say: (line: string) => void,
  seed: number,
  model: WrnModelSettings,
  tasks: readonly (HeadKind & { meta: BatchMeta })[],
): { model: TaskModel; store: ParameterStore } {
  const channels = [...new Set(tasks.map((t) => t.meta.channels))];
  if (channels.length !== 1 || tasks.some((t) => t.meta.dim !== 2)) {
    throw new ConfigError(
      `${model.preset}: needs 2D data sets of one channel count, got ${tasks.map((t) => `${t.ds.key} (${t.meta.dim}D×${t.meta.channels}ch)`).join(', ')}`,
    );
  }
  const store = new ParameterStore(seed);
  const net = newWrn(
    store,
    channels[0]!,
    model.depth,
    model.widen_factor,
    tasks.map((t) => ({ name: t.ds.key, outputs: headOutputs(t) })),
  );
  store.finalize();
  const buffers = store.bufferCount();
  say(
    `model: WRN-${model.depth}-${model.widen_factor}, ${(store.count() - buffers).toLocaleString('en-US')} parameters and ${buffers.toLocaleString('en-US')} BatchNorm running statistics (${channels[0]}ch, ${model.image_size_2d} px)`,
  );
  return { model: net, store };
}

/** CIFAR-10 or CIFAR-100 as a task of the run: `<root>/cifar-10-batches-bin/` or `<root>/cifar-100-binary/`, or the generated set. */
export function cifarTask(
  root: string,
  key: string,
  opts: { samplesPerClass: number | null; seed: number; side: number },
): { ds: DatasetInfo; head: OrdinalHead; meta: BatchMeta; train: LoadedSplit; val: LoadedSplit; test: LoadedSplit } {
  const ds = cifarInfo(key);
  const say = (line: string) => process.stderr.write(`${line}\n`);
  const { train, val, test, real } = loadCifar(root, key, { ...opts, say });
  if (!real) {
    say(
      `${ds.key}: NO ${ds.name} FILES in ${root}; training on GENERATED CIFAR-like images instead (${train.n} / ${val.n} / ${test.n}); these numbers say nothing about ${ds.name}`,
    );
  }
  const spc = opts.samplesPerClass === null ? 'all' : `${opts.samplesPerClass} a class`;
  say(`${ds.key}: ${train.n.toLocaleString('en-US')} training images (${spc}, seed ${opts.seed}), ${val.n} validation, ${test.n} test`);
  const meta: BatchMeta = { dim: 2, channels: 3, modality: ds.latent.modality, bodyPart: ds.latent.bodyPart };
  return { ds, head: 'classes', meta, train, val, test };
}
