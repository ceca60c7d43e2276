// Wide Residual Networks (Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016, arXiv:1605.07146), the models
// of the thesis's CIFAR Tables 5.1/5.2 (WRN-40-4, WRN-28-10). WRN-d-k: a 3×3 convolution to 16 channels, then three
// groups of n = (d − 4) / 6 pre-activation "wide basic" blocks of 16k, 32k and 64k channels (the paper's Table 1),
// the first block of groups 2 and 3 with stride 2, then BatchNorm-ReLU, global average pooling (8×8 at 32 px) and
// one linear head per task. A block is BN-ReLU-conv3×3-BN-ReLU-conv3×3 (the paper's B(3,3)) plus the shortcut: the
// identity, or, where the channels change, a 1×1 convolution (with the block's stride) of the first
// BN-ReLU's output, as the authors' code does. Convolutions have no bias. Initialisation as the authors' PyTorch
// code: He (kaiming) normal for the convolutions and the heads' weights, heads' biases zero, BatchNorm weight 1 and
// bias 0. The paper's dropout between the two convolutions is not built: the engine has no dropout op (the paper's
// results are given with and without it). Parameter names follow the authors' code (`group0.block0.conv0`).
import { ConfigError, ShapeError } from '../errors.ts';
import { BatchNorm2d } from '../nn/batchnorm.ts';
import { Conv2d, heInit } from '../nn/conv_layers.ts';
import { type ParamHandle, type ParamSource, ZEROS } from '../nn/layers.ts';
import { add, globalAvgPool, linear, relu } from '../ops/index.ts';
import { shapeStr, type Tensor } from '../tensor/tensor.ts';

/** The two WRNs of the thesis's tables: depth and widening factor. */
export const WRN_PRESETS = {
  'wrn-40-4': { depth: 40, widen_factor: 4 },
  'wrn-28-10': { depth: 28, widen_factor: 10 },
} as const;
export type WrnPreset = keyof typeof WRN_PRESETS;

export interface WrnSpec {
  depth: number;
  /** k: the groups have 16k, 32k and 64k channels; a fraction (0.5) makes toy networks. */
  widenFactor: number;
  inChannels: number;
  tasks: { name: string; outputs: number }[];
}

/** Channels of the stem and of the three groups, and the blocks per group, with the spec checked. */
export function wrnShape(depth: number, widenFactor: number): { widths: [number, number, number, number]; blocks: number } {
  if (!Number.isInteger(depth) || depth < 10 || (depth - 4) % 6 !== 0) {
    throw new ConfigError(`wrn: depth ${depth} is not 6n + 4 with n >= 1 (10, 16, 22, 28, 40, ...)`);
  }
  const w = 16 * widenFactor;
  if (!(w >= 1 && Number.isInteger(w)))
    throw new ConfigError(`wrn: widen factor ${widenFactor} makes 16k = ${w} channels; pick k with 16k a whole number`);
  return { widths: [16, w, 2 * w, 4 * w], blocks: (depth - 4) / 6 };
}

const conv = (ps: ParamSource, name: string, cin: number, cout: number, k: number, stride: number) =>
  new Conv2d(ps, name, cin, cout, k, { stride, padding: k === 3 ? 1 : 0, bias: false, weightInit: heInit });

/** The pre-activation wide basic block B(3,3). */
class WideBlock {
  readonly bn0: BatchNorm2d;
  readonly conv0: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv1: Conv2d;
  readonly convdim: Conv2d | null;
  constructor(ps: ParamSource, name: string, cin: number, cout: number, stride: number) {
    this.bn0 = new BatchNorm2d(ps, `${name}.bn0`, cin);
    this.conv0 = conv(ps, `${name}.conv0`, cin, cout, 3, stride);
    this.bn1 = new BatchNorm2d(ps, `${name}.bn1`, cout);
    this.conv1 = conv(ps, `${name}.conv1`, cout, cout, 3, 1);
    if (cin === cout && stride !== 1) throw new ShapeError(`wrn ${name}: a strided block must change its channels`);
    this.convdim = cin !== cout ? conv(ps, `${name}.convdim`, cin, cout, 1, stride) : null;
  }
  get norms(): BatchNorm2d[] {
    return [this.bn0, this.bn1];
  }
  forward(x: Tensor): Tensor {
    const o1 = relu(this.bn0.forward(x));
    const y = this.conv0.forward(o1);
    const z = this.conv1.forward(relu(this.bn1.forward(y)));
    return add(z, this.convdim ? this.convdim.forward(o1) : x);
  }
}

export class WideResNet {
  readonly conv0: Conv2d;
  readonly blocks: WideBlock[] = [];
  readonly bn: BatchNorm2d;
  readonly heads = new Map<string, { weight: ParamHandle; bias: ParamHandle }>();
  readonly featureDim: number;
  private readonly norms: BatchNorm2d[];

  constructor(
    ps: ParamSource,
    readonly spec: WrnSpec,
  ) {
    if (!Number.isInteger(spec.inChannels) || spec.inChannels < 1) {
      throw new ConfigError(`wrn: ${String(spec.inChannels)} input channels; need a positive integer`);
    }
    const { widths, blocks } = wrnShape(spec.depth, spec.widenFactor);
    this.conv0 = conv(ps, 'conv0', spec.inChannels, widths[0], 3, 1);
    let cin = widths[0];
    for (let g = 0; g < 3; g++) {
      for (let b = 0; b < blocks; b++) {
        this.blocks.push(new WideBlock(ps, `group${g}.block${b}`, cin, widths[g + 1], g > 0 && b === 0 ? 2 : 1));
        cin = widths[g + 1];
      }
    }
    this.featureDim = cin;
    this.bn = new BatchNorm2d(ps, 'bn', cin);
    for (const t of spec.tasks) {
      if (this.heads.has(t.name)) throw new ConfigError(`wrn: task '${t.name}' listed twice`);
      this.heads.set(t.name, {
        weight: ps.param(`heads.${t.name}.weight`, [cin, t.outputs], heInit(cin)),
        bias: ps.param(`heads.${t.name}.bias`, [t.outputs], ZEROS),
      });
    }
    this.norms = [...this.blocks.flatMap((b) => b.norms), this.bn];
  }

  /** Training mode (batch statistics, running statistics updated) or eval mode (running statistics). */
  setTraining(on: boolean): void {
    for (const n of this.norms) n.training = on;
  }

  /** x [B, inChannels, H, W] -> pooled features [B, 64k]. */
  represent(x: Tensor): Tensor {
    if (x.shape.length !== 4 || x.shape[1] !== this.spec.inChannels) {
      throw new ShapeError(`wrn: input must be [B, ${this.spec.inChannels}, H, W], got ${shapeStr(x.shape)}`);
    }
    let h = this.conv0.forward(x);
    for (const b of this.blocks) h = b.forward(h);
    return globalAvgPool(relu(this.bn.forward(h)));
  }

  /** Logits [B, outputs] of one task's head. */
  forward(x: Tensor, task: string): Tensor {
    const head = this.heads.get(task);
    if (!head) throw new ConfigError(`wrn: no head for task '${task}' (have ${[...this.heads.keys()].join(', ')})`);
    return linear(this.represent(x), head.weight.tensor, head.bias.tensor);
  }
}
