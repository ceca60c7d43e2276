// The compile helper (src/backend/compile-helper.ts): on a CPU rasteriser a second process compiles each new pipeline
// too, newest first, so that the engine finds it in Mesa's shader cache. Whether that shortens a cold start is a
// benchmark (`mf bench compile`, BENCHMARKS.md); here: it starts at the first new pipeline, compiles what the engine
// sent it, leaves the engine's results alone, is off with MF_COMPILE_HELPER=0, and ends with the engine's device.
import { afterAll, describe, expect, it } from 'vitest';
import { DawnBackend } from '../../src/backend/dawn.ts';
import { softmax } from '../../src/ops/index.ts';
import { backend, Tensor } from '../../src/tensor/tensor.ts';
import { cpu, noGpu, releaseGpu, uniform, use } from '../helpers.ts';

afterAll(releaseGpu);

async function until(what: string, test: () => boolean, seconds: number): Promise<void> {
  const end = Date.now() + seconds * 1000;
  while (!test()) {
    if (Date.now() > end) throw new Error(`not within ${seconds} s: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function withHelperEnv<T>(value: string, fn: () => Promise<T>): Promise<T> {
  const before = process.env.MF_COMPILE_HELPER;
  process.env.MF_COMPILE_HELPER = value;
  try {
    return await fn();
  } finally {
    process.env.MF_COMPILE_HELPER = before;
  }
}

describe('compile helper', () => {
  it('compiles the pipelines the engine creates, leaves its results alone, and exits with the device', async () => {
    const be = (await withHelperEnv('1', () => DawnBackend.create())) ?? noGpu();
    const prev = backend();
    try {
      const helper = be.compileHelper();
      if (!be.adapter.isSoftware) {
        // A real GPU compiles pipelines itself, fast: no helper.
        expect(helper).toBeNull();
        return;
      }
      expect(helper).not.toBeNull();
      // Nothing compiled yet, so no process yet.
      expect(helper!.pid).toBeNull();
      // A softmax width no other test uses: a new specialisation.
      const x = uniform(3 * 37, 5);
      use(cpu);
      const want = await softmax(Tensor.from(x, [3, 37])).data();
      use(be);
      const got = await softmax(Tensor.from(x, [3, 37])).data();
      expect(got).toHaveLength(want.length);
      for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(1e-6);
      const pid = be.compileHelper()!.pid;
      expect(pid).toBeGreaterThan(0);
      await until(
        'the helper reports the softmax pipeline',
        () => be.compileHelper()!.compiled.some((k) => k.startsWith('softmax:forward:D=37,')),
        120,
      );
      be.destroy();
      await until('the helper process exits after the device is destroyed', () => !alive(pid!), 20);
    } finally {
      use(prev);
    }
  });

  it('is off with MF_COMPILE_HELPER=0', async () => {
    const be = (await withHelperEnv('0', () => DawnBackend.create())) ?? noGpu();
    expect(be.compileHelper()).toBeNull();
    be.destroy();
  });
});
