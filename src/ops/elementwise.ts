// Elementwise ops with broadcasting, each with its backward rule beside it.
import { binaryConsts, UNARY, type BinaryOp, type UnaryOp } from '../backend/kernels/elementwise.ts';
import { ShapeError } from '../errors.ts';
import { dummyBuffers, record, shapeStr, Tensor, type Shape } from '../tensor/tensor.ts';
import { broadcastShapes, broadcastStrides, launch, pad6, sameShape } from './launch.ts';
import { sumTo } from './sum_to.ts';

function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor, outShape?: Shape): Tensor {
  const shape = outShape ?? broadcastShapes(op, a.shape, b.shape);
  const out = Tensor.empty(shape);
  launch(
    'elementwise',
    'binary',
    binaryConsts(op, out.size, pad6(shape), broadcastStrides(a.shape, shape), broadcastStrides(b.shape, shape)),
    { x: a, y: b, out },
  );
  return out;
}

function unaryRaw(op: UnaryOp, x: Tensor, alpha = 1, beta = 0): Tensor {
  const out = Tensor.empty(x.shape);
  launch('elementwise', 'unary', { N: x.size, OP: UNARY[op] }, { x, out }, op === 'affine' ? { ALPHA: alpha, BETA: beta } : {});
  return out;
}

export function add(a: Tensor, b: Tensor): Tensor {
  const out = binaryRaw('add', a, b);
  return record(out, 'add', [a, b], (g) => [sumTo(g, a.shape), sumTo(g, b.shape)]);
}

export function sub(a: Tensor, b: Tensor): Tensor {
  const out = binaryRaw('sub', a, b);
  return record(out, 'sub', [a, b], (g) => [sumTo(g, a.shape), b.requiresGrad ? sumTo(neg(g), b.shape) : null]);
}

export function mul(a: Tensor, b: Tensor): Tensor {
  const out = binaryRaw('mul', a, b);
  return record(out, 'mul', [a, b], (g) => [
    a.requiresGrad ? sumTo(binaryRaw('mul', g, b), a.shape) : null,
    b.requiresGrad ? sumTo(binaryRaw('mul', g, a), b.shape) : null,
  ]);
}

export function div(a: Tensor, b: Tensor): Tensor {
  const out = binaryRaw('div', a, b);
  return record(out, 'div', [a, b], (g) => [
    a.requiresGrad ? sumTo(binaryRaw('div', g, b), a.shape) : null,
    // d(a/b)/db = -a/b^2 = -out/b
    b.requiresGrad ? sumTo(neg(binaryRaw('mul', g, binaryRaw('div', out, b))), b.shape) : null,
  ]);
}

/** Broadcast x to `shape` (a copy); its gradient sums back. */
export function expand(x: Tensor, shape: Shape): Tensor {
  if (sameShape(x.shape, shape)) return copy(x);
  const out = binaryRaw('expand', x, Tensor.view(dummyBuffers().read, [1]), shape);
  if (broadcastShapes('expand', x.shape, shape).some((d, i) => d !== shape[i])) {
    throw new ShapeError(`expand: ${shapeStr(x.shape)} cannot broadcast to ${shapeStr(shape)}`);
  }
  return record(out, 'expand', [x], (g) => [sumTo(g, x.shape)]);
}

/** alpha * x + beta. */
export function affine(x: Tensor, alpha: number, beta = 0): Tensor {
  const out = unaryRaw('affine', x, alpha, beta);
  return record(out, 'affine', [x], (g) => [unaryRaw('affine', g, alpha, 0)]);
}

export const scale = (x: Tensor, alpha: number): Tensor => affine(x, alpha, 0);
export const neg = (x: Tensor): Tensor => affine(x, -1, 0);
export const copy = (x: Tensor): Tensor => affine(x, 1, 0);

export function exp(x: Tensor): Tensor {
  const out = unaryRaw('exp', x);
  return record(out, 'exp', [x], (g) => [binaryRaw('mul', g, out)]);
}

export function log(x: Tensor): Tensor {
  const out = unaryRaw('log', x);
  return record(out, 'log', [x], (g) => [binaryRaw('div', g, x)]);
}

export function sqrt(x: Tensor): Tensor {
  const out = unaryRaw('sqrt', x);
  return record(out, 'sqrt', [x], (g) => [unaryRaw('affine', binaryRaw('div', g, out), 0.5)]);
}

export function relu(x: Tensor): Tensor {
  const out = unaryRaw('relu', x);
  return record(out, 'relu', [x], (g) => [binaryRaw('relu_grad', x, g)]);
}

export function gelu(x: Tensor): Tensor {
  const out = unaryRaw('gelu', x);
  return record(out, 'gelu', [x], (g) => [binaryRaw('gelu_grad', x, g)]);
}

export function sigmoid(x: Tensor): Tensor {
  const out = unaryRaw('sigmoid', x);
  // s' = s(1-s)
  return record(out, 'sigmoid', [x], (g) => [binaryRaw('mul', g, binaryRaw('mul', out, unaryRaw('affine', out, -1, 1)))]);
}

export function tanh(x: Tensor): Tensor {
  const out = unaryRaw('tanh', x);
  return record(out, 'tanh', [x], (g) => [binaryRaw('mul', g, unaryRaw('affine', unaryRaw('square', out), -1, 1))]);
}

export function square(x: Tensor): Tensor {
  const out = unaryRaw('square', x);
  return record(out, 'square', [x], (g) => [binaryRaw('mul', g, unaryRaw('affine', x, 2))]);
}

export function abs(x: Tensor): Tensor {
  return sqrt(square(x));
}

export function maximum(a: Tensor, b: Tensor): Tensor {
  const out = binaryRaw('max', a, b);
  // Gradient goes to a where a >= b: relu_grad(a - b + tiny) routes g by the sign of a - b.
  return record(out, 'maximum', [a, b], (g) => {
    const d = binaryRaw('sub', a, b);
    const ga = binaryRaw('relu_grad', unaryRaw('affine', d, 1, 1e-30), g);
    return [a.requiresGrad ? sumTo(ga, a.shape) : null, b.requiresGrad ? sumTo(binaryRaw('sub', g, ga), b.shape) : null];
  });
}

export function fill(shape: Shape, value: number): Tensor {
  const out = Tensor.empty(shape);
  launch('elementwise', 'fill', { N: out.size }, { out }, { VALUE: value });
  return out;
}

export const zeros = (shape: Shape): Tensor => fill(shape, 0);
export const ones = (shape: Shape): Tensor => fill(shape, 1);
