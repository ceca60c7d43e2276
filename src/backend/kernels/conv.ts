import type { Consts } from '../backend.ts';
import { defineFamily, grid1d, read, readWrite } from '../kernel.ts';

const WG = 64;
/** Channels per invocation (register blocking). */
export const CONV_CB = 4;
const f = Math.fround;
/** fma in f32: the product of two f32 values is exact in a double, so this rounds once like fma(). */
const fma = (a: number, b: number, c: number): number => f(a * b + c);

const kvol = (c: Consts): number => c.KD * c.K * c.K;
const cdiv = (a: number, b: number): number => Math.ceil(a / b);

/**
 * Output columns per forward invocation: long runs amortise the loads of the input window, but past
 * about 18 cached inputs (or 16 accumulators) llvmpipe slows down; rows split into equal runs.
 */
export function convColumns(outWidth: number, k: number, stride: number): number {
  const most = Math.max(1, Math.min(16, Math.floor((18 - k) / stride) + 1));
  return Math.ceil(outWidth / Math.ceil(outWidth / most));
}

/** Every convolution entry takes the full geometry: the WGSL file names all of it. */
const GEOMETRY = ['B', 'CI', 'CO', 'ID', 'IH', 'IW', 'OD', 'OH', 'OW', 'KD', 'K', 'SD', 'S', 'PD', 'P'] as const;
const input = (c: Consts): number => c.B * c.CI * c.ID * c.IH * c.IW;
const output = (c: Consts): number => c.B * c.CO * c.OD * c.OH * c.OW;
const weights = (c: Consts): number => c.CO * c.CI * kvol(c);

export const conv = defineFamily({
  name: 'conv',
  // g: the gradient of the output; out: whatever the entry computes.
  slots: { x: read(0, 'X'), weight: read(1, 'Wt'), bias: read(2, 'Bias'), g: read(3, 'G'), out: readWrite(4, 'Out') },
  defaults: { HAS_BIAS: 0, PB: 4, NSPLIT: 1, RPS: 1 },
  entries: {
    forward: {
      bindings: ['x', 'weight', 'bias?', 'out'],
      consts: [...GEOMETRY, 'HAS_BIAS', 'PB'],
      sizes: { x: input, weight: weights, bias: (c) => (c.HAS_BIAS ? c.CO : 0), out: output },
      grid: (c) => grid1d(c.B * cdiv(c.CO, CONV_CB) * c.OD * c.OH * cdiv(c.OW, c.PB), WG),
      reference(c, _f, { x: X, weight: Wt, bias: Bias, out: Out }) {
        const { B, CI, CO, ID, IH, IW, OD, OH, OW, KD, K, SD, S, PD, P } = c;
        for (let b = 0; b < B; b++) {
          for (let co = 0; co < CO; co++) {
            for (let od = 0; od < OD; od++) {
              for (let oh = 0; oh < OH; oh++) {
                for (let ow = 0; ow < OW; ow++) {
                  let acc = 0;
                  for (let ci = 0; ci < CI; ci++) {
                    for (let kd = 0; kd < KD; kd++) {
                      const id = od * SD + kd - PD;
                      if (id < 0 || id >= ID) continue;
                      for (let kh = 0; kh < K; kh++) {
                        const ih = oh * S + kh - P;
                        if (ih < 0 || ih >= IH) continue;
                        const xrow = (((b * CI + ci) * ID + id) * IH + ih) * IW;
                        const wrow = (((co * CI + ci) * KD + kd) * K + kh) * K;
                        for (let kw = 0; kw < K; kw++) {
                          const iw = ow * S + kw - P;
                          if (iw < 0 || iw >= IW) continue;
                          acc = fma(Wt[wrow + kw], X[xrow + iw], acc);
                        }
                      }
                    }
                  }
                  Out[(((b * CO + co) * OD + od) * OH + oh) * OW + ow] = c.HAS_BIAS ? f(acc + Bias[co]) : acc;
                }
              }
            }
          }
        }
      },
    },
    flip_weight: {
      bindings: ['weight', 'out'],
      consts: GEOMETRY,
      sizes: { weight: weights, out: weights },
      grid: (c) => grid1d(c.CO * c.CI * kvol(c), WG),
      reference(c, _f, { weight: Wt, out: Out }) {
        const kv = kvol(c);
        for (let e = 0; e < c.CO * c.CI * kv; e++) {
          const tap = e % kv;
          const co = Math.floor(e / kv) % c.CO;
          const ci = Math.floor(e / (kv * c.CO));
          Out[e] = Wt[(co * c.CI + ci) * kv + (kv - 1 - tap)];
        }
      },
    },
    backward_input: {
      bindings: ['weight', 'g', 'out'],
      consts: GEOMETRY,
      sizes: { weight: weights, g: output, out: input },
      grid: (c) => grid1d(c.B * cdiv(c.CI, CONV_CB) * c.ID * c.IH * cdiv(c.IW, 4), WG),
      reference(c, _f, { weight: Wt, g: G, out: Out }) {
        const { B, CI, CO, ID, IH, IW, OD, OH, OW, KD, K, SD, S, PD, P } = c;
        const kv = kvol(c);
        // o * s = i + p - k, for an integer o inside the output.
        const out = (n: number, s: number, o: number): number => (n < 0 || n % s !== 0 || n / s >= o ? -1 : n / s);
        for (let b = 0; b < B; b++) {
          for (let ci = 0; ci < CI; ci++) {
            for (let id = 0; id < ID; id++) {
              for (let ih = 0; ih < IH; ih++) {
                for (let iw = 0; iw < IW; iw++) {
                  let acc = 0;
                  for (let co = 0; co < CO; co++) {
                    for (let kd = 0; kd < KD; kd++) {
                      const od = out(id + PD - kd, SD, OD);
                      if (od < 0) continue;
                      for (let kh = 0; kh < K; kh++) {
                        const oh = out(ih + P - kh, S, OH);
                        if (oh < 0) continue;
                        const grow = (((b * CO + co) * OD + od) * OH + oh) * OW;
                        const wrow = (co * CI + ci) * kv + (kd * K + kh) * K;
                        for (let kw = 0; kw < K; kw++) {
                          const ow = out(iw + P - kw, S, OW);
                          if (ow < 0) continue;
                          acc = fma(Wt[wrow + kw], G[grow + ow], acc);
                        }
                      }
                    }
                  }
                  Out[(((b * CI + ci) * ID + id) * IH + ih) * IW + iw] = acc;
                }
              }
            }
          }
        }
      },
    },
    backward_weight: {
      bindings: ['x', 'g', 'out'],
      consts: [...GEOMETRY, 'NSPLIT', 'RPS'],
      sizes: { x: input, g: output, out: (c) => c.NSPLIT * weights(c) },
      grid: (c) => grid1d(c.NSPLIT * cdiv(c.CO, CONV_CB) * cdiv(c.CI, CONV_CB) * c.KD * c.K, WG),
      reference(c, _f, { x: X, g: G, out: Out }) {
        const { B, CI, CO, ID, IH, IW, OD, OH, OW, KD, K, SD, S, PD, P, NSPLIT, RPS } = c;
        const kv = kvol(c);
        for (let split = 0; split < NSPLIT; split++) {
          const r0 = split * RPS;
          const r1 = Math.min(B * OD * OH, r0 + RPS);
          for (let co = 0; co < CO; co++) {
            for (let ci = 0; ci < CI; ci++) {
              for (let kd = 0; kd < KD; kd++) {
                for (let kh = 0; kh < K; kh++) {
                  for (let kw = 0; kw < K; kw++) {
                    let acc = 0;
                    for (let r = r0; r < r1; r++) {
                      const oh = r % OH;
                      const od = Math.floor(r / OH) % OD;
                      const b = Math.floor(r / (OH * OD));
                      const id = od * SD + kd - PD;
                      const ih = oh * S + kh - P;
                      if (id < 0 || id >= ID || ih < 0 || ih >= IH) continue;
                      const xr = (((b * CI + ci) * ID + id) * IH + ih) * IW;
                      const gr = (((b * CO + co) * OD + od) * OH + oh) * OW;
                      for (let ow = 0; ow < OW; ow++) {
                        const iw = ow * S + kw - P;
                        if (iw >= 0 && iw < IW) acc = fma(G[gr + ow], X[xr + iw], acc);
                      }
                    }
                    Out[split * CO * CI * kv + (co * CI + ci) * kv + (kd * K + kh) * K + kw] = acc;
                  }
                }
              }
            }
          }
        }
      },
    },
    backward_bias: {
      bindings: ['g', 'out'],
      consts: GEOMETRY,
      sizes: { g: output, out: (c) => c.CO },
      grid: (c) => grid1d(c.CO, WG),
      reference(c, _f, { g: G, out: Out }) {
        const n = c.OD * c.OH * c.OW;
        for (let co = 0; co < c.CO; co++) {
          const acc = [0, 0, 0, 0];
          for (let b = 0; b < c.B; b++) {
            const base = (b * c.CO + co) * n;
            for (let s = 0; s < n; s++) acc[s & 3] = f(acc[s & 3] + G[base + s]);
          }
          Out[co] = f(f(acc[0] + acc[1]) + f(acc[2] + acc[3]));
        }
      },
    },
  },
});
