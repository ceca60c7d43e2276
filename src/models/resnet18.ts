// ResNet-18 (28), the MedMNIST v2 baseline (Yang et al. 2023, Scientific Data 10:41; the reference code's
// experiments/MedMNIST2D/models.py): torchvision's ResNet-18 — BasicBlocks in four stages of 64/128/256/512
// channels, two blocks each, stride 2 in the first block of stages 2-4 with a 1×1 convolution + BatchNorm
// projection shortcut — with the stem replaced for 28 px input by a 3×3 convolution, stride 1, padding 1, and no
// max-pool. BatchNorm after every convolution (convolutions have no bias), ReLU, global average pooling, then
// one linear head per task. Initialisation is PyTorch's default, as the reference code leaves it: convolution
// weights and the heads' weights and biases Uniform(±1/√fan_in) (kaiming_uniform_ with a = √5), BatchNorm weight
// 1, bias 0, running mean 0, running variance 1. Parameter names follow torchvision (`layer2.0.downsample.0`).
import { ConfigError, ShapeError } from '../errors.ts';
import { BatchNorm2d } from '../nn/batchnorm.ts';
import { Conv2d, torchConvInit } from '../nn/conv_layers.ts';
import { FAN_IN, type ParamHandle, type ParamSource } from '../nn/layers.ts';
import { add, globalAvgPool, linear, relu } from '../ops/index.ts';
import { shapeStr, type Tensor } from '../tensor/tensor.ts';

/** Channels of the four stages. */
export const RESNET18_WIDTHS = [64, 128, 256, 512] as const;
/** BasicBlocks per stage. */
export const RESNET18_BLOCKS = 2;
/** The input side this variant is defined for (MedMNIST's 28 px). */
export const RESNET18_SIZE = 28;

export interface ResNet18Spec {
  inChannels: number;
  /** One head per task: its name and number of outputs. */
  tasks: { name: string; outputs: number }[];
}

const conv = (ps: ParamSource, name: string, cin: number, cout: number, k: number, stride: number) =>
  new Conv2d(ps, name, cin, cout, k, { stride, padding: k === 3 ? 1 : 0, bias: false, weightInit: torchConvInit });

class BasicBlock {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly downsample: { conv: Conv2d; bn: BatchNorm2d } | null;
  constructor(ps: ParamSource, name: string, cin: number, cout: number, stride: number) {
    this.conv1 = conv(ps, `${name}.conv1`, cin, cout, 3, stride);
    this.bn1 = new BatchNorm2d(ps, `${name}.bn1`, cout);
    this.conv2 = conv(ps, `${name}.conv2`, cout, cout, 3, 1);
    this.bn2 = new BatchNorm2d(ps, `${name}.bn2`, cout);
    this.downsample =
      stride !== 1 || cin !== cout
        ? { conv: conv(ps, `${name}.downsample.0`, cin, cout, 1, stride), bn: new BatchNorm2d(ps, `${name}.downsample.1`, cout) }
        : null;
  }
  get norms(): BatchNorm2d[] {
    return this.downsample ? [this.bn1, this.bn2, this.downsample.bn] : [this.bn1, this.bn2];
  }
  forward(x: Tensor): Tensor {
    const h = relu(this.bn1.forward(this.conv1.forward(x)));
    const y = this.bn2.forward(this.conv2.forward(h));
    const shortcut = this.downsample ? this.downsample.bn.forward(this.downsample.conv.forward(x)) : x;
    return relu(add(y, shortcut));
  }
}

export class ResNet18 {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly blocks: BasicBlock[] = [];
  readonly heads = new Map<string, { weight: ParamHandle; bias: ParamHandle }>();
  readonly featureDim = RESNET18_WIDTHS[3];
  private readonly norms: BatchNorm2d[];
  private mode = true;

  constructor(
    ps: ParamSource,
    readonly spec: ResNet18Spec,
  ) {
    if (!Number.isInteger(spec.inChannels) || spec.inChannels < 1) {
      throw new ConfigError(`resnet18: ${String(spec.inChannels)} input channels; need a positive integer`);
    }
    this.conv1 = conv(ps, 'conv1', spec.inChannels, RESNET18_WIDTHS[0], 3, 1);
    this.bn1 = new BatchNorm2d(ps, 'bn1', RESNET18_WIDTHS[0]);
    let cin: number = RESNET18_WIDTHS[0];
    RESNET18_WIDTHS.forEach((cout, s) => {
      for (let b = 0; b < RESNET18_BLOCKS; b++) {
        this.blocks.push(new BasicBlock(ps, `layer${s + 1}.${b}`, cin, cout, s > 0 && b === 0 ? 2 : 1));
        cin = cout;
      }
    });
    // PyTorch's nn.Linear default: weight and bias both Uniform(±1/√in_features); weights are [in, out] here.
    const bound = { kind: 'uniform', bound: 1 / Math.sqrt(this.featureDim) } as const;
    for (const t of spec.tasks) {
      if (this.heads.has(t.name)) throw new ConfigError(`resnet18: task '${t.name}' listed twice`);
      this.heads.set(t.name, {
        weight: ps.param(`heads.${t.name}.weight`, [this.featureDim, t.outputs], FAN_IN),
        bias: ps.param(`heads.${t.name}.bias`, [t.outputs], bound),
      });
    }
    this.norms = [this.bn1, ...this.blocks.flatMap((b) => b.norms)];
  }

  /** Whether the BatchNorm layers use (and update) batch statistics (true) or their running statistics (false). */
  get training(): boolean {
    return this.mode;
  }

  /** Training mode (batch statistics, running statistics updated) or eval mode (running statistics): PyTorch's train()/eval(). */
  setTraining(on: boolean): void {
    this.mode = on;
    for (const n of this.norms) n.training = on;
  }

  /** x [B, inChannels, H, W] -> pooled features [B, 512]. */
  represent(x: Tensor): Tensor {
    if (x.shape.length !== 4 || x.shape[1] !== this.spec.inChannels) {
      throw new ShapeError(`resnet18: input must be [B, ${this.spec.inChannels}, H, W], got ${shapeStr(x.shape)}`);
    }
    let h = relu(this.bn1.forward(this.conv1.forward(x)));
    for (const b of this.blocks) h = b.forward(h);
    return globalAvgPool(h);
  }

  /** Logits [B, outputs] of one task's head. */
  forward(x: Tensor, task: string): Tensor {
    const head = this.heads.get(task);
    if (!head) throw new ConfigError(`resnet18: no head for task '${task}' (have ${[...this.heads.keys()].join(', ')})`);
    return linear(this.represent(x), head.weight.tensor, head.bias.tensor);
  }
}
