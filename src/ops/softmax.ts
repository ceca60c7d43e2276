// Softmax over the last dimension, with its backward rule.
import { ShapeError } from '../errors.ts';
import { record, shapeStr, Tensor } from '../tensor/tensor.ts';
import { launch } from './launch.ts';

export function softmax(x: Tensor): Tensor {
  if (x.shape.length === 0) throw new ShapeError(`softmax: needs at least one dimension, got ${shapeStr(x.shape)}`);
  const D = x.shape.at(-1)!;
  const ROWS = x.size / D;
  const y = Tensor.empty(x.shape);
  launch('softmax', 'forward', { ROWS, D }, [x, null, y]);
  return record(y, 'softmax', [x], (g) => {
    const dx = Tensor.empty(x.shape);
    launch('softmax', 'backward', { ROWS, D }, [y, g, dx]);
    return [dx];
  });
}
