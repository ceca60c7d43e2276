// A trained Medformer's inference graph as an ONNX model (opset 17). The model is rebuilt from its description
// exactly as `mf eval` builds it (newMedformer over a ParameterStore that is never finalised, so no device starts),
// and each function below walks one part of src/models/medformer.ts / src/nn/layers.ts, reading the layer's
// parameter names and settings from the engine's own objects, and emits the ops its forward runs:
//   linear      MatMul + Add (weights are [in, out], as the engine stores them)
//   layerNorm   LayerNormalization, the layer's eps, over the last axis
//   gelu        the engine's tanh form, argument clamped to ±15 (kernels/matmul.wgsl, src/backend/kernels/activations.ts)
//   attention   per-head split, q · SCALE (1/sqrt(head width), f32, as kernels/attention.wgsl scales q), Softmax, merge
//   patchEmbed  Reshape + Transpose + MatMul over (channel, patch offset) rows, + bias + position table (src/ops/patch_embed.ts)
// The scores after the logits are the evaluator's (taskScores / ordinalScores in src/kinds/medformer/tasks.ts).
import { getDataset, numOutputs } from '../data/registry.ts';
import { ConfigError, FileFormatError } from '../errors.ts';
import type { HeadDescription } from '../kinds/medformer/trainer.ts';
import { newMedformer } from '../kinds/medformer/tasks.ts';
import type { BatchMeta, InputAdaptformer, MainBody, Medformer, OutputAdaptformer } from '../models/medformer.ts';
import type { Attention, Block, CrossBlock, LayerNorm, Linear, Mlp, ParamHandle } from '../nn/layers.ts';
import { ParameterStore } from '../nn/parameters.ts';
// Types only: the command (src/cli/export.ts) reads the model with src/cli/load-model.ts and hands it here.
import type { ModelDescription, ModelSource, WeightsFile } from '../cli/load-model.ts';
import {
  type AttributeMessage,
  AttributeType,
  DataType,
  IR_VERSION,
  type ModelMessage,
  type NodeMessage,
  OPSET_VERSION,
  type TensorMessage,
  type ValueInfoMessage,
} from './onnx-proto.ts';

/** What a user must do to an image before the graph sees it: the batch loader's normalisation, after mf predict's preparation. */
export const PREPROCESSING =
  'Input: float32, channel-first, the batch exactly as the engine forward receives it: the image (or volume) prepared as ' +
  "`mf predict` prepares it (resized to the model's side with Pillow's BILINEAR, converted to the head's channels, rounded " +
  'to 8 bits; see README "After training"), then each byte v mapped to v * 2 / 255 - 1 (range [-1, 1]). 2D heads take ' +
  '[batch, channels, side, side], 3D heads [batch, 1, side, side, side].';

// ---------------------------------------------------------------------------------------------------------------
// The graph

export const floatAttr = (name: string, v: number): AttributeMessage => ({ name, type: AttributeType.FLOAT, f: v });
export const intAttr = (name: string, v: number): AttributeMessage => ({ name, type: AttributeType.INT, i: v });
export const intsAttr = (name: string, v: number[]): AttributeMessage => ({ name, type: AttributeType.INTS, ints: v });
export const stringAttr = (name: string, v: string): AttributeMessage => ({
  name,
  type: AttributeType.STRING,
  s: new TextEncoder().encode(v),
});

/** Nodes and initializers of one ONNX graph, with unique value names derived from the part being emitted. */
export class Graph {
  readonly nodes: NodeMessage[] = [];
  readonly initializers: TensorMessage[] = [];
  private readonly initialized = new Set<string>();
  private readonly constants = new Map<string, string>();
  private count = 0;
  /** Prefix of the values the next nodes create (the model part, e.g. "synthetic2d/body.blocks.0"). */
  scope = '';

  /** One node; returns its output's name (`out` when given: the graph's outputs are named). */
  node(op: string, inputs: string[], attrs: AttributeMessage[] = [], out?: string): string {
    const name = `${this.scope}/${op}_${this.count++}`;
    const output = out ?? name;
    this.nodes.push({ name, op_type: op, input: inputs, output: [output], attribute: attrs });
    return output;
  }

  /** A float32 initializer under `name`, added once (heads that share weights share it). */
  floats(name: string, dims: readonly number[], data: Float32Array): string {
    if (!this.initialized.has(name)) {
      this.initialized.add(name);
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      this.initializers.push({ name, dims: [...dims], data_type: DataType.FLOAT, raw_data: Uint8Array.from(bytes) });
    }
    return name;
  }

  /** A scalar float constant (shared by value). */
  scalar(v: number): string {
    const key = `f32:${Math.fround(v)}`;
    let name = this.constants.get(key);
    if (!name) {
      name = `const/f32_${this.constants.size}`;
      this.constants.set(key, name);
      this.floats(name, [], Float32Array.of(v));
    }
    return name;
  }

  /** An int64 constant (shapes, indices); `dims` [] for a scalar. */
  int64(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const key = `i64:${dims.join('x')}:${values.join(',')}`;
    let name = this.constants.get(key);
    if (!name) {
      name = `const/i64_${this.constants.size}`;
      this.constants.set(key, name);
      this.initialized.add(name);
      this.initializers.push({ name, dims: [...dims], data_type: DataType.INT64, int64_data: [...values] });
    }
    return name;
  }
}

/** What each model-part function needs: the graph, the head's weights, and the batch size of its input. */
export interface Emit {
  g: Graph;
  /** The head being emitted; value names start with it. */
  head: string;
  /** The initializer holding parameter `h` of the weights this head is scored with. */
  param(h: ParamHandle): string;
  /** The int64 [1] tensor holding the batch size of the head's input (for Expand). */
  batch: string;
}

// ---------------------------------------------------------------------------------------------------------------
// Layers (src/nn/layers.ts)

function linear(e: Emit, l: Linear, x: string, act: 'none' | 'gelu' = 'none'): string {
  let y = e.g.node('MatMul', [x, e.param(l.weight)]);
  if (l.bias) y = e.g.node('Add', [y, e.param(l.bias)]);
  return act === 'gelu' ? gelu(e, y) : y;
}

function layerNorm(e: Emit, ln: LayerNorm, x: string): string {
  return e.g.node('LayerNormalization', [x, e.param(ln.gamma), e.param(ln.beta)], [intAttr('axis', -1), floatAttr('epsilon', ln.eps)]);
}

/** 0.5·x·(1 + tanh(clamp(0.7978845608028654·(x + 0.044715·x³), ±15))): the engine's GELU, op for op. */
export function gelu(e: Emit, x: string): string {
  const g = e.g;
  const cube = g.node('Mul', [g.node('Mul', [x, x]), x]);
  const inner = g.node('Add', [x, g.node('Mul', [cube, g.scalar(0.044715)])]);
  const u = g.node('Clip', [g.node('Mul', [inner, g.scalar(0.7978845608028654)]), g.scalar(-15), g.scalar(15)]);
  const onePlus = g.node('Add', [g.node('Tanh', [u]), g.scalar(1)]);
  return g.node('Mul', [g.node('Mul', [x, onePlus]), g.scalar(0.5)]);
}

function mlp(e: Emit, m: Mlp, x: string): string {
  return linear(e, m.fc2, linear(e, m.fc1, x, 'gelu'));
}

/** softmax(q·SCALE kᵀ) v per head; q [B, Lq, H·Dh], k and v [B, Lk, H·Dh], head h the slice [h·Dh, (h+1)·Dh). */
function attention(e: Emit, a: Attention, x: string, context: string): string {
  const g = e.g;
  const width = a.q.outDim;
  const dh = width / a.heads;
  const split = (t: string, perm: number[]) =>
    g.node('Transpose', [g.node('Reshape', [t, g.int64([0, 0, a.heads, dh])])], [intsAttr('perm', perm)]);
  const q = g.node('Mul', [split(linear(e, a.q, x), [0, 2, 1, 3]), g.scalar(Math.fround(1 / Math.sqrt(dh)))]);
  const kT = split(linear(e, a.k, context), [0, 2, 3, 1]);
  const v = split(linear(e, a.v, context), [0, 2, 1, 3]);
  const p = g.node('Softmax', [g.node('MatMul', [q, kT])], [intAttr('axis', -1)]);
  const o = g.node('Transpose', [g.node('MatMul', [p, v])], [intsAttr('perm', [0, 2, 1, 3])]);
  return linear(e, a.out, g.node('Reshape', [o, g.int64([0, 0, width])]));
}

/** Pre-norm block: x + Attn(LN(x)), then x + MLP(LN(x)). */
function block(e: Emit, b: Block, x: string): string {
  const y = layerNorm(e, b.norm1, x);
  const h = e.g.node('Add', [x, attention(e, b.attn, y, y)]);
  return e.g.node('Add', [h, mlp(e, b.mlp, layerNorm(e, b.norm2, h))]);
}

/** Pre-norm cross-attention block: queries attend the (normalised) context, then an MLP. */
function crossBlock(e: Emit, b: CrossBlock, queries: string, context: string): string {
  const h = e.g.node('Add', [queries, attention(e, b.attn, layerNorm(e, b.normQ, queries), layerNorm(e, b.normCtx, context))]);
  return e.g.node('Add', [h, mlp(e, b.mlp, layerNorm(e, b.norm2, h))]);
}

/** Names the values of the next nodes after the model part `part` of the current head. */
export function enter(e: Emit, part: string): void {
  e.g.scope = `${e.head}/${part}`;
}

/** `table` [rows, width] repeated over the batch: [B, rows, width] (the engine's expand / broadcast add). */
function overBatch(e: Emit, table: string, rows: number, width: number): string {
  return e.g.node('Expand', [table, e.g.node('Concat', [e.batch, e.g.int64([rows, width])], [intAttr('axis', 0)])]);
}

// ---------------------------------------------------------------------------------------------------------------
// Medformer (src/models/medformer.ts)

type PatchPath = InputAdaptformer['paths'] extends Map<string, infer P> ? P : never;

/** patchify(x) @ weight + bias + pos: [B, C, (D,) H, W] to [B, T, E], rows ordered (channel, pd, ph, pw) as the kernel's. */
function patchEmbed(e: Emit, path: PatchPath, x: string, meta: BatchMeta): string {
  const g = e.g;
  const p = path.patch;
  const grid = path.imageSize / p;
  const c = meta.channels;
  // [B, C, G, P, G, P(, G, P)] -> [B, G, G(, G), C, P, P(, P)] -> [B, T, C·P^dims]
  const split = meta.dim === 2 ? [0, c, grid, p, grid, p] : [0, c, grid, p, grid, p, grid, p];
  const perm = meta.dim === 2 ? [0, 2, 4, 1, 3, 5] : [0, 2, 4, 6, 1, 3, 5, 7];
  const patches = g.node('Transpose', [g.node('Reshape', [x, g.int64(split)])], [intsAttr('perm', perm)]);
  const rows = g.node('Reshape', [patches, g.int64([0, grid ** meta.dim, c * p ** meta.dim])]);
  const projected = g.node('Add', [g.node('MatMul', [rows, e.param(path.weight)]), e.param(path.bias)]);
  return g.node('Add', [projected, e.param(path.pos)]);
}

function inputAdaptformer(e: Emit, ia: InputAdaptformer, x: string, meta: BatchMeta): string {
  const g = e.g;
  // The key of InputAdaptformer.paths (kindKey in src/models/medformer.ts).
  const path = ia.paths.get(`${meta.dim}d_c${meta.channels}`);
  if (!path) throw new ConfigError(`onnx: the model has no ${meta.dim}D input path with ${meta.channels} channel(s)`);
  enter(e, 'input.patch');
  const tokens = patchEmbed(e, path, x, meta);
  enter(e, 'input.latents');
  const row = (table: ParamHandle, index: number) => g.node('Gather', [e.param(table), g.int64([index], [])], [intAttr('axis', 0)]);
  const cond = g.node('Add', [
    g.node('Add', [row(ia.dimEmbed, meta.dim - 2), row(ia.modalityEmbed, meta.modality)]),
    row(ia.bodyPartEmbed, meta.bodyPart),
  ]);
  const c = ia.spec.config;
  const latents = overBatch(e, g.node('Add', [e.param(ia.latents), cond]), c.num_latent_tokens, c.latent_dim);
  enter(e, 'input.cross');
  const crossed = crossBlock(e, ia.cross, latents, tokens);
  return linear(e, ia.toHidden, crossed);
}

function mainBody(e: Emit, body: MainBody, x: string): string {
  let h = x;
  body.blocks.forEach((blk, n) => {
    enter(e, `body.blocks.${n}`);
    h = block(e, blk, h);
  });
  enter(e, 'body.norm');
  return layerNorm(e, body.norm, h);
}

function outputAdaptformer(e: Emit, out: OutputAdaptformer, tokens: string, task: string, logits: string): string {
  const lat = out.taskLatents.get(task);
  const head = out.heads.get(task);
  if (!lat || !head) throw new ConfigError(`onnx: the model has no head for task '${task}'`);
  const c = out.spec.config;
  enter(e, 'output');
  const q = overBatch(e, e.param(lat), out.numTaskLatents, c.hidden_dim);
  const h = layerNorm(e, out.norm, crossBlock(e, out.cross, q, tokens));
  const pooled = e.g.node('ReduceMean', [h], [intsAttr('axes', [1]), intAttr('keepdims', 0)]);
  const y = e.g.node('MatMul', [pooled, e.param(head.weight)]);
  return head.bias ? e.g.node('Add', [y, e.param(head.bias)], [], logits) : e.g.node('Identity', [y], [], logits);
}

/** What the evaluator ranks (taskScores): softmax for classes, sigmoid for binary / multi-label, ordinalScores for a regression head. */
function scores(e: Emit, h: HeadDescription, logits: string, out: string): string {
  const g = e.g;
  const ds = getDataset(h.key);
  if (h.head === 'regression') {
    // ordinalScores: x = clamp(v·(K−1), 0, K−1); score_c = max(0, 1 − |x − c|).
    const k = numOutputs(ds);
    const x = g.node('Clip', [g.node('Mul', [logits, g.scalar(k - 1)]), g.scalar(0), g.scalar(k - 1)]);
    const classes = g.floats(
      'const/ordinal_classes',
      [k],
      Float32Array.from({ length: k }, (_, c) => c),
    );
    const tri = g.node('Sub', [g.scalar(1), g.node('Abs', [g.node('Sub', [x, classes])])]);
    return g.node('Relu', [tri], [], out);
  }
  return ds.task === 'multi-class' || ds.task === 'ordinal'
    ? g.node('Softmax', [logits], [intAttr('axis', -1)], out)
    : g.node('Sigmoid', [logits], [], out);
}

// ---------------------------------------------------------------------------------------------------------------
// The model file

/** A float32 graph input or output; string dims are symbolic ("batch"). */
export function floatValue(name: string, dims: (number | string)[], doc: string): ValueInfoMessage {
  return {
    name,
    doc_string: doc,
    type: {
      tensor_type: {
        elem_type: DataType.FLOAT,
        shape: { dim: dims.map((x) => (typeof x === 'string' ? { dim_param: x } : { dim_value: x })) },
      },
    },
  };
}

/** The ModelProto around graph `g`: opset 17 of the default domain, `doc` on the model and the graph. */
export function modelOf(
  g: Graph,
  io: { name: string; doc: string; producerVersion: string; inputs: ValueInfoMessage[]; outputs: ValueInfoMessage[] },
  metadata: Record<string, string>,
): ModelMessage {
  return {
    ir_version: IR_VERSION,
    opset_import: [{ domain: '', version: OPSET_VERSION }],
    producer_name: 'medformer',
    producer_version: io.producerVersion,
    doc_string: io.doc,
    graph: { name: io.name, doc_string: io.doc, node: g.nodes, initializer: g.initializers, input: io.inputs, output: io.outputs },
    metadata_props: Object.entries(metadata).map(([key, value]) => ({ key, value })),
  };
}

/** The graph's input for heads of this kind: "input" when all exported heads share one kind. */
export interface GraphInput {
  name: string;
  dim: 2 | 3;
  channels: number;
  size: number;
}

export interface GraphOutput {
  name: string;
  task: string;
  what: 'logits' | 'probabilities';
  width: number;
}

export interface OnnxExport {
  model: ModelMessage;
  inputs: GraphInput[];
  outputs: GraphOutput[];
}

/** The model's parameters (names, shapes) as the engine declares them, on the host only. */
export function engineModel(d: ModelDescription): { model: Medformer; store: ParameterStore } {
  if (d.model.preset !== 'small' && d.model.preset !== 'large') {
    const what =
      d.model.preset === 'mlp'
        ? 'the section 5.3 perceptron'
        : d.model.preset === 'resnet18'
          ? 'the ResNet-18 (28) baseline'
          : `a Wide ResNet (${d.model.preset})`;
    throw new ConfigError(`${d.name} is ${what}; mf export writes Medformer models`, 'export a run with model.preset "small" or "large"');
  }
  const store = new ParameterStore(0);
  const tasks = d.heads.map((h) => ({ name: h.key, outputs: h.outputs }));
  return { model: newMedformer(store, d.model, d.inputs, tasks), store };
}

/** Every parameter the model declares, present in `w` with its shape, and nothing else (as the engine's strict load). */
export function checkWeights(store: ParameterStore, w: WeightsFile): void {
  const names = store.names();
  const missing = names.filter((n) => !w.tensors.has(n));
  const mismatched = names.filter((n) => {
    const t = w.tensors.get(n);
    const want = store.info(n).shape;
    return t && (t.shape.length !== want.length || t.shape.some((d, j) => d !== want[j]));
  });
  const unexpected = [...w.tensors.keys()].filter((n) => !store.has(n));
  if (missing.length || mismatched.length || unexpected.length) {
    const list = (what: string, xs: string[]) => (xs.length ? [`${what} ${xs.slice(0, 4).join(', ')}${xs.length > 4 ? ', …' : ''}`] : []);
    throw new FileFormatError(
      `${w.file}: the weights do not fit the model its description builds: ${[...list('missing', missing), ...list('wrong shape', mismatched), ...list('unexpected', unexpected)].join('; ')}`,
    );
  }
}

/** The ONNX model of `heads` of `source`: one input per input kind, logits and probabilities per head. */
export function medformerOnnx(source: ModelSource, heads: readonly HeadDescription[], producerVersion: string): OnnxExport {
  const d = source.description;
  const { model, store } = engineModel(d);
  if (!model.output) throw new ConfigError(`${source.target}: the model has no task heads to export`);
  const g = new Graph();

  // Initializers are named after the engine's parameters; a second weights file (per-task best checkpoints of a
  // multitask run) gets its head's key as a prefix.
  const prefixes = new Map<WeightsFile, string>();
  for (const h of heads) {
    const w = source.weights.get(h.key)!;
    if (!prefixes.has(w)) {
      checkWeights(store, w);
      prefixes.set(w, prefixes.size === 0 ? '' : `${h.key}:`);
    }
  }

  const kinds: GraphInput[] = [];
  for (const h of heads)
    if (!kinds.some((k) => k.dim === h.dim && k.channels === h.channels))
      kinds.push({
        name: '',
        dim: h.dim,
        channels: h.channels,
        size: h.dim === 2 ? d.model.image_size_2d : model.spec.config.image_size_3d,
      });
  for (const k of kinds) k.name = kinds.length === 1 ? 'input' : `input_${k.dim}d_c${k.channels}`;

  const batchOf = new Map<string, string>();
  const outputs: GraphOutput[] = [];
  for (const h of heads) {
    const w = source.weights.get(h.key)!;
    const prefix = prefixes.get(w)!;
    const input = kinds.find((k) => k.dim === h.dim && k.channels === h.channels)!;
    g.scope = `${h.key}/input`;
    let batch = batchOf.get(input.name);
    if (!batch) {
      batch = g.node('Shape', [input.name], [intAttr('start', 0), intAttr('end', 1)]);
      batchOf.set(input.name, batch);
    }
    const e: Emit = {
      g,
      head: h.key,
      batch,
      param: (p) => {
        const t = w.tensors.get(p.name)!;
        return g.floats(`${prefix}${p.name}`, t.shape, t.data);
      },
    };
    const meta: BatchMeta = { dim: h.dim, channels: h.channels, modality: h.modality, bodyPart: h.body_part };
    const logits = `logits_${h.key}`;
    const probabilities = `probabilities_${h.key}`;
    outputAdaptformer(e, model.output, mainBody(e, model.body, inputAdaptformer(e, model.input, input.name, meta)), h.key, logits);
    enter(e, 'scores');
    scores(e, h, logits, probabilities);
    const k = h.head === 'regression' ? numOutputs(getDataset(h.key)) : h.outputs;
    outputs.push(
      { name: logits, task: h.key, what: 'logits', width: h.outputs },
      { name: probabilities, task: h.key, what: 'probabilities', width: k },
    );
  }

  const inputDoc = (k: GraphInput) =>
    `${k.dim}D, ${k.channels} channel(s), side ${k.size}: heads ${heads
      .filter((h) => h.dim === k.dim && h.channels === k.channels)
      .map((h) => h.key)
      .join(', ')}`;
  const outputDoc = (o: GraphOutput) => {
    const h = heads.find((x) => x.key === o.task)!;
    const labels = getDataset(h.key).labels;
    if (o.what === 'logits')
      return `${o.task}: the head's raw outputs (${h.head === 'regression' ? 'normalised ordinal value' : labels.join(', ')})`;
    if (h.task === 'binary') return `${o.task}: sigmoid of the logit, the probability of "${labels[1]}" (1 minus it is "${labels[0]}")`;
    return `${o.task}: ${h.head === 'regression' ? 'ordinal class scores' : h.task === 'multi-label' ? 'sigmoid per label' : 'softmax'} over ${labels.join(', ')}`;
  };
  const doc = `Medformer "${d.name}" (${d.kind}) exported by mf export from ${source.target}. ${PREPROCESSING}`;
  const message = modelOf(
    g,
    {
      name: d.name,
      doc,
      producerVersion,
      inputs: kinds.map((k) => floatValue(k.name, ['batch', k.channels, ...Array<number>(k.dim).fill(k.size)], inputDoc(k))),
      outputs: outputs.map((o) => floatValue(o.name, ['batch', o.width], outputDoc(o))),
    },
    {
      'medformer.name': d.name,
      'medformer.kind': d.kind,
      'medformer.model': JSON.stringify(d.model),
      'medformer.tasks': JSON.stringify(heads),
      'medformer.labels': JSON.stringify(Object.fromEntries(heads.map((h) => [h.key, getDataset(h.key).labels]))),
      'medformer.inputs': JSON.stringify(kinds),
      'medformer.weights': JSON.stringify(Object.fromEntries(heads.map((h) => [h.key, source.weights.get(h.key)!.file]))),
      'medformer.preprocessing': PREPROCESSING,
    },
  );
  return { model: message, inputs: kinds, outputs };
}
