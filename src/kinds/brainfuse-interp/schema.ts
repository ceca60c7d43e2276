// The experiment file of kind "brainfuse-interp": the shared brain `data` section, the U-Net in `model`,
// `training` (with its steps per epoch) and the interpolation task in `interp`. Every key but name, kind and
// training's optimizer settings has a default.
import { type Static, Type } from '@sinclair/typebox';
import { brainDataSchema, resolveBrainData, type BrainDataSettings } from '../../brain/settings.ts';
import { ConfigError } from '../../errors.ts';
import { resolveUNetConfig, type SliceUNetConfig } from '../../models/brainfuse.ts';
import { NonNegNumber, PosInt, resolveTraining, RunName, Strict, trainingSchema, type TrainingSettings } from '../../train/schema.ts';
import type { RunSettings } from '../kind.ts';

export type Axis = 0 | 1 | 2;
const AxisSchema = Type.Union([Type.Literal(0), Type.Literal(1), Type.Literal(2)]);
const Axes = Type.Array(AxisSchema, { minItems: 1 });
/** A gap between the two input slices: even, so the target is a slice (checked by `resolveInterp`). */
const Gap = Type.Integer({ minimum: 2 });

const UNetSchema = Strict(
  {
    base: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
    depth: Type.Optional(Type.Integer({ minimum: 1, maximum: 6 })),
    groups: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
    act: Type.Optional(Type.Union([Type.Literal('gelu'), Type.Literal('relu')])),
    down: Type.Optional(Type.Union([Type.Literal('avg'), Type.Literal('max')])),
  },
  'the slice-interpolation U-Net (src/models/brainfuse.ts); default {base 16, depth 3, groups 4, act "gelu", down "avg"}',
);

const InterpSchema = Strict({
  /** Reconstruction loss: "l1" (Charbonnier) or "l2". Default "l1". */
  loss: Type.Optional(Type.Union([Type.Literal('l1'), Type.Literal('l2')])),
  /** Weight of the same loss on image gradients (0 = off). Default 0.1. */
  grad_weight: Type.Optional(NonNegNumber),
  /** Curriculum: the largest gap is `start` for `every_epochs` epochs, then grows by 2 up to `max`. Default {2, 8, 2}. */
  gap: Type.Optional(Strict({ start: Type.Optional(Gap), max: Type.Optional(Gap), every_epochs: Type.Optional(PosInt) })),
  /** Axes training slices are taken along. Default [0, 1, 2]. */
  axes: Type.Optional(Axes),
  /** A slice counts as brain when this fraction of it is above 0.05. Default 0.1. */
  min_foreground: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  /** Held-out evaluation. Default {gaps [2, 4, gap.max], axes [0, 1, 2], per_axis 16}. */
  eval: Type.Optional(
    Strict({ gaps: Type.Optional(Type.Array(Gap, { minItems: 1 })), axes: Type.Optional(Axes), per_axis: Type.Optional(PosInt) }),
  ),
});

export const BrainfuseInterpSchema = Strict(
  {
    name: RunName,
    kind: Type.Literal('brainfuse-interp'),
    description: Type.Optional(Type.String()),
    data: Type.Optional(brainDataSchema({})),
    model: Type.Optional(UNetSchema),
    /** steps_per_epoch: slice batches per epoch (the volumes are sampled, not iterated). Default 40. */
    training: trainingSchema({ steps_per_epoch: Type.Optional(PosInt) }),
    interp: Type.Optional(InterpSchema),
  },
  'BrainFuse slice interpolation (kind "brainfuse-interp")',
);
export type BrainfuseInterpFile = Static<typeof BrainfuseInterpSchema>;

/** Keys of the files before run kinds had their own schemas. */
export const INTERP_RENAMED: Readonly<Record<string, string>> = {
  '/brainfuse': 'its settings moved to /data, /model, /interp and /training/steps_per_epoch (see experiments/brainfuse-interp.json)',
  '/model/preset': 'this kind has no Medformer preset; /model holds the U-Net (base, depth, groups, act, down)',
  '/data/datasets': 'this kind reads IXI volumes, found through /data/data_dir (default $IXI_ROOT, else data/brain); remove datasets',
  '/data/augment': 'this kind does not augment; remove it',
};

export interface InterpTask {
  loss: 'l1' | 'l2';
  /** Weight of the image-gradient term (0 = off). */
  grad_weight: number;
  gap: { start: number; max: number; every_epochs: number };
  axes: Axis[];
  /** A slice counts as brain when this fraction of it is above 0.05. */
  min_foreground: number;
  eval: { gaps: number[]; axes: Axis[]; per_axis: number };
}

export interface InterpSettings extends RunSettings {
  data: BrainDataSettings;
  model: SliceUNetConfig;
  training: TrainingSettings & { steps_per_epoch: number };
  interp: InterpTask;
}

/** Defaults, and the checks that depend on other keys (even gaps, the grid side a multiple of 2^depth). */
export function resolveInterp(f: BrainfuseInterpFile, source: string): InterpSettings {
  const err = (key: string, what: string) => new ConfigError(`${source}: ${key} ${what}`);
  const data = resolveBrainData(f.data);
  const n = data.shape;
  const model = resolveUNetConfig(f.model ?? {}, `${source}: /model`);
  if (n % 2 ** model.depth !== 0) throw err('/data/shape', `${n} must be a multiple of 2^model.depth = ${2 ** model.depth}`);
  const i = f.interp ?? {};
  const gapKey = (k: string) => `/interp/gap/${k}`;
  const gap = { start: i.gap?.start ?? 2, max: i.gap?.max ?? 8, every_epochs: i.gap?.every_epochs ?? 2 };
  const even = (x: number, key: string, why = ' (the target is the middle slice)') => {
    if (x % 2 !== 0) throw err(key, `${x} must be even${why}`);
  };
  const fits = (x: number, key: string) => {
    if (x > n - 2) throw err(key, `${x} must be <= ${n - 2} (the grid side ${n} minus 2)`);
  };
  even(gap.start, gapKey('start'));
  fits(gap.max, gapKey('max'));
  even(gap.max, gapKey('max'));
  if (gap.max < gap.start) throw err(gapKey('max'), `${gap.max} must be >= start ${gap.start}`);
  const evalGaps = i.eval?.gaps ?? [2, 4, gap.max];
  evalGaps.forEach((x, k) => {
    fits(x, `/interp/eval/gaps/${k}`);
    even(x, `/interp/eval/gaps/${k}`, '');
  });
  return {
    source,
    name: f.name,
    kind: f.kind,
    description: f.description ?? '',
    data,
    model,
    training: { ...resolveTraining(f.training, source), steps_per_epoch: f.training.steps_per_epoch ?? 40 },
    interp: {
      loss: i.loss ?? 'l1',
      grad_weight: i.grad_weight ?? 0.1,
      gap,
      axes: [...new Set<Axis>(i.axes ?? [0, 1, 2])],
      min_foreground: i.min_foreground ?? 0.1,
      eval: {
        gaps: [...new Set(evalGaps)].sort((a, b) => a - b),
        axes: [...new Set<Axis>(i.eval?.axes ?? [0, 1, 2])],
        per_axis: i.eval?.per_axis ?? 16,
      },
    },
  };
}
