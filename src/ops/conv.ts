// 2D and 3D convolution (cross-correlation, PyTorch layout and semantics) through one kernel family:
// a 2D convolution is a 3D one with depth 1. Backward: dX gathers, dW and dBias each own their output.
import { ShapeError } from '../errors.ts';
import { dummyBuffers, record, shapeStr, Tensor } from '../tensor/tensor.ts';
import { CONV_CB } from '../backend/kernels/conv.ts';
import { launch } from './launch.ts';
import { sum } from './reduce.ts';

export interface ConvOptions {
  /** Same stride along every spatial axis (default 1). */
  stride?: number;
  /** Zero padding on both sides of every spatial axis (default 0). */
  padding?: number;
}

/**
 * dW has few independent outputs (CO x CI x taps / 16 invocations), so below this many the batch is
 * split into chunks summed afterwards: enough parallel work for the device, a small extra reduction.
 */
const DW_MIN_INVOCATIONS = 1024;

type Geometry = Record<'B' | 'CI' | 'CO' | 'ID' | 'IH' | 'IW' | 'OD' | 'OH' | 'OW' | 'KD' | 'K' | 'SD' | 'S' | 'PD' | 'P', number>;

function geometry(op: string, dims: 2 | 3, x: Tensor, w: Tensor, bias: Tensor | null, opts: ConvOptions): Geometry {
  const rank = dims + 2;
  const stride = opts.stride ?? 1;
  const padding = opts.padding ?? 0;
  const layout = dims === 2 ? '[B, C, H, W] and [Cout, Cin, k, k]' : '[B, C, D, H, W] and [Cout, Cin, k, k, k]';
  const shapes = `input ${shapeStr(x.shape)}, weight ${shapeStr(w.shape)}`;
  if (x.shape.length !== rank || w.shape.length !== rank) throw new ShapeError(`${op}: need ${layout}, got ${shapes}`);
  const [B, CI, ...ins] = x.shape;
  const [CO, WCI, ...ks] = w.shape;
  if (WCI !== CI) throw new ShapeError(`${op}: ${shapes}: the weight expects ${WCI} input channels, the input has ${CI}`);
  if (!ks.every((k) => k === ks[0]) || ks[0] < 1) throw new ShapeError(`${op}: ${shapes}: the kernel must be square (cubic)`);
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== CO)) {
    throw new ShapeError(`${op}: bias ${shapeStr(bias.shape)} does not match ${CO} output channels (${shapes})`);
  }
  if (!Number.isInteger(stride) || stride < 1 || !Number.isInteger(padding) || padding < 0) {
    throw new ShapeError(`${op}: stride ${stride} must be an integer >= 1 and padding ${padding} an integer >= 0 (${shapes})`);
  }
  const K = ks[0];
  const outs = ins.map((i) => Math.floor((i + 2 * padding - K) / stride) + 1);
  if (outs.some((o) => o < 1) || B < 1 || CI < 1 || CO < 1) {
    throw new ShapeError(`${op}: ${shapes} with stride ${stride} and padding ${padding} gives no output`);
  }
  const [ID, IH, IW] = dims === 2 ? [1, ...ins] : ins;
  const [OD, OH, OW] = dims === 2 ? [1, ...outs] : outs;
  const [KD, SD, PD] = dims === 2 ? [1, 1, 0] : [K, stride, padding];
  return { B, CI, CO, ID, IH, IW, OD, OH, OW, KD, K, SD, S: stride, PD, P: padding };
}

function convNd(op: string, dims: 2 | 3, x: Tensor, w: Tensor, bias: Tensor | null, opts: ConvOptions): Tensor {
  const c = geometry(op, dims, x, w, bias, opts);
  const outShape = dims === 2 ? [c.B, c.CO, c.OH, c.OW] : [c.B, c.CO, c.OD, c.OH, c.OW];
  const out = Tensor.empty(outShape);
  launch('conv', 'forward', { ...c, HAS_BIAS: bias ? 1 : 0 }, [x, w, bias ?? dummyBuffers().read, null, out]);
  const inputs = bias ? [x, w, bias] : [x, w];
  return record(out, op, inputs, (g) => {
    let dx: Tensor | null = null;
    if (x.requiresGrad) {
      dx = Tensor.empty(x.shape);
      launch('conv', 'backward_input', c, [null, w, null, g, dx]);
    }
    const dw = w.requiresGrad ? weightGrad(c, x, g, w) : null;
    let db: Tensor | null = null;
    if (bias?.requiresGrad) {
      db = Tensor.empty(bias.shape);
      launch('conv', 'backward_bias', c, [null, null, null, g, db]);
    }
    return [dx, dw, db];
  });
}

function weightGrad(c: Geometry, x: Tensor, g: Tensor, w: Tensor): Tensor {
  const blocks = Math.ceil(c.CO / CONV_CB) * Math.ceil(c.CI / CONV_CB) * c.KD * c.K * c.K;
  const BPS = Math.ceil(c.B / Math.min(c.B, Math.ceil(DW_MIN_INVOCATIONS / blocks)));
  const NSPLIT = Math.ceil(c.B / BPS);
  const partial = Tensor.empty(NSPLIT === 1 ? w.shape : [NSPLIT, ...w.shape]);
  launch('conv', 'backward_weight', { ...c, NSPLIT, BPS }, [x, null, null, g, partial]);
  if (NSPLIT === 1) return partial;
  const dw = sum(partial, 0);
  partial.dispose();
  return dw;
}

/** x [B, Cin, H, W] * w [Cout, Cin, k, k] (+ bias [Cout]) -> [B, Cout, H', W'], H' = floor((H + 2p - k) / s) + 1. */
export function conv2d(x: Tensor, w: Tensor, bias: Tensor | null = null, opts: ConvOptions = {}): Tensor {
  return convNd('conv2d', 2, x, w, bias, opts);
}

/** x [B, Cin, D, H, W] * w [Cout, Cin, k, k, k] (+ bias [Cout]) -> [B, Cout, D', H', W']. */
export function conv3d(x: Tensor, w: Tensor, bias: Tensor | null = null, opts: ConvOptions = {}): Tensor {
  return convNd('conv3d', 3, x, w, bias, opts);
}
