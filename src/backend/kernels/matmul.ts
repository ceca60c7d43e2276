import type { KernelFamily } from '../kernel.ts';
import { gelu } from './activations.ts';

const TILE = 4;
const WG = 8;

export const matmul: KernelFamily = {
  name: 'matmul',
  entries: {
    main: {
      grid: (c) => [Math.ceil(c.N / (TILE * WG)), Math.ceil(c.M / (TILE * WG)), c.BATCH],
      reference(c, _f, [A, B, bias, C, Z]) {
        const { BATCH, M, N, K, TA, TB, HAS_BIAS, ACT, SAVE_PRE, A_BSTRIDE, B_BSTRIDE } = c;
        for (let b = 0; b < BATCH; b++) {
          const ab = b * A_BSTRIDE;
          const bb = b * B_BSTRIDE;
          for (let m = 0; m < M; m++) {
            for (let n = 0; n < N; n++) {
              let s = 0;
              for (let k = 0; k < K; k++) {
                const a = TA ? A[ab + k * M + m] : A[ab + m * K + k];
                const w = TB ? B[bb + n * K + k] : B[bb + k * N + n];
                s = Math.fround(s + Math.fround(a * w));
              }
              let v = HAS_BIAS ? s + bias[n] : s;
              const o = b * M * N + m * N + n;
              if (SAVE_PRE) Z[o] = v;
              if (ACT === 1) v = gelu(v);
              else if (ACT === 2) v = Math.max(v, 0);
              C[o] = v;
            }
          }
        }
      },
    },
  },
};
