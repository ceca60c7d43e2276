import type { Consts } from '../backend.ts';
import { defineFamily, grid1d, read, readWrite } from '../kernel.ts';
import { gelu, geluGrad, sigmoid } from './activations.ts';

const WG = 256;
const f = Math.fround;

export const UNARY = { affine: 0, exp: 1, log: 2, sqrt: 3, relu: 4, gelu: 5, sigmoid: 6, tanh: 7, square: 8, abs: 9, rsqrt: 10 } as const;
export type UnaryOp = keyof typeof UNARY;
export const BINARY = { add: 0, sub: 1, mul: 2, div: 3, max: 4, gelu_grad: 5, relu_grad: 6, min: 7, expand: 8 } as const;
export type BinaryOp = keyof typeof BINARY;

const unaryFns: ((x: number, alpha: number, beta: number) => number)[] = [
  (x, a, b) => a * x + b,
  Math.exp,
  Math.log,
  Math.sqrt,
  (x) => Math.max(x, 0),
  gelu,
  sigmoid,
  (x) => Math.tanh(Math.max(-15, Math.min(15, x))),
  (x) => x * x,
  Math.abs,
  (x) => 1 / Math.sqrt(x),
];

const binaryFns: ((x: number, y: number) => number)[] = [
  (x, y) => x + y,
  (x, y) => x - y,
  (x, y) => x * y,
  (x, y) => x / y,
  Math.max,
  (x, y) => geluGrad(x) * y,
  (x, y) => (x > 0 ? y : 0),
  Math.min,
  (x) => x,
];

/** Elements a rank-6 strided read spans: one past the largest offset (0 for an empty output). */
export const span6 = (n: number, dims: readonly number[], strides: readonly number[]): number =>
  n === 0 ? 0 : 1 + dims.reduce((a, d, i) => a + (d - 1) * strides[i], 0);

/**
 * Constants of a `binary` launch: N output elements of the rank-6 output shape `o`, operand strides
 * `sa` and `sb` (0 where an operand broadcasts), all padded on the left to rank 6.
 */
export function binaryConsts(op: BinaryOp, N: number, o: readonly number[], sa: readonly number[], sb: readonly number[]) {
  const [O0, O1, O2, O3, O4, O5] = o;
  const [SA0, SA1, SA2, SA3, SA4, SA5] = sa;
  const [SB0, SB1, SB2, SB3, SB4, SB5] = sb;
  return { N, OP: BINARY[op], O0, O1, O2, O3, O4, O5, SA0, SA1, SA2, SA3, SA4, SA5, SB0, SB1, SB2, SB3, SB4, SB5 };
}

const out6 = (c: Consts) => [c.O0, c.O1, c.O2, c.O3, c.O4, c.O5];
const stridesA = (c: Consts) => [c.SA0, c.SA1, c.SA2, c.SA3, c.SA4, c.SA5];
const stridesB = (c: Consts) => [c.SB0, c.SB1, c.SB2, c.SB3, c.SB4, c.SB5];

export const elementwise = defineFamily({
  name: 'elementwise',
  slots: { x: read(0, 'X'), y: read(1, 'Y'), out: readWrite(2, 'Out') },
  defaults: {
    OP: 0,
    O0: 1,
    O1: 1,
    O2: 1,
    O3: 1,
    O4: 1,
    O5: 1,
    SA0: 0,
    SA1: 0,
    SA2: 0,
    SA3: 0,
    SA4: 0,
    SA5: 0,
    SB0: 0,
    SB1: 0,
    SB2: 0,
    SB3: 0,
    SB4: 0,
    SB5: 0,
  },
  fdefaults: { ALPHA: 1, BETA: 0, VALUE: 0 },
  entries: {
    unary: {
      bindings: ['x', 'out'],
      consts: ['N', 'OP'],
      fconsts: ['ALPHA?', 'BETA?'],
      sizes: { x: (c) => c.N, out: (c) => c.N },
      grid: (c) => grid1d(c.N, WG),
      reference(c, fc, { x: X, out: Out }) {
        const fn = unaryFns[c.OP];
        for (let i = 0; i < c.N; i++) Out[i] = fn(X[i], fc.ALPHA ?? 1, fc.BETA ?? 0);
      },
    },
    binary: {
      bindings: ['x', 'y', 'out'],
      consts: [
        'N',
        'OP',
        'O0',
        'O1',
        'O2',
        'O3',
        'O4',
        'O5',
        'SA0',
        'SA1',
        'SA2',
        'SA3',
        'SA4',
        'SA5',
        'SB0',
        'SB1',
        'SB2',
        'SB3',
        'SB4',
        'SB5',
      ],
      sizes: {
        x: (c) => span6(c.N, out6(c), stridesA(c)),
        y: (c) => span6(c.N, out6(c), stridesB(c)),
        out: (c) => c.N,
      },
      grid: (c) => grid1d(c.N, WG),
      reference(c, _fc, { x: X, y: Y, out: Out }) {
        const dims = out6(c);
        const sa = stridesA(c);
        const sb = stridesB(c);
        const fn = binaryFns[c.OP];
        for (let i = 0; i < c.N; i++) {
          let rem = i;
          let ia = 0;
          let ib = 0;
          for (let d = 5; d >= 0; d--) {
            const k = rem % dims[d];
            rem = Math.floor(rem / dims[d]);
            ia += k * sa[d];
            ib += k * sb[d];
          }
          Out[i] = fn(X[ia], Y[ib]);
        }
      },
    },
    fill: {
      bindings: ['out'],
      consts: ['N'],
      fconsts: ['VALUE'],
      sizes: { out: (c) => c.N },
      grid: (c) => grid1d(c.N, WG),
      reference(c, fc, { out: Out }) {
        Out.fill(fc.VALUE, 0, c.N);
      },
    },
    add_inplace: {
      bindings: ['x', 'out'],
      consts: ['N'],
      sizes: { x: (c) => c.N, out: (c) => c.N },
      grid: (c) => grid1d(c.N, WG),
      reference(c, _fc, { x: X, out: Out }) {
        for (let i = 0; i < c.N; i++) Out[i] = f(Out[i] + X[i]);
      },
    },
  },
});
