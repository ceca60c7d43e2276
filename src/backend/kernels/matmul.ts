import type { Consts } from '../backend.ts';
import type { KernelFamily } from '../kernel.ts';
import { gelu } from './activations.ts';

const TILE = 4;
const WG = 8;

/** Whether the vec4 variant can run these shapes (every streamed dimension a multiple of 4). */
export function matmulVec4Ok(M: number, N: number, K: number, transA: boolean): boolean {
  return N % 4 === 0 && K % 4 === 0 && N >= 8 && M >= 8 && (!transA || M % 4 === 0);
}

/** Plain triple loop, accumulating in f32 in k order like the kernels. */
function reference(c: Consts, A: Float32Array, B: Float32Array, bias: Float32Array, C: Float32Array, Z: Float32Array): void {
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
}

export const matmul: KernelFamily = {
  name: 'matmul',
  entries: {
    main: {
      grid: (c) => [Math.ceil(c.N / (TILE * WG)), Math.ceil(c.M / (TILE * WG)), c.BATCH],
      reference: (c, _f, [A, B, bias, C, Z]) => reference(c, A, B, bias, C, Z),
    },
    main_vec4: {
      grid: (c) => [Math.ceil(c.N / 64), Math.ceil(c.M / 64), c.BATCH],
      reference: (c, _f, [A, B, bias, C, Z]) => reference(c, A, B, bias, C, Z),
    },
  },
};
