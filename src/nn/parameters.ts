// Named parameters living in one arena. Layers declare parameters up front; `finalize` lays them out
// at 256-byte-aligned offsets in ONE parameter buffer and ONE gradient buffer (plus, lazily, the AdamW
// moment buffers), so that zeroing gradients, the gradient norm and the optimizer update are each one
// dispatch over the whole model instead of one per tensor. Each parameter is a Tensor view into the
// arena whose `.grad` is a view at the same offset of the gradient arena: backward accumulates there
// in place. A small mask arena (one u32 per 64 floats) tells the optimizer what is trainable and
// what gets weight decay.
import type { Backend, DeviceBuffer } from '../backend/backend.ts';
import { VIEW_ALIGN } from '../backend/backend.ts';
import { MASK_BLOCK, MASK_DECAY, MASK_TRAINABLE } from '../backend/kernels/optimizer.ts';
import { ConfigError, MfError, ShapeError } from '../errors.ts';
import { launch } from '../ops/launch.ts';
import { backend, shapeStr, Tensor, type Shape } from '../tensor/tensor.ts';
import { hashSeed, Rng } from '../util/rng.ts';
import type { ParamHandle, ParamInit, ParamSource } from './param.ts';

export type { ParamHandle, ParamInit, ParamSource };

export type ParamPredicate = (name: string, shape: Shape) => boolean;

export interface TensorData {
  shape: number[];
  data: Float32Array;
}

export interface LoadReport {
  loaded: string[];
  missing: string[];
  unexpected: string[];
  mismatched: string[];
}

export interface ParamInfo {
  name: string;
  shape: readonly number[];
  /** Offset in floats inside the arenas (a multiple of 64). */
  offset: number;
  size: number;
  trainable: boolean;
  decay: boolean;
  /** Non-trainable state declared with `buffer` (BatchNorm running statistics). */
  buffer: boolean;
}

/** Floats per alignment unit; also the optimizer's mask block. */
const ALIGN_F = VIEW_ALIGN / 4;
if (ALIGN_F !== MASK_BLOCK) throw new Error('optimizer mask blocks must match the view alignment');

const roundUp = (n: number, m: number): number => Math.ceil(n / m) * m;

// Position tables, learned latents/tokens and embedding tables: a segment naming one of these.
const TABLE_SEGMENT = /^(pos|pos_.+|.+_pos|latents|.+_latents|.+_embed|.+_embedding|cls_token|.+_tokens?)$/;

/**
 * Default weight-decay rule (timm's): matrices decay; biases, norm weights (1D) and position,
 * latent, token and embedding tables (any name segment like `pos_2d`, `latents`, `task_latents`,
 * `modality_embed`) do not.
 */
export function defaultDecay(name: string, shape: Shape): boolean {
  return shape.length >= 2 && !name.split('.').some((s) => TABLE_SEGMENT.test(s));
}

class Param implements ParamHandle {
  offset = 0;
  trainable = true;
  decay = false;
  view: Tensor | null = null;
  readonly size: number;
  constructor(
    readonly name: string,
    readonly shape: readonly number[],
    readonly init: ParamInit,
    /** Declared with `buffer`: never trainable, never decayed. */
    readonly buffer = false,
  ) {
    this.size = shape.reduce((a, b) => a * b, 1);
  }
  disposed = false;
  get tensor(): Tensor {
    if (this.disposed) throw new MfError(`parameter ${this.name}: its ParameterStore was disposed`);
    if (!this.view) throw new MfError(`parameter ${this.name} used before ParameterStore.finalize()`);
    return this.view;
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function initValues(p: Param, out: Float32Array, seed: number | string): void {
  // One stream per name: adding or reordering parameters leaves the others' values unchanged.
  const rng = Rng.fromState(hashSeed(seed, 'param', p.name));
  const init = p.init;
  switch (init.kind) {
    case 'zeros':
      return;
    case 'ones':
      out.fill(1);
      return;
    case 'normal':
      for (let i = 0; i < out.length; i++) out[i] = init.std * rng.normal();
      return;
    case 'trunc_normal':
      for (let i = 0; i < out.length; i++) {
        let r = rng.normal();
        while (Math.abs(r) > 2) r = rng.normal();
        out[i] = init.std * r;
      }
      return;
    case 'xavier_uniform': {
      const s = p.shape;
      const fanOut = s.length >= 2 ? s[s.length - 1] : p.size;
      const fanIn = s.length >= 2 ? p.size / fanOut : p.size;
      const bound = Math.sqrt(6 / (fanIn + fanOut));
      for (let i = 0; i < out.length; i++) out[i] = rng.uniform(-bound, bound);
      return;
    }
    case 'fan_in_uniform': {
      const s = p.shape;
      const fanIn = s.length >= 2 ? p.size / s[s.length - 1] : p.size;
      const bound = 1 / Math.sqrt(fanIn);
      for (let i = 0; i < out.length; i++) out[i] = rng.uniform(-bound, bound);
      return;
    }
    case 'uniform':
      for (let i = 0; i < out.length; i++) out[i] = rng.uniform(-init.bound, init.bound);
      return;
  }
}

interface Arenas {
  be: Backend;
  /** Arena length in floats (a multiple of 64). */
  floats: number;
  params: DeviceBuffer;
  grads: DeviceBuffer;
  mask: DeviceBuffer;
  m: DeviceBuffer | null;
  v: DeviceBuffer | null;
}

export class ParameterStore implements ParamSource {
  private readonly params = new Map<string, Param>();
  private arenas: Arenas | null = null;
  private disposed = false;
  private decayRule: ParamPredicate;
  private trainableRule: ParamPredicate = () => true;

  /** `seed` drives every initialiser; `decay` overrides which parameters get weight decay. */
  constructor(
    readonly seed: number | string = 0,
    opts: { decay?: ParamPredicate } = {},
  ) {
    this.decayRule = opts.decay ?? defaultDecay;
  }

  /** Declare a parameter; its tensor is readable once the store is finalised. */
  param(name: string, shape: readonly number[], init: ParamInit): ParamHandle {
    return this.declare(name, shape, init, false);
  }

  /** Declare non-trainable state (see ParamSource.buffer): in the arena and in every export, never trained. */
  buffer(name: string, shape: readonly number[], init: ParamInit): ParamHandle {
    return this.declare(name, shape, init, true);
  }

  private declare(name: string, shape: readonly number[], init: ParamInit, buffer: boolean): ParamHandle {
    this.assertUsable('param');
    if (this.arenas)
      throw new MfError(`param ${name}: the parameter store is already finalised`, 'declare every parameter before finalize()');
    if (!name) throw new ConfigError('param: a parameter needs a non-empty name');
    if (this.params.has(name)) throw new ConfigError(`param ${name}: declared twice`);
    if (shape.length === 0 || shape.some((d) => !Number.isInteger(d) || d < 1)) {
      throw new ShapeError(`param ${name}: invalid shape ${shapeStr(shape)}`);
    }
    if ((init.kind === 'normal' || init.kind === 'trunc_normal') && !(init.std >= 0 && Number.isFinite(init.std))) {
      throw new ConfigError(`param ${name}: ${init.kind} std ${init.std} must be a finite number >= 0`);
    }
    if (init.kind === 'uniform' && !(init.bound >= 0 && Number.isFinite(init.bound))) {
      throw new ConfigError(`param ${name}: uniform bound ${init.bound} must be a finite number >= 0`);
    }
    const p = new Param(name, [...shape], init, buffer);
    p.decay = !buffer && this.decayRule(name, p.shape);
    p.trainable = !buffer && this.trainableRule(name, p.shape);
    this.params.set(name, p);
    return p;
  }

  get isFinalized(): boolean {
    return this.arenas !== null;
  }

  /** Lay out the arenas, write every initial value in one upload and create the views. */
  finalize(): void {
    this.assertUsable('finalize');
    if (this.arenas) throw new MfError('ParameterStore.finalize() called twice');
    const be = backend();
    let off = 0;
    for (const p of this.params.values()) {
      p.offset = off;
      off += roundUp(p.size, ALIGN_F);
    }
    const floats = Math.max(ALIGN_F, off);
    const data = new Float32Array(floats);
    for (const p of this.params.values()) initValues(p, data.subarray(p.offset, p.offset + p.size), this.seed);
    const params = be.alloc(floats * 4);
    be.write(params, data);
    const grads = be.alloc(floats * 4);
    const mask = be.alloc((floats / ALIGN_F) * 4);
    this.arenas = { be, floats, params, grads, mask, m: null, v: null };
    for (const p of this.params.values()) {
      p.view = Tensor.view(be.view(params, p.offset * 4, p.size * 4), p.shape, p.trainable).keep();
      p.view.grad = Tensor.view(be.view(grads, p.offset * 4, p.size * 4), p.shape).keep();
    }
    this.writeMask();
    this.zeroGrad();
  }

  get(name: string): Tensor {
    return this.lookup(name).tensor;
  }

  has(name: string): boolean {
    return this.params.has(name);
  }

  info(name: string): ParamInfo {
    const p = this.lookup(name);
    return { name, shape: p.shape, offset: p.offset, size: p.size, trainable: p.trainable, decay: p.decay, buffer: p.buffer };
  }

  names(): string[] {
    return [...this.params.keys()];
  }

  /** [name, tensor] in declaration (= arena) order. */
  entries(): [string, Tensor][] {
    return [...this.params.values()].map((p) => [p.name, p.tensor]);
  }

  /** Number of scalars over all parameters (padding excluded), buffers included. */
  count(): number {
    let n = 0;
    for (const p of this.params.values()) n += p.size;
    return n;
  }

  /** Number of scalars in buffers (non-trainable state such as BatchNorm running statistics). */
  bufferCount(): number {
    let n = 0;
    for (const p of this.params.values()) if (p.buffer) n += p.size;
    return n;
  }

  trainableCount(): number {
    let n = 0;
    for (const p of this.params.values()) if (p.trainable) n += p.size;
    return n;
  }

  /** Arena length in floats, padding included. */
  get arenaLength(): number {
    return this.ready('arenaLength').floats;
  }

  /** The raw arenas, for the optimizer. */
  buffers(): { params: DeviceBuffer; grads: DeviceBuffer; mask: DeviceBuffer; floats: number } {
    const a = this.ready('buffers');
    return { params: a.params, grads: a.grads, mask: a.mask, floats: a.floats };
  }

  /** AdamW's first and second moment arenas, allocated and zeroed on first use. */
  moments(): { m: DeviceBuffer; v: DeviceBuffer } {
    const a = this.ready('moments');
    if (!a.m || !a.v) {
      a.m = a.be.alloc(a.floats * 4);
      a.v = a.be.alloc(a.floats * 4);
      this.fill(a.m, 0);
      this.fill(a.v, 0);
    }
    return { m: a.m, v: a.v };
  }

  /** Zero both moment arenas (a fresh optimizer state); arenas not allocated yet are zero when they are. */
  resetMoments(): void {
    const a = this.ready('resetMoments');
    if (a.m) this.fill(a.m, 0);
    if (a.v) this.fill(a.v, 0);
  }

  /** One fill dispatch over the whole gradient arena, padding included. */
  zeroGrad(): void {
    this.fill(this.ready('zeroGrad').grads, 0);
  }

  /**
   * Which parameters train. Frozen ones get no update and no weight decay, do not count in the
   * gradient norm, and stop requiring grad (backward skips them). Buffers stay untrained whatever it says.
   */
  setTrainable(predicate: ParamPredicate): void {
    this.assertUsable('setTrainable');
    this.trainableRule = predicate;
    for (const p of this.params.values()) {
      p.trainable = !p.buffer && predicate(p.name, p.shape);
      if (p.view) p.view.requiresGrad = p.trainable;
    }
    if (this.arenas) this.writeMask();
  }

  /** Which parameters get weight decay (replaces the default rule); never a buffer. */
  setDecay(predicate: ParamPredicate): void {
    this.assertUsable('setDecay');
    this.decayRule = predicate;
    for (const p of this.params.values()) p.decay = !p.buffer && predicate(p.name, p.shape);
    if (this.arenas) this.writeMask();
  }

  /**
   * Copy values in by name. With `strict` (the default) any missing, unexpected or mismatched name
   * throws and nothing is written; otherwise the matching ones load and the report lists the rest.
   */
  load(values: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>, opts: { strict?: boolean } = {}): LoadReport {
    return this.loadArena(this.ready('load').params, values, { strict: opts.strict ?? true, what: 'load' });
  }

  /** Every parameter's values, from one read of the arena. */
  async export(): Promise<Map<string, TensorData>> {
    return this.exportArena(this.ready('export').params);
  }

  /** Every parameter's gradient, from one read of the gradient arena. */
  async exportGrads(): Promise<Map<string, TensorData>> {
    return this.exportArena(this.ready('exportGrads').grads);
  }

  /** Slice one read of an arena-shaped buffer (parameters, gradients or a moment arena) by parameter. */
  async exportArena(buffer: DeviceBuffer): Promise<Map<string, TensorData>> {
    const a = this.ready('export');
    const all = new Float32Array(await a.be.read(buffer));
    const out = new Map<string, TensorData>();
    for (const p of this.params.values()) out.set(p.name, { shape: [...p.shape], data: all.slice(p.offset, p.offset + p.size) });
    return out;
  }

  /** Write values by name into an arena-shaped buffer, one upload per run of adjacent parameters. */
  loadArena(
    buffer: DeviceBuffer,
    values: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>,
    opts: { strict: boolean; what: string },
  ): LoadReport {
    const a = this.ready(opts.what);
    const report: LoadReport = { loaded: [], missing: [], unexpected: [], mismatched: [] };
    const mismatchText: string[] = [];
    const ok: Param[] = [];
    for (const p of this.params.values()) {
      const e = values.get(p.name);
      if (!e) report.missing.push(p.name);
      else if (!sameShape(e.shape, p.shape) || e.data.length !== p.size) {
        report.mismatched.push(p.name);
        mismatchText.push(`${p.name} ${shapeStr(e.shape)} vs ${shapeStr(p.shape)}`);
      } else {
        report.loaded.push(p.name);
        ok.push(p);
      }
    }
    for (const k of values.keys()) if (!this.params.has(k)) report.unexpected.push(k);
    if (opts.strict && (report.missing.length || report.unexpected.length || report.mismatched.length)) {
      const list = (xs: string[]) => xs.slice(0, 5).join(', ') + (xs.length > 5 ? `, … (${xs.length})` : '');
      const parts: string[] = [];
      if (report.missing.length) parts.push(`missing ${list(report.missing)}`);
      if (report.unexpected.length) parts.push(`unexpected ${list(report.unexpected)}`);
      if (report.mismatched.length) parts.push(`shape mismatch ${list(mismatchText)}`);
      throw new ShapeError(`ParameterStore.${opts.what}: ${parts.join('; ')}`, 'the weights were made for another model configuration');
    }
    // Adjacent parameters form one run; the zero padding between them is rewritten as zero.
    let i = 0;
    while (i < ok.length) {
      let j = i;
      while (j + 1 < ok.length && ok[j + 1].offset === ok[j].offset + roundUp(ok[j].size, ALIGN_F)) j++;
      const start = ok[i].offset;
      const end = ok[j].offset + ok[j].size;
      const run = new Float32Array(end - start);
      for (let k = i; k <= j; k++) run.set(values.get(ok[k].name)!.data, ok[k].offset - start);
      a.be.write(a.be.view(buffer, start * 4, run.byteLength), run);
      i = j + 1;
    }
    return report;
  }

  /** Free the arenas; the parameter tensors become unusable. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const a = this.arenas;
    this.arenas = null;
    for (const p of this.params.values()) {
      p.view?.grad?.dispose();
      p.view?.dispose();
      p.view = null;
      p.disposed = true;
    }
    if (!a) return;
    for (const b of [a.params, a.grads, a.mask, a.m, a.v]) if (b) a.be.free(b);
  }

  private lookup(name: string): Param {
    const p = this.params.get(name);
    if (!p) throw new MfError(`no parameter named ${name}`);
    return p;
  }

  private assertUsable(op: string): void {
    if (this.disposed) throw new MfError(`ParameterStore.${op}: the store was disposed`);
  }

  private ready(op: string): Arenas {
    this.assertUsable(op);
    const a = this.arenas;
    if (!a) throw new MfError(`ParameterStore.${op}: call finalize() first`);
    if (backend() !== a.be) throw new MfError(`ParameterStore.${op}: the store was finalised on another backend`);
    return a;
  }

  private fill(buffer: DeviceBuffer, value: number): void {
    launch('elementwise', 'fill', { N: this.ready('fill').floats }, { out: buffer }, { VALUE: value });
  }

  private writeMask(): void {
    const a = this.ready('mask');
    const words = new Uint32Array(a.floats / ALIGN_F);
    for (const p of this.params.values()) {
      const w = (p.trainable ? MASK_TRAINABLE : 0) | (p.trainable && p.decay ? MASK_DECAY : 0);
      words.fill(w, p.offset / ALIGN_F, (p.offset + roundUp(p.size, ALIGN_F)) / ALIGN_F);
    }
    a.be.write(a.mask, words);
  }
}
