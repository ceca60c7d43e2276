// The experiment file of the four Medformer kinds (supervised, multitask, ssl, finetune): the model preset and
// its overrides, the MedMNIST data sets, augmentation and training; each kind adds its own section.
import { type Static, type TProperties, Type } from '@sinclair/typebox';
import { ConfigError } from '../../errors.ts';
import {
  type AugmentConfig as SampleAugment,
  type AugmentPolicy,
  augmentPolicy,
  SSL_INTENSITY,
  THESIS_RANDAUGMENT,
} from '../../data/augment.ts';
import { type ModelConfig, PRESETS, type PresetName, resolveModelConfig } from '../../models/medformer_config.ts';
import { MLP_HIDDEN } from '../../models/mlp.ts';
import { RESNET18_SIZE } from '../../models/resnet18.ts';
import { WRN_PRESETS, type WrnPreset, wrnShape } from '../../models/wrn.ts';
import { isCifar } from '../../data/cifar.ts';
import { PosInt, PosNumber, RunName, resolveTraining, Strict, type TrainingSettings, TrainingSchema } from '../../train/schema.ts';
import type { RunSettings } from '../kind.ts';

export type ImageSize = 28 | 64 | 128 | 224;
/** Sides a Wide ResNet reads CIFAR at: 32, or 16 / 8 (block averages, for toy runs). */
export type CifarSide = 32 | 16 | 8;
export type Sampling = 'uniform' | 'proportional' | 'temperature';

const ModelSchema = Strict({
  /**
   * A Medformer preset, "resnet18": the MedMNIST v2 ResNet-18 (28) baseline, or "mlp": the thesis's 784-256 (ReLU)-10
   * perceptron of section 5.3 (both kind "supervised", no other model key), or a Wide ResNet for CIFAR (thesis
   * Tables 5.1/5.2): "wrn-40-4", "wrn-28-10", or "wrn" with `depth` and `widen_factor`.
   */
  preset: Type.Union([
    Type.Literal('small'),
    Type.Literal('large'),
    Type.Literal('resnet18'),
    Type.Literal('mlp'),
    Type.Literal('wrn-40-4'),
    Type.Literal('wrn-28-10'),
    Type.Literal('wrn'),
  ]),
  /** Wide ResNet depth d = 6n + 4 (preset "wrn" only). */
  depth: Type.Optional(PosInt),
  /** Wide ResNet widening factor k: 16k, 32k, 64k channels (preset "wrn" only; 16k a whole number). */
  widen_factor: Type.Optional(PosNumber),
  image_size_2d: Type.Optional(PosInt),
  image_size_3d: Type.Optional(PosInt),
  hidden_dim: Type.Optional(PosInt),
  num_layers: Type.Optional(PosInt),
  num_heads: Type.Optional(PosInt),
  mlp_ratio: Type.Optional(PosNumber),
  patch_size_2d: Type.Optional(PosInt),
  patch_size_3d: Type.Optional(PosInt),
  latent_dim: Type.Optional(PosInt),
  num_latent_tokens: Type.Optional(PosInt),
  num_task_latents: Type.Optional(PosInt),
  dropout: Type.Optional(Type.Number({ minimum: 0, exclusiveMaximum: 1 })),
});

/** `data.augment` as an object: custom settings instead of a named policy. */
const AugmentObject = Strict({
  /** true: every spatial axis, each with p = 0.5; "horizontal": the last (W) axis alone. */
  flips: Type.Union([Type.Boolean(), Type.Literal('horizontal')]),
  /** Maximum rotation in degrees (0 = none). */
  rotate: Type.Number({ minimum: 0, maximum: 180 }),
  /** Pad-and-crop padding in pixels (0 = off, the default); 2D and 3D. */
  crop: Type.Optional(Type.Integer({ minimum: 0, maximum: 256 })),
  /**
   * RandAugment (2D only): n operations per image at magnitude bin m of torchvision's 31 (0..30, torchvision's
   * scale: RandAugment(num_ops=n, magnitude=m)); n = 0 disables it.
   */
  randaugment: Strict({ n: Type.Integer({ minimum: 0, maximum: 14 }), m: Type.Integer({ minimum: 0, maximum: 30 }) }),
  /** Intensity jitter x·s + t, s in 1 ± 0.1, t in ±0.1, on 2D and 3D. */
  intensity: Type.Boolean(),
});
/** `data.augment` as written in the experiment file. */
export type AugmentFile = boolean | AugmentPolicy | Static<typeof AugmentObject>;

/**
 * `data.augment` resolved: the policy it came from ("custom" for an object) and the concrete ops each
 * dimensionality's samples go through, so config.json shows exactly what ran. `null` is no augmentation.
 */
export interface AugmentConfig {
  policy: 'thesis' | 'flips-rotations' | 'ssl' | 'custom';
  '2d': SampleAugment;
  '3d': SampleAugment;
}

const DataSchema = Strict({
  datasets: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, uniqueItems: true }),
  size: Type.Optional(Type.Union([Type.Literal(28), Type.Literal(64), Type.Literal(128), Type.Literal(224)])),
  root: Type.Optional(Type.String({ minLength: 1 })),
  augment: Type.Optional(
    Type.Union(
      [Type.Literal('thesis'), Type.Literal('flips-rotations'), Type.Literal('ssl'), Type.Literal('none'), Type.Boolean(), AugmentObject],
      {
        description:
          '"thesis", "flips-rotations", "ssl", "none", true (= "thesis"), false (= "none"), or an object {flips, rotate, crop, randaugment: {n, m}, intensity}',
      },
    ),
  ),
  sampling: Type.Optional(Type.Union([Type.Literal('uniform'), Type.Literal('proportional'), Type.Literal('temperature')])),
  temperature: Type.Optional(PosNumber),
  train_limit: Type.Optional(PosInt),
  /** CIFAR only: exactly this many training images of each class, drawn with the run's seed (Tables 5.1/5.2: 100, 500). */
  samples_per_class: Type.Optional(PosInt),
  /** The head of ordinal tasks (RetinaMNIST): "classes" (cross-entropy, the default) or "regression" (MSE). */
  ordinal: Type.Optional(Type.Union([Type.Literal('classes'), Type.Literal('regression')])),
  download: Type.Optional(
    Type.Boolean({
      description:
        'fetch the official files missing from the data root from Zenodo (MD5-checked) before the run starts, as `mf run --download` does; default false',
    }),
  ),
});

/** A Medformer kind's experiment file: the shared sections plus `extra` (the kind's own section). */
export function medformerSchema<K extends string, P extends TProperties>(kind: K, extra: P) {
  return Strict({
    name: RunName,
    kind: Type.Literal(kind),
    description: Type.Optional(Type.String()),
    model: ModelSchema,
    data: DataSchema,
    training: TrainingSchema,
    ...extra,
  });
}
const BaseSchema = medformerSchema('supervised', {});
type MedformerFile = Static<typeof BaseSchema>;

/** `model` of a Medformer: the preset's configuration with the file's overrides. */
export type MedformerModelSettings = ModelConfig & { preset: PresetName };
/** `model` of the MedMNIST v2 ResNet-18 (28) baseline (src/models/resnet18.ts): nothing to configure. */
export interface ResNet18ModelSettings {
  preset: 'resnet18';
  image_size_2d: typeof RESNET18_SIZE;
}
/** `model` of the section 5.3 perceptron (src/models/mlp.ts): the flattened 28 px image, the hidden widths, the heads. */
export interface MlpModelSettings {
  preset: 'mlp';
  image_size_2d: typeof MLP_SIZE;
  hidden: number[];
}
/** `model` of a Wide ResNet (src/models/wrn.ts) for CIFAR: depth, widening factor, the side it reads. */
export interface WrnModelSettings {
  preset: WrnPreset | 'wrn';
  image_size_2d: CifarSide;
  depth: number;
  widen_factor: number;
}
/** Any model a supervised run can train. */
export type ModelSettings = MedformerModelSettings | ResNet18ModelSettings | MlpModelSettings | WrnModelSettings;

/** The kinds whose files may name `"preset": "resnet18"` (the others need Medformer's parts). */
const RESNET18_KINDS = ['supervised'];

/**
 * The shared sections after defaults: every field present, `null` meaning "off / not set". `M` is the model: a
 * Medformer for every kind but "supervised", which may also train the ResNet-18 baseline (`AnyModelSettings`).
 */
export interface MedformerSettings<M extends ModelSettings = MedformerModelSettings> extends RunSettings {
  model: M;
  data: {
    datasets: string[];
    /** Size of the 2D MedMNIST+ files (a CIFAR run: the side the images are read at); equals model.image_size_2d. 3D files use model.image_size_3d. */
    size: ImageSize | CifarSide;
    /** Dataset directory; null = the data module's default. Relative paths are relative to the working directory. */
    root: string | null;
    augment: AugmentConfig | null;
    sampling: Sampling;
    temperature: number | null;
    train_limit: number | null;
    /**
     * CIFAR only: training images per class; absent: all of them. Absent rather than null so that the settings (and
     * config hash) of every other run stay what they were.
     */
    samples_per_class?: number;
    ordinal: 'classes' | 'regression';
    /** Fetch missing official files before the run (configHash leaves it out: it changes no number). */
    download: boolean;
  };
  training: TrainingSettings;
}

/** Settings whose model may be either one (kind "supervised"). */
export type AnyModelSettings = MedformerSettings<ModelSettings>;

type FileOfKind<K extends string> = Omit<MedformerFile, 'kind'> & { kind: K };

/**
 * Defaults and cross-field checks of the shared sections. `"preset": "resnet18"` is accepted for kind "supervised"
 * only (its settings are `AnyModelSettings`); for every other kind it is a ConfigError.
 */
export function resolveMedformer(x: FileOfKind<'supervised'>, file: string): AnyModelSettings;
export function resolveMedformer(x: FileOfKind<string>, file: string): MedformerSettings;
export function resolveMedformer(x: FileOfKind<string>, file: string): AnyModelSettings {
  if (x.model.preset === 'resnet18') return resolveResNet18(x, file);
  if (x.model.preset === 'mlp') return resolveMlp(x, file);
  if (x.model.preset === 'wrn' || x.model.preset in WRN_PRESETS) return resolveWrn(x, file);
  const { preset, ...overrides } = x.model as typeof x.model & { preset: PresetName };
  const epochs = PRESETS[preset].training.max_epochs;
  return resolveShared(
    x,
    file,
    { preset, ...resolveModelConfig(preset, overrides, file) },
    epochs === undefined ? { missing: `the thesis gives no epoch count for the ${preset} preset` } : { epochs },
  );
}

function resolveResNet18(x: FileOfKind<string>, file: string): MedformerSettings<ResNet18ModelSettings> {
  const err = (msg: string, hint?: string): ConfigError => new ConfigError(`${file}: ${msg}`, hint);
  if (!RESNET18_KINDS.includes(x.kind)) {
    throw err(
      `/model/preset "resnet18" is for kind ${RESNET18_KINDS.map((k) => `"${k}"`).join(', ')}, not "${x.kind}"`,
      'use a Medformer preset',
    );
  }
  const others = Object.keys(x.model).filter((k) => k !== 'preset');
  if (others.length) {
    throw err(
      `/model/preset "resnet18" takes no other model key, got ${others.map((k) => `/model/${k}`).join(', ')}`,
      'ResNet-18 (28) is fixed; remove them',
    );
  }
  if (x.data.size !== undefined && x.data.size !== RESNET18_SIZE) {
    throw err(`/data/size ${x.data.size}: /model/preset "resnet18" is ResNet-18 (28), for ${RESNET18_SIZE} px images`);
  }
  const threeD = x.data.datasets.filter((d) => /3d$/i.test(d));
  if (threeD.length) throw err(`/model/preset "resnet18" is a 2D model; /data/datasets lists ${threeD.join(', ')}`);
  return resolveShared(
    x,
    file,
    { preset: 'resnet18', image_size_2d: RESNET18_SIZE },
    { missing: 'the MedMNIST v2 recipe is 100 epochs; say so in the file' },
  );
}

/** The perceptron takes 28 px 2D images (MNIST's, MedMNIST's smallest). */
const MLP_SIZE = 28;

function resolveMlp(x: FileOfKind<string>, file: string): MedformerSettings<MlpModelSettings> {
  const err = (msg: string, hint?: string): ConfigError => new ConfigError(`${file}: ${msg}`, hint);
  if (x.kind !== 'supervised') throw err(`/model/preset "mlp" is for kind "supervised", not "${x.kind}"`, 'use a Medformer preset');
  const others = Object.keys(x.model).filter((k) => k !== 'preset');
  if (others.length) {
    throw err(
      `/model/preset "mlp" takes no other model key, got ${others.map((k) => `/model/${k}`).join(', ')}`,
      'the 784-256-10 perceptron is fixed; remove them',
    );
  }
  if (x.data.size !== undefined && x.data.size !== MLP_SIZE)
    throw err(`/data/size ${x.data.size}: /model/preset "mlp" is for ${MLP_SIZE} px images`);
  const threeD = x.data.datasets.filter((d) => /3d$/i.test(d));
  if (threeD.length) throw err(`/model/preset "mlp" is a 2D model; /data/datasets lists ${threeD.join(', ')}`);
  return resolveShared(
    x,
    file,
    { preset: 'mlp', image_size_2d: MLP_SIZE, hidden: [...MLP_HIDDEN] },
    { missing: 'the thesis plots 5.4 over epochs; say how many' },
  );
}

const WRN_KEYS = ['preset', 'depth', 'widen_factor', 'image_size_2d'];

function resolveWrn(x: FileOfKind<string>, file: string): MedformerSettings<WrnModelSettings> {
  const err = (msg: string, hint?: string): ConfigError => new ConfigError(`${file}: ${msg}`, hint);
  const preset = x.model.preset as WrnPreset | 'wrn';
  if (x.kind !== 'supervised') throw err(`/model/preset "${preset}" is for kind "supervised", not "${x.kind}"`);
  if (x.model.dropout !== undefined && x.model.dropout > 0) {
    throw err(`/model/dropout ${x.model.dropout}: the Wide ResNet here has no dropout (the engine has no dropout op)`, 'remove it');
  }
  const others = Object.keys(x.model).filter((k) => !WRN_KEYS.includes(k) && k !== 'dropout');
  if (others.length) throw err(`/model/preset "${preset}" takes no ${others.map((k) => `/model/${k}`).join(', ')}`, 'remove them');
  let shape: { depth: number; widen_factor: number };
  if (preset === 'wrn') {
    if (x.model.depth === undefined || x.model.widen_factor === undefined)
      throw err('/model/preset "wrn" needs /model/depth and /model/widen_factor', 'or use "wrn-40-4" / "wrn-28-10"');
    shape = { depth: x.model.depth, widen_factor: x.model.widen_factor };
  } else {
    if (x.model.depth !== undefined || x.model.widen_factor !== undefined)
      throw err(`/model/preset "${preset}" fixes depth and widen_factor; remove them`, 'or use preset "wrn"');
    shape = WRN_PRESETS[preset];
  }
  try {
    wrnShape(shape.depth, shape.widen_factor);
  } catch (e) {
    throw err((e as Error).message);
  }
  const side = x.model.image_size_2d ?? 32;
  if (![32, 16, 8].includes(side)) throw err(`/model/image_size_2d ${side}: CIFAR is read at 32 px, or 16 / 8 for toy runs`);
  if (x.data.size !== undefined) throw err('/data/size is for MedMNIST files; a Wide ResNet reads CIFAR at /model/image_size_2d');
  const notCifar = x.data.datasets.filter((d) => !isCifar(d));
  if (notCifar.length)
    throw err(`/model/preset "${preset}" is for CIFAR ("cifar10", "cifar100"); /data/datasets lists ${notCifar.join(', ')}`);
  return resolveShared(
    x,
    file,
    { preset, image_size_2d: side as CifarSide, ...shape },
    { missing: 'the Wide ResNet recipe is 200 epochs; say how many' },
    [side],
  );
}

function resolveShared<M extends ModelSettings>(
  x: FileOfKind<string>,
  file: string,
  model: M,
  defaultEpochs: { epochs: number } | { missing: string },
  sizes: readonly number[] = [28, 64, 128, 224],
): MedformerSettings<M> {
  const err = (msg: string): ConfigError => new ConfigError(`${file}: ${msg}`);
  // uniqueItems is case-sensitive, data set names are not: "breastmnist" and "BreastMNIST" name one data set.
  const seen = new Map<string, number>();
  x.data.datasets.forEach((name, i) => {
    const j = seen.get(name.toLowerCase());
    if (j !== undefined) {
      throw err(
        `/data/datasets/${j} ${JSON.stringify(x.data.datasets[j])} and /data/datasets/${i} ${JSON.stringify(name)} are the same data set; keep one`,
      );
    }
    seen.set(name.toLowerCase(), i);
  });
  const size3d = 'image_size_3d' in model ? model.image_size_3d : RESNET18_SIZE;

  const size = x.data.size ?? (model.image_size_2d as ImageSize | CifarSide);
  if (!sizes.includes(size)) {
    throw err(`/model/image_size_2d ${model.image_size_2d} has no MedMNIST+ file size (28, 64, 128, 224); set /data/size or change it`);
  }
  if (size !== model.image_size_2d)
    throw err(`/data/size ${size} differs from /model/image_size_2d ${model.image_size_2d}; make them equal`);
  if (x.data.datasets.some((d) => /3d$/i.test(d)) && ![28, 64].includes(size3d)) {
    throw err(`/model/image_size_3d ${size3d} has no MedMNIST+ 3D file (28 or 64); change it`);
  }
  const sampling = x.data.sampling ?? 'proportional';
  if (sampling === 'temperature' && x.data.temperature === undefined) {
    throw err('missing /data/temperature, required when /data/sampling is "temperature"');
  }
  if (sampling !== 'temperature' && x.data.temperature !== undefined) {
    throw err('/data/temperature is only used with /data/sampling "temperature"; remove it or set the sampling');
  }
  if (x.data.samples_per_class !== undefined && !x.data.datasets.every(isCifar)) {
    throw err('/data/samples_per_class is for CIFAR ("cifar10", "cifar100"); use /data/train_limit for other data sets');
  }
  const training = resolveTraining(x.training, file, defaultEpochs);
  return {
    source: file,
    name: x.name,
    kind: x.kind,
    description: x.description ?? '',
    model,
    data: {
      datasets: [...x.data.datasets],
      size,
      root: x.data.root ?? null,
      augment: resolveAugment(x.data.augment ?? 'thesis', size, size3d),
      sampling,
      temperature: x.data.temperature ?? null,
      train_limit: x.data.train_limit ?? null,
      ...(x.data.samples_per_class !== undefined ? { samples_per_class: x.data.samples_per_class } : {}),
      ordinal: x.data.ordinal ?? 'classes',
      download: x.data.download ?? false,
    },
    training,
  };
}

/**
 * A policy name becomes its ops (src/data/augment.ts has the table) for 2D samples of side `size2d` and 3D ones of
 * `size3d`. Absent is "thesis"; `true`, which older files use, is "thesis" too (it meant the thesis recipe); `false`
 * and "none" are no augmentation. An object keeps its switches: intensity jitter ±0.1 in scale and shift on both
 * dimensionalities, RandAugment on 2D only, at torchvision's 31 magnitude bins.
 */
export function resolveAugment(a: AugmentFile, size2d: number, size3d: number): AugmentConfig | null {
  if (a === false || a === 'none') return null;
  if (a === true || a === 'flips-rotations' || a === 'thesis' || a === 'ssl') {
    const policy = a === true ? 'thesis' : a;
    return { policy, '2d': augmentPolicy(policy, 2, size2d)!, '3d': augmentPolicy(policy, 3, size3d)! };
  }
  const common = { crop: a.crop ?? 0, flips: a.flips, rotate: a.rotate, intensity: a.intensity ? { ...SSL_INTENSITY } : null };
  const ra = a.randaugment.n > 0 ? { n: a.randaugment.n, m: a.randaugment.m, bins: THESIS_RANDAUGMENT.bins } : null;
  return { policy: 'custom', '2d': { ...common, randaugment: ra }, '3d': { ...common, randaugment: null } };
}
