// BatchNorm2d with PyTorch's semantics, composed from differentiable ops (no kernel of its own). Training mode
// normalises with the batch's statistics per channel over (N, H, W) (biased variance) and moves the running mean
// and variance toward them by `momentum` (the variance with the unbiased batch variance, as PyTorch does); eval
// mode normalises with the running statistics. The running statistics are buffers of the parameter store
// (`ParamSource.buffer`): they live in the arena, so checkpoints, best-<task>.safetensors and --resume carry them,
// but they have no gradient, get no optimizer update and no weight decay. Training mode updates them in place.
import { ShapeError } from '../errors.ts';
import { add, affine, div, expand, mean, mul, reshape, sqrt, square, sub } from '../ops/index.ts';
import { launch } from '../ops/launch.ts';
import { noGrad, shapeStr, type Tensor, tidy } from '../tensor/tensor.ts';
import { ONES, ZEROS } from './layers.ts';
import type { ParamHandle, ParamSource } from './param.ts';

export interface BatchNormOptions {
  /** Added to the variance (default 1e-5, PyTorch's). */
  eps?: number;
  /** Weight of the batch statistic in the running average (default 0.1, PyTorch's). */
  momentum?: number;
}

/** target += value, in place (a buffer's view into the parameter arena); no autograd. */
function addInPlace(target: Tensor, value: Tensor): void {
  launch('elementwise', 'add_inplace', { N: target.size }, { x: value, out: target });
}

/** BatchNorm over [B, C, H, W]: per-channel weight (ones) and bias (zeros), running mean (zeros) and variance (ones). */
export class BatchNorm2d {
  readonly weight: ParamHandle;
  readonly bias: ParamHandle;
  readonly runningMean: ParamHandle;
  readonly runningVar: ParamHandle;
  readonly eps: number;
  readonly momentum: number;
  /** Batch statistics (and running-statistic updates) when true, running statistics when false. */
  training = true;

  constructor(
    ps: ParamSource,
    readonly name: string,
    readonly channels: number,
    opts: BatchNormOptions = {},
  ) {
    this.eps = opts.eps ?? 1e-5;
    this.momentum = opts.momentum ?? 0.1;
    if (!(this.eps > 0 && Number.isFinite(this.eps)))
      throw new ShapeError(`BatchNorm2d ${name}: eps ${this.eps} must be a positive number`);
    if (!(this.momentum >= 0 && this.momentum <= 1))
      throw new ShapeError(`BatchNorm2d ${name}: momentum ${this.momentum} must be in [0, 1]`);
    this.weight = ps.param(`${name}.weight`, [channels], ONES);
    this.bias = ps.param(`${name}.bias`, [channels], ZEROS);
    this.runningMean = ps.buffer(`${name}.running_mean`, [channels], ZEROS);
    this.runningVar = ps.buffer(`${name}.running_var`, [channels], ONES);
  }

  forward(x: Tensor): Tensor {
    const C = this.channels;
    if (x.shape.length !== 4 || x.shape[1] !== C) {
      throw new ShapeError(`BatchNorm2d ${this.name}: input must be [B, ${C}, H, W], got ${shapeStr(x.shape)}`);
    }
    const [B, , H, W] = x.shape;
    // Per-channel values reach [B, C, H, W] through [B, C, 1, 1]: the gradients then sum over (H, W) for B·C
    // outputs in parallel, then over B, instead of one long serial sum over (B, H, W) per channel.
    const perSample = (t: Tensor) => expand(reshape(t, [1, C, 1, 1]), [B, C, 1, 1]);
    const gamma = perSample(this.weight.tensor);
    const beta = perSample(this.bias.tensor);
    if (!this.training) {
      const scale = div(gamma, sqrt(affine(perSample(this.runningVar.tensor), 1, this.eps)));
      return add(mul(sub(x, perSample(this.runningMean.tensor)), scale), beta);
    }
    const n = B * H * W;
    if (n < 2) {
      throw new ShapeError(`BatchNorm2d ${this.name}: training needs more than one value per channel, got ${shapeStr(x.shape)}`);
    }
    // Means over (H, W) first, then over B, for the same reason.
    const channelMean = (t: Tensor) => mean(mean(t, [2, 3], true), 0, true);
    const mu = channelMean(x);
    const xc = sub(x, expand(mu, [B, C, 1, 1]));
    const variance = channelMean(square(xc));
    const y = add(mul(xc, div(gamma, sqrt(affine(expand(variance, [B, C, 1, 1]), 1, this.eps)))), beta);
    tidy(() =>
      noGrad(() => {
        const m = this.momentum;
        const rm = this.runningMean.tensor;
        const rv = this.runningVar.tensor;
        // running += momentum · (batch − running), the variance unbiased: n / (n − 1) times the biased one.
        addInPlace(rm, affine(sub(mu.reshaped([C]), rm), m));
        addInPlace(rv, affine(sub(affine(variance.reshaped([C]), n / (n - 1)), rv), m));
      }),
    );
    return y;
  }
}
