// Test helpers: both backends side by side, seeded random data, and central finite differences.
import { CpuBackend } from '../src/backend/cpu.ts';
import type { Backend } from '../src/backend/backend.ts';
import { DawnBackend } from '../src/backend/dawn.ts';
import { backend, setBackend, tidy, Tensor, type Shape } from '../src/tensor/tensor.ts';
import { Rng } from '../src/util/rng.ts';
import { expect, TestRunner } from 'vitest';

let gpu: DawnBackend | null | undefined;
export const cpu = new CpuBackend();
setBackend(cpu);

/** The shared WebGPU backend (created once per test file); null when no adapter exists. */
export async function gpuBackend(): Promise<DawnBackend | null> {
  if (gpu === undefined) gpu = await DawnBackend.create();
  if (!gpu && process.env.CI) throw new Error('no WebGPU adapter in CI: scripts/setup.sh should have installed lavapipe');
  return gpu;
}

/**
 * The shared WebGPU backend for a test that means nothing without it: under CI a missing adapter throws (see
 * gpuBackend); elsewhere the test is marked skipped with the reason, never passed with nothing asserted.
 */
export async function requireGpu(): Promise<DawnBackend> {
  return (await gpuBackend()) ?? noGpu();
}

/** What a test does when it found no adapter: fail under CI, otherwise mark the current test skipped. */
export function noGpu(): never {
  if (process.env.CI) throw new Error('no WebGPU adapter in CI: scripts/setup.sh should have installed lavapipe');
  TestRunner.getCurrentTest()?.context.skip('no WebGPU adapter: run scripts/setup.sh (Mesa lavapipe) first');
  throw new Error('no WebGPU adapter, and no current test to skip');
}

export function use(b: Backend): void {
  setBackend(b);
}

/** `n` deterministic values, uniform in [lo, hi), from the project's Rng seeded with `seed`. */
export function uniform(n: number, seed = 1, lo = -1, hi = 1): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.uniform(lo, hi));
}

export function expectClose(actual: Float32Array, expected: Float32Array, tol = 1e-4, what = 'values'): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]) / (1 + Math.abs(expected[i]));
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  expect(worst, `${what}: worst relative error at ${at}: ${actual[at]} vs ${expected[at]}`).toBeLessThanOrEqual(tol);
}

export interface Case {
  /** Inputs as plain data with shapes; `grad` marks the ones to differentiate. */
  inputs: { data: Float32Array | Int32Array; shape: Shape; grad?: boolean; dtype?: 'f32' | 'i32' }[];
  /** Builds the output from tensors on the current backend. */
  fn: (...xs: Tensor[]) => Tensor;
}

/** Run a case on the current backend: output values and gradients of sum(out * w) for a fixed random w. */
export async function evaluate(c: Case): Promise<{ out: Float32Array; grads: (Float32Array | null)[] }> {
  const { sum, mul } = await import('../src/ops/index.ts');
  const xs = c.inputs.map((i) => {
    const t = Tensor.from(i.data, i.shape, i.dtype ?? 'f32');
    t.requiresGrad = !!i.grad;
    return t;
  });
  const { out, loss } = tidy(() => {
    const out = c.fn(...xs);
    if (!out.requiresGrad) return { out, loss: null };
    const w = Tensor.from(uniform(out.size, 99), out.shape);
    const loss = sum(mul(out, w));
    loss.backward();
    return { out, loss };
  });
  const result = { out: await out.data(), grads: await Promise.all(xs.map((x) => (x.grad ? x.grad.data() : null))) };
  out.dispose();
  loss?.dispose();
  xs.forEach((x) => {
    x.grad?.dispose();
    x.dispose();
  });
  return result;
}

/** Central finite differences of sum(out * w) wrt input `k` on the current backend. */
export async function numericGrad(c: Case, k: number, eps = 1e-2): Promise<Float32Array> {
  const { sum, mul } = await import('../src/ops/index.ts');
  const base = c.inputs[k].data as Float32Array;
  const g = new Float32Array(base.length);
  const f = async (data: Float32Array): Promise<number> => {
    const loss = tidy(() => {
      const xs = c.inputs.map((i, j) => Tensor.from(j === k ? data : i.data, i.shape, i.dtype ?? 'f32'));
      const out = c.fn(...xs);
      const w = Tensor.from(uniform(out.size, 99), out.shape);
      return sum(mul(out, w));
    });
    const v = await loss.item();
    loss.dispose();
    return v;
  };
  for (let i = 0; i < base.length; i++) {
    const p = Float32Array.from(base);
    p[i] += eps;
    const m = Float32Array.from(base);
    m[i] -= eps;
    g[i] = ((await f(p)) - (await f(m))) / (2 * eps);
  }
  return g;
}

/**
 * The standard check for an op: on the CPU reference, analytic gradients match finite differences;
 * on WebGPU, outputs and gradients match the CPU reference.
 */
export async function checkOp(c: Case, opts: { tol?: number; gradTol?: number; eps?: number; skipFd?: boolean } = {}): Promise<void> {
  const prev = backend();
  try {
    use(cpu);
    const ref = await evaluate(c);
    if (!opts.skipFd) {
      for (let k = 0; k < c.inputs.length; k++) {
        if (!c.inputs[k].grad) continue;
        const num = await numericGrad(c, k, opts.eps);
        expectClose(ref.grads[k]!, num, opts.gradTol ?? 2e-2, `finite differences, input ${k}`);
      }
    }
    // Without finite differences the WebGPU comparison is all this check asserts: it needs the adapter.
    const g = opts.skipFd ? await requireGpu() : await gpuBackend();
    if (g) {
      use(g);
      const got = await evaluate(c);
      expectClose(got.out, ref.out, opts.tol ?? 1e-4, 'webgpu output vs cpu');
      got.grads.forEach((gr, k) => {
        if (gr) expectClose(gr, ref.grads[k]!, opts.tol ?? 1e-4, `webgpu grad ${k} vs cpu`);
      });
    }
  } finally {
    use(prev);
  }
}

/** Destroy the shared device after a test file so the worker exits cleanly. */
export function releaseGpu(): void {
  gpu?.destroy();
  gpu = undefined;
}

/** Outputs and gradients of a case on the CPU reference and, when there is an adapter, on WebGPU. */
export async function onEachBackend(c: Case, check: (r: Awaited<ReturnType<typeof evaluate>>, name: string) => void): Promise<void> {
  const prev = backend();
  try {
    for (const be of [cpu, await gpuBackend()]) {
      if (!be) continue;
      use(be);
      check(await evaluate(c), be.name);
    }
  } finally {
    use(prev);
  }
}

/**
 * A command line that obeys file permission bits even as root: root's CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH
 * are dropped from the child's bounding set (util-linux `setpriv`), so a 0o555 folder refuses writes with EACCES
 * while the checkout (owned by root) stays readable. As another user the command runs unchanged.
 */
export function obeyingPermissions(command: string, args: string[]): [string, string[]] {
  if (process.getuid?.() !== 0) return [command, args];
  return ['setpriv', ['--bounding-set=-dac_override,-dac_read_search', '--', command, ...args]];
}

/** Runs `fn` on the CPU reference and, when an adapter exists, on WebGPU. */
export async function onEach(fn: (b: Backend) => Promise<void>): Promise<void> {
  const prev = backend();
  const g = await gpuBackend();
  try {
    for (const b of g ? [cpu, g] : [cpu]) {
      use(b);
      await fn(b);
    }
  } finally {
    use(prev);
  }
}
