import type { Consts } from '../backend.ts';
import { asU32, defineFamily, grid1d, read, readWrite } from '../kernel.ts';

/** Threads per workgroup in every entry of kernels/optimizer.wgsl. */
export const OPT_WG = 256;
/** Floats per mask block: one u32 flag word per 64 floats (= VIEW_ALIGN bytes). */
export const MASK_BLOCK = 64;
export const MASK_TRAINABLE = 1;
export const MASK_DECAY = 2;
/** Most stage-1 workgroups of the norm reduction (bounds the stage-2 loop and the partials buffer). */
export const MAX_NORM_PARTS = 1024;

const f = Math.fround;

/**
 * How the two-stage norm splits an arena of `n4` vec4s: NPART workgroups of CHUNK4 vec4s each,
 * CHUNK4 a multiple of the workgroup size so every thread strides the same number of times.
 */
export function normPartition(n4: number): { CHUNK4: number; NPART: number } {
  const n = Math.max(1, n4);
  const parts = Math.min(MAX_NORM_PARTS, Math.ceil(n / OPT_WG));
  const chunk = Math.ceil(Math.ceil(n / parts) / OPT_WG) * OPT_WG;
  return { CHUNK4: chunk, NPART: Math.ceil(n / chunk) };
}

/** The WGSL tree reduction of `red` (length OPT_WG), in the same pairing order. */
function treeSum(red: Float32Array): number {
  for (let s = OPT_WG / 2; s > 0; s >>= 1) {
    for (let t = 0; t < s; t++) red[t] = red[t] + red[t + s];
  }
  return red[0];
}

const floats = (c: Consts): number => 4 * c.N4;
/** One mask word per MASK_BLOCK floats, i.e. per 16 vec4s. */
const maskWords = (c: Consts): number => Math.ceil(c.N4 / (MASK_BLOCK / 4));

export const optimizer = defineFamily({
  name: 'optimizer',
  // Over whole arenas: g the gradients, mask the flag words, s the stage-1 partial sums (norm_final) or
  // the squared gradient norm (adamw), params and the moments m and v updated in place.
  slots: {
    g: read(0, 'G'),
    mask: read(1, 'Mask'),
    s: read(2, 'S'),
    params: readWrite(3, 'P'),
    m: readWrite(4, 'M'),
    v: readWrite(5, 'V'),
    out: readWrite(6, 'Out'),
    loss: read(7, 'L'),
    health: readWrite(8, 'H'),
  },
  defaults: { N4: 1, CHUNK4: OPT_WG, NPART: 1 },
  entries: {
    norm_partial: {
      bindings: ['g', 'mask', 'out'],
      consts: ['N4', 'CHUNK4', 'NPART'],
      sizes: { g: floats, mask: maskWords, out: (c) => c.NPART },
      grid: (c) => [c.NPART, 1, 1],
      reference(c, _fc, { g: G, mask: Mask, out: Out }) {
        const mask = asU32(Mask);
        const red = new Float32Array(OPT_WG);
        const acc = new Float32Array(4);
        for (let w = 0; w < c.NPART; w++) {
          const start = w * c.CHUNK4;
          const end = Math.min(start + c.CHUNK4, c.N4);
          for (let t = 0; t < OPT_WG; t++) {
            acc.fill(0);
            for (let i = start + t; i < end; i += OPT_WG) {
              if ((mask[i >> 4] & MASK_TRAINABLE) === 0) continue;
              for (let l = 0; l < 4; l++) {
                const g = G[4 * i + l];
                acc[l] = acc[l] + f(g * g);
              }
            }
            red[t] = f(acc[0] + acc[1]) + f(acc[2] + acc[3]);
          }
          Out[w] = treeSum(red);
        }
      },
    },
    norm_final: {
      bindings: ['s', 'out'],
      consts: ['NPART'],
      sizes: { s: (c) => c.NPART, out: () => 1 },
      grid: () => [1, 1, 1],
      reference(c, _fc, { s: S, out: Out }) {
        const red = new Float32Array(OPT_WG);
        for (let t = 0; t < OPT_WG; t++) {
          let acc = 0;
          for (let i = t; i < c.NPART; i += OPT_WG) acc = f(acc + S[i]);
          red[t] = acc;
        }
        Out[0] = treeSum(red);
      },
    },
    guard: {
      // out: [squared norm (read), update flag (written)]; loss: the step's scalar loss (zero when left out).
      bindings: ['out', 'loss?', 'health'],
      consts: [],
      sizes: { loss: () => 1, health: () => 4, out: () => 2 },
      grid: () => [1, 1, 1],
      reference(_c, _fc, { loss: L, health: Hf, out: Out }) {
        const H = asU32(Hf);
        const ok = Number.isFinite(Out[0]) && Number.isFinite(L[0]);
        Out[1] = ok ? 1 : 0;
        H[0] += 1;
        if (!ok) {
          H[1] += 1;
          if (H[2] === 0) H[2] = H[0];
          H[3] = H[0];
        }
      },
    },
    adamw: {
      // s: [squared norm, update flag] from norm_final and guard; the norm is used when the max norm (uniform 7) is above 0.
      bindings: ['g', 'mask', 's', 'params', 'm', 'v'],
      consts: ['N4'],
      uniforms: 8,
      sizes: { g: floats, mask: maskWords, s: () => 2, params: floats, m: floats, v: floats },
      grid: (c) => grid1d(c.N4, OPT_WG),
      reference(c, _fc, { g: G, mask: Mask, s: S, params: P, m: M, v: V }, u) {
        if (S[1] === 0) return;
        const mask = asU32(Mask);
        const [lr, b1, b2, eps, wd, bc1, bc2, maxNorm] = u.map(f);
        const clip = maxNorm > 0 ? Math.min(1, f(maxNorm / f(f(Math.sqrt(S[0])) + f(1e-6)))) : 1;
        const oneMinusB1 = f(1 - b1);
        const oneMinusB2 = f(1 - b2);
        const shrink = f(1 - f(lr * wd));
        const stepSize = f(lr / bc1);
        const bc2Sqrt = f(Math.sqrt(bc2));
        for (let e = 0; e < 4 * c.N4; e++) {
          const mk = mask[e >> 6];
          if ((mk & MASK_TRAINABLE) === 0) continue;
          const g = f(G[e] * clip);
          const m = f(f(b1 * M[e]) + f(oneMinusB1 * g));
          const v = f(f(b2 * V[e]) + f(oneMinusB2 * f(g * g)));
          let p = P[e];
          if (mk & MASK_DECAY) p = f(p * shrink);
          const denom = f(f(f(Math.sqrt(v)) / bc2Sqrt) + eps);
          P[e] = p - f(stepSize * f(m / denom));
          M[e] = m;
          V[e] = v;
        }
      },
    },
    sgd: {
      // s: [squared norm, update flag]; uniforms [lr, weight_decay, max_norm, 0, 0, 0, 0, 0].
      bindings: ['g', 'mask', 's', 'params'],
      consts: ['N4'],
      uniforms: 8,
      sizes: { g: floats, mask: maskWords, s: () => 2, params: floats },
      grid: (c) => grid1d(c.N4, OPT_WG),
      reference(c, _fc, { g: G, mask: Mask, s: S, params: P }, u) {
        if (S[1] === 0) return;
        const mask = asU32(Mask);
        const [lr, wd, maxNorm] = u.map(f);
        const clip = maxNorm > 0 ? Math.min(1, f(maxNorm / f(f(Math.sqrt(S[0])) + f(1e-6)))) : 1;
        const shrink = f(1 - f(lr * wd));
        for (let e = 0; e < 4 * c.N4; e++) {
          const mk = mask[e >> 6];
          if ((mk & MASK_TRAINABLE) === 0) continue;
          const p = mk & MASK_DECAY ? f(P[e] * shrink) : P[e];
          P[e] = f(p - f(lr * f(G[e] * clip)));
        }
      },
    },
    sgd_momentum: {
      // s: [squared norm, update flag]; m: the momentum buffers; uniforms [lr, weight_decay, max_norm, momentum, nesterov, 0, 0, 0].
      bindings: ['g', 'mask', 's', 'params', 'm'],
      consts: ['N4'],
      uniforms: 8,
      sizes: { g: floats, mask: maskWords, s: () => 2, params: floats, m: floats },
      grid: (c) => grid1d(c.N4, OPT_WG),
      reference(c, _fc, { g: G, mask: Mask, s: S, params: P, m: M }, u) {
        if (S[1] === 0) return;
        const mask = asU32(Mask);
        const [lr, wd, maxNorm, mu, nesterov] = u.map(f);
        const clip = maxNorm > 0 ? Math.min(1, f(maxNorm / f(f(Math.sqrt(S[0])) + f(1e-6)))) : 1;
        for (let e = 0; e < 4 * c.N4; e++) {
          const mk = mask[e >> 6];
          if ((mk & MASK_TRAINABLE) === 0) continue;
          const p = P[e];
          let d = f(G[e] * clip);
          if (mk & MASK_DECAY) d = f(d + f(wd * p));
          const buf = f(f(mu * M[e]) + d);
          const step = nesterov !== 0 ? f(d + f(mu * buf)) : buf;
          M[e] = buf;
          P[e] = f(p - f(lr * step));
        }
      },
    },
  },
});
