import type { Consts, FConsts } from '../backend.ts';
import { defineFamily, grid1d, read, readWrite, type RefBuffers } from '../kernel.ts';

const f = Math.fround;
// WGSL fma(a, b, c) on f32: the product of two f32 is exact in a double, so one rounding mirrors it.
const fma = (a: number, b: number, c: number): number => f(a * b + c);

/** Widest head the kernels are specialised for. */
export const ATTENTION_MAX_DH = 128;

export interface AttentionLaunch {
  /** Rows per invocation. */
  R: number;
  /** Streamed rows staged per tile in workgroup memory. */
  T: number;
  /** Invocations per workgroup. */
  WG: number;
  /** 1: keep the loops over a head rolled (wide heads), 0: let the compiler unroll them. */
  DYN: number;
}

/**
 * Work split for `rows` rows (queries forward and for dQ, keys for dK/dV) of padded head width `dh`.
 * More rows per invocation means fewer loads per flop (lavapipe pays for every load instruction, per
 * lane) but longer shader compiles: the private arrays are fully unrolled, and LLVM's time grows
 * steeply with them (DH 32: forward R 4 compiles in about 3 s; backward R 4 in 13 s, R 2 in 5 s).
 * The backward keeps about twice the per-row state, so it gets half the rows. The workgroup is a
 * multiple of 8 invocations (the SIMD width lavapipe runs lanes in) that just covers short
 * sequences, at most 64.
 */
export function attentionLaunch(rows: number, dh: number, backward: boolean): AttentionLaunch {
  const fwdR = dh <= 16 ? 8 : dh <= 32 ? 4 : dh <= 64 ? 2 : 1;
  const R = backward ? Math.max(1, fwdR / 2) : fwdR;
  const T = dh <= 64 ? 16 : 8;
  const WG = Math.min(64, Math.max(8, Math.ceil(Math.ceil(rows / R) / 8) * 8));
  return { R, T, WG, DYN: dh > 64 ? 1 : 0 };
}

/** Dot product with the WGSL's 4 lane partial sums, added as (x + y) + (z + w). */
function dot4(a: Float32Array, ao: number, b: Float32Array, bo: number, n: number): number {
  let x = 0;
  let y = 0;
  let z = 0;
  let w = 0;
  for (let d = 0; d < n; d += 4) {
    x = fma(a[ao + d], b[bo + d], x);
    y = fma(a[ao + d + 1], b[bo + d + 1], y);
    z = fma(a[ao + d + 2], b[bo + d + 2], z);
    w = fma(a[ao + d + 3], b[bo + d + 3], w);
  }
  return f(f(x + y) + f(z + w));
}

function scaled(src: Float32Array, base: number, DH: number, SCALE: number, out: Float32Array): Float32Array {
  for (let d = 0; d < DH; d++) out[d] = f(src[base + d] * SCALE);
  return out;
}

function forward(c: Consts, fc: FConsts, { q: Q, k: K, v: V, out: O, lse: Lse }: RefBuffers): void {
  const { B, LQ, LK, H, DH, SAVE_LSE } = c;
  const HD = H * DH;
  const SCALE = f(fc.SCALE);
  const q = new Float32Array(DH);
  const acc = new Float32Array(DH);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kb0 = b * LK * HD + h * DH;
      for (let i = 0; i < LQ; i++) {
        const qb = (b * LQ + i) * HD + h * DH;
        scaled(Q, qb, DH, SCALE, q);
        acc.fill(0);
        let m = f(-3.0e38);
        let l = 0;
        for (let j = 0; j < LK; j++) {
          const kb = kb0 + j * HD;
          const s = dot4(q, 0, K, kb, DH);
          const mn = Math.max(m, s);
          const cr = f(Math.exp(f(m - mn)));
          const p = f(Math.exp(f(s - mn)));
          l = fma(l, cr, p);
          for (let d = 0; d < DH; d++) acc[d] = fma(p, V[kb + d], f(acc[d] * cr));
          m = mn;
        }
        const inv = f(1 / l);
        for (let d = 0; d < DH; d++) O[qb + d] = f(acc[d] * inv);
        if (SAVE_LSE) Lse[(b * H + h) * LQ + i] = f(m + f(Math.log(l)));
      }
    }
  }
}

function backwardQ(
  c: Consts,
  fc: FConsts,
  { q: Q, k: K, v: V, outIn: Oin, lseIn: LseIn, dOut: dO, dq: dQ, delta: Dout }: RefBuffers,
): void {
  const { B, LQ, LK, H, DH, DQ_ON } = c;
  const HD = H * DH;
  const SCALE = f(fc.SCALE);
  const q = new Float32Array(DH);
  const acc = new Float32Array(DH);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kb0 = b * LK * HD + h * DH;
      for (let i = 0; i < LQ; i++) {
        const qb = (b * LQ + i) * HD + h * DH;
        scaled(Q, qb, DH, SCALE, q);
        const di = dot4(dO, qb, Oin, qb, DH);
        const lse = LseIn[(b * H + h) * LQ + i];
        Dout[(b * H + h) * LQ + i] = di;
        if (!DQ_ON) continue;
        acc.fill(0);
        for (let j = 0; j < LK; j++) {
          const kb = kb0 + j * HD;
          const s = dot4(q, 0, K, kb, DH);
          const dp = dot4(dO, qb, V, kb, DH);
          const ds = f(f(Math.exp(f(s - lse))) * f(dp - di));
          for (let d = 0; d < DH; d++) acc[d] = fma(ds, K[kb + d], acc[d]);
        }
        for (let d = 0; d < DH; d++) dQ[qb + d] = f(acc[d] * SCALE);
      }
    }
  }
}

function backwardKV(c: Consts, fc: FConsts, { q: Q, k: K, v: V, lseIn: LseIn, dOut: dO, deltaIn: Din, dk: dK, dv: dV }: RefBuffers): void {
  const { B, LQ, LK, H, DH, DK_ON, DV_ON } = c;
  const HD = H * DH;
  const SCALE = f(fc.SCALE);
  const qs = new Float32Array(DH);
  const ak = new Float32Array(DH);
  const av = new Float32Array(DH);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const qb0 = b * LQ * HD + h * DH;
      const lb = (b * H + h) * LQ;
      for (let j = 0; j < LK; j++) {
        const kb = (b * LK + j) * HD + h * DH;
        ak.fill(0);
        av.fill(0);
        for (let i = 0; i < LQ; i++) {
          const qb = qb0 + i * HD;
          scaled(Q, qb, DH, SCALE, qs);
          const p = f(Math.exp(f(dot4(qs, 0, K, kb, DH) - LseIn[lb + i])));
          const ds = f(p * f(dot4(dO, qb, V, kb, DH) - Din[lb + i]));
          for (let d = 0; d < DH; d++) {
            if (DV_ON) av[d] = fma(p, dO[qb + d], av[d]);
            if (DK_ON) ak[d] = fma(ds, qs[d], ak[d]);
          }
        }
        if (DK_ON) dK.set(ak, kb);
        if (DV_ON) dV.set(av, kb);
      }
    }
  }
}

const HEAD = ['B', 'LQ', 'LK', 'H', 'DH', 'R', 'T', 'WG', 'DYN'] as const;
const q = (c: Consts): number => c.B * c.LQ * c.H * c.DH;
const kv = (c: Consts): number => c.B * c.LK * c.H * c.DH;
const rows = (c: Consts): number => c.B * c.H * c.LQ;
const when =
  (flag: string, n: (c: Consts) => number) =>
  (c: Consts): number =>
    c[flag] ? n(c) : 0;

export const attention = defineFamily({
  name: 'attention',
  // lse: log-sum-exp per (batch, head, query row); delta: D_i = dO_i . O_i per row, written by
  // backward_q and read by backward_kv; src/dst: repad's copy between head widths.
  slots: {
    q: read(0, 'Q'),
    k: read(1, 'K'),
    v: read(2, 'V'),
    out: readWrite(3, 'O'),
    lse: readWrite(4, 'Lse'),
    outIn: read(5, 'Oin'),
    lseIn: read(6, 'LseIn'),
    dOut: read(7, 'dO'),
    dq: readWrite(8, 'dQ'),
    delta: readWrite(9, 'Dout'),
    deltaIn: read(10, 'Din'),
    dk: readWrite(11, 'dK'),
    dv: readWrite(12, 'dV'),
    src: read(13, 'Src'),
    dst: readWrite(14, 'Dst'),
  },
  defaults: {
    B: 1,
    LQ: 1,
    LK: 1,
    H: 1,
    DH: 4,
    R: 1,
    T: 1,
    WG: 8,
    DYN: 0,
    SAVE_LSE: 0,
    DQ_ON: 0,
    DK_ON: 0,
    DV_ON: 0,
    NOUT: 1,
    SRC_W: 1,
    DST_W: 1,
  },
  fdefaults: { SCALE: 1 },
  entries: {
    forward: {
      bindings: ['q', 'k', 'v', 'out', 'lse?'],
      consts: [...HEAD, 'SAVE_LSE'],
      fconsts: ['SCALE'],
      sizes: { q, k: kv, v: kv, out: q, lse: when('SAVE_LSE', rows) },
      grid: (c) => [Math.ceil(c.LQ / (c.R * c.WG)), c.H, c.B],
      reference: forward,
    },
    backward_q: {
      bindings: ['q', 'k', 'v', 'outIn', 'lseIn', 'dOut', 'dq?', 'delta'],
      consts: [...HEAD, 'DQ_ON'],
      fconsts: ['SCALE'],
      sizes: { q, k: kv, v: kv, outIn: q, lseIn: rows, dOut: q, dq: when('DQ_ON', q), delta: rows },
      grid: (c) => [Math.ceil(c.LQ / (c.R * c.WG)), c.H, c.B],
      reference: backwardQ,
    },
    backward_kv: {
      bindings: ['q', 'k', 'v', 'lseIn', 'dOut', 'deltaIn', 'dk?', 'dv?'],
      consts: [...HEAD, 'DK_ON', 'DV_ON'],
      fconsts: ['SCALE'],
      sizes: { q, k: kv, v: kv, lseIn: rows, dOut: q, deltaIn: rows, dk: when('DK_ON', kv), dv: when('DV_ON', kv) },
      grid: (c) => [Math.ceil(c.LK / (c.R * c.WG)), c.H, c.B],
      reference: backwardKV,
    },
    repad: {
      bindings: ['src', 'dst'],
      consts: ['NOUT', 'SRC_W', 'DST_W'],
      sizes: { src: (c) => (c.NOUT / c.DST_W) * c.SRC_W, dst: (c) => c.NOUT },
      grid: (c) => grid1d(c.NOUT, 64),
      reference(c, _fc, { src: Src, dst: Dst }) {
        const { NOUT, SRC_W, DST_W } = c;
        for (let o = 0; o < NOUT; o++) {
          const d = o % DST_W;
          Dst[o] = d < SRC_W ? Src[Math.floor(o / DST_W) * SRC_W + d] : 0;
        }
      },
    },
  },
});
