// Matrix products: batched matmul with transpose flags, and the fused linear layer
// (matmul + bias + activation in one kernel, the pre-activation saved for backward).
import { ShapeError } from '../errors.ts';
import { record, shapeStr, Tensor } from '../tensor/tensor.ts';
import { launch } from './launch.ts';
import { sum } from './reduce.ts';
import { binaryConsts } from '../backend/kernels/elementwise.ts';
import { matmulVec4Ok } from '../backend/kernels/matmul.ts';

export type Activation = 'none' | 'gelu' | 'relu';
const ACT = { none: 0, gelu: 1, relu: 2 } as const;

interface MatmulArgs {
  a: Tensor;
  b: Tensor;
  transA: boolean;
  transB: boolean;
  bias: Tensor | null;
  act: Activation;
  savePre: boolean;
}

/** Raw launch. a: [batch?, M, K] (or [K, M] transposed); b: [batch?, K, N] or [K, N] shared by all batches. */
function matmulRaw({ a, b, transA, transB, bias, act, savePre }: MatmulArgs): { out: Tensor; pre: Tensor | null } {
  const op = 'matmul';
  if (a.shape.length < 2 || b.shape.length < 2 || a.shape.length > 3 || b.shape.length > 3) {
    throw new ShapeError(`${op}: need 2D or 3D operands, got ${shapeStr(a.shape)} and ${shapeStr(b.shape)}`);
  }
  const batchA = a.shape.length === 3 ? a.shape[0] : 1;
  const batchB = b.shape.length === 3 ? b.shape[0] : 1;
  if (batchA !== batchB && batchB !== 1 && batchA !== 1) {
    throw new ShapeError(`${op}: batch sizes differ in ${shapeStr(a.shape)} and ${shapeStr(b.shape)}`);
  }
  const batch = Math.max(batchA, batchB);
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const [M, K] = transA ? [ac, ar] : [ar, ac];
  const [K2, N] = transB ? [bc, br] : [br, bc];
  if (K !== K2) {
    throw new ShapeError(
      `${op}: inner dimensions differ: ${shapeStr(a.shape)}${transA ? 'ᵀ' : ''} @ ${shapeStr(b.shape)}${transB ? 'ᵀ' : ''}`,
    );
  }
  if (bias && (bias.size !== N || bias.shape.length !== 1)) {
    throw new ShapeError(`${op}: bias ${shapeStr(bias.shape)} does not match ${N} output columns`);
  }
  const outShape = a.shape.length === 3 || b.shape.length === 3 ? [batch, M, N] : [M, N];
  const out = Tensor.empty(outShape);
  const pre = savePre && act !== 'none' ? Tensor.empty(outShape) : null;
  launch(
    'matmul',
    matmulVec4Ok(M, N, K, transA) ? 'main_vec4' : 'main',
    {
      BATCH: batch,
      M,
      N,
      K,
      TA: transA ? 1 : 0,
      TB: transB ? 1 : 0,
      HAS_BIAS: bias ? 1 : 0,
      ACT: ACT[act],
      SAVE_PRE: pre ? 1 : 0,
      A_BSTRIDE: batchA === 1 ? 0 : M * K,
      B_BSTRIDE: batchB === 1 ? 0 : K * N,
    },
    { a, b, bias, out, pre },
  );
  return { out, pre };
}

/** Gradient of a product wrt an operand that was broadcast over the batch: sum the per-batch products. */
function reduceBatch(g: Tensor, target: Tensor): Tensor {
  if (g.shape.length === target.shape.length) return g;
  const s = sum(g, 0);
  g.dispose();
  return s;
}

function matmulBackward(
  a: Tensor,
  b: Tensor,
  transA: boolean,
  transB: boolean,
  g: Tensor,
  needA = a.requiresGrad,
  needB = b.requiresGrad,
): (Tensor | null)[] {
  // C = op(A) op(B).  dop(A) = g op(B)ᵀ, dop(B) = op(A)ᵀ g; un-transpose by choosing operand order.
  const mm = (x: Tensor, y: Tensor, tx: boolean, ty: boolean) =>
    matmulRaw({ a: x, b: y, transA: tx, transB: ty, bias: null, act: 'none', savePre: false }).out;
  let ga: Tensor | null = null;
  let gb: Tensor | null = null;
  if (needA) ga = reduceBatch(transA ? mm(b, g, transB, true) : mm(g, b, false, !transB), a);
  if (needB) gb = reduceBatch(transB ? mm(g, a, true, transA) : mm(a, g, !transA, false), b);
  return [ga, gb];
}

/** Batched matmul op(a) @ op(b); a 2D operand is shared across the other's batch. */
export function matmul(a: Tensor, b: Tensor, opts: { transA?: boolean; transB?: boolean } = {}): Tensor {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  const { out } = matmulRaw({ a, b, transA, transB, bias: null, act: 'none', savePre: false });
  return record(out, 'matmul', [a, b], (g) => matmulBackward(a, b, transA, transB, g));
}

/**
 * y = act(x W + b) over the last dimension of x (any leading dims), in one kernel.
 * W is [in, out] (row-major, the layout the kernel streams fastest).
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null, act: Activation = 'none'): Tensor {
  const inDim = x.shape.at(-1)!;
  if (weight.shape.length !== 2 || weight.shape[0] !== inDim) {
    throw new ShapeError(`linear: input ${shapeStr(x.shape)} does not match weight ${shapeStr(weight.shape)} ([in, out])`);
  }
  const rows = x.size / inDim;
  const x2 = x.reshaped([rows, inDim]);
  const needPre = act !== 'none' && [x, weight, bias].some((t) => t?.requiresGrad);
  const { out, pre } = matmulRaw({ a: x2, b: weight, transA: false, transB: false, bias, act, savePre: needPre });
  const y = out.reshaped([...x.shape.slice(0, -1), weight.shape[1]]);
  out.dispose();
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record(y, 'linear', inputs, (g) => {
    let gz = g.reshaped([rows, weight.shape[1]]);
    if (pre) {
      const z = Tensor.empty(gz.shape);
      launchBinaryGrad(act === 'gelu' ? 'gelu_grad' : 'relu_grad', pre, gz, z);
      gz = z;
    }
    const [gx, gw] = matmulBackward(x2, weight, false, false, gz, x.requiresGrad, weight.requiresGrad);
    const gb = bias?.requiresGrad ? sum(gz, 0) : null;
    return [gx ? gx.reshaped(x.shape) : null, gw, gb];
  });
}

/** The activation's gradient at the saved pre-activation, as one flat binary launch. */
function launchBinaryGrad(op: 'gelu_grad' | 'relu_grad', pre: Tensor, g: Tensor, out: Tensor): void {
  const flat = [0, 0, 0, 0, 0, 1];
  launch('elementwise', 'binary', binaryConsts(op, out.size, [1, 1, 1, 1, 1, out.size], flat, flat), { x: pre, y: g, out });
}
