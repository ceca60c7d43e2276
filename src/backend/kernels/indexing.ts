import type { Consts } from '../backend.ts';
import { asI32, grid1d, type KernelFamily } from '../kernel.ts';

const WG = 256;
const f = Math.fround;
/** Out-of-range indices clamp to the nearest row, as `row_of` in the WGSL. */
const rowOf = (idx: Int32Array, n: number, R: number) => Math.min(Math.max(idx[n], 0), R - 1);

const unused: Consts = {
  N: 0, R: 1, E: 1, NOUT: 0,
  O0: 1, O1: 1, O2: 1, O3: 1, O4: 1, O5: 1, S0: 0, S1: 0, S2: 0, S3: 0, S4: 0, S5: 0,
  OUTER: 1, A: 1, L: 1, START: 0, INNER: 1,
  A0: 0, A1: 0, A2: 0, A3: 0, ATOT: 1,
};

export const indexing: KernelFamily = {
  name: 'indexing',
  defaults: unused,
  entries: {
    gather: {
      grid: (c) => grid1d(c.N * c.E, WG),
      reference(c, _f, [Table, , , , Index, Out]) {
        const idx = asI32(Index);
        for (let i = 0; i < c.N * c.E; i++) Out[i] = Table[rowOf(idx, Math.floor(i / c.E), c.R) * c.E + (i % c.E)];
      },
    },
    gather_backward: {
      grid: (c) => grid1d(c.R * c.E, WG),
      reference(c, _f, [G, , , , Index, Out]) {
        const idx = asI32(Index);
        for (let i = 0; i < c.R * c.E; i++) {
          const r = Math.floor(i / c.E);
          const e = i % c.E;
          let acc = 0;
          for (let n = 0; n < c.N; n++) if (rowOf(idx, n, c.R) === r) acc = f(acc + G[n * c.E + e]);
          Out[i] = acc;
        }
      },
    },
    transpose: {
      grid: (c) => grid1d(c.NOUT, WG),
      reference(c, _f, [X, , , , , Out]) {
        const dims = [c.O0, c.O1, c.O2, c.O3, c.O4, c.O5];
        const st = [c.S0, c.S1, c.S2, c.S3, c.S4, c.S5];
        for (let i = 0; i < c.NOUT; i++) {
          let rem = i;
          let src = 0;
          for (let d = 5; d >= 0; d--) {
            src += (rem % dims[d]) * st[d];
            rem = Math.floor(rem / dims[d]);
          }
          Out[i] = X[src];
        }
      },
    },
    slice: {
      grid: (c) => grid1d(c.OUTER * c.L * c.INNER, WG),
      reference(c, _f, [X, , , , , Out]) {
        for (let o = 0; o < c.OUTER; o++) {
          for (let l = 0; l < c.L; l++) {
            const src = (o * c.A + c.START + l) * c.INNER;
            Out.set(X.subarray(src, src + c.INNER), (o * c.L + l) * c.INNER);
          }
        }
      },
    },
    pad: {
      grid: (c) => grid1d(c.OUTER * c.A * c.INNER, WG),
      reference(c, _f, [G, , , , , Out]) {
        Out.fill(0, 0, c.OUTER * c.A * c.INNER);
        for (let o = 0; o < c.OUTER; o++) {
          for (let l = 0; l < c.L; l++) {
            const src = (o * c.L + l) * c.INNER;
            Out.set(G.subarray(src, src + c.INNER), (o * c.A + c.START + l) * c.INNER);
          }
        }
      },
    },
    concat: {
      grid: (c) => grid1d(c.OUTER * c.ATOT * c.INNER, WG),
      reference(c, _f, [X0, X1, X2, X3, , Out]) {
        const parts = [X0, X1, X2, X3];
        const lens = [c.A0, c.A1, c.A2, c.A3];
        for (let o = 0; o < c.OUTER; o++) {
          let a = 0;
          parts.forEach((X, j) => {
            for (let l = 0; l < lens[j]; l++, a++) {
              const src = (o * lens[j] + l) * c.INNER;
              Out.set(X.subarray(src, src + c.INNER), (o * c.ATOT + a) * c.INNER);
            }
          });
        }
      },
    },
  },
};
