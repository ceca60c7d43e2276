import type { Consts } from '../backend.ts';
import { defineFamily, grid1d, read, readWrite } from '../kernel.ts';

const WG = 64;
const f = Math.fround;

const coarseSize = (c: Consts): number => c.BC * c.CD * c.CH * c.CW;
const fineSize = (c: Consts): number => c.BC * c.FD * c.FH * c.FW;

function windowBase(c: Consts, o: number): number {
  const w = o % c.CW;
  const h = Math.floor(o / c.CW) % c.CH;
  const d = Math.floor(o / (c.CW * c.CH)) % c.CD;
  const bc = Math.floor(o / (c.CW * c.CH * c.CD));
  return ((bc * c.FD + d * c.KD) * c.FH + h * c.KH) * c.FW + w * c.KW;
}

function coarseOf(c: Consts, i: number): number {
  const w = Math.floor((i % c.FW) / c.KW);
  const h = Math.floor((Math.floor(i / c.FW) % c.FH) / c.KH);
  const d = Math.floor((Math.floor(i / (c.FW * c.FH)) % c.FD) / c.KD);
  const bc = Math.floor(i / (c.FW * c.FH * c.FD));
  if (w >= c.CW || h >= c.CH || d >= c.CD) return -1;
  return ((bc * c.CD + d) * c.CH + h) * c.CW + w;
}

/** Fine-grid index of the window's first maximum. */
function argmax(c: Consts, X: Float32Array, base: number): number {
  let best = X[base];
  let at = base;
  for (let kd = 0; kd < c.KD; kd++) {
    for (let kh = 0; kh < c.KH; kh++) {
      const row = base + (kd * c.FH + kh) * c.FW;
      for (let kw = 0; kw < c.KW; kw++) {
        if (X[row + kw] > best) {
          best = X[row + kw];
          at = row + kw;
        }
      }
    }
  }
  return at;
}

const CONSTS = ['BC', 'FD', 'FH', 'FW', 'CD', 'CH', 'CW', 'KD', 'KH', 'KW'] as const;

export const pool = defineFamily({
  name: 'pool',
  // x: the fine grid (coarse_sum, max_*) or the coarse one (fine_spread); g: the coarse gradient.
  slots: { x: read(0, 'X'), g: read(1, 'G'), out: readWrite(2, 'Out') },
  defaults: { MEAN: 0 },
  entries: {
    coarse_sum: {
      bindings: ['x', 'out'],
      consts: [...CONSTS, 'MEAN'],
      sizes: { x: fineSize, out: coarseSize },
      grid: (c) => grid1d(coarseSize(c), WG),
      reference(c, _f, { x: X, out: Out }) {
        const vol = c.KD * c.KH * c.KW;
        for (let o = 0; o < coarseSize(c); o++) {
          const base = windowBase(c, o);
          let s = 0;
          for (let kd = 0; kd < c.KD; kd++) {
            for (let kh = 0; kh < c.KH; kh++) {
              const row = base + (kd * c.FH + kh) * c.FW;
              let r = 0;
              for (let kw = 0; kw < c.KW; kw++) r = f(r + X[row + kw]);
              s = f(s + r);
            }
          }
          Out[o] = c.MEAN ? f(s / vol) : s;
        }
      },
    },
    fine_spread: {
      bindings: ['x', 'out'],
      consts: [...CONSTS, 'MEAN'],
      sizes: { x: coarseSize, out: fineSize },
      grid: (c) => grid1d(fineSize(c), WG),
      reference(c, _f, { x: X, out: Out }) {
        const vol = c.KD * c.KH * c.KW;
        for (let i = 0; i < fineSize(c); i++) {
          const o = coarseOf(c, i);
          Out[i] = o < 0 ? 0 : c.MEAN ? f(X[o] / vol) : X[o];
        }
      },
    },
    max_forward: {
      bindings: ['x', 'out'],
      consts: CONSTS,
      sizes: { x: fineSize, out: coarseSize },
      grid: (c) => grid1d(coarseSize(c), WG),
      reference(c, _f, { x: X, out: Out }) {
        for (let o = 0; o < coarseSize(c); o++) Out[o] = X[argmax(c, X, windowBase(c, o))];
      },
    },
    max_backward: {
      bindings: ['x', 'g', 'out'],
      consts: CONSTS,
      sizes: { x: fineSize, g: coarseSize, out: fineSize },
      grid: (c) => grid1d(fineSize(c), WG),
      reference(c, _f, { x: X, g: G, out: Out }) {
        for (let i = 0; i < fineSize(c); i++) {
          const o = coarseOf(c, i);
          Out[i] = o >= 0 && argmax(c, X, windowBase(c, o)) === i ? G[o] : 0;
        }
      },
    },
  },
});
