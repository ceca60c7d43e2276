import type { Consts } from '../backend.ts';
import { defineFamily, grid1d, read, readWrite } from '../kernel.ts';

const WG = 64;
const f = Math.fround;

function rowMax(X: Float32Array, b: number, D: number): number {
  let m = X[b];
  for (let j = 1; j < D; j++) m = Math.max(m, X[b + j]);
  return m;
}

const CONSTS = ['ROWS', 'D'] as const;
const n = (c: Consts): number => c.ROWS * c.D;

export const softmax = defineFamily({
  name: 'softmax',
  // The backward entries read the forward's output as x and the upstream gradient as g.
  slots: { x: read(0, 'X'), g: read(1, 'G'), out: readWrite(2, 'Out') },
  entries: {
    forward: {
      bindings: ['x', 'out'],
      consts: CONSTS,
      sizes: { x: n, out: n },
      grid: (c) => grid1d(c.ROWS, WG),
      reference(c, _f, { x: X, out: Out }) {
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
      bindings: ['x', 'out'],
      consts: CONSTS,
      sizes: { x: n, out: n },
      grid: (c) => grid1d(c.ROWS, WG),
      reference(c, _f, { x: X, out: Out }) {
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
      bindings: ['x', 'g', 'out'],
      consts: CONSTS,
      sizes: { x: n, g: n, out: n },
      grid: (c) => grid1d(c.ROWS, WG),
      reference(c, _f, { x: Y, g: G, out: Out }) {
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
      bindings: ['x', 'g', 'out'],
      consts: CONSTS,
      sizes: { x: n, g: n, out: n },
      grid: (c) => grid1d(c.ROWS, WG),
      reference(c, _f, { x: L, g: G, out: Out }) {
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
});
