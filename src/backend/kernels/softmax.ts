import { grid1d, type KernelFamily } from '../kernel.ts';

const WG = 64;
const f = Math.fround;

export const softmax: KernelFamily = {
  name: 'softmax',
  entries: {
    forward: {
      grid: (c) => grid1d(c.ROWS, WG),
      reference(c, _f, [X, , Out]) {
        const { ROWS, D } = c;
        for (let r = 0; r < ROWS; r++) {
          const b = r * D;
          let m = X[b];
          for (let j = 1; j < D; j++) m = Math.max(m, X[b + j]);
          let s = 0;
          for (let j = 0; j < D; j++) {
            const e = f(Math.exp(X[b + j] - m));
            Out[b + j] = e;
            s = f(s + e);
          }
          const inv = f(1 / s);
          for (let j = 0; j < D; j++) Out[b + j] = f(Out[b + j] * inv);
        }
      },
    },
    backward: {
      grid: (c) => grid1d(c.ROWS, WG),
      reference(c, _f, [Y, G, Out]) {
        const { ROWS, D } = c;
        for (let r = 0; r < ROWS; r++) {
          const b = r * D;
          let dot = 0;
          for (let j = 0; j < D; j++) dot = f(dot + f(G[b + j] * Y[b + j]));
          for (let j = 0; j < D; j++) Out[b + j] = f(Y[b + j] * f(G[b + j] - dot));
        }
      },
    },
  },
};
