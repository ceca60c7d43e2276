// The kernel registry: each family lives in `kernels/<name>.wgsl` with its bindings, dispatch rule and TS
// reference in `src/backend/kernels/<name>.ts`. Adding a family is one file plus one line here.
import type { KernelEntry, KernelFamily } from '../kernel.ts';
import { attention } from './attention.ts';
import { conv } from './conv.ts';
import { elementwise } from './elementwise.ts';
import { groupnorm } from './groupnorm.ts';
import { indexing } from './indexing.ts';
import { layernorm } from './layernorm.ts';
import { losses } from './losses.ts';
import { matmul } from './matmul.ts';
import { optimizer } from './optimizer.ts';
import { patchEmbed } from './patch_embed.ts';
import { pool } from './pool.ts';
import { reduce } from './reduce.ts';
import { softmax } from './softmax.ts';

/** Every family by the name of its WGSL file; `launch` takes its types from here. */
export const FAMILIES = {
  matmul,
  elementwise,
  reduce,
  optimizer,
  attention,
  softmax,
  losses,
  layernorm,
  patch_embed: patchEmbed,
  indexing,
  conv,
  pool,
  groupnorm,
} as const;

export const KERNELS: ReadonlyMap<string, KernelFamily> = new Map(Object.values(FAMILIES).map((f) => [f.name, f]));

for (const [key, fam] of Object.entries(FAMILIES)) {
  if (fam.name !== key) throw new Error(`kernel family ${fam.name} is registered as ${key}`);
}

export function kernelEntry(kernel: string, entry: string): KernelEntry {
  const e = KERNELS.get(kernel)?.entries[entry];
  if (!e) throw new Error(`unknown kernel ${kernel}.${entry}: register it in src/backend/kernels/index.ts`);
  return e;
}
