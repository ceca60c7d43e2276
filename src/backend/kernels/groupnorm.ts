import type { Consts } from '../backend.ts';
import { defineFamily, grid1d, MAX_GROUPS, read, readWrite } from '../kernel.ts';

const WG = 64;
const f = Math.fround;

/** One workgroup per item, folded into x/y like grid1d. */
function perWorkgroup(n: number): [number, number, number] {
  const groups = Math.max(1, n);
  return groups <= MAX_GROUPS ? [groups, 1, 1] : [MAX_GROUPS, Math.ceil(groups / MAX_GROUPS), 1];
}

/** What WG threads striding over `n` values and then a tree reduction compute, in the same order. */
function workgroupSum(n: number, value: (i: number) => number): number {
  const part = new Array<number>(WG).fill(0);
  for (let l = 0; l < WG; l++) for (let i = l; i < n; i += WG) part[l] = f(part[l] + value(i));
  for (let s = WG / 2; s > 0; s >>= 1) for (let l = 0; l < s; l++) part[l] = f(part[l] + part[l + s]);
  return part[0];
}

const CONSTS = ['B', 'C', 'NG', 'CG', 'S'] as const;
const elements = (c: Consts): number => c.B * c.C * c.S;
const channels = (c: Consts): number => c.C;
const perGroup = (c: Consts): number => 2 * c.B * c.NG;
const perChannel = (c: Consts): number => 2 * c.B * c.C;

export const groupnorm = defineFamily({
  name: 'groupnorm',
  // Stats: mean and rstd per (sample, group); Sums: per (sample, channel) sums of g and g * xhat;
  // Coef: per-group backward coefficients, or dbeta in param_grads (which writes dgamma to Out).
  slots: {
    x: read(0, 'X'),
    gamma: read(1, 'Gamma'),
    beta: read(2, 'Beta'),
    g: read(3, 'Gr'),
    stats: readWrite(4, 'Stats'),
    sums: readWrite(5, 'Sums'),
    out: readWrite(6, 'Out'),
    coef: readWrite(7, 'Coef'),
  },
  fdefaults: { EPS: 1e-5 },
  entries: {
    stats: {
      bindings: ['x', 'stats'],
      consts: CONSTS,
      fconsts: ['EPS'],
      sizes: { x: elements, stats: perGroup },
      grid: (c) => perWorkgroup(c.B * c.NG),
      reference(c, fc, { x: X, stats: Stats }) {
        const n = c.CG * c.S;
        for (let grp = 0; grp < c.B * c.NG; grp++) {
          const base = grp * n;
          const mu = f(workgroupSum(n, (i) => X[base + i]) / n);
          const v = workgroupSum(n, (i) => {
            const d = f(X[base + i] - mu);
            return f(d * d);
          });
          Stats[grp] = mu;
          Stats[c.B * c.NG + grp] = f(1 / Math.sqrt(f(f(v / n) + fc.EPS)));
        }
      },
    },
    apply: {
      bindings: ['x', 'gamma', 'beta', 'stats', 'out'],
      consts: CONSTS,
      sizes: { x: elements, gamma: channels, beta: channels, stats: perGroup, out: elements },
      grid: (c) => grid1d(c.B * c.C * c.S, WG),
      reference(c, _fc, { x: X, gamma: Gamma, beta: Beta, stats: Stats, out: Out }) {
        const bng = c.B * c.NG;
        for (let e = 0; e < c.B * c.C * c.S; e++) {
          const bc = Math.floor(e / c.S);
          const ch = bc % c.C;
          const grp = Math.floor(bc / c.C) * c.NG + Math.floor(ch / c.CG);
          Out[e] = f(f(f(f(X[e] - Stats[grp]) * Stats[bng + grp]) * Gamma[ch]) + Beta[ch]);
        }
      },
    },
    channel_sums: {
      bindings: ['x', 'g', 'stats', 'sums'],
      consts: CONSTS,
      sizes: { x: elements, g: elements, stats: perGroup, sums: perChannel },
      grid: (c) => perWorkgroup(c.B * c.C),
      reference(c, _fc, { x: X, g: Gr, stats: Stats, sums: Sums }) {
        const bng = c.B * c.NG;
        for (let bc = 0; bc < c.B * c.C; bc++) {
          const grp = Math.floor(bc / c.C) * c.NG + Math.floor((bc % c.C) / c.CG);
          const mu = Stats[grp];
          const rstd = Stats[bng + grp];
          const base = bc * c.S;
          Sums[bc] = workgroupSum(c.S, (i) => Gr[base + i]);
          Sums[c.B * c.C + bc] = workgroupSum(c.S, (i) => f(Gr[base + i] * f(f(X[base + i] - mu) * rstd)));
        }
      },
    },
    param_grads: {
      bindings: ['sums', 'out', 'coef'],
      consts: CONSTS,
      sizes: { sums: perChannel, out: channels, coef: channels },
      grid: (c) => grid1d(c.C, WG),
      reference(c, _fc, { sums: Sums, out: Out, coef: Coef }) {
        for (let ch = 0; ch < c.C; ch++) {
          let dg = 0;
          let db = 0;
          for (let b = 0; b < c.B; b++) {
            db = f(db + Sums[b * c.C + ch]);
            dg = f(dg + Sums[c.B * c.C + b * c.C + ch]);
          }
          Out[ch] = dg;
          Coef[ch] = db;
        }
      },
    },
    group_coeffs: {
      bindings: ['gamma', 'sums', 'coef'],
      consts: CONSTS,
      sizes: { gamma: channels, sums: perChannel, coef: perGroup },
      grid: (c) => grid1d(c.B * c.NG, WG),
      reference(c, _fc, { gamma: Gamma, sums: Sums, coef: Coef }) {
        const n = c.CG * c.S;
        for (let grp = 0; grp < c.B * c.NG; grp++) {
          const c0 = (grp % c.NG) * c.CG;
          const bc0 = Math.floor(grp / c.NG) * c.C + c0;
          let m1 = 0;
          let m2 = 0;
          for (let j = 0; j < c.CG; j++) {
            m1 = f(m1 + f(Gamma[c0 + j] * Sums[bc0 + j]));
            m2 = f(m2 + f(Gamma[c0 + j] * Sums[c.B * c.C + bc0 + j]));
          }
          Coef[grp] = f(m1 / n);
          Coef[c.B * c.NG + grp] = f(m2 / n);
        }
      },
    },
    backward_x: {
      bindings: ['x', 'gamma', 'g', 'stats', 'out', 'coef'],
      consts: CONSTS,
      sizes: { x: elements, gamma: channels, g: elements, stats: perGroup, out: elements, coef: perGroup },
      grid: (c) => grid1d(c.B * c.C * c.S, WG),
      reference(c, _fc, { x: X, gamma: Gamma, g: Gr, stats: Stats, out: Out, coef: Coef }) {
        const bng = c.B * c.NG;
        for (let e = 0; e < c.B * c.C * c.S; e++) {
          const bc = Math.floor(e / c.S);
          const ch = bc % c.C;
          const grp = Math.floor(bc / c.C) * c.NG + Math.floor(ch / c.CG);
          const rstd = Stats[bng + grp];
          const xh = f(f(X[e] - Stats[grp]) * rstd);
          Out[e] = f(rstd * f(f(f(Gr[e] * Gamma[ch]) - Coef[grp]) - f(xh * Coef[bng + grp])));
        }
      },
    },
  },
});
