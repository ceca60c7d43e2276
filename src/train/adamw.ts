// AdamW (decoupled weight decay, PyTorch's arithmetic) over a ParameterStore's arenas: the global gradient
// norm, the guard and the update run entirely on the GPU, four dispatches a step (norm stage 1, norm stage 2,
// guard, update) and no readback. The guard makes a step whose loss or gradient norm is NaN or Inf skip its
// update on the device and counts such steps there; `health()` and `lastGradNorm()` are the reads, for logging.
import type { DeviceBuffer } from '../backend/backend.ts';
import { normPartition } from '../backend/kernels/optimizer.ts';
import { ConfigError, MfError, ShapeError } from '../errors.ts';
import type { ParameterStore, TensorData } from '../nn/parameters.ts';
import { launch } from '../ops/launch.ts';
import { backend } from '../tensor/tensor.ts';

export interface AdamWOptions {
  lr: number;
  /** (beta1, beta2); default (0.9, 0.999). */
  betas?: readonly [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay, applied only where the store's decay mask says so; default 0.01. */
  weightDecay?: number;
  /** Clip the global L2 norm of the trainable gradients to this (torch.nn.utils.clip_grad_norm_). */
  maxGradNorm?: number;
}

/** What the device-side guard has counted since this optimizer was made (see kernels/optimizer.wgsl). */
export interface GuardHealth {
  /** Steps guarded. */
  steps: number;
  /** Steps whose update was skipped because the loss or the gradient norm was not finite. */
  bad: number;
  /** 1-based index (among the guarded steps) of the first and the last bad step; 0 when there was none. */
  first: number;
  last: number;
}

export interface AdamWState {
  /** Updates taken so far (the bias corrections use step + 1 next). */
  step: number;
  m: Map<string, TensorData>;
  v: Map<string, TensorData>;
}

type StateMap = ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>;

/**
 * Launch the two-stage squared-norm reduction of the store's trainable gradients into `out`
 * (one float), using `partials` (at least NPART floats) for the stage-1 sums.
 */
export function gradNormSquared(store: ParameterStore, partials: DeviceBuffer, out: DeviceBuffer): void {
  const { grads, mask, floats } = store.buffers();
  const N4 = floats / 4;
  const { CHUNK4, NPART } = normPartition(N4);
  launch('optimizer', 'norm_partial', { N4, CHUNK4, NPART }, { g: grads, mask, out: partials });
  launch('optimizer', 'norm_final', { N4, CHUNK4, NPART }, { s: partials, out });
}

export class AdamW {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly maxGradNorm: number | null;
  protected t = 0;
  /** `out`: [squared gradient norm, update flag]; `health`: the guard's four counters. */
  protected norm: { partials: DeviceBuffer; out: DeviceBuffer; health: DeviceBuffer } | null = null;
  /** Whether `norm.out` holds the norm of the gradients the last step used. */
  protected normOfLastStep = false;

  constructor(
    readonly store: ParameterStore,
    opts: AdamWOptions,
  ) {
    const [b1, b2] = opts.betas ?? [0.9, 0.999];
    this.lr = opts.lr;
    this.beta1 = b1;
    this.beta2 = b2;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    this.maxGradNorm = opts.maxGradNorm ?? null;
    checkLr(this.lr);
    for (const [k, b] of [
      ['beta1', b1],
      ['beta2', b2],
    ] as const) {
      if (!(b >= 0 && b < 1)) throw new ConfigError(`AdamW: ${k} ${b} must be in [0, 1)`);
    }
    if (!(this.eps > 0 && Number.isFinite(this.eps))) throw new ConfigError(`AdamW: eps ${this.eps} must be a finite number > 0`);
    if (!(this.weightDecay >= 0 && Number.isFinite(this.weightDecay))) {
      throw new ConfigError(`AdamW: weight decay ${this.weightDecay} must be a finite number >= 0`);
    }
    if (this.maxGradNorm !== null && !(this.maxGradNorm > 0 && Number.isFinite(this.maxGradNorm))) {
      throw new ConfigError(`AdamW: max grad norm ${this.maxGradNorm} must be a finite number > 0`, 'leave it unset to disable clipping');
    }
  }

  /** Updates taken so far. */
  get stepCount(): number {
    return this.t;
  }

  /**
   * One update from the gradients in the store's gradient arena; `lr` overrides the default for this step.
   * With `loss` (the step's scalar loss on the device), a non-finite loss also makes the guard skip the update;
   * a non-finite gradient norm always does. A skipped step still counts in the bias corrections, as it does in
   * the learning-rate schedule: the host learns of it only when it reads `health()`.
   */
  step(lr: number = this.lr, loss: DeviceBuffer | null = null): void {
    checkLr(lr);
    const { params, grads, mask, floats } = this.store.buffers();
    const { m, v } = this.store.moments();
    this.t++;
    const norm = this.launchNorm();
    launch('optimizer', 'guard', {}, { loss, health: norm.health, out: norm.out });
    this.normOfLastStep = true;
    const bc1 = 1 - this.beta1 ** this.t;
    const bc2 = 1 - this.beta2 ** this.t;
    launch('optimizer', 'adamw', { N4: floats / 4 }, { g: grads, mask, s: norm.out, params, m, v }, undefined, [
      lr,
      this.beta1,
      this.beta2,
      this.eps,
      this.weightDecay,
      bc1,
      bc2,
      this.maxGradNorm ?? 0,
    ]);
  }

  /**
   * The global L2 norm of the trainable gradients before clipping that the last step computed (before any
   * step: computed now from the gradient arena). Waits for the device: call it at logging steps only.
   */
  async lastGradNorm(): Promise<number> {
    const norm = this.normOfLastStep && this.norm ? this.norm : this.launchNorm();
    const n2 = new Float32Array(await backend().read(norm.out))[0];
    return Math.sqrt(n2);
  }

  /** The guard's counters since this optimizer was made. Waits for the device: call it at logging steps only. */
  async health(): Promise<GuardHealth> {
    if (!this.norm) return { steps: 0, bad: 0, first: 0, last: 0 };
    const [steps, bad, first, last] = new Uint32Array(await backend().read(this.norm.health));
    return { steps, bad, first, last };
  }

  /** Moments and step count, sliced by parameter name (two reads). */
  async exportState(): Promise<AdamWState> {
    const { m, v } = this.store.moments();
    return { step: this.t, m: await this.store.exportArena(m), v: await this.store.exportArena(v) };
  }

  /** Restore moments and step; a parameter without saved moments starts from zero ones. */
  loadState(state: { step: number; m: StateMap; v: StateMap }): void {
    if (!Number.isInteger(state.step) || state.step < 0) throw new MfError(`AdamW.loadState: invalid step ${state.step}`);
    const { m, v } = this.store.moments();
    this.store.resetMoments();
    for (const [which, buf, values] of [
      ['m', m, state.m],
      ['v', v, state.v],
    ] as const) {
      const r = this.store.loadArena(buf, values, { strict: false, what: `AdamW.loadState(${which})` });
      if (r.mismatched.length || r.unexpected.length) {
        throw new ShapeError(
          `AdamW.loadState: ${which} moments do not match the parameters (mismatched: ${r.mismatched.slice(0, 5).join(', ') || 'none'}; unexpected: ${r.unexpected.slice(0, 5).join(', ') || 'none'})`,
        );
      }
    }
    this.t = state.step;
    this.normOfLastStep = false;
  }

  /** Free the norm and guard buffers (the moments belong to the store). */
  dispose(): void {
    if (!this.norm) return;
    for (const b of [this.norm.partials, this.norm.out, this.norm.health]) backend().free(b);
    this.norm = null;
  }

  protected launchNorm(): { partials: DeviceBuffer; out: DeviceBuffer; health: DeviceBuffer } {
    if (!this.norm) {
      const { NPART } = normPartition(this.store.buffers().floats / 4);
      const health = backend().alloc(16);
      // Pooled buffers come back holding old data: the counters must start at zero.
      backend().write(health, new Uint32Array(4));
      this.norm = { partials: backend().alloc(NPART * 4), out: backend().alloc(8), health };
    }
    gradNormSquared(this.store, this.norm.partials, this.norm.out);
    return this.norm;
  }
}

export function checkLr(lr: number): void {
  if (!(lr >= 0 && Number.isFinite(lr))) throw new ConfigError(`AdamW: learning rate ${lr} must be a finite number >= 0`);
}
