import { asI32, grid1d, type KernelFamily } from '../kernel.ts';

const WG = 64;
const f = Math.fround;
const labelOf = (labels: Int32Array, i: number, C: number) => Math.min(Math.max(labels[i], 0), C - 1);

export const losses: KernelFamily = {
  name: 'losses',
  defaults: { N: 1, C: 1, NE: 1 },
  fdefaults: { SCALE_INV: 1 },
  entries: {
    ce_forward: {
      grid: (c) => grid1d(c.N, WG),
      reference(c, _f, [X, L, , Out, Out2]) {
        const { N, C } = c;
        const labels = asI32(L);
        for (let i = 0; i < N; i++) {
          const b = i * C;
          let m = X[b];
          for (let j = 1; j < C; j++) m = Math.max(m, X[b + j]);
          let s = 0;
          for (let j = 0; j < C; j++) s = f(s + f(Math.exp(X[b + j] - m)));
          const lse = f(m + Math.log(s));
          Out[i] = f(lse - X[b + labelOf(labels, i, C)]);
          Out2[i] = lse;
        }
      },
    },
    ce_backward: {
      grid: (c) => grid1d(c.N * c.C, WG),
      reference(c, _f, [X, L, Lse, Out, G]) {
        const { N, C } = c;
        const labels = asI32(L);
        for (let e = 0; e < N * C; e++) {
          const i = Math.floor(e / C);
          let p = f(Math.exp(X[e] - Lse[i]));
          if (e % C === labelOf(labels, i, C)) p = f(p - 1);
          Out[e] = f(f(p * G[0]) / N);
        }
      },
    },
    bce_forward: {
      grid: (c) => grid1d(c.NE, WG),
      reference(c, _f, [X, , T, Out]) {
        for (let e = 0; e < c.NE; e++) {
          const x = X[e];
          Out[e] = f(Math.max(x, 0) - x * T[e] + Math.log(1 + Math.exp(-Math.abs(x))));
        }
      },
    },
    bce_backward: {
      grid: (c) => grid1d(c.NE, WG),
      reference(c, fc, [X, , T, Out, G]) {
        for (let e = 0; e < c.NE; e++) {
          const x = X[e];
          const s = x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
          Out[e] = f(f(f(s - T[e]) * G[0]) * fc.SCALE_INV);
        }
      },
    },
  },
};
