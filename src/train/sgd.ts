// SGD over a parameter store's arenas. Plain SGD without momentum is the optimiser of the thesis's backforward
// experiment (section 5.3) and the default: one dispatch p ← p·(1 − lr·wd) − lr·clip·g over the arena
// (kernels/optimizer.wgsl `sgd`), and its checkpoints carry no moments. With `momentum` (the Wide ResNet recipe
// of Zagoruyko & Komodakis 2016 that thesis section 5.4 trains with: Nesterov momentum 0.9, weight decay 5e-4) it
// is torch.optim.SGD with dampening 0 (`sgd_momentum`): d = clip·g + wd·p, buf ← mu·buf + d, p ← p − lr·(d + mu·buf)
// with Nesterov or p − lr·buf without; the buffers live in the store's first moment arena and the checkpoints carry
// them as `m.<name>`, so a resumed run continues identically. Both share AdamW's gradient norm, device-side guard
// and counters (health, lastGradNorm), so the training loop and the checkpoints treat every optimizer alike.
import { ConfigError, MfError, ShapeError } from '../errors.ts';
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
  /** Momentum factor in [0, 1); default 0 (plain SGD). */
  momentum?: number;
  /** Nesterov momentum (needs momentum > 0); default false. */
  nesterov?: boolean;
}

type StateMap = ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>;

export class Sgd extends AdamW {
  readonly momentum: number;
  readonly nesterov: boolean;

  constructor(store: ParameterStore, opts: SgdOptions) {
    super(store, { lr: opts.lr, weightDecay: opts.weightDecay ?? 0, maxGradNorm: opts.maxGradNorm });
    this.momentum = opts.momentum ?? 0;
    this.nesterov = opts.nesterov ?? false;
    if (!(this.momentum >= 0 && this.momentum < 1)) throw new ConfigError(`SGD: momentum ${this.momentum} must be in [0, 1)`);
    if (this.nesterov && this.momentum === 0) {
      throw new ConfigError(
        'SGD: Nesterov momentum needs a momentum above 0',
        'set training.momentum (e.g. 0.9) or drop training.nesterov',
      );
    }
    // A new optimizer starts with no momentum, as torch.optim.SGD does: the store's moment arena may hold an earlier
    // phase's (a CSA stage before this one), which a resumed run's fresh store would not.
    if (this.momentum > 0) this.store.resetMoments();
  }

  override step(lr: number = this.lr, loss: DeviceBuffer | null = null): void {
    checkLr(lr);
    const { params, grads, mask, floats } = this.store.buffers();
    this.t++;
    const norm = this.launchNorm();
    launch('optimizer', 'guard', {}, { loss, health: norm.health, out: norm.out });
    this.normOfLastStep = true;
    if (this.momentum === 0) {
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
      return;
    }
    const { m } = this.store.moments();
    launch('optimizer', 'sgd_momentum', { N4: floats / 4 }, { g: grads, mask, s: norm.out, params, m }, undefined, [
      lr,
      this.weightDecay,
      this.maxGradNorm ?? 0,
      this.momentum,
      this.nesterov ? 1 : 0,
      0,
      0,
      0,
    ]);
  }

  /** The step count, and with momentum the momentum buffers (as `m`; there is no second moment). */
  override async exportState(): Promise<AdamWState> {
    if (this.momentum === 0) return { step: this.t, m: new Map(), v: new Map() };
    return { step: this.t, m: await this.store.exportArena(this.store.moments().m), v: new Map() };
  }

  override loadState(state: { step: number; m: StateMap; v: StateMap }): void {
    if (!Number.isInteger(state.step) || state.step < 0) throw new MfError(`SGD.loadState: invalid step ${state.step}`);
    if (state.v.size || (this.momentum === 0 && state.m.size)) {
      throw new ShapeError('SGD.loadState: the state holds AdamW moments', 'resume with the optimizer the checkpoint was written with');
    }
    if (this.momentum > 0) {
      // Buffers of parameters the state lacks start from zero, as a fresh run's do.
      const { m } = this.store.moments();
      this.store.resetMoments();
      const r = this.store.loadArena(m, state.m, { strict: false, what: 'SGD.loadState' });
      if (r.mismatched.length || r.unexpected.length) {
        throw new ShapeError(
          `SGD.loadState: momentum buffers do not match the parameters (mismatched: ${r.mismatched.slice(0, 5).join(', ') || 'none'}; unexpected: ${r.unexpected.slice(0, 5).join(', ') || 'none'})`,
        );
      }
    }
    this.t = state.step;
    this.normOfLastStep = false;
  }
}
