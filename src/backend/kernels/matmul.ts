import type { Consts } from '../backend.ts';
import { defineFamily, read, readWrite } from '../kernel.ts';
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

const CONSTS = ['BATCH', 'M', 'N', 'K', 'TA', 'TB', 'HAS_BIAS', 'ACT', 'SAVE_PRE', 'A_BSTRIDE', 'B_BSTRIDE'] as const;
const BINDINGS = ['a', 'b', 'bias?', 'out', 'pre?'] as const;
const sizes = {
  a: (c: Consts) => (c.BATCH - 1) * c.A_BSTRIDE + c.M * c.K,
  b: (c: Consts) => (c.BATCH - 1) * c.B_BSTRIDE + c.K * c.N,
  bias: (c: Consts) => (c.HAS_BIAS ? c.N : 0),
  out: (c: Consts) => c.BATCH * c.M * c.N,
  pre: (c: Consts) => (c.SAVE_PRE ? c.BATCH * c.M * c.N : 0),
};

export const matmul = defineFamily({
  name: 'matmul',
  // C = act(A B + bias), Z the pre-activation; the vec4 entry reads the same bindings as vec4 arrays.
  slots: {
    a: read(0, 'A', 'A4'),
    b: read(1, 'B', 'B4'),
    bias: read(2, 'bias'),
    out: readWrite(3, 'C', 'C4'),
    pre: readWrite(4, 'Z', 'Z4'),
  },
  entries: {
    main: {
      bindings: BINDINGS,
      consts: CONSTS,
      sizes,
      grid: (c) => [Math.ceil(c.N / (TILE * WG)), Math.ceil(c.M / (TILE * WG)), c.BATCH],
      reference: (c, _f, b) => reference(c, b.a, b.b, b.bias, b.out, b.pre),
    },
    main_vec4: {
      bindings: BINDINGS,
      consts: CONSTS,
      sizes,
      grid: (c) => [Math.ceil(c.N / 64), Math.ceil(c.M / 64), c.BATCH],
      reference: (c, _f, b) => reference(c, b.a, b.b, b.bias, b.out, b.pre),
    },
  },
});
