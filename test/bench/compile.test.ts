// `mf bench compile`'s counting: pipelines created per stretch of work, and specialisations per family. The
// quickstart pass itself takes minutes on a cold lavapipe cache, so these tests count small launches instead.
import { afterAll, describe, expect, it } from 'vitest';
import { familyCounts, measureCompile } from '../../src/cli/bench_compile.ts';
import { add, matmul } from '../../src/ops/index.ts';
import { noGrad, Tensor, tidy } from '../../src/tensor/tensor.ts';
import { releaseGpu, requireGpu, uniform, use } from '../helpers.ts';

afterAll(releaseGpu);

describe('bench compile counting', () => {
  it('counts the pipelines a launch creates, and none for a second identical launch', async () => {
    const gpu = await requireGpu();
    use(gpu);
    // A shape no other test in this file uses, so the first launch must compile.
    const a = Tensor.from(uniform(12 * 20, 1), [12, 20]);
    const b = Tensor.from(uniform(20 * 28, 2), [20, 28]);
    const once = () =>
      Promise.resolve(
        tidy(() => {
          noGrad(() => add(matmul(a, b), matmul(a, b)));
        }),
      );
    const first = await measureCompile(gpu, once);
    expect(first.cost.pipelines).toBeGreaterThanOrEqual(2);
    expect(first.cost.keys).toHaveLength(first.cost.pipelines);
    expect(first.cost.keys.some((k) => k.startsWith('matmul:'))).toBe(true);
    expect(first.cost.compile_ms).toBeGreaterThan(0);
    const second = await measureCompile(gpu, once);
    expect(second.cost.pipelines).toBe(0);
    expect(second.cost.keys).toEqual([]);
    expect(second.cost.compile_ms).toBe(0);
    a.dispose();
    b.dispose();
  });

  it('shares one matmul pipeline across row counts (M arrives at run time)', async () => {
    const gpu = await requireGpu();
    use(gpu);
    const w = Tensor.from(uniform(16 * 24, 3), [16, 24]);
    const rows = async (m: number) => {
      const x = Tensor.from(uniform(m * 16, 4), [m, 16]);
      const r = await measureCompile(gpu, async () => {
        const y = tidy(() => noGrad(() => matmul(x, w)));
        const d = await y.data();
        y.dispose();
        return d;
      });
      x.dispose();
      return r;
    };
    const at32 = await rows(32);
    expect(at32.cost.pipelines).toBe(1);
    const at64 = await rows(64);
    expect(at64.cost.pipelines).toBe(0);
    expect(at64.result).toHaveLength(64 * 24);
    w.dispose();
  });

  it('groups distinct keys by family, most first', () => {
    const keys = ['matmul:main:M=1:', 'matmul:main:M=2:', 'matmul:main:M=1:', 'softmax:forward:D=4:', 'attention:forward:B=1:'];
    expect(familyCounts(keys)).toEqual({ matmul: 2, attention: 1, softmax: 1 });
    expect(Object.keys(familyCounts(keys))).toEqual(['matmul', 'attention', 'softmax']);
  });
});
