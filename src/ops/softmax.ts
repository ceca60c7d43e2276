// Softmax and log-softmax over the last dimension, each with its backward rule written next to it.
import { ShapeError } from '../errors.ts';
import { record, shapeStr, Tensor } from '../tensor/tensor.ts';
import { launch } from './launch.ts';

function rows(op: string, x: Tensor): { ROWS: number; D: number } {
  if (x.dtype !== 'f32') throw new ShapeError(`${op}: needs an f32 tensor, got ${x.dtype} ${shapeStr(x.shape)}`);
  if (x.shape.length === 0) throw new ShapeError(`${op}: needs at least one dimension, got ${shapeStr(x.shape)}`);
  const D = x.shape.at(-1)!;
  return { ROWS: D === 0 ? 0 : x.size / D, D };
}

function normalise(op: 'softmax' | 'logSoftmax', x: Tensor): Tensor {
  const consts = rows(op, x);
  const out = Tensor.empty(x.shape);
  const [fwd, bwd] = op === 'softmax' ? (['forward', 'backward'] as const) : (['log_forward', 'log_backward'] as const);
  if (x.size > 0) launch('softmax', fwd, consts, { x, out });
  // Both backward rules need only the output (and the upstream gradient), not the input.
  return record(out, op, [x], (g) => {
    const dx = Tensor.empty(x.shape);
    if (x.size > 0) launch('softmax', bwd, consts, { x: out, g, out: dx });
    return [dx];
  });
}

/** exp(x - max) / sum(exp(x - max)) over the last dimension. */
export function softmax(x: Tensor): Tensor {
  return normalise('softmax', x);
}

/** (x - max) - log(sum(exp(x - max))) over the last dimension. */
export function logSoftmax(x: Tensor): Tensor {
  return normalise('logSoftmax', x);
}
