import { defineFamily, grid1d, read, readWrite } from '../kernel.ts';
import { span6 } from './elementwise.ts';

const WG = 64;
const f = Math.fround;

export const reduce = defineFamily({
  name: 'reduce',
  slots: { x: read(0, 'X'), out: readWrite(1, 'Out') },
  entries: {
    sum: {
      bindings: ['x', 'out'],
      consts: ['NOUT', 'RTOT', 'O0', 'R0', 'S0', 'O1', 'R1', 'S1', 'O2', 'R2', 'S2', 'O3', 'R3', 'S3', 'O4', 'R4', 'S4', 'O5', 'R5', 'S5'],
      sizes: {
        // One past the largest offset read: the kept and the reduced dimensions share the strides S.
        x: (c) => {
          const extent = [c.O0 + c.R0, c.O1 + c.R1, c.O2 + c.R2, c.O3 + c.R3, c.O4 + c.R4, c.O5 + c.R5].map((n) => n - 1);
          return c.NOUT === 0 || c.RTOT === 0 ? 0 : span6(1, extent, [c.S0, c.S1, c.S2, c.S3, c.S4, c.S5]);
        },
        out: (c) => c.NOUT,
      },
      grid: (c) => grid1d(c.NOUT, WG),
      reference(c, _fc, { x: X, out: Out }) {
        const od = [c.O0, c.O1, c.O2, c.O3, c.O4, c.O5];
        const rd = [c.R0, c.R1, c.R2, c.R3, c.R4, c.R5];
        const st = [c.S0, c.S1, c.S2, c.S3, c.S4, c.S5];
        for (let o = 0; o < c.NOUT; o++) {
          let rem = o;
          let base = 0;
          for (let d = 5; d >= 0; d--) {
            base += (rem % od[d]) * st[d];
            rem = Math.floor(rem / od[d]);
          }
          const acc = [0, 0, 0, 0];
          for (let r = 0; r < c.RTOT; r++) {
            let rr = r;
            let off = base;
            for (let d = 5; d >= 0; d--) {
              off += (rr % rd[d]) * st[d];
              rr = Math.floor(rr / rd[d]);
            }
            acc[r & 3] = f(acc[r & 3] + X[off]);
          }
          Out[o] = f(f(acc[0] + acc[1]) + f(acc[2] + acc[3]));
        }
      },
    },
  },
});
