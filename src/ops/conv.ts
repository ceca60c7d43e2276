// 2D and 3D convolution (cross-correlation, PyTorch layout and semantics) through one kernel family:
// a 2D convolution is a 3D one with depth 1. Backward: dX of a stride-1 convolution is the forward
// kernel run on the gradient with mirrored, channel-swapped weights; strided ones gather. dW and dBias
// each own their outputs (no atomics).
import { ShapeError } from '../errors.ts';
import { record, shapeStr, Tensor } from '../tensor/tensor.ts';
import { CONV_CB, convColumns } from '../backend/kernels/conv.ts';
import { launch } from './launch.ts';
import { sum } from './reduce.ts';

export interface ConvOptions {
  /** Same stride along every spatial axis (default 1). */
  stride?: number;
  /** Zero padding on both sides of every spatial axis (default 0). */
  padding?: number;
}

/**
 * dW has few independent invocations (one per 4x4 channel block and kernel row), so the output rows are
 * split into chunks whose partial sums are added afterwards: enough parallel work for the device (and
 * balanced load over lavapipe's threads) for a small extra reduction.
 */
const DW_MIN_INVOCATIONS = 2048;

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

function forwardRaw(c: Geometry, x: Tensor, w: Tensor, bias: Tensor | null, out: Tensor): void {
  const consts = { ...c, HAS_BIAS: bias ? 1 : 0, PB: convColumns(c.OW, c.K, c.S) };
  launch('conv', 'forward', consts, { x, weight: w, bias, out });
}

function convNd(op: string, dims: 2 | 3, x: Tensor, w: Tensor, bias: Tensor | null, opts: ConvOptions): Tensor {
  const c = geometry(op, dims, x, w, bias, opts);
  const out = Tensor.empty(dims === 2 ? [c.B, c.CO, c.OH, c.OW] : [c.B, c.CO, c.OD, c.OH, c.OW]);
  forwardRaw(c, x, w, bias, out);
  const inputs = bias ? [x, w, bias] : [x, w];
  return record(out, op, inputs, (g) => {
    const dx = x.requiresGrad ? inputGrad(c, g, w, x) : null;
    const dw = w.requiresGrad ? weightGrad(c, x, g, w) : null;
    let db: Tensor | null = null;
    if (bias?.requiresGrad) {
      db = Tensor.empty(bias.shape);
      launch('conv', 'backward_bias', c, { g, out: db });
    }
    return [dx, dw, db];
  });
}

function inputGrad(c: Geometry, g: Tensor, w: Tensor, x: Tensor): Tensor {
  const dx = Tensor.empty(x.shape);
  if (c.S === 1 && c.SD === 1 && c.P < c.K && c.PD < c.KD) {
    // dX[ci, i] = sum over co, k of W[co, ci, k] g[co, i + P - k]: a convolution of g with the
    // mirrored kernel, channels swapped, padding K - 1 - P; its output has the input's size.
    const flipped = Tensor.empty([c.CI, c.CO, c.KD, c.K, c.K]);
    launch('conv', 'flip_weight', c, { weight: w, out: flipped });
    const t: Geometry = {
      B: c.B,
      CI: c.CO,
      CO: c.CI,
      ID: c.OD,
      IH: c.OH,
      IW: c.OW,
      OD: c.ID,
      OH: c.IH,
      OW: c.IW,
      KD: c.KD,
      K: c.K,
      SD: 1,
      S: 1,
      PD: c.KD - 1 - c.PD,
      P: c.K - 1 - c.P,
    };
    forwardRaw(t, g, flipped, null, dx);
    flipped.dispose();
  } else {
    launch('conv', 'backward_input', c, { weight: w, g, out: dx });
  }
  return dx;
}

function weightGrad(c: Geometry, x: Tensor, g: Tensor, w: Tensor): Tensor {
  const blocks = Math.ceil(c.CO / CONV_CB) * Math.ceil(c.CI / CONV_CB) * c.KD * c.K;
  const rows = c.B * c.OD * c.OH;
  const RPS = Math.ceil(rows / Math.min(rows, Math.ceil(DW_MIN_INVOCATIONS / blocks)));
  const NSPLIT = Math.ceil(rows / RPS);
  const partial = Tensor.empty(NSPLIT === 1 ? w.shape : [NSPLIT, ...w.shape]);
  launch('conv', 'backward_weight', { ...c, NSPLIT, RPS }, { x, g, out: partial });
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
