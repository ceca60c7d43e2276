// Picks the backend: WebGPU when an adapter exists, else the CPU reference (and says so).
import { MfError } from '../errors.ts';
import { setBackend } from '../tensor/tensor.ts';
import type { Backend } from './backend.ts';
import { CpuBackend } from './cpu.ts';
import { DawnBackend, type WebGpuOptions } from './dawn.ts';
import { WebGpuBackend } from './webgpu.ts';

export type BackendChoice = 'auto' | 'webgpu' | 'cpu';

export interface EngineOptions extends WebGpuOptions {
  backend?: BackendChoice;
  /** Dawn backend name ('vulkan', 'metal', ...), passed as WebGpuOptions.backend. */
  dawnBackend?: string;
  /** Called with a line when the engine falls back to the CPU. */
  warn?: (line: string) => void;
}

let active: Backend | null = null;

export async function initEngine(options: EngineOptions = {}): Promise<Backend> {
  const choice = options.backend ?? (process.env.MF_BACKEND as BackendChoice | undefined) ?? 'auto';
  let b: Backend | null = null;
  if (choice !== 'cpu') {
    b = await DawnBackend.create({ ...options, backend: options.dawnBackend });
    if (!b && choice === 'webgpu') {
      throw new MfError('no WebGPU adapter found', 'run scripts/setup.sh to install the Vulkan driver, or pass --backend cpu');
    }
    if (!b)
      (options.warn ?? ((l) => process.stderr.write(`${l}\n`)))(
        'warning: no WebGPU adapter found; using the slow CPU reference backend (run scripts/setup.sh)',
      );
  }
  if (!b) b = new CpuBackend();
  active?.destroy();
  active = b;
  setBackend(b);
  return b;
}

/** Destroy the device so the process exits promptly. */
export function shutdownEngine(): void {
  active?.destroy();
  active = null;
}

export { CpuBackend, DawnBackend, WebGpuBackend };
