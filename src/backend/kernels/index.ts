// The kernel registry: each family lives in `kernels/<name>.wgsl` with its dispatch rule and TS reference
// in `src/backend/kernels/<name>.ts`. Adding a family is one file plus one line here.
import type { KernelFamily } from '../kernel.ts';
import { optimizer } from './optimizer.ts';
import { attention } from './attention.ts';
import { elementwise } from './elementwise.ts';
import { indexing } from './indexing.ts';
import { layernorm } from './layernorm.ts';
import { losses } from './losses.ts';
import { patchEmbed } from './patch_embed.ts';
import { softmax } from './softmax.ts';
import { matmul } from './matmul.ts';
import { reduce } from './reduce.ts';
import { conv } from './conv.ts';
import { pool } from './pool.ts';
import { groupnorm } from './groupnorm.ts';

const families: KernelFamily[] = [matmul, elementwise, reduce, optimizer, attention, softmax, losses, layernorm, patchEmbed, indexing, conv, pool, groupnorm];

export const KERNELS: ReadonlyMap<string, KernelFamily> = new Map(families.map((f) => [f.name, f]));

export function kernelEntry(kernel: string, entry: string) {
  const fam = KERNELS.get(kernel);
  const e = fam?.entries[entry];
  if (!e) throw new Error(`unknown kernel ${kernel}.${entry}: register it in src/backend/kernels/index.ts`);
  return e;
}
