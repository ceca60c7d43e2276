// Reshape: a free view of the same buffer that autograd can see through.
import { record, type Shape, type Tensor } from '../tensor/tensor.ts';

export function reshape(x: Tensor, shape: Shape): Tensor {
  const out = x.reshaped(shape);
  return record(out, 'reshape', [x], (g) => [g.reshaped(x.shape)]);
}
