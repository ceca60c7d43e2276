// Plain SGD without momentum, the optimiser of the thesis's backforward experiment (section 5.3): one dispatch
// p ← p·(1 − lr·wd) − lr·clip·g over the arena (kernels/optimizer.wgsl `sgd`). It shares AdamW's gradient norm,
// device-side guard and counters (health, lastGradNorm), so the training loop and the checkpoints treat both alike;
// it has no moments, so its checkpoints carry none.
import { ShapeError } from '../errors.ts';
import type { ParameterStore } from '../nn/parameters.ts';
import type { DeviceBuffer } from '../backend/backend.ts';
import { launch } from '../ops/launch.ts';
import { AdamW, type AdamWState, checkLr } from './adamw.ts';

export interface SgdOptions {
  lr: number;
  /** Weight decay where the store's decay mask says so; default 0. */
  weightDecay?: number;
  /** Clip the global L2 norm of the trainable gradients to this. */
  maxGradNorm?: number;
}

export class Sgd extends AdamW {
  constructor(store: ParameterStore, opts: SgdOptions) {
    super(store, { lr: opts.lr, weightDecay: opts.weightDecay ?? 0, maxGradNorm: opts.maxGradNorm });
  }

  override step(lr: number = this.lr, loss: DeviceBuffer | null = null): void {
    checkLr(lr);
    const { params, grads, mask, floats } = this.store.buffers();
    this.t++;
    const norm = this.launchNorm();
    launch('optimizer', 'guard', {}, { loss, health: norm.health, out: norm.out });
    this.normOfLastStep = true;
    launch('optimizer', 'sgd', { N4: floats / 4 }, { g: grads, mask, s: norm.out, params }, undefined, [
      lr,
      this.weightDecay,
      this.maxGradNorm ?? 0,
      0,
      0,
      0,
      0,
      0,
    ]);
  }

  override async exportState(): Promise<AdamWState> {
    return { step: this.t, m: new Map(), v: new Map() };
  }

  override loadState(state: { step: number; m: ReadonlyMap<string, unknown>; v: ReadonlyMap<string, unknown> }): void {
    if (state.m.size || state.v.size) {
      throw new ShapeError('SGD.loadState: the state holds AdamW moments', 'resume with the optimizer the checkpoint was written with');
    }
    this.t = state.step;
    this.normOfLastStep = false;
  }
}
