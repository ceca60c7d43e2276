// Every error a user can cause or meet ends as one line: what went wrong, where, and what to do.
// The CLI prints `error: <message>` for an MfError and exits non-zero without a stack trace.

export class MfError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(hint ? `${message} (${hint})` : message);
    this.name = new.target.name;
  }
}

/** A file that cannot be read as what it claims to be (npz, npy, NIfTI, safetensors, JSON). */
export class FileFormatError extends MfError {}
/** An experiment config or CLI flag that does not validate. */
export class ConfigError extends MfError {}
/** Shapes or dtypes that an op cannot take. */
export class ShapeError extends MfError {}
/** The GPU device was lost, a validation error surfaced, or memory ran out. */
export class GpuError extends MfError {}
export class DeviceLostError extends GpuError {}
export class OutOfMemoryError extends GpuError {}
/** Loss or gradients became NaN/Inf. */
export class NumericalError extends MfError {}
