// The BrainFuse slice interpolator (src/models/brainfuse.ts, SliceUNet) as an ONNX model, built like the Medformer
// graph (src/export/onnx.ts): the network is declared on a ParameterStore that is never finalised (no device), and
// each function below walks one part of the engine's model and emits its ops:
//   conv2d     Conv (cross-correlation, the layer's stride and padding; weights [Cout, Cin, k, k] as stored)
//   groupNorm  per (sample, group) mean and biased variance over Reshape [B, G, -1], then the per-channel affine
//   pooling    AveragePool / MaxPool 2×2, stride 2; upsample2x as Resize nearest ×2 (each pixel copied to a 2×2 block)
//   act        the engine's GELU (tanh form) or Relu
// The output is the network's middle slice: the straight blend (x_i + x_j) / 2 plus the predicted residual.
import type { InterpolatorFile } from '../brain/interpolator.ts';
import { checkWeights, type Emit, enter, floatValue, Graph, gelu, intAttr, intsAttr, modelOf, stringAttr } from './onnx.ts';
import type { ModelMessage } from './onnx-proto.ts';
import { SliceUNet } from '../models/brainfuse.ts';
import type { Conv2d, GroupNorm } from '../nn/conv_layers.ts';
import { ParameterStore } from '../nn/parameters.ts';

type ConvBlock = SliceUNet['enc'][number];

function conv2d(e: Emit, c: Conv2d, x: string): string {
  const inputs = [x, e.param(c.weight), ...(c.bias ? [e.param(c.bias)] : [])];
  const p = c.padding;
  return e.g.node('Conv', inputs, [
    intsAttr('kernel_shape', [c.kernel, c.kernel]),
    intsAttr('strides', [c.stride, c.stride]),
    intsAttr('pads', [p, p, p, p]),
  ]);
}

/** (x − mean) / sqrt(var + eps) per (sample, group), then · gamma + beta per channel. */
function groupNorm(e: Emit, gn: GroupNorm, x: string): string {
  const g = e.g;
  const grouped = g.node('Reshape', [x, g.int64([0, gn.groups, -1])]);
  const centred = g.node('Sub', [grouped, g.node('ReduceMean', [grouped], [intsAttr('axes', [2]), intAttr('keepdims', 1)])]);
  const variance = g.node('ReduceMean', [g.node('Mul', [centred, centred])], [intsAttr('axes', [2]), intAttr('keepdims', 1)]);
  const normed = g.node('Div', [centred, g.node('Sqrt', [g.node('Add', [variance, g.scalar(gn.eps)])])]);
  const back = g.node('Reshape', [normed, g.node('Shape', [x])]);
  const perChannel = (p: string) => g.node('Reshape', [p, g.int64([gn.channels, 1, 1])]);
  return g.node('Add', [g.node('Mul', [back, perChannel(e.param(gn.gamma))]), perChannel(e.param(gn.beta))]);
}

function act(e: Emit, unet: SliceUNet, x: string): string {
  return unet.config.act === 'gelu' ? gelu(e, x) : e.g.node('Relu', [x]);
}

function convBlock(e: Emit, unet: SliceUNet, b: ConvBlock, x: string): string {
  const h = act(e, unet, groupNorm(e, b.norm1, conv2d(e, b.conv1, x)));
  return act(e, unet, groupNorm(e, b.norm2, conv2d(e, b.conv2, h)));
}

function sliceUNet(e: Emit, unet: SliceUNet, x: string, out: string): string {
  const g = e.g;
  const pool = unet.config.down === 'avg' ? 'AveragePool' : 'MaxPool';
  const skips: string[] = [];
  let h = x;
  unet.enc.forEach((block, l) => {
    enter(e, `enc${l}`);
    h = convBlock(e, unet, block, h);
    skips.push(h);
    h = g.node(pool, [h], [intsAttr('kernel_shape', [2, 2]), intsAttr('strides', [2, 2])]);
  });
  enter(e, 'mid');
  h = convBlock(e, unet, unet.bottleneck, h);
  unet.dec.forEach((block, n) => {
    enter(e, `dec${unet.dec.length - 1 - n}`);
    const upsampled = g.node(
      'Resize',
      [h, '', g.floats('const/upsample2x', [4], Float32Array.of(1, 1, 2, 2))],
      [stringAttr('mode', 'nearest'), stringAttr('coordinate_transformation_mode', 'asymmetric'), stringAttr('nearest_mode', 'floor')],
    );
    const up = act(e, unet, conv2d(e, unet.upConv[n]!, upsampled));
    h = convBlock(e, unet, block, g.node('Concat', [up, skips[skips.length - 1 - n]!], [intAttr('axis', 1)]));
  });
  enter(e, 'head');
  const residual = g.node('Conv', [h, e.param(unet.headW), e.param(unet.headB)], [intsAttr('kernel_shape', [1, 1])]);
  const slice = (c: number) => g.node('Slice', [x, g.int64([c]), g.int64([c + 1]), g.int64([1])]);
  const blend = g.node('Mul', [g.node('Add', [slice(0), slice(1)]), g.scalar(0.5)]);
  return g.node('Add', [blend, residual], [], out);
}

/** The interpolator of a brainfuse-interp run as an ONNX model: slices [batch, 2, H, W] to the middle slice [batch, 1, H, W]. */
export function interpolatorOnnx(file: InterpolatorFile, producerVersion: string): { model: ModelMessage; multiple: number } {
  const store = new ParameterStore(0);
  const unet = new SliceUNet(store, file.unet);
  checkWeights(store, file);
  const g = new Graph();
  const e: Emit = {
    g,
    head: 'unet',
    // No Expand over the batch in this network.
    batch: '',
    param: (p) => {
      const t = file.tensors.get(p.name)!;
      return g.floats(p.name, t.shape, t.data);
    },
  };
  sliceUNet(e, unet, 'slices', 'middle');
  const m = unet.multiple;
  const doc =
    `BrainFuse slice interpolator exported by mf export from ${file.file}. Input "slices": float32 [batch, 2, H, W], ` +
    `slices i and i + gap of a volume preprocessed as the brainfuse-interp run's data (values in [0, 1]), H and W ` +
    `multiples of ${m} (pad with zeros as mf fuse does); trained on a ${file.shape}-voxel grid. Output "middle": ` +
    '[batch, 1, H, W], the predicted slice halfway between them (mf fuse clips it to [0, 1]).';
  const model = modelOf(
    g,
    {
      name: 'brainfuse-interp',
      doc,
      producerVersion,
      inputs: [floatValue('slices', ['batch', 2, 'height', 'width'], `slices i and i + gap; H and W multiples of ${m}`)],
      outputs: [floatValue('middle', ['batch', 1, 'height', 'width'], 'the predicted middle slice')],
    },
    { 'medformer.kind': 'brainfuse-interp', 'medformer.unet': JSON.stringify(file.unet), 'medformer.shape': String(file.shape) },
  );
  return { model, multiple: m };
}
