// `mf bench kernels --compare tfjs`: our matmul against @tensorflow/tfjs-backend-webgpu's, side by side on
// one Dawn device. tfjs is a dev dependency, loaded only here. Both sides get the same random inputs, are
// warmed up (shader compilation), then timed in interleaved samples of `reps` calls that each end with a
// submit and a wait for the queue to drain; the median sample counts. Results are checked against each other.
import { createRequire } from 'node:module';
import type { Backend } from '../backend/backend.ts';
import { DawnBackend } from '../backend/dawn.ts';
import { MfError } from '../errors.ts';
import { matmul } from '../ops/index.ts';
import { noGrad, Tensor, tidy } from '../tensor/tensor.ts';
import { Rng } from '../util/rng.ts';

export interface CompareResult {
  shape: string;
  ours_ms: number;
  ours_gflops: number;
  tfjs_ms: number;
  tfjs_gflops: number;
  /** tfjs ms / our ms: above 1, ours is faster. */
  speedup: number;
  /** max |ours - tfjs| / max |tfjs| over the output. */
  max_rel_err: number;
  agree: boolean;
  adapter: string;
}

export interface CompareReport {
  adapter: string;
  tfjsAdapter: string;
  tfjsVersion: string;
  results: CompareResult[];
}

/** Results agree when the largest difference is this small relative to the largest output value. */
export const AGREE_TOL = 1e-4;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** `n` seeded values, uniform in [-0.1, 0.1): the same inputs for both sides. */
function randData(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.uniform(-0.1, 0.1));
}

type Tf = typeof import('@tensorflow/tfjs-core');
type TfWebGpu = typeof import('@tensorflow/tfjs-backend-webgpu');
type TfBackend = InstanceType<TfWebGpu['WebGPUBackend']>;

/** The tfjs modules (dev dependencies), or the one-line error that says to install them. */
export async function loadTfjs(): Promise<{ tf: Tf; webgpu: TfWebGpu }> {
  try {
    const tf = await import('@tensorflow/tfjs-core');
    const webgpu = await import('@tensorflow/tfjs-backend-webgpu');
    return { tf, webgpu };
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new MfError(
        '--compare tfjs needs @tensorflow/tfjs-core and @tensorflow/tfjs-backend-webgpu: install dev dependencies (npm ci)',
      );
    }
    throw e;
  }
}

function webgpuVersion(): string {
  const pkg: unknown = createRequire(import.meta.url)('@tensorflow/tfjs-backend-webgpu/package.json');
  const v = (pkg as { version?: unknown }).version;
  return typeof v === 'string' ? v : 'unknown';
}

interface NavigatorHolder {
  navigator?: { gpu?: GPU };
}

/**
 * tfjs checks `navigator.gpu`; Node 20 has no navigator. Point it at the Dawn instance our device came
 * from; the returned function puts things back as they were.
 */
function installNavigator(gpu: GPU): () => void {
  const g = globalThis as NavigatorHolder;
  if (!g.navigator) {
    Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
    return () => void delete g.navigator;
  }
  const nav = g.navigator;
  const before = Object.getOwnPropertyDescriptor(nav, 'gpu');
  Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true, writable: true });
  return () => {
    if (before) Object.defineProperty(nav, 'gpu', before);
    else delete nav.gpu;
  };
}

export async function compareTfjs(backend: Backend, quick: boolean, sizes?: number[]): Promise<CompareReport> {
  if (!(backend instanceof DawnBackend)) {
    throw new MfError(
      '--compare tfjs needs the WebGPU backend',
      'run scripts/setup.sh to install the Vulkan driver; --backend cpu cannot be compared',
    );
  }
  const handles = backend.dawn;
  if (!handles) throw new MfError('the WebGPU device was already destroyed');
  const { tf, webgpu } = await loadTfjs();
  const restoreNavigator = installNavigator(handles.gpu);
  const info = handles.adapter.info;
  // tfjs's own factory asks for timestamp-query, which makes Dawn on lavapipe abort (see webgpu.ts), and
  // would open a second adapter. Ours hands it our device instead: one adapter, one device, one queue.
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  tf.registerBackend('webgpu', () => new webgpu.WebGPUBackend(backend.device, info));
  try {
    if (!(await tf.setBackend('webgpu'))) throw new MfError('tfjs could not start its WebGPU backend');
    const tb = tf.backend() as TfBackend;
    if (tb.device !== backend.device) throw new Error('tfjs is not on our device');
    // Never let tfjs quietly run a small op on the CPU.
    tf.env().set('WEBGPU_CPU_FORWARD', false);
    const tfSync = async () => {
      tb.ensureCommandEncoderReady();
      tb.endComputePassEncoder();
      tb.submitQueue();
      await tb.queue.onSubmittedWorkDone();
    };
    const reps = quick ? 1 : 3;
    const samples = quick ? 1 : 5;
    const results: CompareResult[] = [];
    for (const n of sizes ?? (quick ? [64, 128] : [256, 512, 1024])) {
      const dataA = randData(n * n, 1);
      const dataB = randData(n * n, 2);
      const a = Tensor.from(dataA, [n, n]);
      const b = Tensor.from(dataB, [n, n]);
      const ta = tf.tensor2d(dataA, [n, n]);
      const tb2 = tf.tensor2d(dataB, [n, n]);
      const ours = () => tidy(() => noGrad(() => void matmul(a, b)));
      const theirs = () => tf.tidy(() => void tf.matMul(ta, tb2));

      // Warm-up (pipeline compilation, uploads) and the correctness check in one go.
      const oc = noGrad(() => matmul(a, b));
      const tc = tf.matMul(ta, tb2);
      const [ov, tv] = [await oc.data(), (await tc.data()) as Float32Array];
      oc.dispose();
      tc.dispose();
      let diff = 0;
      let mag = 0;
      for (let i = 0; i < tv.length; i++) {
        diff = Math.max(diff, Math.abs(ov[i] - tv[i]));
        mag = Math.max(mag, Math.abs(tv[i]));
      }
      const rel = diff / Math.max(mag, 1e-30);

      const oursT: number[] = [];
      const tfjsT: number[] = [];
      for (let s = 0; s < samples; s++) {
        let t0 = performance.now();
        for (let r = 0; r < reps; r++) ours();
        await backend.sync();
        oursT.push((performance.now() - t0) / reps);
        t0 = performance.now();
        for (let r = 0; r < reps; r++) theirs();
        await tfSync();
        tfjsT.push((performance.now() - t0) / reps);
      }
      const flops = 2 * n ** 3;
      const om = median(oursT);
      const tm = median(tfjsT);
      results.push({
        shape: `${n}x${n}x${n}`,
        ours_ms: +om.toFixed(3),
        ours_gflops: +(flops / om / 1e6).toFixed(2),
        tfjs_ms: +tm.toFixed(3),
        tfjs_gflops: +(flops / tm / 1e6).toFixed(2),
        speedup: +(tm / om).toFixed(3),
        max_rel_err: +rel.toPrecision(3),
        agree: rel <= AGREE_TOL && Number.isFinite(rel) && ov.length === tv.length,
        adapter: backend.describe(),
      });
      a.dispose();
      b.dispose();
      ta.dispose();
      tb2.dispose();
    }
    return {
      adapter: backend.describe(),
      tfjsAdapter: `${info.description || `${info.vendor} ${info.device}`.trim()} (vendor ${info.vendor}, architecture ${info.architecture}; our device, shared)`,
      tfjsVersion: `tfjs-core ${tf.version_core}, tfjs-backend-webgpu ${webgpuVersion()}`,
      results,
    };
  } finally {
    // Frees tfjs's buffers; our device is destroyed by the CLI's shutdown.
    tf.removeBackend('webgpu');
    restoreNavigator();
  }
}
