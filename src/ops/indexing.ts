// Row gather: per-sample embedding lookups (dimensionality, modality, body-part latents).
import { ShapeError } from '../errors.ts';
import { record, shapeStr, Tensor } from '../tensor/tensor.ts';
import { launch } from './launch.ts';

/** table [R, E], index i32 [N] → [N, E]. */
export function gatherRows(table: Tensor, index: Tensor): Tensor {
  if (table.shape.length !== 2 || index.shape.length !== 1 || index.dtype !== 'i32') {
    throw new ShapeError(`gatherRows: table must be [R, E] and index an i32 [N], got ${shapeStr(table.shape)} and ${index.dtype} ${shapeStr(index.shape)}`);
  }
  const [R, E] = table.shape;
  const N = index.shape[0];
  const out = Tensor.empty([N, E]);
  launch('indexing', 'gather', { N, R, E }, [table, index, null, out]);
  return record(out, 'gatherRows', [table], (g) => {
    const dt = Tensor.empty(table.shape);
    launch('indexing', 'gather_backward', { N, R, E }, [null, index, g, dt]);
    return [dt];
  });
}
