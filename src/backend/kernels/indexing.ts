import { asI32, grid1d, type KernelFamily } from '../kernel.ts';

const WG = 64;
const f = Math.fround;
const rowOf = (idx: Int32Array, n: number, R: number) => Math.min(Math.max(idx[n], 0), R - 1);

export const indexing: KernelFamily = {
  name: 'indexing',
  entries: {
    gather: {
      grid: (c) => grid1d(c.N * c.E, WG),
      reference(c, _f, [Table, Index, , Out]) {
        const idx = asI32(Index);
        for (let i = 0; i < c.N * c.E; i++) Out[i] = Table[rowOf(idx, Math.floor(i / c.E), c.R) * c.E + (i % c.E)];
      },
    },
    gather_backward: {
      grid: (c) => grid1d(c.R * c.E, WG),
      reference(c, _f, [, Index, G, Out]) {
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
  },
};
