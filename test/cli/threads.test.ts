// lavapipe's thread count: the usable cores unless the user chose one.
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { rasteriserThreads, setRasteriserThreads, usableCores } from '../../src/cli/threads.ts';

describe('LP_NUM_THREADS', () => {
  it('is set to the cores this process may use, at most its CPU affinity', () => {
    const env: NodeJS.ProcessEnv = {};
    const r = setRasteriserThreads(env);
    expect(r.source).toBe('cores');
    expect(r.threads).toBe(usableCores());
    expect(r.threads).toBeGreaterThanOrEqual(1);
    expect(r.threads).toBeLessThanOrEqual(os.availableParallelism());
    expect(env.LP_NUM_THREADS).toBe(String(r.threads));
    expect(rasteriserThreads(env)).toBe(r.threads);
  });

  it('keeps a value the user set, and reports none when it is unset', () => {
    const env: NodeJS.ProcessEnv = { LP_NUM_THREADS: '7' };
    expect(setRasteriserThreads(env)).toMatchObject({ threads: 7, source: 'environment' });
    expect(env.LP_NUM_THREADS).toBe('7');
    expect(rasteriserThreads({})).toBeNull();
  });
});
