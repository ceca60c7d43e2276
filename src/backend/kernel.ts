// How a kernel family is declared: its WGSL bindings by name, each entry point's constants, dispatch
// rule, buffer sizes and CPU reference. `defineFamily` checks a declaration when its module loads and
// keeps its literal types, so that `launch` (src/tensor/tensor.ts, re-exported by src/ops/launch.ts) is
// typed per family and entry.
import type { Consts, FConsts } from './backend.ts';

export type Grid = [number, number, number];
export type Access = 'read' | 'read_write';

/** One `@group(0) @binding(n)` of a family's WGSL file. */
export interface Slot {
  readonly binding: number;
  /** `var<storage, read>` or `var<storage, read_write>`: an omitted optional binding gets the placeholder of its kind. */
  readonly access: Access;
  /** The WGSL variables declared at this binding (a vec4 variant shares it: `X` and `X4`). */
  readonly wgsl: readonly string[];
}

export const read = (binding: number, ...wgsl: string[]): Slot => ({ binding, access: 'read', wgsl });
export const readWrite = (binding: number, ...wgsl: string[]): Slot => ({ binding, access: 'read_write', wgsl });

/** The bound ranges as Float32Array views by binding name (integer buffers are reinterpreted with `asI32`). */
export type RefBuffers = Readonly<Record<string, Float32Array>>;

/** One entry point as declared; `S` is the family's binding names. */
export interface EntrySpec<S extends string = string> {
  /**
   * The bindings the entry point uses, in binding order: exactly those its code reaches (WebGPU's
   * automatic layout has no others). `name?` marks a binding the caller may omit; it then gets a
   * placeholder buffer (a missing bias, an output the constants switch off).
   */
  readonly bindings: readonly (S | `${S}?`)[];
  /** Integer constants the caller passes (`NAME?`: may fall back to the family default). */
  readonly consts: readonly string[];
  /** Float constants, likewise. */
  readonly fconsts?: readonly string[];
  /** The least number of 4-byte elements a binding must hold, computed from the constants (defaults filled in). */
  readonly sizes?: { readonly [K in S]?: (c: Consts) => number };
  /** Number of f32 values the entry reads from its uniform buffer (group 1). */
  readonly uniforms?: number;
  /** Workgroups to dispatch in x, y, z for these constants. */
  grid(c: Consts): Grid;
  /** The CPU reference: the oracle for tests and the fallback backend. */
  reference(c: Consts, f: FConsts, buffers: RefBuffers, uniforms: readonly number[]): void;
}

/** A binding of one entry, resolved against the family's slots. */
export interface EntrySlot {
  readonly name: string;
  readonly binding: number;
  readonly access: Access;
  readonly optional: boolean;
}

/** An entry point ready for the runtime: bindings resolved, constant sets computed. */
export interface KernelEntry {
  readonly family: string;
  readonly name: string;
  /** In binding order. */
  readonly slots: readonly EntrySlot[];
  readonly bySlot: ReadonlyMap<string, EntrySlot>;
  /** The constants the entry names, integer and float, optional ones included. */
  readonly declared: readonly string[];
  /** Integer and float constants a call must pass: the entry's own and every family constant without a default. */
  readonly required: readonly string[];
  readonly requiredF: readonly string[];
  readonly sizes: Readonly<Record<string, ((c: Consts) => number) | undefined>>;
  readonly uniforms: number;
  grid(c: Consts): Grid;
  reference(c: Consts, f: FConsts, buffers: RefBuffers, uniforms: readonly number[]): void;
}

/** A shader family: `kernels/<name>.wgsl` plus its entry points. Adding a kernel = one file + one registration. */
export interface KernelFamily {
  readonly name: string;
  readonly slots: Readonly<Record<string, Slot>>;
  readonly entries: Readonly<Record<string, KernelEntry>>;
  /** Every integer and float constant the family's WGSL or dispatch rules name. */
  readonly consts: ReadonlySet<string>;
  readonly fconsts: ReadonlySet<string>;
  /**
   * Values for constants that some entries of the file do not use: WGSL resolves every module-scope
   * name, so each constant the file mentions needs a value in every specialisation.
   */
  readonly defaults?: Consts;
  readonly fdefaults?: FConsts;
}

/** The declaration as written, kept as a type so that launches can be checked against it. */
export interface FamilyTypes<Sl, E, D, FD> {
  slots: Sl;
  entries: E;
  defaults: D;
  fdefaults: FD;
}

const bare = (n: string): string => (n.endsWith('?') ? n.slice(0, -1) : n);

/**
 * Declare a family. Throws at load time when the declaration contradicts itself: a binding that is not
 * a slot, bindings out of order or sharing a number, a size for a binding the entry lacks, an optional
 * constant without a default.
 */
export function defineFamily<
  const Sl extends Readonly<Record<string, Slot>>,
  const E extends Readonly<Record<string, EntrySpec<Extract<keyof Sl, string>>>>,
  const D extends Consts = {},
  const FD extends FConsts = {},
>(spec: {
  name: string;
  slots: Sl;
  entries: E;
  defaults?: D;
  fdefaults?: FD;
}): KernelFamily & { readonly types?: FamilyTypes<Sl, E, D, FD> } {
  const { name, slots, defaults, fdefaults } = spec;
  const fail = (why: string): never => {
    throw new Error(`kernel family ${name}: ${why}`);
  };
  const consts = new Set<string>(Object.keys(defaults ?? {}));
  const fconsts = new Set<string>(Object.keys(fdefaults ?? {}));
  const specs = Object.entries(spec.entries) as [string, EntrySpec][];
  for (const [, e] of specs) {
    e.consts.forEach((c) => consts.add(bare(c)));
    e.fconsts?.forEach((c) => fconsts.add(bare(c)));
  }
  const entries: Record<string, KernelEntry> = {};
  for (const [entry, e] of specs) {
    const op = `${name}.${entry}`;
    const resolved: EntrySlot[] = e.bindings.map((b) => {
      const slot = (slots as Record<string, Slot>)[bare(b)] ?? fail(`${op} binds '${bare(b)}', which is not a slot`);
      return { name: bare(b), binding: slot.binding, access: slot.access, optional: b.endsWith('?') };
    });
    resolved.forEach((s, i) => {
      if (i > 0 && s.binding <= resolved[i - 1].binding) fail(`${op}: bindings must be in strictly increasing binding order (${s.name})`);
    });
    const bySlot = new Map(resolved.map((s) => [s.name, s]));
    const sizes = (e.sizes ?? {}) as Record<string, ((c: Consts) => number) | undefined>;
    for (const s of Object.keys(sizes)) if (!bySlot.has(s)) fail(`${op} gives a size for '${s}', which it does not bind`);
    const optional = (list: readonly string[], dflt: Readonly<Record<string, number>> | undefined) => {
      for (const c of list) if (c.endsWith('?') && !(dflt && bare(c) in dflt)) fail(`${op}: optional constant ${bare(c)} has no default`);
    };
    optional(e.consts, defaults);
    optional(e.fconsts ?? [], fdefaults);
    const need = (own: readonly string[], all: Set<string>, dflt: Readonly<Record<string, number>> | undefined) => [
      ...new Set([...own.filter((c) => !c.endsWith('?')), ...[...all].filter((c) => !(dflt && c in dflt))]),
    ];
    entries[entry] = {
      family: name,
      name: entry,
      slots: resolved,
      bySlot,
      declared: [...e.consts, ...(e.fconsts ?? [])].map(bare),
      required: need(e.consts, consts, defaults),
      requiredF: need(e.fconsts ?? [], fconsts, fdefaults),
      sizes,
      uniforms: e.uniforms ?? 0,
      grid: e.grid,
      reference: e.reference,
    };
  }
  return { name, slots, entries, consts, fconsts, defaults, fdefaults };
}

export const asI32 = (a: Float32Array): Int32Array => new Int32Array(a.buffer, a.byteOffset, a.length);
export const asU32 = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** Largest workgroup count per grid dimension in WebGPU. */
export const MAX_GROUPS = 65535;

/** A 1D launch of `n` threads folded into x/y so that large n stays within MAX_GROUPS; WGSL side uses `flatId`. */
export function grid1d(n: number, workgroupSize: number): Grid {
  const groups = Math.max(1, Math.ceil(n / workgroupSize));
  if (groups <= MAX_GROUPS) return [groups, 1, 1];
  return [MAX_GROUPS, Math.ceil(groups / MAX_GROUPS), 1];
}

const float = (v: number): string => {
  if (!Number.isFinite(v)) throw new Error(`non-finite float constant ${v}`);
  const s = v.toString();
  return /[.e]/.test(s) ? s : `${s}.0`;
};

/**
 * The family constants that a WGSL file takes at run time instead of baking them in: those it declares as
 * `var<private> NAME: u32;` at module scope, in the order declared. Every entry of such a file calls
 * `load_dims()` first; the prelude defines it to copy the values from the `MF_DIMS` uniform (group 1,
 * binding 0), so calls that differ only in these constants share one pipeline (one compile). Only for
 * constants that set loop bounds, clamps or strides, never a workgroup size or an array length. The prelude
 * also defines `dim_NAME()`, which reads the uniform itself: a loop around a barrier needs a bound that WGSL's
 * uniformity analysis sees as uniform, and a `var<private>` is not.
 */
export function runtimeConsts(source: string, family: ReadonlySet<string>): string[] {
  const names: string[] = [];
  for (const m of source.matchAll(/^var<private>\s+(\w+)\s*:\s*u32\s*;/gm)) if (family.has(m[1])) names.push(m[1]);
  return names;
}

/** The u32 values of `names` in a call (defaults filled in), as the `MF_DIMS` uniform holds them. */
export function runtimeValues(names: readonly string[], consts: Consts, defaults: Consts = {}): Uint32Array {
  const out = new Uint32Array(Math.ceil(names.length / 4) * 4);
  names.forEach((k, i) => {
    const v = consts[k] ?? defaults[k];
    if (v === undefined || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`runtime constant ${k}=${v} must be a u32`);
    out[i] = v;
  });
  return out;
}

/**
 * WGSL prelude declaring the specialisation constants, prepended to the family's source. Constants named
 * in `runtime` are left to the source's `var<private>` declarations and filled by the `load_dims` defined here.
 */
export function constPrelude(consts: Consts, fconsts: FConsts = {}, runtime: readonly string[] = []): string {
  const lines: string[] = [];
  for (const [k, v] of Object.entries(consts)) {
    if (runtime.includes(k)) continue;
    if (!Number.isInteger(v) || v < 0) throw new Error(`constant ${k}=${v} must be a non-negative integer`);
    lines.push(`const ${k}: u32 = ${v}u;`);
  }
  for (const [k, v] of Object.entries(fconsts)) lines.push(`const ${k}: f32 = ${float(v)};`);
  if (runtime.length > 0) {
    lines.push(`@group(1) @binding(0) var<uniform> MF_DIMS: array<vec4<u32>, ${Math.ceil(runtime.length / 4)}>;`);
    const loads = runtime.map((k, i) => `${k} = MF_DIMS[${i >> 2}][${i & 3}];`);
    lines.push(`fn load_dims() { ${loads.join(' ')} }`);
    for (const [i, k] of runtime.entries()) lines.push(`fn dim_${k}() -> u32 { return MF_DIMS[${i >> 2}][${i & 3}]; }`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Stable key for a specialisation: family, entry and every constant baked in (those named in `runtime`,
 * passed at run time, are left out: calls differing only in them share the pipeline).
 */
export function specKey(kernel: string, entry: string, consts: Consts, fconsts: FConsts = {}, runtime: readonly string[] = []): string {
  const c = Object.keys(consts)
    .filter((k) => runtime.length === 0 || !runtime.includes(k))
    .sort()
    .map((k) => `${k}=${consts[k]}`);
  const f = Object.keys(fconsts)
    .sort()
    .map((k) => `${k}=${fconsts[k]}`);
  return `${kernel}:${entry}:${c.join(',')}:${f.join(',')}`;
}
