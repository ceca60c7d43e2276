import { grid1d, type KernelFamily } from '../kernel.ts';

const WG = 64;
const f = Math.fround;

function rowMax(X: Float32Array, b: number, D: number): number {
  let m = X[b];
  for (let j = 1; j < D; j++) m = Math.max(m, X[b + j]);
  return m;
}

export const softmax: KernelFamily = {
  name: 'softmax',
  entries: {
    forward: {
      grid: (c) => grid1d(c.ROWS, WG),
      reference(c, _f, [X, , Out]) {
        const { ROWS, D } = c;
        for (let r = 0; r < ROWS; r++) {
          const b = r * D;
          const m = rowMax(X, b, D);
          let s = 0;
          for (let j = 0; j < D; j++) {
            const e = f(Math.exp(f(X[b + j] - m)));
            Out[b + j] = e;
            s = f(s + e);
          }
          const inv = f(1 / s);
          for (let j = 0; j < D; j++) Out[b + j] = f(Out[b + j] * inv);
        }
      },
    },
    log_forward: {
      grid: (c) => grid1d(c.ROWS, WG),
      reference(c, _f, [X, , Out]) {
        const { ROWS, D } = c;
        for (let r = 0; r < ROWS; r++) {
          const b = r * D;
          const m = rowMax(X, b, D);
          let s = 0;
          for (let j = 0; j < D; j++) s = f(s + f(Math.exp(f(X[b + j] - m))));
          const ls = f(Math.log(s));
          for (let j = 0; j < D; j++) Out[b + j] = f(f(X[b + j] - m) - ls);
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
    log_backward: {
      grid: (c) => grid1d(c.ROWS, WG),
      reference(c, _f, [L, G, Out]) {
        const { ROWS, D } = c;
        for (let r = 0; r < ROWS; r++) {
          const b = r * D;
          let sg = 0;
          for (let j = 0; j < D; j++) sg = f(sg + G[b + j]);
          for (let j = 0; j < D; j++) Out[b + j] = f(G[b + j] - f(f(Math.exp(L[b + j])) * sg));
        }
      },
    },
  },
};
