import type { Consts } from '../backend.ts';
import type { KernelFamily } from '../kernel.ts';

const TILE = 4;
const WG = 8;
const f = Math.fround;

function xIndex(c: Consts, b: number, t: number, k: number): number {
  const ch = Math.floor(k / (c.PD * c.P * c.P));
  const r = k % (c.PD * c.P * c.P);
  const pd = Math.floor(r / (c.P * c.P));
  const ph = Math.floor(r / c.P) % c.P;
  const pw = r % c.P;
  const td = Math.floor(t / (c.GH * c.GW));
  const th = Math.floor(t / c.GW) % c.GH;
  const tw = t % c.GW;
  return (((b * c.C + ch) * c.D + td * c.PD + pd) * c.H + th * c.P + ph) * c.W + tw * c.P + pw;
}

export const patchEmbed: KernelFamily = {
  name: 'patch_embed',
  entries: {
    forward: {
      grid: (c) => {
        const rows = Math.ceil((c.B * c.T) / WG);
        return [Math.ceil(c.E / (TILE * WG)), Math.min(rows, 65535), Math.ceil(rows / 65535)];
      },
      reference(c, _f, [X, Wt, Bias, Pos, , Out]) {
        for (let row = 0; row < c.B * c.T; row++) {
          const b = Math.floor(row / c.T);
          const t = row % c.T;
          for (let e = 0; e < c.E; e++) {
            let acc = 0;
            for (let k = 0; k < c.K; k++) acc = f(acc + f(X[xIndex(c, b, t, k)] * Wt[k * c.E + e]));
            Out[row * c.E + e] = f(f(acc + Bias[e]) + Pos[t * c.E + e]);
          }
        }
      },
    },
    backward_weight: {
      grid: (c) => [Math.ceil(c.E / (TILE * WG)), Math.ceil(c.K / WG), 1],
      reference(c, _f, [X, , , , G, Out]) {
        for (let k = 0; k < c.K; k++) {
          for (let e = 0; e < c.E; e++) {
            let acc = 0;
            for (let row = 0; row < c.B * c.T; row++) {
              acc = f(acc + f(X[xIndex(c, Math.floor(row / c.T), row % c.T, k)] * G[row * c.E + e]));
            }
            Out[k * c.E + e] = acc;
          }
        }
      },
    },
  },
};
