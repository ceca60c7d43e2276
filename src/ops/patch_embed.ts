// Patch embedding for 2D images [B, C, H, W] and 3D volumes [B, C, D, H, W]: patchify, project, add bias
// and position embeddings in one kernel. The image is data, so it gets no gradient.
import { MAX_GROUPS } from '../backend/kernel.ts';
import { ShapeError } from '../errors.ts';
import { record, shapeStr, Tensor } from '../tensor/tensor.ts';
import { launch } from './launch.ts';
import { sum } from './reduce.ts';

/**
 * x [B, C, H, W] or [B, C, D, H, W], patch side p dividing every spatial extent; weight [C*p^dims, E]
 * (row c*p^dims + offset inside the patch, row-major over (pd, ph, pw)); bias [E]; pos [T, E] with T the
 * patch count, row-major over the patch grid. Returns [B, T, E] = patchify(x) @ weight + bias + pos.
 */
export function patchEmbed(x: Tensor, weight: Tensor, bias: Tensor, pos: Tensor, patch: number): Tensor {
  const op = 'patchEmbed';
  const shapes = `x ${shapeStr(x.shape)}, weight ${shapeStr(weight.shape)}, bias ${shapeStr(bias.shape)}, pos ${shapeStr(pos.shape)}, patch ${patch}`;
  if (x.shape.length !== 4 && x.shape.length !== 5)
    throw new ShapeError(`${op}: input must be [B, C, H, W] or [B, C, D, H, W]; got ${shapes}`);
  if (!Number.isInteger(patch) || patch < 1) throw new ShapeError(`${op}: patch must be a positive integer; got ${shapes}`);
  if ([x, weight, bias, pos].some((t) => t.dtype !== 'f32')) throw new ShapeError(`${op}: all operands must be f32; got ${shapes}`);
  const is3d = x.shape.length === 5;
  const [B, C] = x.shape;
  const [D, H, W] = is3d ? x.shape.slice(2) : [1, ...x.shape.slice(2)];
  const PD = is3d ? patch : 1;
  if (D % PD || H % patch || W % patch)
    throw new ShapeError(`${op}: spatial extents are not divisible into patches of ${patch}; got ${shapes}`);
  const [GD, GH, GW] = [D / PD, H / patch, W / patch];
  const T = GD * GH * GW;
  const K = C * PD * patch * patch;
  if (weight.shape.length !== 2 || weight.shape[0] !== K) throw new ShapeError(`${op}: weight must be [${K}, E]; got ${shapes}`);
  const E = weight.shape[1];
  if (bias.shape.length !== 1 || bias.shape[0] !== E) throw new ShapeError(`${op}: bias must be [${E}]; got ${shapes}`);
  if (pos.shape.length !== 2 || pos.shape[0] !== T || pos.shape[1] !== E)
    throw new ShapeError(`${op}: pos must be [${T}, ${E}]; got ${shapes}`);
  if (Math.ceil(K / 32) > MAX_GROUPS || Math.ceil(E / 32) > MAX_GROUPS)
    throw new ShapeError(`${op}: fan-in or width too large for one dispatch; got ${shapes}`);
  const consts = { B, C, D, H, W, PD, P: patch, GD, GH, GW, T, K, E };
  const out = Tensor.empty([B, T, E]);
  launch('patch_embed', 'forward', consts, { x, weight, bias, pos, out });
  return record(out, op, [x, weight, bias, pos], (g) => {
    let dw: Tensor | null = null;
    if (weight.requiresGrad) {
      dw = Tensor.empty(weight.shape);
      launch('patch_embed', 'backward_weight', consts, { x, g, out: dw });
    }
    const db = bias.requiresGrad ? sum(g, [0, 1]) : null;
    const dpos = pos.requiresGrad ? sum(g, 0) : null;
    return [null, dw, db, dpos];
  });
}
