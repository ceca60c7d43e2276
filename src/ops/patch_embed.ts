// Patch embedding for 2D images [B, C, H, W] and 3D volumes [B, C, D, H, W]: patchify, project, add bias
// and position embeddings in one kernel. The image is data, so it gets no gradient.
import { ShapeError } from '../errors.ts';
import { record, shapeStr, Tensor } from '../tensor/tensor.ts';
import { launch } from './launch.ts';
import { sum } from './reduce.ts';

export function patchEmbed(x: Tensor, weight: Tensor, bias: Tensor, pos: Tensor, patch: number): Tensor {
  const op = 'patchEmbed';
  if (x.shape.length !== 4 && x.shape.length !== 5) throw new ShapeError(`${op}: input must be [B, C, H, W] or [B, C, D, H, W], got ${shapeStr(x.shape)}`);
  const is3d = x.shape.length === 5;
  const [B, C] = x.shape;
  const [D, H, W] = is3d ? x.shape.slice(2) : [1, ...x.shape.slice(2)];
  const PD = is3d ? patch : 1;
  if (D % PD || H % patch || W % patch) throw new ShapeError(`${op}: input ${shapeStr(x.shape)} is not divisible into patches of ${patch}`);
  const [GD, GH, GW] = [D / PD, H / patch, W / patch];
  const T = GD * GH * GW;
  const K = C * PD * patch * patch;
  const E = weight.shape[1];
  if (weight.shape.length !== 2 || weight.shape[0] !== K) throw new ShapeError(`${op}: weight must be [${K}, E] for input ${shapeStr(x.shape)} and patch ${patch}, got ${shapeStr(weight.shape)}`);
  if (bias.size !== E || pos.shape.length !== 2 || pos.shape[0] !== T || pos.shape[1] !== E) {
    throw new ShapeError(`${op}: bias ${shapeStr(bias.shape)} / pos ${shapeStr(pos.shape)} must be [${E}] / [${T}, ${E}]`);
  }
  const consts = { B, C, D, H, W, PD, P: patch, GD, GH, GW, T, K, E };
  const out = Tensor.empty([B, T, E]);
  launch('patch_embed', 'forward', consts, [x, weight, bias, pos, null, out]);
  return record(out, op, [x, weight, bias, pos], (g) => {
    let dw: Tensor | null = null;
    if (weight.requiresGrad) {
      dw = Tensor.empty(weight.shape);
      launch('patch_embed', 'backward_weight', consts, [x, null, null, null, g, dw]);
    }
    const db = bias.requiresGrad ? sum(g, [0, 1]) : null;
    const dpos = pos.requiresGrad ? sum(g, 0) : null;
    return [null, dw, db, dpos];
  });
}
