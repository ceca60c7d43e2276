// Tensors and reverse-mode autograd. A Tensor is a shape, a dtype and a device buffer; an op that
// produces it may attach a tape node holding its inputs and a backward closure written next to the
// forward (see src/ops). Memory is explicit: `tidy` frees every tensor made inside it except what it
// returns, so a training step leaves the pool's live bytes where it found them. Kernels run through
// `launch`, by named bindings checked against their declarations (src/backend/bind.ts).
import type { Backend, DeviceBuffer } from '../backend/backend.ts';
import { bindCall, type BindingsOf, type ConstsOf, type EntryName, type KernelName, type LaunchExtras } from '../backend/bind.ts';
import { binaryConsts, UNARY } from '../backend/kernels/elementwise.ts';
import { MfError, ShapeError } from '../errors.ts';
import { broadcastShapes, broadcastStrides, numel, pad6, shapeStr, type Shape } from './shape.ts';

export { numel, shapeStr, type Shape };
export type DType = 'f32' | 'i32';

let current: Backend | null = null;

export function setBackend(backend: Backend): void {
  current = backend;
  dummies = null;
}

export function backend(): Backend {
  if (!current) throw new MfError('no backend selected', 'call initEngine() first');
  return current;
}

let dummies: { read: DeviceBuffer; write: DeviceBuffer } | null = null;
/** Placeholder buffers for optional bindings (a missing bias); separate read and write ones so they never alias. */
export function dummyBuffers(): { read: DeviceBuffer; write: DeviceBuffer } {
  if (!dummies) dummies = { read: backend().alloc(16), write: backend().alloc(16) };
  return dummies;
}

interface TapeNode {
  op: string;
  inputs: readonly Tensor[];
  backward: (grad: Tensor) => (Tensor | null)[];
}

let nextId = 0;
const refCounts = new WeakMap<DeviceBuffer, number>();
let gradEnabled = true;
const scopes: Set<Tensor>[] = [];

export class Tensor {
  readonly id = nextId++;
  readonly size: number;
  /** Accumulated gradient of a leaf that requires it. */
  grad: Tensor | null = null;
  /** How this tensor was made, if autograd is tracking it. */
  node: TapeNode | null = null;
  private freed = false;

  constructor(
    readonly shape: Shape,
    readonly buffer: DeviceBuffer,
    readonly dtype: DType = 'f32',
    public requiresGrad = false,
    /** False for views into an arena: disposing them must not free the arena. */
    private readonly ownsBuffer = true,
  ) {
    this.size = numel(shape);
    if (ownsBuffer) refCounts.set(buffer, (refCounts.get(buffer) ?? 0) + 1);
    scopes.at(-1)?.add(this);
  }

  /** Same buffer, new shape (reshape is free); the buffer lives until every tensor on it is disposed. */
  reshaped(shape: Shape): Tensor {
    if (numel(shape) !== this.size) throw new ShapeError(`reshape: cannot view ${shapeStr(this.shape)} as ${shapeStr(shape)}`);
    this.assertLive('reshape');
    return new Tensor(shape, this.buffer, this.dtype, false, this.ownsBuffer);
  }

  static empty(shape: Shape, dtype: DType = 'f32'): Tensor {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new ShapeError(`invalid shape ${shapeStr(shape)}`);
    }
    return new Tensor(shape, backend().alloc(Math.max(4, numel(shape) * 4)), dtype);
  }

  static from(data: ArrayLike<number>, shape: Shape, dtype: DType = 'f32'): Tensor {
    if (data.length !== numel(shape)) {
      throw new ShapeError(`Tensor.from: ${data.length} values for shape ${shapeStr(shape)}`);
    }
    const t = Tensor.empty(shape, dtype);
    backend().write(t.buffer, dtype === 'f32' ? Float32Array.from(data) : Int32Array.from(data));
    return t;
  }

  /** A tensor over an existing buffer range (parameter and gradient arenas). */
  static view(buffer: DeviceBuffer, shape: Shape, requiresGrad = false): Tensor {
    return new Tensor(shape, buffer, 'f32', requiresGrad, false);
  }

  get isDisposed(): boolean {
    return this.freed;
  }

  /** Read the values back; the only place the CPU waits for the device. */
  async data(): Promise<Float32Array> {
    this.assertLive('data');
    return new Float32Array(await backend().read(this.buffer));
  }

  async dataI32(): Promise<Int32Array> {
    this.assertLive('dataI32');
    return new Int32Array(await backend().read(this.buffer));
  }

  async item(): Promise<number> {
    if (this.size !== 1) throw new ShapeError(`item() needs one element, got shape ${shapeStr(this.shape)}`);
    return (await this.data())[0];
  }

  assertLive(op: string): void {
    if (this.freed) throw new MfError(`${op}: tensor ${this.id} ${shapeStr(this.shape)} was already disposed`);
  }

  /** Reverse-mode autograd from this (scalar) tensor. */
  backward(seed?: Tensor): void {
    backward(this, seed);
  }

  /** Keep this tensor past the enclosing tidy (parameters, optimizer state, values to return later). */
  keep(): this {
    for (const s of scopes) s.delete(this);
    return this;
  }

  dispose(): void {
    if (this.freed) return;
    this.freed = true;
    this.node = null;
    if (this.ownsBuffer) {
      const n = (refCounts.get(this.buffer) ?? 1) - 1;
      if (n > 0) refCounts.set(this.buffer, n);
      else {
        refCounts.delete(this.buffer);
        backend().free(this.buffer);
      }
    }
    for (const s of scopes) s.delete(this);
  }
}

/** Run fn; dispose every tensor it created except the ones it returns (in a Tensor, array or object). */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  const kept = new Set<Tensor>();
  collectTensors(result, kept);
  for (const t of scope) {
    if (kept.has(t)) scopes.at(-1)?.add(t);
    else t.dispose();
  }
  return result;
}

function collectTensors(value: unknown, out: Set<Tensor>): void {
  if (value instanceof Tensor) out.add(value);
  else if (Array.isArray(value)) value.forEach((v) => collectTensors(v, out));
  else if (value && typeof value === 'object' && !ArrayBuffer.isView(value)) {
    for (const v of Object.values(value)) collectTensors(v, out);
  }
}

export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

export const isGradEnabled = (): boolean => gradEnabled;

/**
 * Attach a tape node to `out` if any input needs a gradient. Ops call this right after launching their
 * forward kernel, passing the backward rule: upstream gradient in, one gradient per input out.
 */
export function record(out: Tensor, op: string, inputs: readonly Tensor[], backward: (grad: Tensor) => (Tensor | null)[]): Tensor {
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward };
  }
  return out;
}

/**
 * Run `kernel.entry` on named tensors or buffers (`{ x, weight, bias, out }`) with its constants. The
 * names, constants and buffer sizes are checked against the entry's declaration before anything is
 * dispatched (see src/backend/bind.ts); optional bindings left out get a placeholder buffer.
 */
export function launch<K extends KernelName, E extends EntryName<K>>(
  kernel: K,
  entry: E,
  consts: ConstsOf<K, E>,
  buffers: BindingsOf<K, E, Tensor | DeviceBuffer>,
  ...[fconsts, uniforms]: LaunchExtras<K, E>
): void {
  const named: Record<string, DeviceBuffer | null | undefined> = {};
  for (const [name, b] of Object.entries(buffers as Record<string, Tensor | DeviceBuffer | null | undefined>)) {
    named[name] = b instanceof Tensor ? (b.assertLive(`${kernel}.${entry}`), b.buffer) : b;
  }
  backend().run(bindCall(kernel, entry, consts, named, fconsts, uniforms, dummyBuffers));
}

// The gradient arithmetic of the backward sweep, launched here so that the tape needs no op module
// (ops import this one): the same kernel calls as `add`, `copy` and `fill` in src/ops/elementwise.ts,
// and the in-place accumulation into a leaf's gradient.
function gradAdd(a: Tensor, b: Tensor): Tensor {
  const shape = broadcastShapes('add', a.shape, b.shape);
  const out = Tensor.empty(shape);
  launch(
    'elementwise',
    'binary',
    binaryConsts('add', out.size, pad6(shape), broadcastStrides(a.shape, shape), broadcastStrides(b.shape, shape)),
    { x: a, y: b, out },
  );
  return out;
}

function gradCopy(x: Tensor): Tensor {
  const out = Tensor.empty(x.shape);
  launch('elementwise', 'unary', { N: x.size, OP: UNARY.affine }, { x, out }, { ALPHA: 1, BETA: 0 });
  return out;
}

function gradSeed(shape: Shape): Tensor {
  const out = Tensor.empty(shape);
  launch('elementwise', 'fill', { N: out.size }, { out }, { VALUE: 1 });
  return out;
}

/** target += value in place (a leaf's gradient, possibly a view into the gradient arena). */
function addInPlace(target: Tensor, value: Tensor): void {
  if (target.size !== value.size) {
    throw new ShapeError(`addInPlace: ${shapeStr(value.shape)} into ${shapeStr(target.shape)}`);
  }
  launch('elementwise', 'add_inplace', { N: target.size }, { x: value, out: target });
}

/**
 * Reverse-mode sweep from `root` (a scalar unless `seed` is given). Leaves that require grad receive
 * their gradient in `.grad`, accumulated if one is already there (in place, so arena views stay put).
 */
export function backward(root: Tensor, seed?: Tensor): void {
  if (!root.requiresGrad) throw new MfError('backward: the tensor does not depend on anything that requires grad');
  if (!seed && root.size !== 1) throw new ShapeError(`backward: root must be a scalar without a seed, got ${shapeStr(root.shape)}`);

  const order: Tensor[] = [];
  const seen = new Set<number>();
  const stack: [Tensor, boolean][] = [[root, false]];
  while (stack.length) {
    const [t, expanded] = stack.pop()!;
    if (expanded) {
      order.push(t);
      continue;
    }
    if (seen.has(t.id)) continue;
    seen.add(t.id);
    stack.push([t, true]);
    for (const inp of t.node?.inputs ?? []) if (inp.requiresGrad && !seen.has(inp.id)) stack.push([inp, false]);
  }

  noGrad(() => {
    const grads = new Map<number, Tensor>();
    grads.set(root.id, seed ?? gradSeed(root.shape));
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      const g = grads.get(t.id);
      if (!g) continue;
      grads.delete(t.id);
      if (!t.node) {
        if (t.grad) {
          addInPlace(t.grad, g);
          g.dispose();
        } else {
          t.grad = g.keep();
        }
        continue;
      }
      const inputGrads = t.node.backward(g);
      // A rule may pass the upstream gradient through, even to several inputs (add): each input gets
      // its own tensor so that later disposal of one cannot free another's.
      const used = new Set<Tensor>();
      if (g !== seed && !inputGrads.includes(g)) g.dispose();
      t.node.inputs.forEach((inp, j) => {
        let gi = inputGrads[j];
        if (!gi || !inp.requiresGrad) {
          if (gi && !inputGrads.some((o, m) => o === gi && m !== j && t.node!.inputs[m].requiresGrad)) gi.dispose();
          return;
        }
        if (used.has(gi)) gi = gradCopy(gi);
        used.add(gi);
        if (gi.size !== inp.size) {
          throw new ShapeError(`${t.node!.op} backward: gradient ${shapeStr(gi.shape)} for input ${shapeStr(inp.shape)}`);
        }
        const prev = grads.get(inp.id);
        if (prev) {
          grads.set(inp.id, gradAdd(prev, gi));
          prev.dispose();
          gi.dispose();
        } else {
          grads.set(inp.id, gi);
        }
      });
    }
  });
}
