// Named bindings and constants onto a KernelCall. An op names its buffers (`{ x, weight, bias, out }`)
// and constants; this maps them to WGSL binding numbers and checks them BEFORE anything is dispatched:
// unknown or missing bindings and constants, the uniform count, and every buffer that is smaller than
// its entry says it must be for these constants. The types do the same checks at compile time for
// object literals: `BindingsOf<'conv', 'forward', B>` has exactly conv.forward's binding names.
import { MfError } from '../errors.ts';
import type { Consts, DeviceBuffer, FConsts, KernelCall } from './backend.ts';
import { type FAMILIES, KERNELS } from './kernels/index.ts';

/** A launch that does not match its kernel's declaration. */
export class BindingError extends MfError {}

type Families = typeof FAMILIES;
export type KernelName = keyof Families;
type Types<K extends KernelName> = NonNullable<Families[K]['types']>;
type Entries<K extends KernelName> = Types<K>['entries'];
export type EntryName<K extends KernelName> = Extract<keyof Entries<K>, string>;
type Spec<K extends KernelName, E extends EntryName<K>> = Entries<K>[E];

type Bare<N> = N extends `${infer B}?` ? B : N;
type Needed<N> = N extends `${string}?` ? never : N;
type Omittable<N> = N extends `${infer B}?` ? B : never;
type Listed<T, P extends string> = T extends { readonly [Q in P]: readonly (infer X extends string)[] } ? X : never;

type BindingNames<K extends KernelName, E extends EntryName<K>> = Listed<Spec<K, E>, 'bindings'>;
/** The buffers of one entry by name: required ones, and optional ones that may be left out or null. */
export type BindingsOf<K extends KernelName, E extends EntryName<K>, B> = { readonly [N in Needed<BindingNames<K, E>>]: B } & {
  readonly [N in Omittable<BindingNames<K, E>>]?: B | null;
};

type Defaulted<K extends KernelName, P extends 'defaults' | 'fdefaults'> = Extract<keyof Types<K>[P], string>;
type FamilyConsts<K extends KernelName, P extends 'consts' | 'fconsts', D extends 'defaults' | 'fdefaults'> =
  | { [E in EntryName<K>]: Bare<Listed<Spec<K, E>, P>> }[EntryName<K>]
  | Defaulted<K, D>;
type NeededConsts<K extends KernelName, E extends EntryName<K>, P extends 'consts' | 'fconsts', D extends 'defaults' | 'fdefaults'> =
  | Needed<Listed<Spec<K, E>, P>>
  | Exclude<FamilyConsts<K, P, D>, Defaulted<K, D>>;
type ConstRecord<All extends string, Need extends string> = { readonly [N in Need]: number } & {
  readonly [N in Exclude<All, Need>]?: number;
};

/** Integer constants of one entry: those it needs, and any other constant its family knows. */
export type ConstsOf<K extends KernelName, E extends EntryName<K>> = ConstRecord<
  FamilyConsts<K, 'consts', 'defaults'>,
  NeededConsts<K, E, 'consts', 'defaults'>
>;
export type FConstsOf<K extends KernelName, E extends EntryName<K>> = ConstRecord<
  FamilyConsts<K, 'fconsts', 'fdefaults'>,
  NeededConsts<K, E, 'fconsts', 'fdefaults'>
>;

/** What follows the buffers: float constants (required when the entry needs one), then uniforms if it reads them. */
export type LaunchExtras<K extends KernelName, E extends EntryName<K>> =
  Spec<K, E> extends { readonly uniforms: number }
    ? [fconsts: FConstsOf<K, E> | undefined, uniforms: readonly number[]]
    : [NeededConsts<K, E, 'fconsts', 'fdefaults'>] extends [never]
      ? [fconsts?: FConstsOf<K, E>]
      : [fconsts: FConstsOf<K, E>];

/** Buffers bound to optional bindings that the caller leaves out; separate ones so that they never alias. */
export interface Placeholders {
  read: DeviceBuffer;
  write: DeviceBuffer;
}

const list = (names: Iterable<string>): string => [...names].join(', ') || 'none';

/**
 * The KernelCall for `kernel.entry` with these named buffers and constants, or a BindingError naming
 * the op, the binding or constant, and (for sizes) the expected and the actual element count.
 */
export function bindCall(
  kernel: string,
  entry: string,
  consts: Consts,
  buffers: Readonly<Record<string, DeviceBuffer | null | undefined>>,
  fconsts: FConsts | undefined,
  uniforms: readonly number[] | undefined,
  placeholders: () => Placeholders,
): KernelCall {
  const op = `${kernel}.${entry}`;
  const fam = KERNELS.get(kernel);
  const e = fam?.entries[entry];
  if (!fam || !e) throw new BindingError(`unknown kernel ${op}`, 'register it in src/backend/kernels/index.ts');
  for (const name of Object.keys(buffers)) {
    if (!e.bySlot.has(name)) throw new BindingError(`${op}: unknown binding '${name}' (it binds ${list(e.slots.map((s) => s.name))})`);
  }
  for (const [given, known, what] of [
    [consts, fam.consts, 'constant'],
    [fconsts ?? {}, fam.fconsts, 'float constant'],
  ] as const) {
    for (const k of Object.keys(given))
      if (!known.has(k)) throw new BindingError(`${op}: unknown ${what} ${k} (the ${kernel} family has ${list(known)})`);
  }
  for (const k of e.required) if (!(k in consts)) throw new BindingError(`${op}: missing constant ${k}`);
  for (const k of e.requiredF) if (!fconsts || !(k in fconsts)) throw new BindingError(`${op}: missing float constant ${k}`);
  if ((uniforms?.length ?? 0) !== e.uniforms) throw new BindingError(`${op}: takes ${e.uniforms} uniforms, got ${uniforms?.length ?? 0}`);
  const filled = fam.defaults ? { ...fam.defaults, ...consts } : consts;
  const bound = new Array<DeviceBuffer | null>(e.slots.at(-1)!.binding + 1).fill(null);
  for (const s of e.slots) {
    const b = buffers[s.name];
    if (b == null) {
      if (!s.optional) throw new BindingError(`${op}: missing binding '${s.name}'`);
      const p = placeholders();
      bound[s.binding] = s.access === 'read' ? p.read : p.write;
      continue;
    }
    const want = e.sizes[s.name]?.(filled);
    const got = Math.floor(b.byteSize / 4);
    if (want !== undefined && got < want) {
      throw new BindingError(`${op}: binding '${s.name}' holds ${got} elements, expected at least ${want} for these constants`);
    }
    bound[s.binding] = b;
  }
  return { kernel, entry, consts, fconsts, buffers: bound, uniforms };
}
