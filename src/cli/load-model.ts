// What `mf eval` and `mf predict` share: a trained supervised/multitask/finetune model rebuilt from a run folder
// (its config.json) or from one model file (its __metadata__, see modelMetadata in src/kinds/medformer/trainer.ts),
// with the weights that the trainer tested with. Everything is read and checked on the host first (readModel);
// the model is built on the device only after that (buildModel), as `mf run` does.
import fs from 'node:fs';
import path from 'node:path';
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { datasetInfo } from '../data/lookup.ts';
import type { DatasetInfo } from '../data/registry.ts';
import { ConfigError, FileFormatError, MfError } from '../errors.ts';
import { type HeadDescription, MODEL_METADATA_FORMAT } from '../kinds/medformer/trainer.ts';
import type { ModelSettings } from '../kinds/medformer/schema.ts';
import { headOutputs, inputKinds, type OrdinalHead, type TaskData, type TaskModel } from '../kinds/medformer/tasks.ts';
import { describedModel } from '../kinds/medformer/task-model.ts';
import type { InputKind } from '../models/medformer.ts';
import { ParameterStore } from '../nn/parameters.ts';
import { loadCheckpoint, POINTER_FILE } from '../train/checkpoint.ts';
import { asF32, assertFinite } from '../train/context.ts';
import { readSafetensors } from '../train/safetensors.ts';
import { checkJson, parseJson, readJsonFile } from '../util/files.ts';

/** What rebuilds a model: the same facts whether they come from a run's config.json or a model file's metadata. */
export interface ModelDescription {
  name: string;
  kind: string;
  model: ModelSettings;
  heads: HeadDescription[];
  inputs: InputKind[];
  /** How the tested checkpoint was picked: one per task, or one for all (multitask "mean"). */
  selection: 'per-task' | 'mean';
  /** The training batch size; evaluation runs at evalBatchSize of it, as the trainer's test does. */
  batchSize: number;
  /** The data root the run was trained from (config.json data.root); null when unknown or the default. */
  dataRoot: string | null;
  /**
   * What else picks a CIFAR run's images (src/data/cifar.ts): data.samples_per_class (null: every image) and the
   * run's seed, which also seeds the generated stand-in's splits; null when the description does not say.
   */
  samplesPerClass: number | null;
  seed: number | null;
}

export interface WeightsFile {
  file: string;
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
}

/** A model read from disk, not yet on the device. */
export interface ModelSource {
  /** The run folder or model file as given. */
  target: string;
  description: ModelDescription;
  /** The weights each head is scored with (the same file for every head unless selection is per task). */
  weights: Map<string, WeightsFile>;
}

/** What the evaluator and predictor need of one head. */
export type HeadTask = Pick<TaskData, 'ds' | 'head' | 'meta'>;

const Head = Type.Union([Type.Literal('classes'), Type.Literal('regression')], { description: '"classes" or "regression"' });
const Dim = Type.Union([Type.Literal(2), Type.Literal(3)], { description: '2 or 3' });
const PosInt = Type.Integer({ minimum: 1, description: 'a positive integer' });
const NonNegInt = Type.Integer({ minimum: 0, description: 'a non-negative integer' });

const MedformerModelSchema = Type.Object({
  preset: Type.Union([Type.Literal('small'), Type.Literal('large')], { description: '"small" or "large"' }),
  image_size_2d: PosInt,
  image_size_3d: PosInt,
  hidden_dim: PosInt,
  num_layers: PosInt,
  num_heads: PosInt,
  mlp_ratio: Type.Number({ exclusiveMinimum: 0 }),
  patch_size_2d: PosInt,
  patch_size_3d: PosInt,
  latent_dim: PosInt,
  num_latent_tokens: PosInt,
  num_task_latents: Type.Union([PosInt, Type.Null()], { description: 'a positive integer or null' }),
  dropout: Type.Number({ minimum: 0, exclusiveMaximum: 1 }),
});
const ResNetModelSchema = Type.Object({ preset: Type.Literal('resnet18'), image_size_2d: Type.Literal(28) });
const MlpModelSchema = Type.Object({ preset: Type.Literal('mlp'), image_size_2d: Type.Literal(28), hidden: Type.Array(PosInt) });
const WrnModelSchema = Type.Object({
  preset: Type.Union([Type.Literal('wrn-40-4'), Type.Literal('wrn-28-10'), Type.Literal('wrn')]),
  image_size_2d: Type.Union([Type.Literal(32), Type.Literal(16), Type.Literal(8)]),
  depth: PosInt,
  widen_factor: Type.Number({ exclusiveMinimum: 0 }),
});
const ModelSchema = Type.Union([MedformerModelSchema, ResNetModelSchema, MlpModelSchema, WrnModelSchema], {
  description:
    'a Medformer model config (preset "small" or "large" with every field), {"preset": "resnet18", "image_size_2d": 28}, {"preset": "mlp", "image_size_2d": 28, "hidden": [...]} or a Wide ResNet {"preset": "wrn-40-4" | "wrn-28-10" | "wrn", "image_size_2d": 32 | 16 | 8, "depth": d, "widen_factor": k}',
});
const SamplesPerClass = Type.Union([PosInt, Type.Null()], { description: 'a positive integer or null' });

const HeadSchema = Type.Object({
  key: Type.String({ minLength: 1 }),
  task: Type.Union([Type.Literal('multi-class'), Type.Literal('binary'), Type.Literal('multi-label'), Type.Literal('ordinal')], {
    description: 'a MedMNIST task type',
  }),
  outputs: PosInt,
  head: Head,
  dim: Dim,
  channels: PosInt,
  modality: NonNegInt,
  body_part: NonNegInt,
});
const HeadsSchema = Type.Array(HeadSchema, { description: 'a list of task heads' });
const InputsSchema = Type.Array(Type.Object({ dim: Dim, channels: PosInt }), { description: 'a list of input kinds' });
const Selection = Type.Union([Type.Literal('per-task'), Type.Literal('mean')], { description: '"per-task" or "mean"' });

/** The part of a run's config.json that names its kind; checked before the rest, so an SSL run gets its own message. */
const ConfigKindSchema = Type.Object({ name: Type.String(), kind: Type.String() });
/** The fields of a supervised/multitask/finetune run's config.json (the resolved settings) that rebuild its model. */
const ConfigSchema = Type.Object({
  name: Type.String(),
  kind: Type.String(),
  model: ModelSchema,
  data: Type.Object({
    datasets: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'a non-empty list of data set keys' }),
    root: Type.Union([Type.String(), Type.Null()], { description: 'a folder or null' }),
    ordinal: Type.Optional(Head),
    samples_per_class: Type.Optional(SamplesPerClass),
  }),
  training: Type.Object({ batch_size: PosInt, seed: Type.Optional(NonNegInt) }),
  multitask: Type.Optional(Type.Object({ selection: Selection })),
});

const HEAD_KINDS = ['supervised', 'multitask', 'finetune'];

/** The one line for a self-supervised run: what it is good for, and what mf eval / mf predict cannot do with it. */
function sslRun(where: string): MfError {
  return new MfError(
    `${where} is a self-supervised (ssl) run: its encoder has no task heads, so there are no classes to evaluate or predict`,
    `use it as the starting point of a "finetune" run (finetune.init: "${where}") and run mf eval / mf predict on that run`,
  );
}

function notHeadKind(where: string, kind: string): MfError {
  return new MfError(
    `${where} is a "${kind}" run; mf eval and mf predict read supervised, multitask and finetune runs`,
    kind.startsWith('brain') ? 'see mf fuse and the brain-age report for the brain kinds' : 'point it at such a run folder',
  );
}

/** The run folder or model file `target`, read and checked on the host (no device). */
export function readModel(target: string): ModelSource {
  if (!fs.existsSync(target)) {
    throw new MfError(`${target} does not exist`, 'give a run folder (runs/<name>) or a .safetensors model file from one');
  }
  return fs.statSync(target).isDirectory() ? readRunFolder(target) : readModelFile(target);
}

function readRunFolder(dir: string): ModelSource {
  const config = path.join(dir, 'config.json');
  const files = fs.readdirSync(dir);
  // `mf run --seeds` writes the shared config.json and the summary here, each seed's run in seed-<s>/.
  const seeds = files.filter((f) => /^seed-\d+$/.test(f));
  if (seeds.length && !files.includes(POINTER_FILE) && !files.some((f) => /^best-.+\.safetensors$/.test(f))) {
    throw new MfError(`${dir} holds one run per seed (${seeds.join(', ')})`, `pass one of them, e.g. ${path.join(dir, seeds[0]!)}`);
  }
  if (!fs.existsSync(config)) {
    throw new MfError(`${dir} is not a run folder: it has no config.json`, 'give the folder mf run wrote (runs/<name>) or a model file');
  }
  const description = describeConfig(config, dir);
  const weights = new Map<string, WeightsFile>();
  const cache = new Map<string, WeightsFile>();
  const read = (file: string, final: boolean): WeightsFile => {
    let w = cache.get(file);
    if (!w) {
      w = final ? readFinal(dir) : readWeights(file);
      cache.set(file, w);
    }
    return w;
  };
  // As the trainer tests: each task's best validation checkpoint (or the one picked for all), else the final weights.
  for (const h of description.heads) {
    const best = path.join(dir, `best-${description.selection === 'mean' ? 'all' : h.key}.safetensors`);
    if (fs.existsSync(best)) weights.set(h.key, read(best, false));
    else if (fs.existsSync(path.join(dir, POINTER_FILE))) weights.set(h.key, read(path.join(dir, POINTER_FILE), true));
    else
      throw new MfError(`${dir} has no weights: neither ${path.basename(best)} nor ${POINTER_FILE}`, 'the run saved nothing yet; train it');
  }
  return { target: dir, description, weights };
}

function readModelFile(file: string): ModelSource {
  const st = readSafetensors(file);
  const fix = 'the file is damaged or not written by mf run; use the run folder instead';
  let description: ModelDescription;
  if (st.metadata.get('format') === MODEL_METADATA_FORMAT) {
    description = describeMetadata(st.metadata, file, fix);
  } else {
    // A model file written before checkpoints described their model: its run folder's config.json still does.
    const config = path.join(path.dirname(file), 'config.json');
    if (!fs.existsSync(config)) {
      throw new MfError(
        `${file}: its __metadata__ does not describe the model (no format "${MODEL_METADATA_FORMAT}": written by an older mf run, or by another tool)`,
        'pass the run folder that holds it and its config.json instead',
      );
    }
    description = describeConfig(config, path.dirname(file));
  }
  const tensors = asF32(st.tensors);
  assertFinite(tensors, file, 'use another checkpoint of the run');
  const w: WeightsFile = { file, tensors };
  return { target: file, description, weights: new Map(description.heads.map((h) => [h.key, w])) };
}

function readWeights(file: string): WeightsFile {
  const tensors = asF32(readSafetensors(file).tensors);
  assertFinite(tensors, file, 'use another checkpoint of the run');
  return { file, tensors };
}

function readFinal(dir: string): WeightsFile {
  const ck = loadCheckpoint(dir);
  const tensors = asF32(ck.model);
  assertFinite(tensors, ck.modelPath, 'use another checkpoint of the run');
  return { file: ck.modelPath, tensors };
}

/** A run's config.json as a model description; the heads follow from its data sets, as the trainer builds them. */
function describeConfig(file: string, dir: string): ModelDescription {
  const fix = 'restore the config.json mf run wrote, or pass a model file written by this version';
  const { kind } = readJsonFile(file, ConfigKindSchema, { what: "the run's config", fix });
  if (kind === 'ssl') throw sslRun(dir);
  if (!HEAD_KINDS.includes(kind)) throw notHeadKind(dir, kind);
  const c = readJsonFile(file, ConfigSchema, { what: "the run's config", fix });
  const model: ModelSettings = c.model;
  const heads = c.data.datasets.map((key): HeadDescription => {
    const ds = known(key, file);
    const head: OrdinalHead = ds.task === 'ordinal' ? (c.data.ordinal ?? 'classes') : 'classes';
    return {
      key: ds.key,
      task: ds.task,
      outputs: headOutputs({ ds, head }),
      head,
      dim: ds.dim,
      // What the loader gives: 2D files in their channels, 3D volumes one channel.
      channels: ds.dim === 3 ? 1 : ds.channels,
      modality: ds.latent.modality,
      body_part: ds.latent.bodyPart,
    };
  });
  return {
    name: c.name,
    kind,
    model,
    heads,
    inputs: inputKinds(heads),
    selection: kind === 'multitask' ? (c.multitask?.selection ?? 'mean') : 'per-task',
    batchSize: c.training.batch_size,
    dataRoot: c.data.root,
    samplesPerClass: c.data.samples_per_class ?? null,
    seed: c.training.seed ?? null,
  };
}

/** A model file's __metadata__ as a model description (see modelMetadata in src/kinds/medformer/trainer.ts). */
function describeMetadata(meta: ReadonlyMap<string, string>, file: string, fix: string): ModelDescription {
  const text = (key: string): string => {
    const v = meta.get(key);
    if (v === undefined) throw new FileFormatError(`${file}: __metadata__ has no "${key}"; ${fix}`);
    return v;
  };
  const json = <S extends TSchema>(key: string, schema: S): Static<S> =>
    parseJson(text(key), schema, { file, fix, at: `__metadata__/${key}` });
  const value = <S extends TSchema>(key: string, schema: S): Static<S> =>
    checkJson(schema, text(key), { file, fix, at: `__metadata__/${key}` });
  const version = text('format_version');
  if (version !== '1') {
    throw new FileFormatError(`${file}: model format version ${version}; this mf reads version 1`, 'update medformer to read it');
  }
  const kind = text('kind');
  const heads = json('tasks', HeadsSchema);
  if (kind === 'ssl' || heads.length === 0) throw sslRun(file);
  for (const h of heads) {
    const ds = known(h.key, file);
    const outputs = headOutputs({ ds, head: h.head });
    if (h.task !== ds.task || h.outputs !== outputs) {
      throw new FileFormatError(
        `${file}: head ${h.key} is ${h.task} with ${h.outputs} outputs; this build's registry has ${ds.task} with ${outputs}`,
        'evaluate it with the medformer version that trained it',
      );
    }
  }
  return {
    name: text('name'),
    kind,
    model: json('model', ModelSchema),
    heads,
    inputs: json('inputs', InputsSchema),
    selection: value('selection', Selection),
    batchSize: Number(value('batch_size', Type.String({ pattern: '^[1-9][0-9]{0,8}$', description: 'a positive integer' }))),
    dataRoot: null,
    // Written by this version's trainer (modelMetadata); absent in older files.
    samplesPerClass: meta.has('samples_per_class') ? json('samples_per_class', SamplesPerClass) : null,
    seed: meta.has('seed') ? Number(value('seed', Type.String({ pattern: '^(0|[1-9][0-9]{0,9})$', description: 'a seed' }))) : null,
  };
}

function known(key: string, file: string): DatasetInfo {
  try {
    return datasetInfo(key);
  } catch {
    throw new FileFormatError(
      `${file}: data set "${key}" is not in this build's registry`,
      'evaluate it with the medformer version that trained it',
    );
  }
}

/** The heads `key` selects (all of them when undefined); an unknown key is a ConfigError listing the model's. */
export function selectHeads(d: ModelDescription, key: string | undefined, flag: string): HeadDescription[] {
  if (key === undefined) return d.heads;
  const h = d.heads.find((x) => x.key === key.toLowerCase());
  if (!h) throw new ConfigError(`${flag} ${key}: the model has no such head`, `its heads: ${d.heads.map((x) => x.key).join(', ')}`);
  return [h];
}

/** The registry entry, head type and batch conditioning of one head. */
export function headTask(h: HeadDescription): HeadTask {
  return {
    ds: datasetInfo(h.key),
    head: h.head,
    meta: { dim: h.dim, channels: h.channels, modality: h.modality, bodyPart: h.body_part },
  };
}

/** Side of a head's inputs: the model's 2D image size or 3D volume size. */
export function inputSize(d: ModelDescription, h: HeadDescription): number {
  if (h.dim === 2) return d.model.image_size_2d;
  if (!('image_size_3d' in d.model)) throw new ConfigError(`head ${h.key} is 3D but the model (${d.model.preset}) is 2D`);
  return d.model.image_size_3d;
}

/** A model on the device, with the weights of one head loaded at a time (use). */
export interface LoadedModel {
  model: TaskModel;
  /** Loads the weights `key` is scored with, unless they are already loaded; returns their file. */
  use(key: string): string;
  dispose(): void;
}

/** The model of `source` on the device (needs an engine), its weights checked against it by name and shape. */
export function buildModel(source: ModelSource): LoadedModel {
  const d = source.description;
  const store = new ParameterStore(0);
  const model = describedModel(store, d);
  store.finalize();
  let loaded: WeightsFile | null = null;
  return {
    model,
    use(key) {
      const w = source.weights.get(key);
      if (!w) throw new ConfigError(`the model has no head ${key}`);
      if (w !== loaded) {
        try {
          store.load(w.tensors, { strict: true });
        } catch (e) {
          if (!(e instanceof MfError)) throw e;
          throw new FileFormatError(`${w.file}: the weights do not fit the model its description builds: ${e.message}`);
        }
        loaded = w;
      }
      return w.file;
    },
    dispose: () => store.dispose(),
  };
}
