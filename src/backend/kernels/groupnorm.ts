import { grid1d, MAX_GROUPS, type KernelFamily } from '../kernel.ts';

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

export const groupnorm: KernelFamily = {
  name: 'groupnorm',
  fdefaults: { EPS: 1e-5 },
  entries: {
    stats: {
      grid: (c) => perWorkgroup(c.B * c.NG),
      reference(c, fc, [X, , , , Stats]) {
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
      grid: (c) => grid1d(c.B * c.C * c.S, WG),
      reference(c, _fc, [X, Gamma, Beta, , Stats, , Out]) {
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
      grid: (c) => perWorkgroup(c.B * c.C),
      reference(c, _fc, [X, , , Gr, Stats, Sums]) {
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
      grid: (c) => grid1d(c.C, WG),
      reference(c, _fc, [, , , , , Sums, Out, Coef]) {
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
      grid: (c) => grid1d(c.B * c.NG, WG),
      reference(c, _fc, [, Gamma, , , , Sums, , Coef]) {
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
      grid: (c) => grid1d(c.B * c.C * c.S, WG),
      reference(c, _fc, [X, Gamma, , Gr, Stats, , Out, Coef]) {
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
};
