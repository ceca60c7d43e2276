// One head of a trained Medformer as a PyTorch state dict: the names and layouts of the PyTorch peer's module
// (bench/medformer_small_torch.py, MedformerSmall), so `model.load_state_dict(...)` takes the file as it is.
// nn.Linear stores its weight [out, in] where the engine stores [in, out] (src/nn/layers.ts), so every matrix is
// transposed; the patch embedding is the peer's nn.Linear over (channel, patch offset) rows, the same row order as
// the engine's kernel (F.unfold's), so it transposes the same way. The peer adds one dimensionality, one modality
// and one body-part vector to its latents: the rows of the engine's tables that the head is conditioned on.
// Parameters the head does not use (other heads, other input paths) are listed as dropped, never silently lost.
import { ConfigError } from '../errors.ts';
import type { HeadDescription } from '../kinds/medformer/trainer.ts';
import type { TensorInput } from '../train/safetensors.ts';
import type { ModelSource } from '../cli/load-model.ts';
import { checkWeights, engineModel } from './onnx.ts';

/** How one engine parameter becomes one torch tensor. */
export interface TorchKey {
  engine: string;
  torch: string;
  /** "transpose": [in, out] -> [out, in]; "row N": row N of the engine's table; "none": as stored. */
  transform: string;
  shape: number[];
}

export interface TorchExport {
  tensors: Map<string, TensorInput>;
  /** The safetensors `__metadata__`: format, the mapping, the peer module's constructor arguments. */
  metadata: Record<string, string>;
  mapping: TorchKey[];
  dropped: string[];
  /** MedformerSmall(**module) builds the module this state dict loads into. */
  module: Record<string, number | string>;
}

export const TORCH_FORMAT = 'medformer-torch-state-dict';

/** The peer module's name for engine parameter `name` of head `h`, or null when the head does not use it. */
function torchName(name: string, h: HeadDescription): { torch: string; row?: number } | null {
  const kind = `${h.dim}d_c${h.channels}`;
  const fixed: Record<string, { torch: string; row?: number }> = {
    [`input.patch_${kind}.weight`]: { torch: 'patch_embed.weight' },
    [`input.patch_${kind}.bias`]: { torch: 'patch_embed.bias' },
    [`input.pos_${kind}`]: { torch: 'pos' },
    'input.latents': { torch: 'latents' },
    'input.dim_embed': { torch: 'dim_embed', row: h.dim - 2 },
    'input.modality_embed': { torch: 'modality_embed', row: h.modality },
    'input.body_part_embed': { torch: 'body_part_embed', row: h.body_part },
    [`output.task_latents.${h.key}`]: { torch: 'task_latents' },
  };
  if (name in fixed) return fixed[name]!;
  const prefixes: [string, string][] = [
    ['input.cross.', 'cross_in.'],
    ['input.to_hidden.', 'to_hidden.'],
    ['body.blocks.', 'blocks.'],
    ['body.norm.', 'body_norm.'],
    ['output.cross.', 'cross_out.'],
    ['output.norm.', 'out_norm.'],
    [`output.heads.${h.key}.`, 'head.'],
  ];
  for (const [from, to] of prefixes) if (name.startsWith(from)) return { torch: to + name.slice(from.length) };
  return null;
}

/** The state dict of head `h` of `source` in the peer's names and layouts, with the mapping that made it. */
export function torchStateDict(source: ModelSource, h: HeadDescription): TorchExport {
  const d = source.description;
  const { model, store } = engineModel(d);
  const w = source.weights.get(h.key)!;
  checkWeights(store, w);
  const tensors = new Map<string, TensorInput>();
  const mapping: TorchKey[] = [];
  const dropped: string[] = [];
  for (const name of store.names()) {
    const to = torchName(name, h);
    if (!to) {
      dropped.push(name);
      continue;
    }
    const t = w.tensors.get(name)!;
    if (to.row !== undefined) {
      const width = t.shape[1]!;
      tensors.set(to.torch, { shape: [width], data: t.data.slice(to.row * width, (to.row + 1) * width) });
      mapping.push({ engine: name, torch: to.torch, transform: `row ${to.row}`, shape: [width] });
    } else if (name.endsWith('.weight') && t.shape.length === 2) {
      const [rows, cols] = t.shape as [number, number];
      const data = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) data[c * rows + r] = t.data[r * cols + c]!;
      tensors.set(to.torch, { shape: [cols, rows], data });
      mapping.push({ engine: name, torch: to.torch, transform: 'transpose', shape: [cols, rows] });
    } else {
      tensors.set(to.torch, { shape: [...t.shape], data: t.data });
      mapping.push({ engine: name, torch: to.torch, transform: 'none', shape: [...t.shape] });
    }
  }
  const c = model.spec.config;
  const module = {
    outputs: h.outputs,
    size: h.dim === 2 ? c.image_size_2d : c.image_size_3d,
    patch: h.dim === 2 ? c.patch_size_2d : c.patch_size_3d,
    hidden: c.hidden_dim,
    latent: c.latent_dim,
    n_latents: c.num_latent_tokens,
    layers: c.num_layers,
    heads: c.num_heads,
    ratio: c.mlp_ratio,
    task_latents: model.output?.numTaskLatents ?? 0,
    channels: h.channels,
    dim: h.dim,
    // The engine's GELU is the tanh form (src/backend/kernels/activations.ts); nn.GELU's default is erf.
    approximate: 'tanh',
  };
  const metadata = {
    format: TORCH_FORMAT,
    format_version: '1',
    name: d.name,
    task: h.key,
    head: JSON.stringify(h),
    module: JSON.stringify(module),
    mapping: JSON.stringify(mapping),
    dropped: JSON.stringify(dropped),
    source: w.file,
  };
  return { tensors, metadata, mapping, dropped, module };
}

/** The one head a torch export holds: `--task`'s, or the model's only one. */
export function torchHead(heads: readonly HeadDescription[], all: readonly HeadDescription[]): HeadDescription {
  if (heads.length === 1) return heads[0]!;
  throw new ConfigError(
    `--format torch writes one head (the PyTorch peer module has one) and the model has ${all.length}`,
    `pick one with --task: ${all.map((h) => h.key).join(', ')}`,
  );
}
