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

  it('shares one matmul pipeline across row counts and widths (M, N and K arrive at run time)', async () => {
    const gpu = await requireGpu();
    use(gpu);
    const launch = async (m: number, k: number, n: number) => {
      const x = Tensor.from(uniform(m * k, 4), [m, k]);
      const w = Tensor.from(uniform(k * n, 3), [k, n]);
      const r = await measureCompile(gpu, async () => {
        const y = tidy(() => noGrad(() => matmul(x, w)));
        const d = await y.data();
        y.dispose();
        return d;
      });
      x.dispose();
      w.dispose();
      return r;
    };
    // The first shape compiles the plain matmul unless a test before it already did (the first test's shapes share it).
    const first = await launch(32, 16, 24);
    expect(first.cost.pipelines).toBeLessThanOrEqual(1);
    expect(first.cost.keys.every((k) => k.startsWith('matmul:'))).toBe(true);
    for (const [m, k, n] of [
      [64, 16, 24],
      [32, 40, 24],
      [32, 16, 56],
    ]) {
      const r = await launch(m!, k!, n!);
      expect(r.cost.pipelines, `${m}x${k}x${n}`).toBe(0);
      expect(r.result).toHaveLength(m! * n!);
    }
  });

  it('groups distinct keys by family, most first', () => {
    const keys = ['matmul:main:M=1:', 'matmul:main:M=2:', 'matmul:main:M=1:', 'softmax:forward:D=4:', 'attention:forward:B=1:'];
    expect(familyCounts(keys)).toEqual({ matmul: 2, attention: 1, softmax: 1 });
    expect(Object.keys(familyCounts(keys))).toEqual(['matmul', 'attention', 'softmax']);
  });
});
