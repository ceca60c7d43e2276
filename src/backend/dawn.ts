// The engine's Node side: Dawn (the `webgpu` npm package) as the WebGPU implementation, and the kernels read from
// kernels/*.wgsl on disk. The only module of the engine that imports Node; a page uses webgpu.ts with the adapter
// of navigator.gpu and the bundled kernels (kernel-sources.ts) instead.
import { mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { create, globals } from 'webgpu';
import { type AdapterReport, reportAdapter, requestEngineDevice, WebGpuBackend } from './webgpu.ts';

export type { AdapterReport };

const KERNEL_DIR = fileURLToPath(new URL('../../kernels/', import.meta.url));

/** A kernel family's WGSL from kernels/<family>.wgsl. */
export const readKernelSource = (family: string): string => readFileSync(`${KERNEL_DIR}${family}.wgsl`, 'utf8');

export interface WebGpuOptions {
  /** Dawn backend: 'vulkan', 'metal', 'd3d12', ... (default: Dawn's choice). */
  backend?: string;
  /** Substring of the adapter description to pick (Dawn's `adapter=` option). */
  adapter?: string;
}

let globalsInstalled = false;
function dawn(options: WebGpuOptions): GPU {
  if (!globalsInstalled) {
    Object.assign(globalThis, globals);
    globalsInstalled = true;
  }
  // Dawn's Vulkan path wants a runtime dir; plain shells and CI may lack one.
  if (!process.env.XDG_RUNTIME_DIR) {
    process.env.XDG_RUNTIME_DIR = '/tmp/mf-xdg';
    mkdirSync(process.env.XDG_RUNTIME_DIR, { recursive: true, mode: 0o700 });
  }
  const flags: string[] = [];
  if (options.backend) flags.push(`backend=${options.backend}`);
  if (options.adapter) flags.push(`adapter=${options.adapter}`);
  return create(flags);
}

/** Dawn's adapter info has no backend field; it uses the platform's native API unless told otherwise. */
function backendName(requested: string | undefined): string {
  const native: Record<string, string> = { linux: 'vulkan', darwin: 'metal', win32: 'd3d12' };
  return requested ?? native[process.platform] ?? 'unknown';
}

/** Every adapter Dawn offers, for `mf devices`. */
export async function listAdapters(options: WebGpuOptions = {}): Promise<AdapterReport[]> {
  const gpu = dawn(options);
  const out: AdapterReport[] = [];
  for (const powerPreference of ['high-performance', 'low-power'] as const) {
    const a = await gpu.requestAdapter({ powerPreference });
    if (!a) continue;
    const r = reportAdapter(a, backendName(options.backend));
    if (!out.some((o) => o.description === r.description && o.backend === r.backend)) out.push(r);
  }
  return out;
}

/** The WebGPU runtime on Dawn's high-performance adapter. */
export class DawnBackend extends WebGpuBackend {
  /** The backend on Dawn's adapter; null when Dawn finds none. */
  static async create(options: WebGpuOptions = {}): Promise<DawnBackend | null> {
    const gpu = dawn(options);
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) return null;
    const report = reportAdapter(adapter, backendName(options.backend));
    const device = await requestEngineDevice(adapter);
    return new DawnBackend(device, report, {
      sources: readKernelSource,
      keepAlive: [gpu, adapter],
      onCompile: process.env.MF_TRACE_COMPILE ? (ms, key) => process.stderr.write(`compile ${ms.toFixed(0)}ms ${key}\n`) : undefined,
    });
  }

  /**
   * Dawn's instance and adapter behind this device, for code that brings its own WebGPU kernels on the
   * same device (`mf bench --compare tfjs`); null once destroyed.
   */
  get dawn(): { gpu: GPU; adapter: GPUAdapter } | null {
    const gpu = this.keepAlive.find((h): h is GPU => 'requestAdapter' in h);
    const adapter = this.keepAlive.find((h): h is GPUAdapter => 'requestDevice' in h);
    return gpu && adapter ? { gpu, adapter } : null;
  }
}
