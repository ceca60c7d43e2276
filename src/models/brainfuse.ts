// BrainFuse's slice-interpolation network (thesis section 5.1): a small 2D U-Net that takes two slices
// of a volume, i and j = i + gap, as two channels and predicts the slice halfway between them.
//
// It predicts a residual over the straight-line blend (x_i + x_j) / 2, and its output convolution starts
// at zero, so an untrained network is exactly linear interpolation and training can only start from the
// baseline it is compared against. Skips are concatenated (U-Net), downsampling is avg- or max-pooling,
// upsampling is nearest-neighbour ×2 followed by a 3×3 convolution.
import { ConfigError, ShapeError } from '../errors.ts';
import { Conv2d, GroupNorm, groupsFor } from '../nn/conv_layers.ts';
import { ZEROS, type ParamHandle, type ParamSource } from '../nn/layers.ts';
import { add, affine, avgPool, concat, conv2d, gelu, maxPool, relu, slice, upsample2x } from '../ops/index.ts';
import { shapeStr, type Tensor } from '../tensor/tensor.ts';

export interface SliceUNetConfig {
  /** Channels of the first level; level l has base·2^l, the bottleneck base·2^depth. */
  base: number;
  /** Number of downsampling steps; slice sides must be multiples of 2^depth. */
  depth: number;
  /** GroupNorm groups (fewer where a layer has fewer channels). */
  groups: number;
  act: 'gelu' | 'relu';
  down: 'avg' | 'max';
}

export const DEFAULT_UNET: SliceUNetConfig = { base: 16, depth: 3, groups: 4, act: 'gelu', down: 'avg' };

/** Validates a partial config (e.g. from an experiment file) and fills in defaults. */
export function resolveUNetConfig(raw: Partial<SliceUNetConfig> = {}, where = 'unet'): SliceUNetConfig {
  const c = { ...DEFAULT_UNET, ...raw };
  const posInt = (k: 'base' | 'depth' | 'groups', max: number) => {
    if (!Number.isInteger(c[k]) || c[k] < 1 || c[k] > max)
      throw new ConfigError(`${where}: ${k} ${String(c[k])} must be an integer in 1..${max}`);
  };
  posInt('base', 256);
  posInt('depth', 6);
  posInt('groups', 64);
  if (c.act !== 'gelu' && c.act !== 'relu') throw new ConfigError(`${where}: act "${String(c.act)}" must be "gelu" or "relu"`);
  if (c.down !== 'avg' && c.down !== 'max') throw new ConfigError(`${where}: down "${String(c.down)}" must be "avg" or "max"`);
  return c;
}

class ConvBlock {
  readonly conv1: Conv2d;
  readonly norm1: GroupNorm;
  readonly conv2: Conv2d;
  readonly norm2: GroupNorm;
  constructor(
    ps: ParamSource,
    name: string,
    cin: number,
    cout: number,
    groups: number,
    readonly act: (x: Tensor) => Tensor,
  ) {
    // No conv bias before a norm: the norm's shift replaces it.
    this.conv1 = new Conv2d(ps, `${name}.conv1`, cin, cout, 3, { padding: 1, bias: false });
    this.norm1 = new GroupNorm(ps, `${name}.norm1`, groupsFor(cout, groups), cout);
    this.conv2 = new Conv2d(ps, `${name}.conv2`, cout, cout, 3, { padding: 1, bias: false });
    this.norm2 = new GroupNorm(ps, `${name}.norm2`, groupsFor(cout, groups), cout);
  }
  forward(x: Tensor): Tensor {
    const h = this.act(this.norm1.forward(this.conv1.forward(x)));
    return this.act(this.norm2.forward(this.conv2.forward(h)));
  }
}

export class SliceUNet {
  readonly enc: ConvBlock[] = [];
  readonly bottleneck: ConvBlock;
  readonly upConv: Conv2d[] = [];
  readonly dec: ConvBlock[] = [];
  readonly headW: ParamHandle;
  readonly headB: ParamHandle;
  private readonly act: (x: Tensor) => Tensor;

  constructor(
    ps: ParamSource,
    readonly config: SliceUNetConfig,
    readonly prefix = 'unet',
  ) {
    const { base, depth, groups } = config;
    this.act = config.act === 'gelu' ? gelu : relu;
    let cin = 2;
    for (let l = 0; l < depth; l++) {
      const c = base * 2 ** l;
      this.enc.push(new ConvBlock(ps, `${prefix}.enc${l}`, cin, c, groups, this.act));
      cin = c;
    }
    this.bottleneck = new ConvBlock(ps, `${prefix}.mid`, cin, base * 2 ** depth, groups, this.act);
    for (let l = depth - 1; l >= 0; l--) {
      const c = base * 2 ** l;
      this.upConv.push(new Conv2d(ps, `${prefix}.up${l}`, 2 * c, c, 3, { padding: 1 }));
      this.dec.push(new ConvBlock(ps, `${prefix}.dec${l}`, 2 * c, c, groups, this.act));
    }
    this.headW = ps.param(`${prefix}.head.weight`, [1, base, 1, 1], ZEROS);
    this.headB = ps.param(`${prefix}.head.bias`, [1], ZEROS);
  }

  /** Slice sides must be multiples of this. */
  get multiple(): number {
    return 2 ** this.config.depth;
  }

  /** x [B, 2, H, W] (slices i and j) -> the middle slice [B, 1, H, W]. */
  forward(x: Tensor): Tensor {
    const [, C, H, W] = x.shape;
    const m = this.multiple;
    if (x.shape.length !== 4 || C !== 2 || H % m !== 0 || W % m !== 0) {
      throw new ShapeError(`SliceUNet: input must be [B, 2, H, W] with H and W multiples of ${m}, got ${shapeStr(x.shape)}`);
    }
    const skips: Tensor[] = [];
    let h = x;
    for (const block of this.enc) {
      h = block.forward(h);
      skips.push(h);
      h = this.config.down === 'avg' ? avgPool(h, 2) : maxPool(h, 2);
    }
    h = this.bottleneck.forward(h);
    this.dec.forEach((block, i) => {
      const up = this.act(this.upConv[i].forward(upsample2x(h)));
      h = block.forward(concat([up, skips[skips.length - 1 - i]], 1));
    });
    const residual = conv2d(h, this.headW.tensor, this.headB.tensor);
    const blend = affine(add(slice(x, 1, 0, 1), slice(x, 1, 1, 1)), 0.5);
    return add(blend, residual);
  }
}
