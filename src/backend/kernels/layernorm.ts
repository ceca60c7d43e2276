import type { KernelEntry } from '../kernel.ts';
import { grid1d, type KernelFamily } from '../kernel.ts';

const WG = 64;
const WGP = 32;
const f = Math.fround;

/** How the WGSL adds its W lane partial sums (W = 4: `hsum`, (x + y) + (z + w)). */
const hsum = (acc: number[]): number => (acc.length === 1 ? acc[0] : f(f(acc[0] + acc[1]) + f(acc[2] + acc[3])));

/**
 * References for the scalar (W = 1) and vec4 (W = 4) entries: element j of a row accumulates in lane
 * j % W, as the vec4 accumulators do; everything else is elementwise and identical.
 */
function entries(W: 1 | 4): Record<string, KernelEntry> {
  return {
    forward: {
      grid: (c) => grid1d(c.ROWS, WG),
      reference(c, fc, [X, Gamma, Beta, , Out, Stats]) {
        const { ROWS, D } = c;
        const eps = f(fc.EPS);
        for (let r = 0; r < ROWS; r++) {
          const b = r * D;
          const s = new Array<number>(W).fill(0);
          for (let j = 0; j < D; j++) s[j % W] = f(s[j % W] + X[b + j]);
          const mu = f(hsum(s) / D);
          const v = new Array<number>(W).fill(0);
          for (let j = 0; j < D; j++) {
            const d = f(X[b + j] - mu);
            v[j % W] = f(v[j % W] + f(d * d));
          }
          const rstd = f(1 / Math.sqrt(f(f(hsum(v) / D) + eps)));
          for (let j = 0; j < D; j++) Out[b + j] = f(f(f(f(X[b + j] - mu) * rstd) * Gamma[j]) + Beta[j]);
          Stats[r] = mu;
          Stats[ROWS + r] = rstd;
        }
      },
    },
    backward_x: {
      grid: (c) => grid1d(c.ROWS, WG),
      reference(c, _fc, [X, Gamma, , G, Out, Stats]) {
        const { ROWS, D } = c;
        for (let r = 0; r < ROWS; r++) {
          const b = r * D;
          const mu = Stats[r];
          const rstd = Stats[ROWS + r];
          const a = new Array<number>(W).fill(0);
          const bb = new Array<number>(W).fill(0);
          for (let j = 0; j < D; j++) {
            const dxh = f(G[b + j] * Gamma[j]);
            a[j % W] = f(a[j % W] + dxh);
            bb[j % W] = f(bb[j % W] + f(dxh * f(f(X[b + j] - mu) * rstd)));
          }
          const ma = f(hsum(a) / D);
          const mb = f(hsum(bb) / D);
          for (let j = 0; j < D; j++) {
            const xh = f(f(X[b + j] - mu) * rstd);
            Out[b + j] = f(rstd * f(f(f(G[b + j] * Gamma[j]) - ma) - f(xh * mb)));
          }
        }
      },
    },
    backward_params: {
      grid: (c) => grid1d(c.D / W, WGP),
      reference(c, _fc, [X, , , G, Out, Stats, Out2]) {
        const { ROWS, D } = c;
        for (let j = 0; j < D; j++) {
          let dg = 0;
          let db = 0;
          for (let r = 0; r < ROWS; r++) {
            const g = G[r * D + j];
            dg = f(dg + f(g * f(f(X[r * D + j] - Stats[r]) * Stats[ROWS + r])));
            db = f(db + g);
          }
          Out[j] = dg;
          Out2[j] = db;
        }
      },
    },
  };
}

const scalar = entries(1);
const vec4 = entries(4);

export const layernorm: KernelFamily = {
  name: 'layernorm',
  fdefaults: { EPS: 1e-5 },
  entries: {
    forward: scalar.forward,
    backward_x: scalar.backward_x,
    backward_params: scalar.backward_params,
    forward4: vec4.forward,
    backward_x4: vec4.backward_x,
    backward_params4: vec4.backward_params,
  },
};
