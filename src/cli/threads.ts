// How many threads Mesa's lavapipe may use. It splits every compute dispatch over LP_NUM_THREADS threads (default:
// every online CPU of the host, whatever the process's CPU affinity or container quota) and waits for the slowest,
// so in a container capped at 2 CPUs of a 64-core host it would start 64 threads for 2 cores. This sets it to the
// cores the process may use. It does not divide them among runs that share a machine: measured on the 2-core
// machine (BENCHMARKS.md, shared cores), two concurrent runs stepped faster with 2 threads each than with 1.
// Other drivers ignore the variable.
import fs from 'node:fs';
import os from 'node:os';

export interface RasteriserThreads {
  /** LP_NUM_THREADS as the driver will read it. */
  threads: number;
  /** Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota. */
  cores: number;
  /** Whether the user set LP_NUM_THREADS (then it is left alone) or it was set from the usable cores. */
  source: 'environment' | 'cores';
}

/** A cgroup v2 CPU quota in whole cores ("max" or no file: none). */
function cgroupCores(file = '/sys/fs/cgroup/cpu.max'): number | null {
  try {
    const [quota, period] = fs.readFileSync(file, 'utf8').trim().split(/\s+/);
    if (quota === 'max') return null;
    const cores = Number(quota) / Number(period);
    return Number.isFinite(cores) && cores > 0 ? Math.max(1, Math.floor(cores)) : null;
  } catch {
    return null;
  }
}

export function usableCores(): number {
  const affinity = os.availableParallelism();
  const quota = cgroupCores();
  return quota === null ? affinity : Math.min(affinity, quota);
}

/**
 * Sets LP_NUM_THREADS to the usable cores unless the user set it. Must run before the WebGPU instance is created:
 * lavapipe reads it when the device starts.
 */
export function setRasteriserThreads(env: NodeJS.ProcessEnv = process.env): RasteriserThreads {
  const cores = usableCores();
  const own = env.LP_NUM_THREADS;
  if (own !== undefined && own !== '' && Number.isInteger(Number(own)) && Number(own) >= 0) {
    return { threads: Number(own), cores, source: 'environment' };
  }
  env.LP_NUM_THREADS = String(cores);
  return { threads: cores, cores, source: 'cores' };
}

/** The thread count the driver was given, for benchmark records. */
export function rasteriserThreads(env: NodeJS.ProcessEnv = process.env): number | null {
  const n = Number(env.LP_NUM_THREADS);
  return env.LP_NUM_THREADS !== undefined && Number.isInteger(n) ? n : null;
}
