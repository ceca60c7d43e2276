// Medformer's configuration as the thesis prints it (Chapter 4, model configuration table): the field names
// are the thesis's, and the two presets are its small (28 px / 28³) and large (224 px / 64³) models.
import { ConfigError } from '../errors.ts';

export type PresetName = 'small' | 'large';

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
      // "Patch sizes increase to 16" for the large model (thesis, large configuration), 3D too: 4³ = 64 tokens for 64³.
      patch_size_3d: 16,
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
  check(
    m.image_size_2d % m.patch_size_2d === 0,
    `/model/image_size_2d ${m.image_size_2d} must be divisible by patch_size_2d ${m.patch_size_2d}`,
  );
  check(
    m.image_size_3d % m.patch_size_3d === 0,
    `/model/image_size_3d ${m.image_size_3d} must be divisible by patch_size_3d ${m.patch_size_3d}`,
  );
  check(
    Math.round(m.hidden_dim * m.mlp_ratio) === m.hidden_dim * m.mlp_ratio,
    `/model/mlp_ratio ${m.mlp_ratio} × hidden_dim must be an integer`,
  );
  return m;
}
