// A small 3D ResNet for brain-age classification over age bins (thesis section 5.1): a 3×3×3 stem,
// max-pooling, stages of basic residual blocks (the first stage keeps the resolution, each later one
// halves it with a strided convolution), GroupNorm throughout (batches here are a handful of volumes,
// too few for batch statistics), global average pooling and a linear head. `represent` stops before the
// head, for Barlow Twins pre-training. The input has one channel per MRI modality (the thesis stacks T1,
// T2 and PD); only the stem sees the channel count.
import { ConfigError, ShapeError } from '../errors.ts';
import { Conv3d, GroupNorm, groupsFor } from '../nn/conv_layers.ts';
import { BatchNorm1d, Linear, type ParamSource } from '../nn/layers.ts';
import { add, globalAvgPool, maxPool, relu } from '../ops/index.ts';
import { shapeStr, type Tensor } from '../tensor/tensor.ts';

export interface ResNet3dConfig {
  /** Channels of the stem and first stage; stage s has width·2^s. */
  width: number;
  /** Basic blocks per stage. */
  blocks: number[];
  groups: number;
}

export const DEFAULT_RESNET3D: ResNet3dConfig = { width: 8, blocks: [1, 1, 1], groups: 4 };

export function resolveResNet3dConfig(raw: Partial<ResNet3dConfig> = {}, where = 'resnet'): ResNet3dConfig {
  const c = { ...DEFAULT_RESNET3D, ...raw, blocks: [...(raw.blocks ?? DEFAULT_RESNET3D.blocks)] };
  if (!Number.isInteger(c.width) || c.width < 1 || c.width > 256)
    throw new ConfigError(`${where}: width ${String(c.width)} must be an integer in 1..256`);
  if (!Number.isInteger(c.groups) || c.groups < 1) throw new ConfigError(`${where}: groups ${String(c.groups)} must be a positive integer`);
  if (c.blocks.length < 1 || c.blocks.length > 5 || !c.blocks.every((b) => Number.isInteger(b) && b >= 1 && b <= 8)) {
    throw new ConfigError(`${where}: blocks [${c.blocks.join(', ')}] must be 1 to 5 stages of 1..8 blocks`);
  }
  return c;
}

class BasicBlock3d {
  readonly conv1: Conv3d;
  readonly norm1: GroupNorm;
  readonly conv2: Conv3d;
  readonly norm2: GroupNorm;
  readonly down: { conv: Conv3d; norm: GroupNorm } | null;
  constructor(ps: ParamSource, name: string, cin: number, cout: number, stride: number, groups: number) {
    const g = groupsFor(cout, groups);
    this.conv1 = new Conv3d(ps, `${name}.conv1`, cin, cout, 3, { stride, padding: 1, bias: false });
    this.norm1 = new GroupNorm(ps, `${name}.norm1`, g, cout);
    this.conv2 = new Conv3d(ps, `${name}.conv2`, cout, cout, 3, { padding: 1, bias: false });
    this.norm2 = new GroupNorm(ps, `${name}.norm2`, g, cout);
    this.down =
      stride !== 1 || cin !== cout
        ? {
            conv: new Conv3d(ps, `${name}.down`, cin, cout, 1, { stride, bias: false }),
            norm: new GroupNorm(ps, `${name}.down_norm`, g, cout),
          }
        : null;
  }
  forward(x: Tensor): Tensor {
    const h = relu(this.norm1.forward(this.conv1.forward(x)));
    const y = this.norm2.forward(this.conv2.forward(h));
    const shortcut = this.down ? this.down.norm.forward(this.down.conv.forward(x)) : x;
    return relu(add(y, shortcut));
  }
}

export class ResNet3d {
  readonly stem: Conv3d;
  readonly stemNorm: GroupNorm;
  readonly blocks: BasicBlock3d[] = [];
  readonly head: Linear;
  readonly featureDim: number;

  constructor(
    ps: ParamSource,
    readonly config: ResNet3dConfig,
    readonly numClasses: number,
    readonly inChannels = 1,
    readonly prefix = 'backbone',
    headName = 'head',
  ) {
    const { width, groups } = config;
    if (!Number.isInteger(inChannels) || inChannels < 1) throw new ConfigError(`ResNet3d: ${inChannels} input channels, need at least 1`);
    this.stem = new Conv3d(ps, `${prefix}.stem`, inChannels, width, 3, { padding: 1, bias: false });
    this.stemNorm = new GroupNorm(ps, `${prefix}.stem_norm`, groupsFor(width, groups), width);
    let cin = width;
    config.blocks.forEach((n, s) => {
      const cout = width * 2 ** s;
      for (let b = 0; b < n; b++) {
        this.blocks.push(new BasicBlock3d(ps, `${prefix}.layer${s}.${b}`, cin, cout, s > 0 && b === 0 ? 2 : 1, groups));
        cin = cout;
      }
    });
    this.featureDim = cin;
    this.head = new Linear(ps, headName, cin, numClasses);
  }

  /** The side length of the input must be a multiple of this (stem pool, then one halving per later stage). */
  get multiple(): number {
    return 2 ** this.config.blocks.length;
  }

  /** x [B, C, D, H, W] (C = inChannels) -> pooled features [B, featureDim]. */
  represent(x: Tensor): Tensor {
    const m = this.multiple;
    const C = this.inChannels;
    if (x.shape.length !== 5 || x.shape[1] !== C || x.shape.slice(2).some((d) => d % m !== 0)) {
      throw new ShapeError(`ResNet3d: input must be [B, ${C}, D, H, W] with sides multiples of ${m}, got ${shapeStr(x.shape)}`);
    }
    let h = maxPool(relu(this.stemNorm.forward(this.stem.forward(x))), 2);
    for (const b of this.blocks) h = b.forward(h);
    return globalAvgPool(h);
  }

  /** x [B, C, D, H, W] -> logits [B, numClasses]. */
  forward(x: Tensor): Tensor {
    return this.head.forward(this.represent(x));
  }
}

/** Barlow Twins' projector: Linear-BN-ReLU, then Linear. */
export class Projector {
  readonly fc1: Linear;
  readonly bn: BatchNorm1d;
  readonly fc2: Linear;
  constructor(ps: ParamSource, name: string, inDim: number, dim: number) {
    this.fc1 = new Linear(ps, `${name}.fc1`, inDim, dim);
    this.bn = new BatchNorm1d(ps, `${name}.bn`, dim);
    this.fc2 = new Linear(ps, `${name}.fc2`, dim, dim);
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(relu(this.bn.forward(this.fc1.forward(x))));
  }
}
