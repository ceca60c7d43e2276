import type { Consts } from '../backend.ts';
import { asI32, defineFamily, grid1d, read, readWrite } from '../kernel.ts';
import { span6 } from './elementwise.ts';

const WG = 256;
const f = Math.fround;
/** Out-of-range indices clamp to the nearest row, as `row_of` in the WGSL. */
const rowOf = (idx: Int32Array, n: number, R: number) => Math.min(Math.max(idx[n], 0), R - 1);

const AROUND = ['OUTER', 'A', 'INNER', 'START', 'L'] as const;
const part =
  (length: (c: Consts) => number) =>
  (c: Consts): number =>
    c.OUTER * length(c) * c.INNER;

export const indexing = defineFamily({
  name: 'indexing',
  // x: the one input (a table, a gradient, a tensor to copy); concat reads up to four, x0 .. x3.
  slots: {
    x: read(0, 'X0'),
    x0: read(0, 'X0'),
    x1: read(1, 'X1'),
    x2: read(2, 'X2'),
    x3: read(3, 'X3'),
    index: read(4, 'Index'),
    out: readWrite(5, 'Out'),
  },
  // Each entry names only its own constants; the file names all of them.
  defaults: {
    N: 0,
    R: 1,
    E: 1,
    NOUT: 0,
    O0: 1,
    O1: 1,
    O2: 1,
    O3: 1,
    O4: 1,
    O5: 1,
    S0: 0,
    S1: 0,
    S2: 0,
    S3: 0,
    S4: 0,
    S5: 0,
    OUTER: 1,
    A: 1,
    L: 1,
    START: 0,
    INNER: 1,
    A0: 0,
    A1: 0,
    A2: 0,
    A3: 0,
    ATOT: 1,
  },
  entries: {
    gather: {
      bindings: ['x', 'index', 'out'],
      consts: ['N', 'R', 'E'],
      sizes: { x: (c) => c.R * c.E, index: (c) => c.N, out: (c) => c.N * c.E },
      grid: (c) => grid1d(c.N * c.E, WG),
      reference(c, _f, { x: Table, index: Index, out: Out }) {
        const idx = asI32(Index);
        for (let i = 0; i < c.N * c.E; i++) Out[i] = Table[rowOf(idx, Math.floor(i / c.E), c.R) * c.E + (i % c.E)];
      },
    },
    gather_backward: {
      bindings: ['x', 'index', 'out'],
      consts: ['N', 'R', 'E'],
      sizes: { x: (c) => c.N * c.E, index: (c) => c.N, out: (c) => c.R * c.E },
      grid: (c) => grid1d(c.R * c.E, WG),
      reference(c, _f, { x: G, index: Index, out: Out }) {
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
      bindings: ['x', 'out'],
      consts: ['NOUT', 'O0', 'S0', 'O1', 'S1', 'O2', 'S2', 'O3', 'S3', 'O4', 'S4', 'O5', 'S5'],
      sizes: { x: (c) => span6(c.NOUT, [c.O0, c.O1, c.O2, c.O3, c.O4, c.O5], [c.S0, c.S1, c.S2, c.S3, c.S4, c.S5]), out: (c) => c.NOUT },
      grid: (c) => grid1d(c.NOUT, WG),
      reference(c, _f, { x: X, out: Out }) {
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
      bindings: ['x', 'out'],
      consts: AROUND,
      sizes: { x: (c) => c.OUTER * c.A * c.INNER, out: (c) => c.OUTER * c.L * c.INNER },
      grid: (c) => grid1d(c.OUTER * c.L * c.INNER, WG),
      reference(c, _f, { x: X, out: Out }) {
        for (let o = 0; o < c.OUTER; o++) {
          for (let l = 0; l < c.L; l++) {
            const src = (o * c.A + c.START + l) * c.INNER;
            Out.set(X.subarray(src, src + c.INNER), (o * c.L + l) * c.INNER);
          }
        }
      },
    },
    pad: {
      bindings: ['x', 'out'],
      consts: AROUND,
      sizes: { x: (c) => c.OUTER * c.L * c.INNER, out: (c) => c.OUTER * c.A * c.INNER },
      grid: (c) => grid1d(c.OUTER * c.A * c.INNER, WG),
      reference(c, _f, { x: G, out: Out }) {
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
      bindings: ['x0', 'x1', 'x2?', 'x3?', 'out'],
      consts: ['OUTER', 'INNER', 'ATOT', 'A0', 'A1', 'A2', 'A3'],
      sizes: { x0: part((c) => c.A0), x1: part((c) => c.A1), x2: part((c) => c.A2), x3: part((c) => c.A3), out: part((c) => c.ATOT) },
      grid: (c) => grid1d(c.OUTER * c.ATOT * c.INNER, WG),
      reference(c, _f, { x0: X0, x1: X1, x2: X2, x3: X3, out: Out }) {
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
});
