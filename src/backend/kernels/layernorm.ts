import type { Consts } from '../backend.ts';
import { defineFamily, grid1d, read, readWrite, type EntrySpec } from '../kernel.ts';

const WG = 64;
const WGP = 32;
const f = Math.fround;

/** How the WGSL adds its W lane partial sums (W = 4: `hsum`, (x + y) + (z + w)). */
const hsum = (acc: number[]): number => (acc.length === 1 ? acc[0] : f(f(acc[0] + acc[1]) + f(acc[2] + acc[3])));

/**
 * References for the scalar (W = 1) and vec4 (W = 4) entries: element j of a row accumulates in lane
 * j % W, as the vec4 accumulators do; everything else is elementwise and identical.
 */
const CONSTS = ['ROWS', 'D'] as const;
const elements = (c: Consts): number => c.ROWS * c.D;
const width = (c: Consts): number => c.D;
const stats = (c: Consts): number => 2 * c.ROWS;

function entries(W: 1 | 4) {
  return {
    forward: {
      bindings: ['x', 'gamma', 'beta', 'out', 'stats'] as const,
      consts: CONSTS,
      fconsts: ['EPS'] as const,
      sizes: { x: elements, gamma: width, beta: width, out: elements, stats },
      grid: (c) => grid1d(c.ROWS, WG),
      reference(c, fc, { x: X, gamma: Gamma, beta: Beta, out: Out, stats: Stats }) {
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
      bindings: ['x', 'gamma', 'g', 'out', 'statsIn'] as const,
      consts: CONSTS,
      sizes: { x: elements, gamma: width, g: elements, out: elements, statsIn: stats },
      grid: (c) => grid1d(c.ROWS, WG),
      reference(c, _fc, { x: X, gamma: Gamma, g: G, out: Out, statsIn: Stats }) {
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
      bindings: ['x', 'g', 'out', 'statsIn', 'out2'] as const,
      consts: CONSTS,
      sizes: { x: elements, g: elements, out: width, statsIn: stats, out2: width },
      grid: (c) => grid1d(c.D / W, WGP),
      reference(c, _fc, { x: X, g: G, out: Out, statsIn: Stats, out2: Out2 }) {
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
  } satisfies Record<string, EntrySpec>;
}

const scalar = entries(1);
const vec4 = entries(4);

export const layernorm = defineFamily({
  name: 'layernorm',
  // Rows of a multiple of 4 run the vec4 entries, which read the same bindings as vec4 arrays. The
  // forward writes mean and rstd per row to stats; the backward entries read them back (statsIn).
  // backward_params writes dgamma to out and dbeta to out2.
  slots: {
    x: read(0, 'X', 'X4'),
    gamma: read(1, 'Gamma', 'Gamma4'),
    beta: read(2, 'Beta', 'Beta4'),
    g: read(3, 'G', 'G4'),
    out: readWrite(4, 'Out', 'Out4'),
    stats: readWrite(5, 'Stats'),
    statsIn: read(5, 'StatsIn'),
    out2: readWrite(6, 'Out2', 'Out24'),
  },
  fdefaults: { EPS: 1e-5 },
  entries: {
    forward: scalar.forward,
    backward_x: scalar.backward_x,
    backward_params: scalar.backward_params,
    forward4: vec4.forward,
    backward_x4: vec4.backward_x,
    backward_params4: vec4.backward_params,
  },
});
