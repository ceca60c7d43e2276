// Experiment files (experiments/*.json): schema, validation, defaults, and the thesis model presets.
//
// Validation is strict (unknown keys are errors at every level except the free-form "brainfuse" section) so a typo
// like "lrr" fails loudly instead of silently training with a default. Every error is one ConfigError line naming
// the file and the JSON path, e.g. `experiments/x.json: /training/lr must be number`.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { ConfigError } from '../errors.ts';

// ---------------------------------------------------------------------------------------------------------------
// Types

export type ExperimentKind = 'supervised' | 'multitask' | 'ssl' | 'finetune' | 'brainfuse-interp' | 'brainage';
export type PresetName = 'small' | 'large';
export type ImageSize = 28 | 64 | 128 | 224;
export type Sampling = 'uniform' | 'proportional' | 'temperature';

export interface ModelConfig {
  image_size_2d: number;
  image_size_3d: number;
  hidden_dim: number;
  num_layers: number;
  num_heads: number;
  mlp_ratio: number;
  patch_size_2d: number;
  patch_size_3d: number;
  latent_dim: number;
  num_latent_tokens: number;
  /** Task-specific latent tokens; null lets the model pick its default. */
  num_task_latents: number | null;
  dropout: number;
}

export type ModelOverrides = Partial<Omit<ModelConfig, 'num_task_latents'>> & { num_task_latents?: number };

export interface AugmentConfig {
  flips: boolean;
  /** Maximum rotation in degrees (0 = none). */
  rotate: number;
  /** RandAugment: n operations per image at magnitude m (0..30, torchvision's scale); n = 0 disables it. */
  randaugment: { n: number; m: number };
  intensity: boolean;
}

/** An experiment file as written (optional fields may be absent). */
export interface ExperimentFile {
  name: string;
  kind: ExperimentKind;
  description?: string;
  model: { preset: PresetName } & ModelOverrides;
  data: {
    datasets: string[];
    size?: ImageSize;
    root?: string;
    augment?: boolean | AugmentConfig;
    sampling?: Sampling;
    temperature?: number;
    train_limit?: number;
  };
  training: {
    epochs?: number;
    max_steps?: number;
    batch_size: number;
    lr: number;
    weight_decay: number;
    warmup_epochs: number;
    grad_clip?: number;
    seed?: number;
    eval_every?: 'epoch' | number;
    log_every?: number;
    nan_policy?: 'stop' | 'skip';
    checkpoint_every?: number;
  };
  ssl?: SslConfig;
  finetune?: FinetuneConfig;
  brainfuse?: Record<string, unknown>;
}

export interface SslConfig {
  expander: number[];
  sim_coeff: number;
  std_coeff: number;
  cov_coeff: number;
  cosine_coeff?: number;
}

export interface FinetuneConfig {
  init: string;
  freeze_body?: boolean;
  baseline?: string;
}

/** An experiment after validation and defaults: every field present, `null` meaning "off / not set". */
export interface Experiment {
  /** Path of the file it came from (not part of the config hash). */
  source: string;
  name: string;
  kind: ExperimentKind;
  description: string;
  model: ModelConfig & { preset: PresetName };
  data: {
    datasets: string[];
    /** Size of the 2D MedMNIST+ files; equals model.image_size_2d. 3D files use model.image_size_3d. */
    size: ImageSize;
    /** Dataset directory; null = the data module's default. Relative paths are relative to the working directory. */
    root: string | null;
    augment: AugmentConfig | null;
    sampling: Sampling;
    temperature: number | null;
    train_limit: number | null;
  };
  training: {
    /** Exactly one of epochs / max_steps is the stopping rule; if both are set, whichever comes first stops. */
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
  };
  ssl: (Required<SslConfig>) | null;
  finetune: Required<Omit<FinetuneConfig, 'baseline'>> & { baseline: string | null } | null;
  brainfuse: Record<string, unknown> | null;
}

// ---------------------------------------------------------------------------------------------------------------
// Presets

export interface Preset {
  model: Omit<ModelConfig, 'num_task_latents' | 'dropout'>;
  /** Training values the thesis prints for this preset; absent where it prints none. */
  training: { lr: number; weight_decay?: number; max_epochs?: number; warmup_epochs?: number; batch_size?: number[] };
  ssl_expander: number[];
}

/**
 * Model presets from Simionescu, C. (2025), Multitask Multimodal Self-Supervised Learning for Medical Images,
 * PhD thesis, Alexandru Ioan Cuza University of Iasi, Chapter 4 (model configuration table), as transcribed in
 * src/report/thesis-tables.json ("thesis.model_configs"); test/train/config.test.ts checks the copy.
 */
export const PRESETS: Readonly<Record<PresetName, Preset>> = {
  small: {
    model: {
      image_size_2d: 28,
      image_size_3d: 28,
      hidden_dim: 128,
      num_layers: 4,
      num_heads: 4,
      mlp_ratio: 2,
      patch_size_2d: 4,
      // Not printed in the thesis; this project's choice: 4 gives 7³ = 343 tokens for a 28³ volume.
      patch_size_3d: 4,
      latent_dim: 64,
      num_latent_tokens: 32,
    },
    training: { lr: 1e-3, weight_decay: 1e-3, max_epochs: 100, warmup_epochs: 5, batch_size: [64, 128] },
    ssl_expander: [1024, 1024, 1024],
  },
  large: {
    model: {
      image_size_2d: 224,
      image_size_3d: 64,
      hidden_dim: 512,
      num_layers: 6,
      num_heads: 8,
      mlp_ratio: 4,
      patch_size_2d: 16,
      // Not printed in the thesis; this project's choice: 8 gives 8³ = 512 tokens for a 64³ volume.
      patch_size_3d: 8,
      latent_dim: 256,
      num_latent_tokens: 512,
    },
    // The thesis prints only the learning rate for the large model; nothing else is filled in here.
    training: { lr: 1e-4 },
    ssl_expander: [8192, 8192, 8192],
  },
};

/** The preset's model config with `overrides` applied, checked for consistency. `where` prefixes errors. */
export function resolveModelConfig(preset: PresetName, overrides: ModelOverrides = {}, where = 'model'): ModelConfig {
  const base = PRESETS[preset];
  if (!base) throw new ConfigError(`${where}: unknown preset "${String(preset)}"; use "small" or "large"`);
  const m: ModelConfig = { ...base.model, num_task_latents: null, dropout: 0 };
  for (const [k, v] of Object.entries(overrides) as [keyof ModelConfig, number | undefined][]) {
    if (!(k in m)) throw new ConfigError(`${where}: unknown model field "${k}"`);
    if (v !== undefined) m[k] = v;
  }
  const check = (ok: boolean, msg: string): void => {
    if (!ok) throw new ConfigError(`${where}: ${msg}`);
  };
  check(m.hidden_dim % m.num_heads === 0, `/model/hidden_dim ${m.hidden_dim} must be divisible by num_heads ${m.num_heads}`);
  check(m.image_size_2d % m.patch_size_2d === 0, `/model/image_size_2d ${m.image_size_2d} must be divisible by patch_size_2d ${m.patch_size_2d}`);
  check(m.image_size_3d % m.patch_size_3d === 0, `/model/image_size_3d ${m.image_size_3d} must be divisible by patch_size_3d ${m.patch_size_3d}`);
  check(Math.round(m.hidden_dim * m.mlp_ratio) === m.hidden_dim * m.mlp_ratio, `/model/mlp_ratio ${m.mlp_ratio} × hidden_dim must be an integer`);
  return m;
}

// ---------------------------------------------------------------------------------------------------------------
// Schema

const posInt = { type: 'integer', minimum: 1 } as const;
const nonNegNumber = { type: 'number', minimum: 0 } as const;

const modelSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['preset'],
  properties: {
    preset: { enum: ['small', 'large'] },
    image_size_2d: posInt,
    image_size_3d: posInt,
    hidden_dim: posInt,
    num_layers: posInt,
    num_heads: posInt,
    mlp_ratio: { type: 'number', exclusiveMinimum: 0 },
    patch_size_2d: posInt,
    patch_size_3d: posInt,
    latent_dim: posInt,
    num_latent_tokens: posInt,
    num_task_latents: posInt,
    dropout: { type: 'number', minimum: 0, exclusiveMaximum: 1 },
  },
} as const;

const augmentSchema = {
  description: 'true, false, or an object {flips, rotate, randaugment: {n, m}, intensity}',
  anyOf: [
    { type: 'boolean' },
    {
      type: 'object',
      additionalProperties: false,
      required: ['flips', 'rotate', 'randaugment', 'intensity'],
      properties: {
        flips: { type: 'boolean' },
        rotate: { type: 'number', minimum: 0, maximum: 180 },
        randaugment: {
          type: 'object',
          additionalProperties: false,
          required: ['n', 'm'],
          properties: { n: { type: 'integer', minimum: 0, maximum: 14 }, m: { type: 'number', minimum: 0, maximum: 30 } },
        },
        intensity: { type: 'boolean' },
      },
    },
  ],
} as const;

const experimentSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'kind', 'model', 'data', 'training'],
  properties: {
    // The name becomes the run directory (runs/<name>), so it must be one safe path segment.
    name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' },
    kind: { enum: ['supervised', 'multitask', 'ssl', 'finetune', 'brainfuse-interp', 'brainage'] },
    description: { type: 'string' },
    model: modelSchema,
    data: {
      type: 'object',
      additionalProperties: false,
      required: ['datasets'],
      properties: {
        datasets: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', minLength: 1 } },
        size: { enum: [28, 64, 128, 224] },
        root: { type: 'string', minLength: 1 },
        augment: augmentSchema,
        sampling: { enum: ['uniform', 'proportional', 'temperature'] },
        temperature: { type: 'number', exclusiveMinimum: 0 },
        train_limit: posInt,
      },
    },
    training: {
      type: 'object',
      additionalProperties: false,
      required: ['batch_size', 'lr', 'weight_decay', 'warmup_epochs'],
      properties: {
        epochs: posInt,
        max_steps: posInt,
        batch_size: posInt,
        lr: { type: 'number', exclusiveMinimum: 0 },
        weight_decay: nonNegNumber,
        warmup_epochs: nonNegNumber,
        grad_clip: { type: 'number', exclusiveMinimum: 0 },
        seed: { type: 'integer', minimum: 0, maximum: 4294967295 },
        eval_every: { description: '"epoch" or a positive integer number of steps', anyOf: [{ const: 'epoch' }, posInt] },
        log_every: posInt,
        nan_policy: { enum: ['stop', 'skip'] },
        checkpoint_every: posInt,
      },
    },
    ssl: {
      type: 'object',
      additionalProperties: false,
      required: ['expander', 'sim_coeff', 'std_coeff', 'cov_coeff'],
      properties: {
        expander: { type: 'array', minItems: 1, items: posInt },
        sim_coeff: nonNegNumber,
        std_coeff: nonNegNumber,
        cov_coeff: nonNegNumber,
        cosine_coeff: nonNegNumber,
      },
    },
    finetune: {
      type: 'object',
      additionalProperties: false,
      required: ['init'],
      properties: {
        init: { type: 'string', minLength: 1 },
        freeze_body: { type: 'boolean' },
        baseline: { type: 'string', minLength: 1 },
      },
    },
    // Free-form until the BrainFuse experiments settle; its owner validates it.
    brainfuse: { type: 'object' },
  },
} as const;

// verbose: errors carry parentSchema, whose description names what an anyOf accepts.
const ajv = new Ajv({ strict: true, allErrors: false, verbose: true, allowUnionTypes: true });
const validateExperimentFile = ajv.compile<ExperimentFile>(experimentSchema);

/** One readable line for the most useful of ajv's errors. */
function describeError(errors: readonly ErrorObject[]): string {
  // With allErrors off, an anyOf failure lists its branches' errors first and the anyOf itself last; the branch
  // errors (e.g. "must be boolean") mislead, so report the anyOf with its description instead.
  const e = errors.find((x) => x.keyword === 'anyOf') ?? errors[0]!;
  const at = e.instancePath || '/';
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return `missing required key ${e.instancePath}/${String(params['missingProperty'])}`;
    case 'additionalProperties': {
      const allowed = Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      return `unknown key ${e.instancePath}/${String(params['additionalProperty'])} (allowed: ${allowed.join(', ')})`;
    }
    case 'enum':
      return `${at} must be one of ${(params['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'anyOf': {
      const what = (e.parentSchema as { description?: string } | undefined)?.description;
      return `${at} must be ${what ?? 'one of the allowed forms'}`;
    }
    case 'pattern':
      return `${at} must be one path segment of letters, digits, '.', '_' or '-' (it names the run directory)`;
    default:
      return `${at} ${e.message ?? 'is invalid'}`;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Loading

/** Line and column (1-based) of a character offset, for JSON syntax errors. */
function lineCol(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const col = offset - before.lastIndexOf('\n');
  return `line ${line}, column ${col}`;
}

/**
 * Offset and description of the first JSON syntax error in `text`, or undefined if it is valid. Node 20's
 * JSON.parse messages often carry no position ("Unexpected token '}', ... is not valid JSON"), so syntax errors are
 * located by this small scanner of the JSON grammar; JSON.parse still does the actual parsing.
 */
export function findJsonError(text: string): { at: number; what: string } | undefined {
  let i = 0;
  const fail = (what: string): never => {
    throw { at: i, what: i >= text.length ? 'unexpected end of file' : what };
  };
  const ws = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const str = (): void => {
    i++; // opening quote
    while (i < text.length && text[i] !== '"') {
      if (text.charCodeAt(i) < 0x20) fail('control character in string');
      if (text[i] === '\\') {
        i++;
        if (text[i] === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail('bad \\u escape');
          i += 4;
        } else if (!'"\\/bfnrt'.includes(text[i] ?? 'x')) fail('bad escape');
      }
      i++;
    }
    if (i >= text.length) fail('unterminated string');
    i++;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a "quoted" key');
        str();
        ws();
        if (text[i] !== ':') fail("expected ':' after the key");
        i++;
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') return void i++;
        else fail("expected ',' or '}'");
      }
    } else if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (;;) {
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') return void i++;
        else fail("expected ',' or ']'");
      }
    } else if (c === '"') {
      str();
    } else {
      const m = /^(-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
      if (!m) fail('expected a value');
      i += m![0].length;
    }
  };
  try {
    value();
    ws();
    if (i < text.length) fail('unexpected text after the end');
    return undefined;
  } catch (e) {
    return e as { at: number; what: string };
  }
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const found = findJsonError(text);
    if (!found) throw new ConfigError(`${file}: invalid JSON: ${e instanceof Error ? e.message.replace(/\s+/g, ' ') : String(e)}`);
    throw new ConfigError(`${file}: invalid JSON at ${lineCol(text, found.at)}: ${found.what}`);
  }
}

/** Validates an already-parsed experiment object; `file` names it in errors. */
export function validateExperiment(raw: unknown, file: string): Experiment {
  if (!validateExperimentFile(raw)) throw new ConfigError(`${file}: ${describeError(validateExperimentFile.errors ?? [])}`);
  const x = raw;
  const err = (msg: string): ConfigError => new ConfigError(`${file}: ${msg}`);

  const { preset, ...overrides } = x.model;
  const model = { preset, ...resolveModelConfig(preset, overrides, file) };
  const p = PRESETS[preset];

  const size = x.data.size ?? (model.image_size_2d as ImageSize);
  if (![28, 64, 128, 224].includes(size)) {
    throw err(`/model/image_size_2d ${model.image_size_2d} has no MedMNIST+ file size (28, 64, 128, 224); set /data/size or change it`);
  }
  if (size !== model.image_size_2d) {
    throw err(`/data/size ${size} differs from /model/image_size_2d ${model.image_size_2d}; make them equal`);
  }
  if (x.data.datasets.some((d) => /3d$/i.test(d)) && ![28, 64].includes(model.image_size_3d)) {
    throw err(`/model/image_size_3d ${model.image_size_3d} has no MedMNIST+ 3D file (28 or 64); change it`);
  }
  const sampling = x.data.sampling ?? 'proportional';
  if (sampling === 'temperature' && x.data.temperature === undefined) {
    throw err('missing /data/temperature, required when /data/sampling is "temperature"');
  }
  if (sampling !== 'temperature' && x.data.temperature !== undefined) {
    throw err('/data/temperature is only used with /data/sampling "temperature"; remove it or set the sampling');
  }

  let epochs = x.training.epochs ?? null;
  const maxSteps = x.training.max_steps ?? null;
  if (epochs === null && maxSteps === null) {
    if (p.training.max_epochs === undefined) {
      throw err(`set /training/epochs or /training/max_steps (the thesis gives no epoch count for the ${preset} preset)`);
    }
    epochs = p.training.max_epochs;
  }
  if (epochs !== null && x.training.warmup_epochs > epochs) {
    throw err(`/training/warmup_epochs ${x.training.warmup_epochs} exceeds /training/epochs ${epochs}; lower it`);
  }

  if (x.kind === 'ssl' && !x.ssl) throw err('missing /ssl, required when /kind is "ssl"');
  if (x.kind === 'finetune' && !x.finetune) throw err('missing /finetune, required when /kind is "finetune"');

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
      augment: resolveAugment(x.data.augment ?? true),
      sampling,
      temperature: x.data.temperature ?? null,
      train_limit: x.data.train_limit ?? null,
    },
    training: {
      epochs,
      max_steps: maxSteps,
      batch_size: x.training.batch_size,
      lr: x.training.lr,
      weight_decay: x.training.weight_decay,
      warmup_epochs: x.training.warmup_epochs,
      grad_clip: x.training.grad_clip ?? null,
      seed: x.training.seed ?? 0,
      eval_every: x.training.eval_every ?? 'epoch',
      log_every: x.training.log_every ?? 50,
      nan_policy: x.training.nan_policy ?? 'stop',
      checkpoint_every: x.training.checkpoint_every ?? null,
    },
    ssl: x.ssl ? { ...x.ssl, expander: [...x.ssl.expander], cosine_coeff: x.ssl.cosine_coeff ?? 0 } : null,
    finetune: x.finetune
      ? { init: x.finetune.init, freeze_body: x.finetune.freeze_body ?? false, baseline: x.finetune.baseline ?? null }
      : null,
    brainfuse: x.brainfuse ?? null,
  };
}

/**
 * `true` is the thesis recipe (RandAugment N=2 M=8, flips, small rotations, intensity jitter); the rotation bound
 * of 10 degrees is this project's choice, as the thesis says only "small rotations".
 */
function resolveAugment(a: boolean | AugmentConfig): AugmentConfig | null {
  if (a === false) return null;
  if (a === true) return { flips: true, rotate: 10, randaugment: { n: 2, m: 8 }, intensity: true };
  return { ...a, randaugment: { ...a.randaugment } };
}

/** Reads, parses and validates an experiment file, filling in defaults. */
export function loadExperiment(file: string): Experiment {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ConfigError(`${file}: no such experiment file; check the path (experiments live in experiments/)`);
    throw new ConfigError(`${file}: cannot read (${code ?? String(e)})`);
  }
  // Editors on Windows may prepend a byte-order mark, which JSON.parse rejects.
  return validateExperiment(parseJson(text.replace(/^\uFEFF/, ''), file), file);
}

/**
 * Joins an output location under `base` and refuses one that would land outside it ('..' segments, absolute
 * paths), so a config or flag cannot make a run write over unrelated files. `what` names the field in the error.
 */
export function resolveOutputPath(base: string, rel: string, what: string): string {
  const root = path.resolve(base);
  const full = path.resolve(root, rel);
  if (path.isAbsolute(rel) || rel.split(/[\\/]/).includes('..') || (full !== root && !full.startsWith(root + path.sep))) {
    throw new ConfigError(`${what} "${rel}" escapes ${base}; use a path inside it without '..'`);
  }
  return full;
}

/** Canonical JSON (sorted keys) of a value; used for hashing so key order in the file does not matter. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonical(x)}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/**
 * SHA-256 (hex) of everything that shapes the training trajectory: the resolved experiment without its source
 * path, description and name. A checkpoint stores it so a resume under a changed config can be refused.
 */
export function configHash(exp: Experiment): string {
  const { source: _source, description: _description, name: _name, ...rest } = exp;
  return crypto.createHash('sha256').update(canonical(rest)).digest('hex');
}
