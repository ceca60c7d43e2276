import { asI32, defineFamily, grid1d, read, readWrite } from '../kernel.ts';
import type { Consts } from '../backend.ts';

/** Invocations per workgroup; also the number of loss terms each forward partial sum covers. */
export const LOSS_WG = 64;
const WG = LOSS_WG;
const f = Math.fround;

/** Partial sums a forward entry writes for `n` loss terms: one per launched workgroup. */
export function lossPartials(n: number): number {
  const [x, y, z] = grid1d(n, WG);
  return x * y * z;
}

const labelOf = (labels: Int32Array, i: number, C: number): number => Math.min(Math.max(labels[i], 0), C - 1);

/** The WGSL tree: red[l] += red[l + s] for s = WG/2, WG/4, ..., 1 (Float32Array stores round to f32). */
function tree(red: Float32Array): number {
  for (let s = red.length >> 1; s > 0; s >>= 1) for (let l = 0; l < s; l++) red[l] = red[l] + red[l + s];
  return red[0];
}

/** Workgroup partial sums of term(i) for i < n, as the forward entries write them into Out. */
function partials(n: number, Out: Float32Array, term: (i: number) => number): void {
  const red = new Float32Array(WG);
  const np = lossPartials(n);
  for (let w = 0; w < np; w++) {
    for (let l = 0; l < WG; l++) {
      const i = w * WG + l;
      red[l] = i < n ? term(i) : 0;
    }
    Out[w] = tree(red);
  }
}

/** The WGSL row_lse: log-sum-exp of the C logits at X[b..], shifted by their maximum. */
function rowLse(X: Float32Array, b: number, C: number): number {
  let m = X[b];
  for (let j = 1; j < C; j++) m = Math.max(m, X[b + j]);
  let s = 0;
  for (let j = 0; j < C; j++) s = f(s + f(Math.exp(f(X[b + j] - m))));
  return f(m + f(Math.log(s)));
}

function sigmoid(x: number): number {
  if (x >= 0) return f(1 / f(1 + f(Math.exp(-x))));
  const z = f(Math.exp(x));
  return f(z / f(1 + z));
}

const perElement = (c: Consts) => grid1d(c.NE, WG);

const NE = (c: Consts): number => c.NE;
const one = (): number => 1;

export const losses = defineFamily({
  name: 'losses',
  // t: targets; aux: the per-row log-sum-exp (ce_backward) or the partial sums (finish); g: the upstream
  // gradient, one value; out: partial sums, the loss or a gradient; out2: the log-sum-exp (ce_forward)
  // or the target's gradient (mse_backward2).
  slots: {
    x: read(0, 'X'),
    labels: read(1, 'Labels'),
    t: read(2, 'T'),
    aux: read(3, 'Aux'),
    g: read(4, 'Gs'),
    out: readWrite(5, 'Out'),
    out2: readWrite(6, 'Out2'),
  },
  defaults: { N: 1, C: 1, NE: 1, NP: 1 },
  fdefaults: { SCALE: 1 },
  entries: {
    ce_forward: {
      bindings: ['x', 'labels', 'out', 'out2'],
      consts: ['N', 'C'],
      sizes: { x: (c) => c.N * c.C, labels: (c) => c.N, out: (c) => lossPartials(c.N), out2: (c) => c.N },
      grid: (c) => grid1d(c.N, WG),
      reference(c, _f, { x: X, labels: L, out: Out, out2: Lse }) {
        const { N, C } = c;
        const labels = asI32(L);
        partials(N, Out, (i) => {
          const b = i * C;
          const lse = rowLse(X, b, C);
          Lse[i] = lse;
          return f(lse - X[b + labelOf(labels, i, C)]);
        });
      },
    },
    soft_ce_forward: {
      bindings: ['x', 't', 'out', 'out2'],
      consts: ['N', 'C'],
      sizes: { x: (c) => c.N * c.C, t: (c) => c.N * c.C, out: (c) => lossPartials(c.N), out2: (c) => c.N },
      grid: (c) => grid1d(c.N, WG),
      reference(c, _f, { x: X, t: T, out: Out, out2: Lse }) {
        const { N, C } = c;
        partials(N, Out, (i) => {
          const b = i * C;
          const lse = rowLse(X, b, C);
          Lse[i] = lse;
          let v = 0;
          for (let j = 0; j < C; j++) v = f(v + f(T[b + j] * f(lse - X[b + j])));
          return v;
        });
      },
    },
    bce_forward: {
      bindings: ['x', 't', 'out'],
      consts: ['NE'],
      sizes: { x: NE, t: NE, out: (c) => lossPartials(c.NE) },
      grid: perElement,
      reference(c, _f, { x: X, t: T, out: Out }) {
        partials(c.NE, Out, (e) => {
          const x = X[e];
          return f(f(Math.max(x, 0) - f(x * T[e])) + f(Math.log(f(1 + f(Math.exp(-Math.abs(x)))))));
        });
      },
    },
    mse_forward: {
      bindings: ['x', 't', 'out'],
      consts: ['NE'],
      sizes: { x: NE, t: NE, out: (c) => lossPartials(c.NE) },
      grid: perElement,
      reference(c, _f, { x: X, t: T, out: Out }) {
        partials(c.NE, Out, (e) => {
          const d = f(X[e] - T[e]);
          return f(d * d);
        });
      },
    },
    finish: {
      bindings: ['aux', 'out'],
      consts: ['NP'],
      fconsts: ['SCALE'],
      sizes: { aux: (c) => c.NP, out: one },
      grid: () => [1, 1, 1],
      reference(c, fc, { aux: P, out: Out }) {
        const red = new Float32Array(WG);
        for (let l = 0; l < WG; l++) {
          let acc = 0;
          for (let i = l; i < c.NP; i += WG) acc = f(acc + P[i]);
          red[l] = acc;
        }
        Out[0] = f(tree(red) * f(fc.SCALE));
      },
    },
    ce_backward: {
      bindings: ['x', 'labels', 'aux', 'g', 'out'],
      consts: ['N', 'C'],
      fconsts: ['SCALE'],
      sizes: { x: (c) => c.N * c.C, labels: (c) => c.N, aux: (c) => c.N, g: one, out: (c) => c.N * c.C },
      grid: (c) => grid1d(c.N * c.C, WG),
      reference(c, fc, { x: X, labels: L, aux: Lse, g: Gs, out: Out }) {
        const { N, C } = c;
        const labels = asI32(L);
        for (let e = 0; e < N * C; e++) {
          const i = Math.floor(e / C);
          let p = f(Math.exp(f(X[e] - Lse[i])));
          if (e % C === labelOf(labels, i, C)) p = f(p - 1);
          Out[e] = f(f(p * Gs[0]) * f(fc.SCALE));
        }
      },
    },
    soft_ce_backward: {
      bindings: ['x', 't', 'aux', 'g', 'out'],
      consts: ['N', 'C'],
      fconsts: ['SCALE'],
      sizes: { x: (c) => c.N * c.C, t: (c) => c.N * c.C, aux: (c) => c.N, g: one, out: (c) => c.N * c.C },
      grid: (c) => grid1d(c.N * c.C, WG),
      reference(c, fc, { x: X, t: T, aux: Lse, g: Gs, out: Out }) {
        const { N, C } = c;
        for (let e = 0; e < N * C; e++) {
          const i = Math.floor(e / C);
          let mass = 0;
          for (let j = 0; j < C; j++) mass = f(mass + T[i * C + j]);
          const p = f(f(f(Math.exp(f(X[e] - Lse[i]))) * mass) - T[e]);
          Out[e] = f(f(p * Gs[0]) * f(fc.SCALE));
        }
      },
    },
    bce_backward: {
      bindings: ['x', 't', 'g', 'out'],
      consts: ['NE'],
      fconsts: ['SCALE'],
      sizes: { x: NE, t: NE, g: one, out: NE },
      grid: perElement,
      reference(c, fc, { x: X, t: T, g: Gs, out: Out }) {
        for (let e = 0; e < c.NE; e++) Out[e] = f(f(f(sigmoid(X[e]) - T[e]) * Gs[0]) * f(fc.SCALE));
      },
    },
    mse_backward: {
      bindings: ['x', 't', 'g', 'out'],
      consts: ['NE'],
      fconsts: ['SCALE'],
      sizes: { x: NE, t: NE, g: one, out: NE },
      grid: perElement,
      reference(c, fc, { x: X, t: T, g: Gs, out: Out }) {
        for (let e = 0; e < c.NE; e++) Out[e] = f(f(f(X[e] - T[e]) * Gs[0]) * f(fc.SCALE));
      },
    },
    mse_backward2: {
      bindings: ['x', 't', 'g', 'out', 'out2'],
      consts: ['NE'],
      fconsts: ['SCALE'],
      sizes: { x: NE, t: NE, g: one, out: NE, out2: NE },
      grid: perElement,
      reference(c, fc, { x: X, t: T, g: Gs, out: Out, out2: Out2 }) {
        for (let e = 0; e < c.NE; e++) {
          const d = f(f(f(X[e] - T[e]) * Gs[0]) * f(fc.SCALE));
          Out[e] = d;
          Out2[e] = -d;
        }
      },
    },
  },
});
