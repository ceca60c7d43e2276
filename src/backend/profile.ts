// Per-kernel profiling without timestamp queries (which lavapipe cannot take): record the kernel calls
// of one real step, then replay each call alone, flushed and waited for, and attribute the time to its
// family. Replays reuse the step's buffers, so shapes and memory traffic are the real ones.
import type { Backend, KernelCall } from './backend.ts';

/** The kernel calls `fn` launches on `backend` (which keeps running them as usual). */
export async function recordCalls(backend: Backend, fn: () => void): Promise<KernelCall[]> {
  const calls: KernelCall[] = [];
  const run = backend.run;
  backend.run = (call: KernelCall) => {
    calls.push(call);
    run.call(backend, call);
  };
  try {
    fn();
    await backend.sync();
  } finally {
    backend.run = run;
  }
  return calls;
}

export interface FamilyTime {
  kernel: string;
  calls: number;
  ms: number;
  share: number;
}

/** Replay each recorded call `reps` times alone; milliseconds per step by kernel family and entry. */
export async function replayProfile(backend: Backend, calls: KernelCall[], reps = 3): Promise<FamilyTime[]> {
  const totals = new Map<string, { calls: number; ms: number }>();
  for (const call of calls) {
    backend.run(call);
    await backend.sync();
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) backend.run(call);
    await backend.sync();
    const ms = (performance.now() - t0) / reps;
    const key = `${call.kernel}.${call.entry}`;
    const t = totals.get(key) ?? { calls: 0, ms: 0 };
    t.calls++;
    t.ms += ms;
    totals.set(key, t);
  }
  const sum = [...totals.values()].reduce((a, t) => a + t.ms, 0);
  return [...totals]
    .map(([kernel, t]) => ({ kernel, calls: t.calls, ms: +t.ms.toFixed(2), share: +(t.ms / sum).toFixed(3) }))
    .sort((a, b) => b.ms - a.ms);
}
