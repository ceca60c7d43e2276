// What a layer needs from wherever its parameters live: the initialisers, a handle per parameter, and
// the source that hands them out (the ParameterStore). Types only, so that layers and the store share
// them without importing each other.
import type { Tensor } from '../tensor/tensor.ts';

export type ParamInit =
  | { kind: 'zeros' }
  | { kind: 'ones' }
  | { kind: 'normal'; std: number }
  /** Normal(0, std²) redrawn until within ±2 std (the usual truncated normal; timm's ±2 absolute bound is no cut at std 0.02). */
  | { kind: 'trunc_normal'; std: number }
  /** Uniform(±sqrt(6 / (fan_in + fan_out))); weights are [in, out], so fan_out is the last dim. */
  | { kind: 'xavier_uniform' }
  /** Uniform(±1/sqrt(fan_in)): PyTorch's default for nn.Linear and nn.Conv weights; weights are [in, out]. */
  | { kind: 'fan_in_uniform' }
  /** Uniform(±bound): for layouts whose fan-in is not the size over the last dim (conv weights [Cout, Cin, k, k]). */
  | { kind: 'uniform'; bound: number };

export interface ParamHandle {
  readonly name: string;
  readonly shape: readonly number[];
  /** The parameter tensor (a view into the store's arena); valid after the store is finalised. */
  readonly tensor: Tensor;
}

/** Where layers declare their parameters (the store; tests may bring their own). */
export interface ParamSource {
  param(name: string, shape: readonly number[], init: ParamInit): ParamHandle;
  /**
   * Declare non-trainable state (PyTorch's register_buffer, e.g. BatchNorm's running statistics): stored, saved,
   * exported and loaded with the parameters, but never trained (no gradient, no optimizer update, no weight decay),
   * whatever trainable rule the store is given. The layer updates it in place.
   */
  buffer(name: string, shape: readonly number[], init: ParamInit): ParamHandle;
}
