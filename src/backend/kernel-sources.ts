// The kernels' WGSL for a bundle (a page): esbuild inlines every kernels/*.wgsl that this template can name, as
// text (the `.wgsl: text` loader of the web build), so the same files the Node runtime reads from disk
// (dawn.ts) reach the browser unchanged. Node cannot load these imports; it never imports this module.
import type { KernelSources } from './webgpu.ts';
import { KERNELS } from './kernels/index.ts';

/** Every registered kernel family's WGSL, fetched from the bundle before the first dispatch needs it. */
export async function loadKernelSources(): Promise<KernelSources> {
  const sources = new Map<string, string>();
  for (const family of KERNELS.keys()) {
    const mod = (await import(`../../kernels/${family}.wgsl`)) as { default: string };
    sources.set(family, mod.default);
  }
  return (family) => {
    const src = sources.get(family);
    if (src === undefined) throw new Error(`kernel family ${family} is not in the bundle (kernels/${family}.wgsl)`);
    return src;
  };
}
