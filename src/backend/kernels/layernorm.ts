import { grid1d, type KernelFamily } from '../kernel.ts';

const WG = 64;
const f = Math.fround;

export const layernorm: KernelFamily = {
  name: 'layernorm',
  fdefaults: { EPS: 1e-5 },
  entries: {
    forward: {
      grid: (c) => grid1d(c.ROWS, WG),
      reference(c, fc, [X, Gamma, Beta, , Out, Mean, Rstd]) {
        const { ROWS, D } = c;
        for (let r = 0; r < ROWS; r++) {
          const b = r * D;
          let s = 0;
          for (let j = 0; j < D; j++) s = f(s + X[b + j]);
          const mu = f(s / D);
          let v = 0;
          for (let j = 0; j < D; j++) {
            const d = f(X[b + j] - mu);
            v = f(v + f(d * d));
          }
          const rstd = f(1 / Math.sqrt(f(v / D) + fc.EPS));
          for (let j = 0; j < D; j++) Out[b + j] = f(f(f(X[b + j] - mu) * rstd) * Gamma[j] + Beta[j]);
          Mean[r] = mu;
          Rstd[r] = rstd;
        }
      },
    },
    backward_x: {
      grid: (c) => grid1d(c.ROWS, WG),
      reference(c, _fc, [X, Gamma, , G, Out, Mean, Rstd]) {
        const { ROWS, D } = c;
        for (let r = 0; r < ROWS; r++) {
          const b = r * D;
          const mu = Mean[r];
          const rstd = Rstd[r];
          let a = 0;
          let bb = 0;
          for (let j = 0; j < D; j++) {
            const dxh = f(G[b + j] * Gamma[j]);
            a = f(a + dxh);
            bb = f(bb + f(dxh * f(f(X[b + j] - mu) * rstd)));
          }
          a = f(a / D);
          bb = f(bb / D);
          for (let j = 0; j < D; j++) {
            const xh = f(f(X[b + j] - mu) * rstd);
            Out[b + j] = f(rstd * f(f(G[b + j] * Gamma[j]) - a - f(xh * bb)));
          }
        }
      },
    },
    backward_params: {
      grid: (c) => grid1d(c.D, WG),
      reference(c, _fc, [X, , , G, Out, Mean, Rstd, Out2]) {
        const { ROWS, D } = c;
        for (let j = 0; j < D; j++) {
          let dg = 0;
          let db = 0;
          for (let r = 0; r < ROWS; r++) {
            const g = G[r * D + j];
            dg = f(dg + f(f(g * f(X[r * D + j] - Mean[r])) * Rstd[r]));
            db = f(db + g);
          }
          Out[j] = dg;
          Out2[j] = db;
        }
      },
    },
  },
};
