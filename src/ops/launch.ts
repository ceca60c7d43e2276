// Shared plumbing for ops: launching a kernel by named bindings, and NumPy-style broadcasting.
export { launch } from '../tensor/tensor.ts';
export { broadcastShapes, broadcastStrides, contiguousStrides, MAX_RANK, pad6, sameShape } from '../tensor/shape.ts';
