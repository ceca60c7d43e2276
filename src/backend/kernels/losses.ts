import { asI32, grid1d, type KernelFamily } from '../kernel.ts';
import type { Consts } from '../backend.ts';

/** Invocations per workgroup; also the number of loss terms each forward partial sum covers. */
export const LOSS_WG = 64;
const WG = LOSS_WG;
const f = Math.fround;

/** Partial sums a forward entry writes for `n` loss terms: one per launched workgroup. */
export function lossPartials(n: number): number {
  const [x, y, z] = grid1d(n, WG);
  return x * y * z;
}

const labelOf = (labels: Int32Array, i: number, C: number): number => Math.min(Math.max(labels[i], 0), C - 1);

/** The WGSL tree: red[l] += red[l + s] for s = WG/2, WG/4, ..., 1 (Float32Array stores round to f32). */
function tree(red: Float32Array): number {
  for (let s = red.length >> 1; s > 0; s >>= 1) for (let l = 0; l < s; l++) red[l] = red[l] + red[l + s];
  return red[0];
}

/** Workgroup partial sums of term(i) for i < n, as the forward entries write them into Out. */
function partials(n: number, Out: Float32Array, term: (i: number) => number): void {
  const red = new Float32Array(WG);
  const np = lossPartials(n);
  for (let w = 0; w < np; w++) {
    for (let l = 0; l < WG; l++) {
      const i = w * WG + l;
      red[l] = i < n ? term(i) : 0;
    }
    Out[w] = tree(red);
  }
}

function sigmoid(x: number): number {
  if (x >= 0) return f(1 / f(1 + f(Math.exp(-x))));
  const z = f(Math.exp(x));
  return f(z / f(1 + z));
}

const perElement = (c: Consts) => grid1d(c.NE, WG);

export const losses: KernelFamily = {
  name: 'losses',
  defaults: { N: 1, C: 1, NE: 1, NP: 1 },
  fdefaults: { SCALE: 1 },
  entries: {
    ce_forward: {
      grid: (c) => grid1d(c.N, WG),
      reference(c, _f, [X, L, , , , Out, Lse]) {
        const { N, C } = c;
        const labels = asI32(L);
        partials(N, Out, (i) => {
          const b = i * C;
          let m = X[b];
          for (let j = 1; j < C; j++) m = Math.max(m, X[b + j]);
          let s = 0;
          for (let j = 0; j < C; j++) s = f(s + f(Math.exp(f(X[b + j] - m))));
          const lse = f(m + f(Math.log(s)));
          Lse[i] = lse;
          return f(lse - X[b + labelOf(labels, i, C)]);
        });
      },
    },
    bce_forward: {
      grid: perElement,
      reference(c, _f, [X, , T, , , Out]) {
        partials(c.NE, Out, (e) => {
          const x = X[e];
          return f(f(Math.max(x, 0) - f(x * T[e])) + f(Math.log(f(1 + f(Math.exp(-Math.abs(x)))))));
        });
      },
    },
    mse_forward: {
      grid: perElement,
      reference(c, _f, [X, , T, , , Out]) {
        partials(c.NE, Out, (e) => {
          const d = f(X[e] - T[e]);
          return f(d * d);
        });
      },
    },
    finish: {
      grid: () => [1, 1, 1],
      reference(c, fc, [, , , P, , Out]) {
        const red = new Float32Array(WG);
        for (let l = 0; l < WG; l++) {
          let acc = 0;
          for (let i = l; i < c.NP; i += WG) acc = f(acc + P[i]);
          red[l] = acc;
        }
        Out[0] = f(tree(red) * f(fc.SCALE));
      },
    },
    ce_backward: {
      grid: (c) => grid1d(c.N * c.C, WG),
      reference(c, fc, [X, L, , Lse, Gs, Out]) {
        const { N, C } = c;
        const labels = asI32(L);
        for (let e = 0; e < N * C; e++) {
          const i = Math.floor(e / C);
          let p = f(Math.exp(f(X[e] - Lse[i])));
          if (e % C === labelOf(labels, i, C)) p = f(p - 1);
          Out[e] = f(f(p * Gs[0]) * f(fc.SCALE));
        }
      },
    },
    bce_backward: {
      grid: perElement,
      reference(c, fc, [X, , T, , Gs, Out]) {
        for (let e = 0; e < c.NE; e++) Out[e] = f(f(f(sigmoid(X[e]) - T[e]) * Gs[0]) * f(fc.SCALE));
      },
    },
    mse_backward: {
      grid: perElement,
      reference(c, fc, [X, , T, , Gs, Out]) {
        for (let e = 0; e < c.NE; e++) Out[e] = f(f(f(X[e] - T[e]) * Gs[0]) * f(fc.SCALE));
      },
    },
    mse_backward2: {
      grid: perElement,
      reference(c, fc, [X, , T, , Gs, Out, Out2]) {
        for (let e = 0; e < c.NE; e++) {
          const d = f(f(f(X[e] - T[e]) * Gs[0]) * f(fc.SCALE));
          Out[e] = d;
          Out2[e] = -d;
        }
      },
    },
  },
};
