// Pooling (window = stride) and nearest-neighbour 2x upsampling for [B, C, H, W] and [B, C, D, H, W].
// All run through kernels/pool.wgsl, which moves values between a fine and a coarse grid; a 4D tensor is
// a 5D one with depth 1 and a window of depth 1.
import { ShapeError } from '../errors.ts';
import { record, shapeStr, Tensor } from '../tensor/tensor.ts';
import { launch } from './launch.ts';

type Vec3 = [number, number, number];

function spatial(op: string, x: Tensor): { BC: number; fine: Vec3; is3d: boolean } {
  if (x.shape.length !== 4 && x.shape.length !== 5) {
    throw new ShapeError(`${op}: input must be [B, C, H, W] or [B, C, D, H, W], got ${shapeStr(x.shape)}`);
  }
  const is3d = x.shape.length === 5;
  const [B, C, ...rest] = x.shape;
  const fine = (is3d ? rest : [1, ...rest]) as Vec3;
  return { BC: B * C, fine, is3d };
}

function consts(BC: number, fine: Vec3, coarse: Vec3, win: Vec3, mean: boolean) {
  const [FD, FH, FW] = fine;
  const [CD, CH, CW] = coarse;
  const [KD, KH, KW] = win;
  return { BC, FD, FH, FW, CD, CH, CW, KD, KH, KW, MEAN: mean ? 1 : 0 };
}

function outShape(x: Tensor, coarse: Vec3, is3d: boolean): number[] {
  return [x.shape[0], x.shape[1], ...(is3d ? coarse : coarse.slice(1))];
}

function poolGeometry(op: string, x: Tensor, k: number) {
  const { BC, fine, is3d } = spatial(op, x);
  if (!Number.isInteger(k) || k < 1) throw new ShapeError(`${op}: window ${k} must be an integer >= 1 (input ${shapeStr(x.shape)})`);
  const win: Vec3 = [is3d ? k : 1, k, k];
  const coarse = fine.map((d, i) => Math.floor(d / win[i])) as Vec3;
  if (coarse.some((d) => d < 1)) throw new ShapeError(`${op}: input ${shapeStr(x.shape)} is smaller than the window ${k}`);
  return { BC, fine, coarse, win, is3d };
}

/** Mean over non-overlapping k-windows (stride k); trailing cells that fill no whole window are dropped. */
export function avgPool(x: Tensor, k: number): Tensor {
  const { BC, fine, coarse, win, is3d } = poolGeometry('avgPool', x, k);
  const c = consts(BC, fine, coarse, win, true);
  const out = Tensor.empty(outShape(x, coarse, is3d));
  launch('pool', 'coarse_sum', c, { x, out });
  return record(out, 'avgPool', [x], (g) => {
    const dx = Tensor.empty(x.shape);
    launch('pool', 'fine_spread', c, { x: g, out: dx });
    return [dx];
  });
}

/** Max over non-overlapping k-windows (stride k); the gradient goes to each window's first maximum. */
export function maxPool(x: Tensor, k: number): Tensor {
  const { BC, fine, coarse, win, is3d } = poolGeometry('maxPool', x, k);
  const c = consts(BC, fine, coarse, win, false);
  const out = Tensor.empty(outShape(x, coarse, is3d));
  launch('pool', 'max_forward', c, { x, out });
  return record(out, 'maxPool', [x], (g) => {
    const dx = Tensor.empty(x.shape);
    launch('pool', 'max_backward', c, { x, g, out: dx });
    return [dx];
  });
}

/** Mean over every spatial position: [B, C, ...] -> [B, C]. */
export function globalAvgPool(x: Tensor): Tensor {
  const { BC, fine } = spatial('globalAvgPool', x);
  const c = consts(BC, fine, [1, 1, 1], fine, true);
  const out = Tensor.empty([x.shape[0], x.shape[1]]);
  launch('pool', 'coarse_sum', c, { x, out });
  return record(out, 'globalAvgPool', [x], (g) => {
    const dx = Tensor.empty(x.shape);
    launch('pool', 'fine_spread', c, { x: g, out: dx });
    return [dx];
  });
}

/** Nearest-neighbour upsampling by 2 along every spatial axis (H, W; and D for 5D input). */
export function upsample2x(x: Tensor): Tensor {
  const { BC, fine: coarse, is3d } = spatial('upsample2x', x);
  const win: Vec3 = [is3d ? 2 : 1, 2, 2];
  const fine = coarse.map((d, i) => d * win[i]) as Vec3;
  const c = consts(BC, fine, coarse, win, false);
  const out = Tensor.empty([x.shape[0], x.shape[1], ...(is3d ? fine : fine.slice(1))]);
  launch('pool', 'fine_spread', c, { x, out });
  return record(out, 'upsample2x', [x], (g) => {
    const dx = Tensor.empty(x.shape);
    launch('pool', 'coarse_sum', c, { x: g, out: dx });
    return [dx];
  });
}
