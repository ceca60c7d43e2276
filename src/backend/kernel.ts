import type { Consts, FConsts } from './backend.ts';

/** One entry point of a kernel family: how many workgroups to launch and what it computes, in plain TS. */
export interface KernelEntry {
  /** Workgroups to dispatch in x, y, z for these constants. */
  grid(c: Consts): [number, number, number];
  /**
   * The CPU reference: the oracle for tests and the fallback backend. Buffers are Float32Array views of
   * the bound ranges in binding order (integer buffers are reinterpreted with `asI32`).
   */
  reference(c: Consts, f: FConsts, buffers: Float32Array[], uniforms: readonly number[]): void;
}

/** A shader family: `kernels/<name>.wgsl` plus its entry points. Adding a kernel = one file + one registration. */
export interface KernelFamily {
  name: string;
  entries: Record<string, KernelEntry>;
  /**
   * Values for constants that some entries of the file do not use: WGSL resolves every module-scope
   * name, so each constant the file mentions needs a value in every specialisation.
   */
  defaults?: Consts;
  fdefaults?: FConsts;
}

export const asI32 = (a: Float32Array): Int32Array => new Int32Array(a.buffer, a.byteOffset, a.length);
export const asU32 = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** Largest workgroup count per grid dimension in WebGPU. */
export const MAX_GROUPS = 65535;

/** A 1D launch of `n` threads folded into x/y so that large n stays within MAX_GROUPS; WGSL side uses `flatId`. */
export function grid1d(n: number, workgroupSize: number): [number, number, number] {
  const groups = Math.max(1, Math.ceil(n / workgroupSize));
  if (groups <= MAX_GROUPS) return [groups, 1, 1];
  return [MAX_GROUPS, Math.ceil(groups / MAX_GROUPS), 1];
}

const float = (v: number): string => {
  if (!Number.isFinite(v)) throw new Error(`non-finite float constant ${v}`);
  const s = v.toString();
  return /[.e]/.test(s) ? s : `${s}.0`;
};

/** WGSL prelude declaring the specialisation constants, prepended to the family's source. */
export function constPrelude(consts: Consts, fconsts: FConsts = {}): string {
  const lines: string[] = [];
  for (const [k, v] of Object.entries(consts)) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`constant ${k}=${v} must be a non-negative integer`);
    lines.push(`const ${k}: u32 = ${v}u;`);
  }
  for (const [k, v] of Object.entries(fconsts)) lines.push(`const ${k}: f32 = ${float(v)};`);
  return lines.join('\n') + '\n';
}

/** Stable key for a specialisation: family, entry and every constant. */
export function specKey(kernel: string, entry: string, consts: Consts, fconsts: FConsts = {}): string {
  const c = Object.keys(consts).sort().map((k) => `${k}=${consts[k]}`);
  const f = Object.keys(fconsts).sort().map((k) => `${k}=${fconsts[k]}`);
  return `${kernel}:${entry}:${c.join(',')}:${f.join(',')}`;
}
