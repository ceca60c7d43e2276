// Convolution and GroupNorm layers for the convolutional models (slice-interpolation U-Net, 3D ResNet).
import { ShapeError } from '../errors.ts';
import { conv2d, conv3d, type ConvOptions } from '../ops/conv.ts';
import { groupNorm } from '../ops/groupnorm.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { ONES, ZEROS, type Init, type ParamHandle, type ParamSource } from './layers.ts';

/** Standard deviation of a unit normal truncated to ±2: the correction that restores the intended variance. */
const TRUNC2_STD = 0.8796256610342398;

/**
 * He (Kaiming) init for a ReLU network: variance 2 / fan_in, fan_in = Cin * k^d. Drawn as a ±2σ truncated
 * normal (the kind ParamSource offers) with σ scaled up so the variance is exactly 2 / fan_in, as
 * TensorFlow's VarianceScaling does.
 */
export function heInit(fanIn: number): Init {
  return { kind: 'trunc_normal', std: Math.sqrt(2 / fanIn) / TRUNC2_STD };
}

/**
 * PyTorch's default for nn.Conv weights (kaiming_uniform_ with a = √5): Uniform(±1/√fan_in), fan_in = Cin · k^d.
 * The store's fan_in_uniform takes fan_in from an [in, out] layout, which conv weights [Cout, Cin, k...] are not.
 */
export function torchConvInit(fanIn: number): Init {
  return { kind: 'uniform', bound: 1 / Math.sqrt(fanIn) };
}

export interface ConvLayerOptions extends ConvOptions {
  /** Add a learned bias per output channel (default true; false before a norm layer). */
  bias?: boolean;
  /** How the weight starts, given fan_in = Cin · k^d (default heInit). */
  weightInit?: (fanIn: number) => Init;
}

class ConvNd {
  readonly weight: ParamHandle;
  readonly bias: ParamHandle | null;
  readonly stride: number;
  readonly padding: number;
  constructor(
    ps: ParamSource,
    name: string,
    dims: 2 | 3,
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernel: number,
    opts: ConvLayerOptions,
  ) {
    const taps = new Array<number>(dims).fill(kernel);
    this.weight = ps.param(`${name}.weight`, [outChannels, inChannels, ...taps], (opts.weightInit ?? heInit)(inChannels * kernel ** dims));
    this.bias = opts.bias === false ? null : ps.param(`${name}.bias`, [outChannels], ZEROS);
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? 0;
  }
  protected options(): ConvOptions {
    return { stride: this.stride, padding: this.padding };
  }
}

/** 2D convolution, weight [Cout, Cin, k, k]; input [B, Cin, H, W]. */
export class Conv2d extends ConvNd {
  constructor(ps: ParamSource, name: string, inChannels: number, outChannels: number, kernel: number, opts: ConvLayerOptions = {}) {
    super(ps, name, 2, inChannels, outChannels, kernel, opts);
  }
  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight.tensor, this.bias?.tensor ?? null, this.options());
  }
}

/** 3D convolution, weight [Cout, Cin, k, k, k]; input [B, Cin, D, H, W]. */
export class Conv3d extends ConvNd {
  constructor(ps: ParamSource, name: string, inChannels: number, outChannels: number, kernel: number, opts: ConvLayerOptions = {}) {
    super(ps, name, 3, inChannels, outChannels, kernel, opts);
  }
  forward(x: Tensor): Tensor {
    return conv3d(x, this.weight.tensor, this.bias?.tensor ?? null, this.options());
  }
}

/** Largest divisor of `channels` that is at most `groups`: a valid group count for GroupNorm. */
export function groupsFor(channels: number, groups: number): number {
  for (let g = Math.min(groups, channels); g > 1; g--) if (channels % g === 0) return g;
  return 1;
}

/** GroupNorm over [B, C, ...spatial] with a per-channel affine (weight ones, bias zeros). */
export class GroupNorm {
  readonly gamma: ParamHandle;
  readonly beta: ParamHandle;
  constructor(
    ps: ParamSource,
    name: string,
    readonly groups: number,
    readonly channels: number,
    readonly eps = 1e-5,
  ) {
    if (!Number.isInteger(groups) || groups < 1 || channels % groups !== 0) {
      throw new ShapeError(`GroupNorm ${name}: ${groups} groups do not divide ${channels} channels`);
    }
    this.gamma = ps.param(`${name}.weight`, [channels], ONES);
    this.beta = ps.param(`${name}.bias`, [channels], ZEROS);
  }
  forward(x: Tensor): Tensor {
    return groupNorm(x, this.gamma.tensor, this.beta.tensor, this.groups, this.eps);
  }
}
