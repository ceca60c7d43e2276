// `mf bench kernels --compare tfjs`: our matmul and @tensorflow/tfjs-backend-webgpu's on one device agree,
// and the JSON has its fields. Needs the dev dependencies and a WebGPU adapter; small shapes only.
import { createRequire } from 'node:module';
import { afterAll, describe, expect, it } from 'vitest';
import { AGREE_TOL, compareTfjs, type CompareResult } from '../../src/cli/compare_tfjs.ts';
import { setBackend } from '../../src/tensor/tensor.ts';
import { cpu, requireGpu, releaseGpu } from '../helpers.ts';
import { mf } from '../run/helpers.ts';

function installed(name: string): boolean {
  try {
    createRequire(import.meta.url).resolve(name);
    return true;
  } catch {
    return false;
  }
}

const tfjs = installed('@tensorflow/tfjs-core') && installed('@tensorflow/tfjs-backend-webgpu');
const SKIP = tfjs ? '' : ' (skipped: @tensorflow/tfjs-core / tfjs-backend-webgpu not installed; run npm ci)';

const FIELDS = ['shape', 'ours_ms', 'ours_gflops', 'tfjs_ms', 'tfjs_gflops', 'speedup', 'adapter'] as const;

function checkRow(r: CompareResult): void {
  for (const k of FIELDS) expect(r, k).toHaveProperty(k);
  for (const k of ['ours_ms', 'ours_gflops', 'tfjs_ms', 'tfjs_gflops', 'speedup'] as const) expect(r[k], k).toBeGreaterThan(0);
  expect(r.speedup).toBeCloseTo(r.tfjs_ms / r.ours_ms, 1);
  expect(r.adapter).toMatch(/^webgpu: /);
  expect(r.max_rel_err).toBeLessThanOrEqual(AGREE_TOL);
  expect(r.agree).toBe(true);
}

describe.skipIf(!tfjs)(`mf bench kernels --compare tfjs${SKIP}`, () => {
  afterAll(() => {
    releaseGpu();
    setBackend(cpu);
  });

  it('in process: both sides agree on small and odd shapes', async () => {
    const gpu = await requireGpu(); // no adapter outside CI: nothing to compare
    const report = await compareTfjs(gpu, true, [64, 37]);
    expect(report.results.map((r) => r.shape)).toEqual(['64x64x64', '37x37x37']);
    report.results.forEach(checkRow);
    expect(report.tfjsVersion).toMatch(/tfjs-backend-webgpu \d/);
    // tfjs is gone from the global navigator again, and our device still works.
    expect((globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu).toBeUndefined();
    await gpu.sync();
  });

  it('the CLI prints JSON rows with the fields and exits 0', async () => {
    await requireGpu();
    const r = mf(['bench', 'kernels', '--compare', 'tfjs', '--quick', '--json'], {}, 60_000);
    expect(r.stderr.trim()).toBe('');
    expect(r.status).toBe(0);
    const rows = JSON.parse(r.stdout) as CompareResult[];
    expect(rows.map((x) => x.shape)).toEqual(['64x64x64', '128x128x128']);
    rows.forEach(checkRow);
  });
});
