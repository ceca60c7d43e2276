import type { Consts } from '../backend.ts';
import { defineFamily, MAX_GROUPS, read, readWrite } from '../kernel.ts';

const TILE = 4;
const WG = 8;
const f = Math.fround;

/** Offset in X of the first value of row (b*T + t)'s patch, as `patch_origin` in the WGSL. */
function patchOrigin(c: Consts, row: number): number {
  const b = Math.floor(row / c.T);
  const t = row % c.T;
  const td = Math.floor(t / (c.GH * c.GW));
  const th = Math.floor(t / c.GW) % c.GH;
  const tw = t % c.GW;
  return ((b * c.C * c.D + td * c.PD) * c.H + th * c.P) * c.W + tw * c.P;
}

/** Offset of fan-in element k inside its patch, as `fanin_offset` in the WGSL. */
function faninOffset(c: Consts, k: number): number {
  const pp = c.PD * c.P * c.P;
  const ch = Math.floor(k / pp);
  const r = k % pp;
  return ((ch * c.D + Math.floor(r / (c.P * c.P))) * c.H + (Math.floor(r / c.P) % c.P)) * c.W + (r % c.P);
}

const CONSTS = ['B', 'C', 'D', 'H', 'W', 'PD', 'P', 'GD', 'GH', 'GW', 'T', 'K', 'E'] as const;
const image = (c: Consts): number => c.B * c.C * c.D * c.H * c.W;
const weights = (c: Consts): number => c.K * c.E;
const tokens = (c: Consts): number => c.B * c.T * c.E;

export const patchEmbed = defineFamily({
  name: 'patch_embed',
  // g: the gradient of the output tokens.
  slots: { x: read(0, 'X'), weight: read(1, 'Wt'), bias: read(2, 'Bias'), pos: read(3, 'Pos'), g: read(4, 'G'), out: readWrite(5, 'Out') },
  entries: {
    forward: {
      bindings: ['x', 'weight', 'bias', 'pos', 'out'],
      consts: CONSTS,
      sizes: { x: image, weight: weights, bias: (c) => c.E, pos: (c) => c.T * c.E, out: tokens },
      grid: (c) => {
        const rowBlocks = Math.ceil((c.B * c.T) / (TILE * WG));
        return [Math.ceil(c.E / (TILE * WG)), Math.min(rowBlocks, MAX_GROUPS), Math.ceil(rowBlocks / MAX_GROUPS)];
      },
      reference(c, _f, { x: X, weight: Wt, bias: Bias, pos: Pos, out: Out }) {
        const koff = Array.from({ length: c.K }, (_, k) => faninOffset(c, k));
        for (let row = 0; row < c.B * c.T; row++) {
          const base = patchOrigin(c, row);
          const t = row % c.T;
          for (let e = 0; e < c.E; e++) {
            let acc = 0;
            for (let k = 0; k < c.K; k++) acc = f(acc + f(X[base + koff[k]] * Wt[k * c.E + e]));
            Out[row * c.E + e] = f(f(acc + Bias[e]) + Pos[t * c.E + e]);
          }
        }
      },
    },
    backward_weight: {
      bindings: ['x', 'g', 'out'],
      consts: CONSTS,
      sizes: { x: image, g: tokens, out: weights },
      grid: (c) => [Math.ceil(c.E / (TILE * WG)), Math.ceil(c.K / (TILE * WG)), 1],
      reference(c, _f, { x: X, g: G, out: Out }) {
        const rows = c.B * c.T;
        const base = Array.from({ length: rows }, (_, row) => patchOrigin(c, row));
        for (let k = 0; k < c.K; k++) {
          const koff = faninOffset(c, k);
          for (let e = 0; e < c.E; e++) {
            let acc = 0;
            for (let row = 0; row < rows; row++) acc = f(acc + f(X[base[row] + koff] * G[row * c.E + e]));
            Out[k * c.E + e] = acc;
          }
        }
      },
    },
  },
});
