// The experiment file of kind "brainage": the shared brain `data` section (plus the study's input size, age
// bins and augmentation), the 3D ResNet in `model`, `training` (with its steps per epoch), the arms and seeds
// in `study`, and one section per arm component: `bt` (Barlow Twins), `fusion` (BrainFuse / RawBrainFuse)
// and `consistency` (ConsistencyReg). Every key but name, kind and training's optimizer settings has a default.
import { type Static, Type } from '@sinclair/typebox';
import { brainDataSchema, resolveBrainData, type BrainDataSettings } from '../../brain/settings.ts';
import { ageBins } from '../../data/age_bins.ts';
import { ConfigError } from '../../errors.ts';
import { resolveResNet3dConfig, type ResNet3dConfig } from '../../models/resnet3d.ts';
import {
  NonNegNumber,
  PosInt,
  PosNumber,
  resolveTraining,
  RunName,
  Strict,
  trainingSchema,
  type TrainingSettings,
} from '../../train/schema.ts';
import type { RunSettings } from '../kind.ts';
import { THESIS_ARMS } from './thesis.ts';

export interface Arm {
  name: string;
  bt: boolean;
  fusion: 'interp' | 'raw' | null;
  consistency: boolean;
}

/** 'NT+BT+BrainFuse+ConsistencyReg' -> its parts; NT first, then any of BT, BrainFuse | RawBrainFuse, ConsistencyReg. */
export function parseArm(name: string): Arm {
  const parts = name.split('+');
  const ok = new Set(['BT', 'BrainFuse', 'RawBrainFuse', 'ConsistencyReg']);
  if (
    parts[0] !== 'NT' ||
    parts.slice(1).some((p) => !ok.has(p)) ||
    new Set(parts).size !== parts.length ||
    (parts.includes('BrainFuse') && parts.includes('RawBrainFuse'))
  ) {
    throw new ConfigError(`arm "${name}" must be NT followed by +BT, +BrainFuse or +RawBrainFuse, +ConsistencyReg (e.g. NT+BT+BrainFuse)`);
  }
  return {
    name,
    bt: parts.includes('BT'),
    fusion: parts.includes('BrainFuse') ? 'interp' : parts.includes('RawBrainFuse') ? 'raw' : null,
    consistency: parts.includes('ConsistencyReg'),
  };
}

type Axis = 0 | 1 | 2;
const Axes = Type.Array(Type.Union([Type.Literal(0), Type.Literal(1), Type.Literal(2)]), { minItems: 1 });

const DataSchema = brainDataSchema({
  /**
   * Side of the network's input volumes: the preprocessed grid (data.shape) is average-pooled down to it, so
   * it must divide data.shape. Default 64 (data.shape when that is smaller).
   */
  size: Type.Optional(Type.Integer({ minimum: 4, maximum: 256 })),
  /**
   * MRI modalities stacked as input channels, in order (IXI file names end in -T1, -T2, -PD). Default ["T1"];
   * the thesis uses ["T1", "T2", "PD"].
   */
  modalities: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Za-z][A-Za-z0-9]*$' }), { minItems: 1, maxItems: 8 })),
  /** Age bins [min, max) of `width` years. Default {20, 90, 5}: 14 bins. */
  bins: Type.Optional(Strict({ min: Type.Optional(Type.Number()), max: Type.Optional(Type.Number()), width: Type.Optional(PosNumber) })),
  /** Std of the Gaussian over bins that smooths the labels (0 = one-hot). Default 1. */
  label_sigma: Type.Optional(NonNegNumber),
  /** Flip, shift and intensity augmentation of training volumes. Default true. */
  augment: Type.Optional(Type.Boolean()),
});

const ResNetSchema = Strict(
  {
    width: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
    blocks: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: 8 }), { minItems: 1, maxItems: 5 })),
    groups: Type.Optional(PosInt),
  },
  'the 3D ResNet (src/models/resnet3d.ts); default {width 8, blocks [1, 1, 1], groups 4}',
);

export const BrainAgeSchema = Strict(
  {
    name: RunName,
    kind: Type.Literal('brainage'),
    description: Type.Optional(Type.String()),
    data: Type.Optional(DataSchema),
    model: Type.Optional(ResNetSchema),
    /** steps_per_epoch: optimizer steps per epoch of every arm. Default 6. */
    training: trainingSchema({ steps_per_epoch: Type.Optional(PosInt) }),
    study: Type.Optional(
      Strict({
        /** Default: the six arms of the thesis's table. */
        arms: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })),
        seeds: Type.Optional(Type.Integer({ minimum: 1, maximum: 20 })),
      }),
    ),
    /**
     * Barlow Twins pre-training: training's epochs and learning rate, its own steps per epoch (default
     * training's), on the real training volumes and fused ones (thesis: "unlabeled, heavily fused volumes").
     */
    bt: Type.Optional(
      Strict({
        steps_per_epoch: Type.Optional(PosInt),
        dim: Type.Optional(Type.Integer({ minimum: 2 })),
        lambda: Type.Optional(NonNegNumber),
        /** Fused volumes made for pre-training per real training volume (0: real volumes only). Default 4. */
        fused_per_real: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
        /** [fewest, most] brains in one fused volume (a chain of seams along one axis). Default [2, 4]. */
        chain: Type.Optional(Type.Array(Type.Integer({ minimum: 2, maximum: 16 }), { minItems: 2, maxItems: 2 })),
        /**
         * Highest generation of a fused volume: 1 fuses real scans only, 2 lets a fused volume be fused again
         * once, and so on (each re-fusion compounds seams and blurs what the volume shows). Default 2.
         */
        max_generation: Type.Optional(Type.Integer({ minimum: 1, maximum: 8 })),
      }),
    ),
    fusion: Type.Optional(
      Strict({
        interp_run: Type.Optional(
          Type.Union([Type.String({ minLength: 1 }), Type.Null()], {
            description: 'a brainfuse-interp run folder or weights file, or null (linear blending)',
          }),
        ),
        per_subject: Type.Optional(PosInt),
        axes: Type.Optional(Axes),
        transition: Type.Optional(PosInt),
        k_range: Type.Optional(Type.Array(Type.Number({ minimum: 0, maximum: 1 }), { minItems: 1 })),
        threshold: Type.Optional(PosNumber),
        attempts: Type.Optional(PosInt),
        seed: Type.Optional(Type.Integer({ minimum: 0 })),
        /**
         * Apply the plausibility filter (threshold) to RawBrainFuse too. Default false: the raw arm measures
         * plain concatenation, seams and all; BrainFuse volumes are always filtered.
         */
        filter_raw: Type.Optional(Type.Boolean()),
      }),
    ),
    consistency: Type.Optional(Strict({ weight: Type.Optional(NonNegNumber) })),
  },
  'BrainFuse brain-age study (kind "brainage")',
);
export type BrainAgeFile = Static<typeof BrainAgeSchema>;

/** Keys of the files before run kinds had their own schemas. */
export const BRAINAGE_RENAMED: Readonly<Record<string, string>> = {
  '/brainfuse':
    'its settings moved to /data, /model, /study, /bt, /fusion, /consistency and /training/steps_per_epoch (see experiments/brainage.json)',
  '/model/preset': 'this kind has no Medformer preset; /model holds the 3D ResNet (width, blocks, groups)',
  '/data/datasets': 'this kind reads IXI volumes, found through /data/data_dir (default $IXI_ROOT, else data/brain); remove datasets',
  '/data/downsample': "replaced by /data/size, the side of the network's input (data.shape / downsample: 32 for shape 64 and downsample 2)",
};

export interface BrainAgeSettings extends RunSettings {
  data: BrainDataSettings & {
    /** Side of the network's input volumes (data.shape average-pooled by shape / size). */
    size: number;
    /** Input channels, one per modality. */
    modalities: string[];
    bins: { min: number; max: number; width: number };
    label_sigma: number;
    augment: boolean;
  };
  model: ResNet3dConfig;
  training: TrainingSettings & { steps_per_epoch: number };
  /** Arm names as in the file (parseArm gives their parts). */
  study: { arms: string[]; seeds: number };
  bt: { steps_per_epoch: number; dim: number; lambda: number; fused_per_real: number; chain: [number, number]; max_generation: number };
  fusion: {
    /** Run folder (or weights file) of the interpolation network; null: linear blending. */
    interp_run: string | null;
    per_subject: number;
    axes: Axis[];
    transition: number;
    k_range: [number, number];
    threshold: number;
    attempts: number;
    seed: number;
    filter_raw: boolean;
  };
  consistency: { weight: number };
}

/** Defaults, and the checks that depend on other keys (arm grammar, grid divisibility, bins, k_range order). */
export function resolveBrainAge(f: BrainAgeFile, source: string): BrainAgeSettings {
  const err = (key: string, what: string) => new ConfigError(`${source}: ${key} ${what}`);
  const base = resolveBrainData(f.data);
  const arms = f.study?.arms ?? THESIS_ARMS;
  arms.forEach((a, i) => {
    try {
      parseArm(a);
    } catch (e) {
      throw err(`/study/arms/${i}`, (e as Error).message);
    }
  });
  if (new Set(arms).size !== arms.length) throw err('/study/arms', 'lists an arm twice');
  const size = f.data?.size ?? Math.min(64, base.shape);
  if (base.shape % size !== 0) throw err('/data/size', `${size} must divide the grid side data.shape ${base.shape}`);
  const model = resolveResNet3dConfig(f.model ?? {}, `${source}: /model`);
  if (size % 2 ** model.blocks.length !== 0)
    throw err('/data/size', `${size} must be a multiple of ${2 ** model.blocks.length} (2 per stage of model.blocks)`);
  const modalities = (f.data?.modalities ?? ['T1']).map((m) => m.toUpperCase());
  if (new Set(modalities).size !== modalities.length) throw err('/data/modalities', 'lists a modality twice');
  const bins = { min: f.data?.bins?.min ?? 20, max: f.data?.bins?.max ?? 90, width: f.data?.bins?.width ?? 5 };
  try {
    ageBins(bins);
  } catch (e) {
    throw err('/data/bins', (e as Error).message);
  }
  const training = { ...resolveTraining(f.training, source), steps_per_epoch: f.training.steps_per_epoch ?? 6 };
  const fu = f.fusion ?? {};
  const kRange = fu.k_range ?? [0.3, 0.7];
  if (kRange.length !== 2 || !(kRange[0]! < kRange[1]!)) throw err('/fusion/k_range', 'must be [low, high] with 0 <= low < high <= 1');
  const transition = fu.transition ?? 7;
  const chain = f.bt?.chain ?? [2, 4];
  if (!(chain[0]! <= chain[1]!)) throw err('/bt/chain', `[${chain.join(', ')}] must be [fewest, most] with fewest <= most`);
  // Every brain of a chain keeps at least one slice and every seam has its transition slices.
  const fusedPerReal = f.bt?.fused_per_real ?? 4;
  if (fusedPerReal > 0 && arms.some((a) => parseArm(a).bt) && chain[1]! * (transition + 1) > base.shape)
    throw err('/bt/chain', `${chain[1]} brains with ${transition} transition slices each do not fit in ${base.shape} slices`);
  return {
    source,
    name: f.name,
    kind: f.kind,
    description: f.description ?? '',
    data: { ...base, size, modalities, bins, label_sigma: f.data?.label_sigma ?? 1, augment: f.data?.augment ?? true },
    model,
    training,
    study: { arms: [...arms], seeds: f.study?.seeds ?? 3 },
    bt: {
      steps_per_epoch: f.bt?.steps_per_epoch ?? training.steps_per_epoch,
      dim: f.bt?.dim ?? 64,
      lambda: f.bt?.lambda ?? 0.005,
      fused_per_real: fusedPerReal,
      chain: [chain[0]!, chain[1]!],
      max_generation: f.bt?.max_generation ?? 2,
    },
    fusion: {
      interp_run: fu.interp_run === undefined ? 'runs/brainfuse-interp' : fu.interp_run,
      per_subject: fu.per_subject ?? 4,
      axes: [...new Set<Axis>(fu.axes ?? [2])],
      transition,
      k_range: [kRange[0]!, kRange[1]!],
      threshold: fu.threshold ?? 3,
      attempts: fu.attempts ?? 4,
      seed: fu.seed ?? 0,
      filter_raw: fu.filter_raw ?? false,
    },
    consistency: { weight: f.consistency?.weight ?? 1 },
  };
}
