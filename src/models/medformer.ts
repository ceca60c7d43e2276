// Medformer (thesis Chapter 4, sections 4.3-4.4): an input Adaptformer that turns 2D images or 3D volumes
// into a fixed set of latent tokens conditioned on dimensionality, modality and body part; a transformer
// main body over those latents; and an output Adaptformer in which per-task latents cross-attend the body's
// tokens, one head per task.
//
// Choices the thesis leaves open, made here and stated:
// - The conditioning embeddings (dimensionality + modality + body part) are SUMMED and added to every
//   learnable latent token.
// - Patch tokens have width hidden_dim; the latents (latent_dim) cross-attend them with keys/values
//   projected from hidden_dim, then are projected to hidden_dim for the main body.
// - One patch embedding per (dimensionality, channel count), since 1- and 3-channel sets differ.
// - The output Adaptformer's cross-attention block is shared by all tasks; each task owns its latents
//   (num_task_latents, default 4) and its linear head. Task latents are averaged before the head.
import type { ModelConfig } from './medformer_config.ts';
import { add, expand, mean, reshape } from '../ops/index.ts';
import { gatherRows } from '../ops/indexing.ts';
import { patchEmbed } from '../ops/patch_embed.ts';
import { Tensor } from '../tensor/tensor.ts';
import { Block, CrossBlock, FAN_IN, LayerNorm, Linear, TRUNC02, type ParamHandle, type ParamSource } from '../nn/layers.ts';
import { ConfigError, ShapeError } from '../errors.ts';

export interface InputKind {
  dim: 2 | 3;
  channels: number;
}

/** What the input Adaptformer needs to know about a batch (all samples of a batch share it). */
export interface BatchMeta extends InputKind {
  modality: number;
  bodyPart: number;
}

export interface TaskHead {
  /** Usually the dataset key. */
  name: string;
  outputs: number;
}

export interface MedformerSpec {
  config: ModelConfig;
  /** Input kinds the model must accept (one patch embedding each). */
  inputs: InputKind[];
  tasks: TaskHead[];
  numModalities: number;
  numBodyParts: number;
}

const kindKey = (k: InputKind): string => `${k.dim}d_c${k.channels}`;

interface PatchPath {
  weight: ParamHandle;
  bias: ParamHandle;
  pos: ParamHandle;
  patch: number;
  imageSize: number;
}

export class InputAdaptformer {
  readonly paths = new Map<string, PatchPath>();
  readonly latents: ParamHandle;
  readonly dimEmbed: ParamHandle;
  readonly modalityEmbed: ParamHandle;
  readonly bodyPartEmbed: ParamHandle;
  readonly cross: CrossBlock;
  readonly toHidden: Linear;

  constructor(
    ps: ParamSource,
    readonly spec: MedformerSpec,
  ) {
    const c = spec.config;
    for (const k of spec.inputs) {
      const patch = k.dim === 2 ? c.patch_size_2d : c.patch_size_3d;
      const size = k.dim === 2 ? c.image_size_2d : c.image_size_3d;
      if (size % patch !== 0) throw new ConfigError(`model: image size ${size} is not a multiple of patch size ${patch} (${k.dim}D)`);
      const tokens = (size / patch) ** k.dim;
      const fanIn = k.channels * patch ** k.dim;
      const key = kindKey(k);
      this.paths.set(key, {
        weight: ps.param(`input.patch_${key}.weight`, [fanIn, c.hidden_dim], FAN_IN),
        bias: ps.param(`input.patch_${key}.bias`, [c.hidden_dim], { kind: 'zeros' }),
        pos: ps.param(`input.pos_${key}`, [tokens, c.hidden_dim], TRUNC02),
        patch,
        imageSize: size,
      });
    }
    this.latents = ps.param('input.latents', [c.num_latent_tokens, c.latent_dim], TRUNC02);
    this.dimEmbed = ps.param('input.dim_embed', [2, c.latent_dim], TRUNC02);
    this.modalityEmbed = ps.param('input.modality_embed', [spec.numModalities, c.latent_dim], TRUNC02);
    this.bodyPartEmbed = ps.param('input.body_part_embed', [spec.numBodyParts, c.latent_dim], TRUNC02);
    this.cross = new CrossBlock(ps, 'input.cross', c.latent_dim, c.hidden_dim, c.num_heads, c.mlp_ratio);
    this.toHidden = new Linear(ps, 'input.to_hidden', c.latent_dim, c.hidden_dim);
  }

  forward(x: Tensor, meta: BatchMeta): Tensor {
    const path = this.paths.get(kindKey(meta));
    if (!path) {
      throw new ShapeError(
        `medformer: no ${meta.dim}D input path with ${meta.channels} channel(s); the model was built for ${[...this.paths.keys()].join(', ')}`,
      );
    }
    const b = x.shape[0];
    const tokens = patchEmbed(x, path.weight.tensor, path.bias.tensor, path.pos.tensor, path.patch);
    const idx = (v: number) => Tensor.from(new Int32Array(b).fill(v), [b], 'i32');
    const cond = add(
      add(gatherRows(this.dimEmbed.tensor, idx(meta.dim - 2)), gatherRows(this.modalityEmbed.tensor, idx(meta.modality))),
      gatherRows(this.bodyPartEmbed.tensor, idx(meta.bodyPart)),
    );
    const c = this.spec.config;
    const latents = add(reshape(this.latents.tensor, [1, c.num_latent_tokens, c.latent_dim]), reshape(cond, [b, 1, c.latent_dim]));
    return this.toHidden.forward(this.cross.forward(latents, tokens));
  }
}

export class MainBody {
  readonly blocks: Block[] = [];
  readonly norm: LayerNorm;
  constructor(ps: ParamSource, c: ModelConfig) {
    for (let i = 0; i < c.num_layers; i++) this.blocks.push(new Block(ps, `body.blocks.${i}`, c.hidden_dim, c.num_heads, c.mlp_ratio));
    this.norm = new LayerNorm(ps, 'body.norm', c.hidden_dim);
  }
  forward(x: Tensor): Tensor {
    let h = x;
    for (const blk of this.blocks) h = blk.forward(h);
    return this.norm.forward(h);
  }
}

export class OutputAdaptformer {
  readonly taskLatents = new Map<string, ParamHandle>();
  readonly heads = new Map<string, Linear>();
  readonly cross: CrossBlock;
  readonly norm: LayerNorm;
  readonly numTaskLatents: number;

  constructor(
    ps: ParamSource,
    readonly spec: MedformerSpec,
  ) {
    const c = spec.config;
    this.numTaskLatents = c.num_task_latents ?? 4;
    this.cross = new CrossBlock(ps, 'output.cross', c.hidden_dim, c.hidden_dim, c.num_heads, c.mlp_ratio);
    this.norm = new LayerNorm(ps, 'output.norm', c.hidden_dim);
    for (const t of spec.tasks) {
      this.taskLatents.set(t.name, ps.param(`output.task_latents.${t.name}`, [this.numTaskLatents, c.hidden_dim], TRUNC02));
      this.heads.set(t.name, new Linear(ps, `output.heads.${t.name}`, c.hidden_dim, t.outputs));
    }
  }

  forward(tokens: Tensor, task: string): Tensor {
    const lat = this.taskLatents.get(task);
    const head = this.heads.get(task);
    if (!lat || !head) throw new ConfigError(`medformer: no head for task '${task}' (have ${[...this.heads.keys()].join(', ')})`);
    const b = tokens.shape[0];
    const c = this.spec.config;
    const q = expand(reshape(lat.tensor, [1, this.numTaskLatents, c.hidden_dim]), [b, this.numTaskLatents, c.hidden_dim]);
    const h = this.norm.forward(this.cross.forward(q, tokens));
    return head.forward(mean(h, 1));
  }
}

export class Medformer {
  readonly input: InputAdaptformer;
  readonly body: MainBody;
  /** Absent when the model has no tasks (self-supervised pre-training needs no output side). */
  readonly output: OutputAdaptformer | null;
  constructor(
    ps: ParamSource,
    readonly spec: MedformerSpec,
  ) {
    if (spec.config.dropout > 0)
      throw new ConfigError(`model: dropout ${spec.config.dropout} is not implemented`, 'set model.dropout to 0');
    this.input = new InputAdaptformer(ps, spec);
    this.body = new MainBody(ps, spec.config);
    this.output = spec.tasks.length ? new OutputAdaptformer(ps, spec) : null;
  }

  /** Body tokens [B, num_latent_tokens, hidden_dim]. */
  encode(x: Tensor, meta: BatchMeta): Tensor {
    return this.body.forward(this.input.forward(x, meta));
  }

  /** Logits [B, outputs] of one task's head. */
  forward(x: Tensor, meta: BatchMeta, task: string): Tensor {
    if (!this.output) throw new ConfigError(`medformer: built without task heads, cannot predict '${task}'`);
    return this.output.forward(this.encode(x, meta), task);
  }

  /** Pooled representation [B, hidden_dim] for self-supervised training. */
  represent(x: Tensor, meta: BatchMeta): Tensor {
    return mean(this.encode(x, meta), 1);
  }
}

/** Parameter names of the main body (frozen by fine-tuning's freeze_body). */
export const isBodyParam = (name: string): boolean => name.startsWith('body.');

/**
 * Medformer's layer groups for training.update "backforward" (thesis 5.3: "each block"), from the input side: the
 * input Adaptformer, each main-body block, then the body's final norm with the output Adaptformer and heads.
 */
export function medformerLayerGroups(names: readonly string[], numLayers: number): string[][] {
  const blocks = Array.from({ length: numLayers }, (_, i) => names.filter((n) => n.startsWith(`body.blocks.${i}.`)));
  const input = names.filter((n) => n.startsWith('input.'));
  const rest = names.filter((n) => !n.startsWith('input.') && !n.startsWith('body.blocks.'));
  return [input, ...blocks, rest].filter((g) => g.length > 0);
}
