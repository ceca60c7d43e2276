// The pieces every experiment file shares, as TypeBox schemas (JSON Schema with TypeScript types derived from
// them), and the one validator every kind uses. Validation is strict: unknown keys are errors at every level, so
// a typo like "lrr" fails loudly instead of silently training with a default. Every error is one ConfigError
// line naming the file and the JSON path, e.g. `experiments/x.json: /training/lr must be number`.
import { type Static, type TObject, type TProperties, type TSchema, Type } from '@sinclair/typebox';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { ConfigError } from '../errors.ts';

export const PosInt = Type.Integer({ minimum: 1 });
export const NonNegNumber = Type.Number({ minimum: 0 });
export const PosNumber = Type.Number({ exclusiveMinimum: 0 });
export const Seed = Type.Integer({ minimum: 0, maximum: 4294967295 });

/** A closed object: unknown keys are errors. */
export const Strict = <P extends TProperties>(properties: P, description?: string): TObject<P> =>
  Type.Object(properties, { additionalProperties: false, ...(description ? { description } : {}) });

/** The name becomes the run directory (runs/<name>), so it must be one safe path segment. */
export const RunName = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' });

/**
 * Upper bounds of `training`, far above any real run (the thesis trains at most a few hundred epochs with batches
 * of at most a few hundred) and low enough that a slip such as 1e300 or 2**53 is an error naming the key here, not
 * an hour-long allocation or a loop that never ends. The command line's overrides obey the same bounds.
 */
export const TRAINING_LIMITS = {
  epochs: 100_000,
  max_steps: 1_000_000_000,
  /** A batch of 65536 images of 224² floats is 13 GB of input alone: past any device. */
  batch_size: 65_536,
  /** AdamW diverges long before a step size of 1; larger is a typo for a small number. */
  lr: 1,
  weight_decay: 10,
  grad_clip: 1_000_000,
  /** Steps between logs, evaluations or checkpoints. */
  every: 1_000_000_000,
  seeds: 1000,
  milestones: 1000,
} as const;

const L = TRAINING_LIMITS;
const boundedInt = (max: number, description: string) => Type.Integer({ minimum: 1, maximum: max, description });

/** Keys of `training` shared by every kind; a kind may add its own (`trainingSchema(extra)`). */
export const TRAINING_PROPERTIES = {
  epochs: Type.Optional(boundedInt(L.epochs, `training epochs, an integer in [1, ${L.epochs}]`)),
  max_steps: Type.Optional(boundedInt(L.max_steps, `optimizer steps, an integer in [1, ${L.max_steps}]`)),
  batch_size: boundedInt(L.batch_size, `samples per step, an integer in [1, ${L.batch_size}]`),
  lr: Type.Number({ exclusiveMinimum: 0, maximum: L.lr, description: `peak learning rate, a number in (0, ${L.lr}]` }),
  weight_decay: Type.Number({
    minimum: 0,
    maximum: L.weight_decay,
    description: `weight decay (AdamW's decoupled, SGD's L2), a number in [0, ${L.weight_decay}]`,
  }),
  warmup_epochs: Type.Number({ minimum: 0, maximum: L.epochs, description: `OneCycle warm-up in epochs, a number in [0, ${L.epochs}]` }),
  grad_clip: Type.Optional(
    Type.Number({ exclusiveMinimum: 0, maximum: L.grad_clip, description: `largest gradient norm, a number in (0, ${L.grad_clip}]` }),
  ),
  seed: Type.Optional(Seed),
  eval_every: Type.Optional(
    Type.Union([Type.Literal('epoch'), boundedInt(L.every, `steps, an integer in [1, ${L.every}]`)], {
      description: '"epoch" or a positive integer number of steps',
    }),
  ),
  log_every: Type.Optional(boundedInt(L.every, `steps between log lines, an integer in [1, ${L.every}]`)),
  nan_policy: Type.Optional(Type.Union([Type.Literal('stop'), Type.Literal('skip')])),
  checkpoint_every: Type.Optional(boundedInt(L.every, `steps between checkpoints, an integer in [1, ${L.every}]`)),
  /** Repeat the run once per seed (into seed-<s>/ folders) and report mean ± std; replaces `seed`. */
  seeds: Type.Optional(
    Type.Array(Seed, { minItems: 1, maxItems: L.seeds, uniqueItems: true, description: `1 to ${L.seeds} distinct seeds` }),
  ),
  /** "adamw" (the default) or SGD: plain by default (thesis 5.3's backforward experiment), with `momentum` for the Wide ResNets. */
  optimizer: Type.Optional(Type.Union([Type.Literal('adamw'), Type.Literal('sgd')])),
  /** SGD's momentum factor (torch.optim.SGD, dampening 0); default 0, plain SGD. Needs optimizer "sgd". */
  momentum: Type.Optional(Type.Number({ minimum: 0, exclusiveMaximum: 1, description: 'SGD momentum, a number in [0, 1)' })),
  /** Nesterov momentum for SGD; default false. Needs optimizer "sgd" and a momentum above 0. */
  nesterov: Type.Optional(Type.Boolean()),
  /**
   * "backprop" (the default): one forward-backward pass and one update per batch. "backforward" (thesis 5.3): per
   * batch, the model's layer groups are updated one at a time from the input side, each after a fresh forward and
   * backward through the layers already updated (L passes and L updates per batch); needs optimizer "sgd".
   */
  update: Type.Optional(Type.Union([Type.Literal('backprop'), Type.Literal('backforward')])),
  /** The learning-rate schedule: "onecycle" (the default), "constant", or step decay at epoch milestones (PyTorch's MultiStepLR). */
  schedule: Type.Optional(
    Type.Union(
      [
        Type.Literal('onecycle'),
        Type.Literal('constant'),
        Strict({
          kind: Type.Literal('multistep'),
          milestones: Type.Array(boundedInt(L.epochs, `an epoch, an integer in [1, ${L.epochs}]`), {
            minItems: 1,
            maxItems: L.milestones,
            description: `1 to ${L.milestones} ascending epochs`,
          }),
          gamma: Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'the factor at each milestone, a number in (0, 1]' }),
        }),
      ],
      {
        description: '"onecycle", "constant" or {"kind": "multistep", "milestones": [epochs...], "gamma": number}',
      },
    ),
  ),
};

export const trainingSchema = <P extends TProperties>(extra: P) => Strict({ ...TRAINING_PROPERTIES, ...extra });
export const TrainingSchema = trainingSchema({});
export type TrainingFile = Static<typeof TrainingSchema>;

/** `training` after defaults: every field present, `null` meaning "off / not set". */
export interface TrainingSettings {
  /** The stopping rule is epochs, max_steps, or both (whichever comes first stops). */
  epochs: number | null;
  max_steps: number | null;
  batch_size: number;
  lr: number;
  weight_decay: number;
  warmup_epochs: number;
  grad_clip: number | null;
  seed: number;
  eval_every: 'epoch' | number;
  log_every: number;
  nan_policy: 'stop' | 'skip';
  /** Steps between checkpoints; null = at the end of every epoch. */
  checkpoint_every: number | null;
  /** Seeds of a repeated run (`mf run` makes one run per seed); null = one run with `seed`. */
  seeds: number[] | null;
  /**
   * Step decay instead of OneCycle: lr · gamma^k once k of the milestones (epochs, ascending) have passed. Absent
   * for OneCycle (absent rather than null so that the config hash of every OneCycle run stays what it was).
   */
  schedule?: MultiStepSettings;
  /** Plain SGD instead of AdamW; absent for AdamW (so that the config hash of every AdamW run stays what it was). */
  optimizer?: 'sgd';
  /** SGD's momentum factor; absent for 0 (plain SGD, so that the config hash of every earlier run stays what it was). */
  momentum?: number;
  /** Nesterov momentum; absent for false. */
  nesterov?: true;
  /** Backforward updates (thesis 5.3) instead of backprop; absent for backprop. */
  update?: 'backforward';
}

export interface MultiStepSettings {
  kind: 'multistep';
  /** Epochs at whose start the rate is multiplied by gamma, ascending; none for "constant" (the rate stays lr). */
  milestones: number[];
  gamma: number;
}

/**
 * Defaults and cross-field checks of `training`. `defaultEpochs` applies when the file sets neither epochs nor
 * max_steps (the thesis's epoch count for a preset); without it one of the two is required.
 */
export function resolveTraining(t: TrainingFile, file: string, defaultEpochs?: { epochs: number } | { missing: string }): TrainingSettings {
  let epochs = t.epochs ?? null;
  const maxSteps = t.max_steps ?? null;
  if (epochs === null && maxSteps === null) {
    if (!defaultEpochs || 'missing' in defaultEpochs) {
      throw new ConfigError(`${file}: set /training/epochs or /training/max_steps${defaultEpochs ? ` (${defaultEpochs.missing})` : ''}`);
    }
    epochs = defaultEpochs.epochs;
  }
  if (t.seeds && t.seed !== undefined) {
    throw new ConfigError(`${file}: /training/seed and /training/seeds are both set; keep one (seeds repeats the run once per seed)`);
  }
  if (epochs !== null && t.warmup_epochs > epochs) {
    throw new ConfigError(`${file}: /training/warmup_epochs ${t.warmup_epochs} exceeds /training/epochs ${epochs}; lower it`);
  }
  const sched =
    t.schedule === undefined || t.schedule === 'onecycle'
      ? null
      : t.schedule === 'constant'
        ? { kind: 'multistep' as const, milestones: [], gamma: 1 }
        : t.schedule;
  if (sched) {
    if (t.warmup_epochs !== 0) {
      throw new ConfigError(
        `${file}: /training/warmup_epochs ${t.warmup_epochs}: the ${t.schedule === 'constant' ? 'constant' : 'multistep'} schedule has no warm-up; set it to 0`,
      );
    }
    if (sched.milestones.some((m, i) => i > 0 && m <= sched.milestones[i - 1])) {
      throw new ConfigError(`${file}: /training/schedule/milestones [${sched.milestones.join(', ')}] must be ascending epochs`);
    }
  }
  if (t.update === 'backforward' && t.optimizer !== 'sgd') {
    throw new ConfigError(
      `${file}: /training/update "backforward" needs /training/optimizer "sgd"`,
      'AdamW\'s moments and decay would move the layers a backforward pass leaves out; set optimizer to "sgd"',
    );
  }
  if ((t.momentum || t.nesterov) && t.optimizer !== 'sgd') {
    throw new ConfigError(
      `${file}: /training/${t.momentum ? 'momentum' : 'nesterov'} is for SGD; /training/optimizer is "${t.optimizer ?? 'adamw'}"`,
      'set /training/optimizer to "sgd", or remove the key',
    );
  }
  if (t.nesterov && !t.momentum) {
    throw new ConfigError(`${file}: /training/nesterov needs a /training/momentum above 0`, 'set momentum (e.g. 0.9) or drop nesterov');
  }
  return {
    epochs,
    max_steps: maxSteps,
    batch_size: t.batch_size,
    lr: t.lr,
    weight_decay: t.weight_decay,
    warmup_epochs: t.warmup_epochs,
    grad_clip: t.grad_clip ?? null,
    seed: t.seed ?? 0,
    eval_every: t.eval_every ?? 'epoch',
    log_every: t.log_every ?? 50,
    nan_policy: t.nan_policy ?? 'stop',
    checkpoint_every: t.checkpoint_every ?? null,
    seeds: t.seeds ? [...t.seeds] : null,
    ...(sched ? { schedule: { kind: 'multistep', milestones: [...sched.milestones], gamma: sched.gamma } } : {}),
    ...(t.optimizer === 'sgd' ? { optimizer: 'sgd' as const } : {}),
    ...(t.momentum ? { momentum: t.momentum } : {}),
    ...(t.nesterov ? { nesterov: true as const } : {}),
    ...(t.update === 'backforward' ? { update: 'backforward' as const } : {}),
  };
}

// verbose: errors carry parentSchema, whose description names what an anyOf accepts.
const ajv = new Ajv({ strict: true, allErrors: false, verbose: true, allowUnionTypes: true });
const compiled = new WeakMap<TSchema, ValidateFunction>();

/** Checks `raw` against `schema`; the first error becomes one ConfigError line naming `file` and the JSON path. */
export function check<S extends TSchema>(schema: S, raw: unknown, file: string): asserts raw is Static<S> {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  if (!validate(raw)) throw new ConfigError(`${file}: ${describeError(validate.errors ?? [])}`);
}

/** One readable line for the most useful of ajv's errors. */
function describeError(errors: readonly ErrorObject[]): string {
  // With allErrors off, an anyOf failure lists its branches' errors first and the anyOf itself last; the branch
  // errors (e.g. "must be boolean") mislead, so report the anyOf with its description instead.
  const e = errors.find((x) => x.keyword === 'anyOf') ?? errors[0];
  if (!e) return 'is invalid';
  const at = e.instancePath || '/';
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return `missing required key ${e.instancePath}/${String(params.missingProperty)}`;
    case 'additionalProperties': {
      const allowed = Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      return `unknown key ${e.instancePath}/${String(params.additionalProperty)} (allowed: ${allowed.join(', ')})`;
    }
    case 'enum':
      return `${at} must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'anyOf': {
      const what = (e.parentSchema as { description?: string } | undefined)?.description;
      if (what) return `${at} must be ${what}`;
      const options = ((e.parentSchema as { anyOf?: { const?: unknown }[] } | undefined)?.anyOf ?? []).map((s) => s.const);
      return options.every((o) => o !== undefined)
        ? `${at} must be one of ${options.map((o) => JSON.stringify(o)).join(', ')}`
        : `${at} must be one of the allowed forms`;
    }
    case 'pattern':
      return `${at} must be one path segment of letters, digits, '.', '_' or '-' (it names the run directory)`;
    default:
      return `${at} ${e.message ?? 'is invalid'}`;
  }
}
