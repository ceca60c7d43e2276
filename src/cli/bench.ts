// `mf bench kernels` and `mf bench train`: timings after warm-up, median of several runs, synchronised
// only at the end of each timed batch of runs; `mf bench compile` (bench_compile.ts): pipelines and compile
// time before the quickstart's first step. Numbers are measured, never estimated.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { initEngine } from '../backend/index.ts';
import type { Backend } from '../backend/backend.ts';
import { MfError } from '../errors.ts';
import { Medformer, type BatchMeta } from '../models/medformer.ts';
import { ParameterStore } from '../nn/parameters.ts';
import { attention } from '../ops/attention.ts';
import { matmul } from '../ops/index.ts';
import { layerNorm } from '../ops/layernorm.ts';
import { crossEntropy } from '../ops/losses.ts';
import { patchEmbed } from '../ops/patch_embed.ts';
import { AdamW } from '../train/adamw.ts';
import { type PresetName, resolveModelConfig } from '../models/medformer_config.ts';
import { noGrad, Tensor, tidy } from '../tensor/tensor.ts';
import { recordCalls, replayProfile, type FamilyTime } from '../backend/profile.ts';
import { Rng } from '../util/rng.ts';
import { benchCompile, COMPILE_PASSES, type CompilePassName, compileTables } from './bench_compile.ts';
import { rasteriserThreads } from './threads.ts';

export interface KernelResult {
  kernel: string;
  shape: string;
  ms: number;
  gflops: number | null;
  gbps: number | null;
}

export interface TrainResult {
  model: string;
  dims: string;
  batch: number;
  step_ms: number;
  samples_per_s: number;
  peak_bytes: number;
  adapter: string;
  /** Host milliseconds to encode one step (no wait for the device). */
  encode_ms: number;
  dispatches_per_step: number;
  /** Group-0 bind groups a step had to create (0: all from the cache). */
  bind_groups_created_per_step: number;
  /** LP_NUM_THREADS the driver was given (lavapipe; null: the driver's default). */
  lp_threads: number | null;
  /** With --load n: the same step while n CPU-bound processes compete for the cores. */
  load?: number;
  step_ms_loaded?: number;
  dispatches?: number;
  profile?: FamilyTime[];
}

/**
 * `n` processes that each spin one core until stopped: the "another job shares the machine" condition.
 * Resolves once they run, so that the timing starts under load.
 */
async function startCompetitors(n: number): Promise<ChildProcess[]> {
  const procs = Array.from({ length: n }, () =>
    spawn(process.execPath, ['-e', 'process.stdout.write("r"); for (;;) {}'], { stdio: ['ignore', 'pipe', 'ignore'] }),
  );
  await Promise.all(procs.map((p) => new Promise<void>((resolve) => p.stdout?.once('data', () => resolve()))));
  return procs;
}

function stopCompetitors(procs: ChildProcess[]): void {
  for (const p of procs) p.kill('SIGKILL');
}

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** A tensor of seeded pseudo-random values, uniform in [-0.1, 0.1) (the project's Rng). */
function rand(shape: number[], seed: number): Tensor {
  const rng = new Rng(seed);
  return Tensor.from(
    Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.uniform(-0.1, 0.1)),
    shape,
  );
}

/** Median ms per call of `fn`, each sample timing `reps` calls with one sync at the end. */
async function time(backend: Backend, fn: () => void, reps: number, samples: number): Promise<number> {
  fn();
  await backend.sync();
  const times: number[] = [];
  for (let s = 0; s < samples; s++) {
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) fn();
    await backend.sync();
    times.push((performance.now() - t0) / reps);
  }
  return median(times);
}

export async function benchKernels(backend: Backend, quick: boolean): Promise<KernelResult[]> {
  const results: KernelResult[] = [];
  const reps = quick ? 1 : 3;
  const samples = quick ? 1 : 5;
  const run = async (kernel: string, shape: string, flops: number | null, bytes: number | null, fn: () => void) => {
    const ms = await time(backend, () => tidy(() => noGrad(fn)), reps, samples);
    results.push({
      kernel,
      shape,
      ms: +ms.toFixed(3),
      gflops: flops === null ? null : +(flops / ms / 1e6).toFixed(2),
      gbps: bytes === null ? null : +(bytes / ms / 1e6).toFixed(2),
    });
  };

  for (const n of quick ? [64, 128] : [256, 512, 1024]) {
    const a = rand([n, n], 1);
    const b = rand([n, n], 2);
    await run('matmul', `${n}x${n}x${n}`, 2 * n ** 3, 12 * n * n, () => void matmul(a, b));
    a.dispose();
    b.dispose();
  }

  const attn = quick
    ? [['self small', 2, 49, 49, 4, 32] as const]
    : ([
        ['self small', 64, 49, 49, 4, 32],
        ['cross small', 64, 32, 49, 4, 16],
        ['self large', 8, 512, 512, 8, 64],
        ['cross large', 8, 512, 196, 8, 32],
      ] as const);
  for (const [name, B, Lq, Lk, H, Dh] of attn) {
    const q = rand([B, Lq, H * Dh], 3);
    const k = rand([B, Lk, H * Dh], 4);
    const v = rand([B, Lk, H * Dh], 5);
    const flops = 4 * B * H * Lq * Lk * Dh;
    await run(
      `attention ${name}`,
      `B${B} Lq${Lq} Lk${Lk} H${H} Dh${Dh}`,
      flops,
      4 * (2 * B * Lq + 2 * B * Lk) * H * Dh,
      () => void attention(q, k, v, H),
    );
    [q, k, v].forEach((t) => t.dispose());
  }

  for (const [rows, d] of quick
    ? [[98, 128]]
    : [
        [64 * 49, 128],
        [8 * 512, 512],
      ]) {
    const x = rand([rows, d], 6);
    const g = rand([d], 7);
    const b = rand([d], 8);
    await run('layernorm', `${rows}x${d}`, null, 8 * rows * d, () => void layerNorm(x, g, b, 1e-5));
    [x, g, b].forEach((t) => t.dispose());
  }

  const pe: [string, number[], number, number][] = quick
    ? [['2D', [2, 1, 28, 28], 4, 128]]
    : [
        ['2D', [64, 1, 28, 28], 4, 128],
        ['3D', [32, 1, 28, 28, 28], 4, 128],
        ['2D large', [8, 3, 224, 224], 16, 512],
      ];
  for (const [name, shape, p, e] of pe) {
    const x = rand(shape, 9);
    const spatial = shape.slice(2);
    const tokens = spatial.reduce((a, s) => a * (s / p), 1);
    const fanIn = shape[1] * p ** spatial.length;
    const w = rand([fanIn, e], 10);
    const bias = rand([e], 11);
    const pos = rand([tokens, e], 12);
    await run(
      `patch_embed ${name}`,
      `${shape.join('x')} p${p} E${e}`,
      2 * shape[0] * tokens * fanIn * e,
      4 * (x.size + w.size + shape[0] * tokens * e),
      () => void patchEmbed(x, w, bias, pos, p),
    );
    [x, w, bias, pos].forEach((t) => t.dispose());
  }

  {
    const n = quick ? 1 << 16 : 1 << 20;
    const store = new ParameterStore(0);
    store.param('w', [n], { kind: 'trunc_normal', std: 0.02 });
    store.finalize();
    const opt = new AdamW(store, { lr: 1e-3, weightDecay: 1e-2, maxGradNorm: 1 });
    const ms = await time(backend, () => opt.step(1e-3), reps, samples);
    results.push({
      kernel: 'adamw+clip',
      shape: `${n} params`,
      ms: +ms.toFixed(3),
      gflops: null,
      gbps: +((4 * 4 * n * 2) / ms / 1e6).toFixed(2),
    });
    store.dispose();
  }
  return results;
}

/** One full Medformer training step (forward, backward, AdamW) for the thesis configurations. */
/** The configurations `mf bench train --only` can pick. */
const TRAIN_CASES = ['small-2d', 'small-3d', 'large-2d'];

export async function benchTrain(
  backend: Backend,
  quick: boolean,
  profile = false,
  only?: string,
  batch?: number,
  load = 0,
): Promise<TrainResult[]> {
  const cases: { preset: PresetName; dim: 2 | 3; batch: number; channels: number }[] = quick
    ? [{ preset: 'small', dim: 2, batch: 4, channels: 1 }]
    : [
        { preset: 'small', dim: 2, batch: 64, channels: 1 },
        { preset: 'small', dim: 3, batch: 32, channels: 1 },
        { preset: 'large', dim: 2, batch: 8, channels: 3 },
      ];
  const out: TrainResult[] = [];
  // --only small-2d / small-3d / large-2d picks one configuration (TRAIN_CASES).
  // --batch replaces each configuration's batch size (the memory targets: small at 128, large at 32).
  for (const c of cases.filter((k) => !only || `${k.preset}-${k.dim}d` === only).map((k) => ({ ...k, batch: batch ?? k.batch }))) {
    const config = resolveModelConfig(c.preset);
    // Earlier cases' buffers sit freed in the pool; the peak counts this case's live bytes only.
    backend.resetPeak();
    const store = new ParameterStore(0);
    const model = new Medformer(store, {
      config,
      inputs: [{ dim: c.dim, channels: c.channels }],
      tasks: [{ name: 'bench', outputs: 10 }],
      numModalities: 12,
      numBodyParts: 12,
    });
    store.finalize();
    const opt = new AdamW(store, { lr: 1e-4, weightDecay: 1e-3, maxGradNorm: 1 });
    const size = c.dim === 2 ? config.image_size_2d : config.image_size_3d;
    const shape = [c.batch, c.channels, ...Array(c.dim).fill(size)];
    const x = rand(shape, 1);
    const labels = Tensor.from(
      Int32Array.from({ length: c.batch }, (_, i) => i % 10),
      [c.batch],
      'i32',
    );
    const meta: BatchMeta = { dim: c.dim, channels: c.channels, modality: 0, bodyPart: 0 };
    const step = () => {
      store.zeroGrad();
      tidy(() => {
        const loss = crossEntropy(model.forward(x, meta, 'bench'), labels);
        loss.backward();
      });
      opt.step(1e-4);
    };
    // The large model takes about a minute per step on a CPU rasteriser: time it once.
    const heavy = c.preset === 'large';
    const reps = quick || heavy ? 1 : 3;
    const ms = await time(backend, step, reps, reps);
    const peak = backend.stats().peakBytes;
    // Host time to encode one step (the ops, bind groups and dispatches, no waiting): what bounds a fast GPU.
    const encodeTimes: number[] = [];
    const before = backend.stats();
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      step();
      encodeTimes.push(performance.now() - t0);
      await backend.sync();
    }
    const after = backend.stats();
    let loadedMs: number | undefined;
    if (load > 0) {
      const competitors = await startCompetitors(load);
      try {
        loadedMs = await time(backend, step, reps, reps);
      } finally {
        stopCompetitors(competitors);
      }
    }
    let families: FamilyTime[] | undefined;
    if (profile && !heavy) {
      families = await replayProfile(backend, await recordCalls(backend, step));
    }
    out.push({
      model: `medformer-${c.preset}`,
      dims: `${c.dim}D ${shape.slice(1).join('x')}`,
      batch: c.batch,
      step_ms: +ms.toFixed(1),
      samples_per_s: +((c.batch * 1000) / ms).toFixed(1),
      peak_bytes: peak,
      adapter: backend.describe(),
      lp_threads: rasteriserThreads(),
      encode_ms: +median(encodeTimes).toFixed(2),
      dispatches_per_step: (after.dispatches - before.dispatches) / reps,
      bind_groups_created_per_step: (after.bindGroupsCreated - before.bindGroupsCreated) / reps,
      ...(loadedMs !== undefined ? { load, step_ms_loaded: +loadedMs.toFixed(1) } : {}),
      ...(families ? { dispatches: families.reduce((a, f) => a + f.calls, 0), profile: families } : {}),
    });
    x.dispose();
    labels.dispose();
    store.dispose();
  }
  return out;
}

export function printTable(rows: object[]): void {
  if (rows.length === 0) return;
  const keys = Object.keys(rows[0]);
  const cells = rows.map((r) => keys.map((k) => String((r as Record<string, unknown>)[k] ?? '-')));
  const width = keys.map((k, i) => Math.max(k.length, ...cells.map((c) => c[i].length)));
  console.log(keys.map((k, i) => k.padEnd(width[i])).join('  '));
  console.log(width.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells) console.log(c.map((v, i) => v.padEnd(width[i])).join('  '));
}

/** The flags of `mf bench`, as commander hands them over. */
export interface BenchOptions {
  json?: boolean;
  quick?: boolean;
  profile?: boolean;
  only?: string;
  batch?: string;
  compare?: string;
  load?: string;
  backend: string;
}

export async function benchCommand(what: string, opts: BenchOptions): Promise<void> {
  if (opts.compare === 'torch') {
    if (what !== 'train') throw new MfError('--compare torch applies to `mf bench train`');
    if (opts.only !== undefined && opts.only !== 'small-2d')
      throw new MfError(`--compare torch has a PyTorch peer for small-2d only, not "${opts.only}"`, 'drop --only or use --only small-2d');
    return compareTorchCommand(opts);
  }
  if (opts.compare !== undefined) {
    if (opts.compare !== 'tfjs')
      throw new MfError(`unknown --compare "${opts.compare}"`, 'use `--compare tfjs` (kernels) or `--compare torch` (train)');
    if (what !== 'kernels') throw new MfError('--compare tfjs applies to `mf bench kernels`');
    if (opts.backend === 'cpu') throw new MfError('--compare tfjs needs the WebGPU backend, not --backend cpu');
    return compareCommand(opts);
  }
  const batch = opts.batch === undefined ? undefined : Number(opts.batch);
  if (batch !== undefined && (!Number.isInteger(batch) || batch < 1)) throw new MfError(`--batch ${opts.batch} is not a positive integer`);
  if (batch !== undefined && what !== 'train') throw new MfError('--batch applies to `mf bench train`');
  const load = opts.load === undefined ? 0 : Number(opts.load);
  if (!Number.isInteger(load) || load < 0) throw new MfError(`--load ${opts.load} is not a whole number of processes`);
  if (load > 0 && what !== 'train') throw new MfError('--load applies to `mf bench train`');
  if (opts.only !== undefined) {
    // Checked before the device starts: an --only that names nothing would otherwise run nothing and exit 0.
    const choices: readonly string[] = what === 'compile' ? COMPILE_PASSES : TRAIN_CASES;
    if (what !== 'train' && what !== 'compile') throw new MfError('--only applies to `mf bench train` and `mf bench compile`');
    if (!choices.includes(opts.only)) throw new MfError(`unknown --only "${opts.only}"`, `use one of ${choices.join(', ')}`);
  }
  if (what === 'compile') {
    if (opts.backend === 'cpu') throw new MfError('mf bench compile measures WebGPU pipelines; it has no --backend cpu');
    const report = await benchCompile(opts.only as CompilePassName | undefined);
    if (report === null) return;
    if (opts.json) {
      console.log(JSON.stringify(report, null, 2));
      return;
    }
    const t = compileTables(report);
    console.log(
      `${report.cold?.adapter ?? report.warm?.adapter ?? ''}\n${report.experiment}: first training step, then first validation pass`,
    );
    printTable(t.passes);
    console.log('\nspecialisations per kernel family (both phases)');
    printTable(t.families);
    if (t.validationNew.length)
      console.log(`\nthe validation compiled ${t.validationNew.length} the step had not:\n  ${t.validationNew.join('\n  ')}`);
    return;
  }
  const backend = await initEngine({ backend: opts.backend as 'auto' | 'webgpu' | 'cpu' });
  let rows: object[];
  if (what === 'kernels') rows = await benchKernels(backend, !!opts.quick);
  else if (what === 'train') rows = await benchTrain(backend, !!opts.quick, !!opts.profile, opts.only, batch, load);
  else throw new MfError(`unknown benchmark "${what}"`, 'use `mf bench kernels`, `mf bench train` or `mf bench compile`');
  if (opts.json) {
    // Every record names the adapter, so results from several machines can be concatenated.
    const adapter = backend.describe();
    console.log(
      JSON.stringify(
        rows.map((r) => ({ ...r, adapter })),
        null,
        2,
      ),
    );
  } else {
    console.log(backend.describe());
    printTable((rows as TrainResult[]).map(({ profile: _p, ...r }) => r));
    for (const r of rows as TrainResult[]) {
      if (!r.profile) continue;
      console.log(`\nprofile: ${r.model} ${r.dims} batch ${r.batch} (each kernel replayed alone; ${r.dispatches} dispatches per step)`);
      printTable(r.profile);
    }
  }
}

/** The PyTorch peer of the small-2d step (bench/medformer_small_torch.py), run by this Python. */
const TORCH_PEER = fileURLToPath(new URL('../../bench/medformer_small_torch.py', import.meta.url));

interface TorchStep {
  median_ms: number;
  threads: number;
  torch: string;
  blas: string[];
  params: number;
}

/**
 * `mf bench train --compare torch`: the Medformer-small 2D step (batch 64 unless --batch) here and in PyTorch on
 * the same machine, one after the other in one command, with the ratio. PyTorch is a peer, not a dependency:
 * Debian's `python3-torch` with `libopenblas0-pthread` (MF_PYTHON picks another interpreter).
 */
async function compareTorchCommand(opts: { json?: boolean; quick?: boolean; batch?: string; backend: string }): Promise<void> {
  // Debian's python3-torch lives in the system Python, which a pyenv or venv `python3` on PATH may shadow.
  const python = process.env.MF_PYTHON ?? (fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
  const batch = opts.batch === undefined ? 64 : Number(opts.batch);
  if (!Number.isInteger(batch) || batch < 1) throw new MfError(`--batch ${opts.batch} is not a positive integer`);
  const threads = os.availableParallelism();
  const peer = spawnSync(
    python,
    [TORCH_PEER, '--bench-step', opts.quick ? '2' : '5', '--batch', String(batch), '--threads', String(threads)],
    {
      encoding: 'utf8',
    },
  );
  const line = peer.stdout?.trim().split('\n').at(-1);
  if (peer.status !== 0 || !line)
    throw new MfError(
      `the PyTorch peer did not run (${python} ${TORCH_PEER}: ${(peer.error?.message ?? peer.stderr ?? '').trim().split('\n').at(-1)})`,
      'install it with `apt-get install python3-torch libopenblas0-pthread`, or point MF_PYTHON at a Python with torch',
    );
  const theirs = JSON.parse(line) as TorchStep;
  if (!theirs.blas.some((l) => /openblas|mkl/i.test(l)))
    console.error(`warning: PyTorch loaded ${theirs.blas.join(', ') || 'no BLAS'}; without OpenBLAS or MKL its step is not a fair peer`);
  const backend = await initEngine({ backend: opts.backend as 'auto' | 'webgpu' | 'cpu' });
  const [ours] = await benchTrain(backend, false, false, 'small-2d', batch);
  const row = {
    case: 'small-2d',
    batch,
    ours_ms: ours.step_ms,
    torch_ms: theirs.median_ms,
    ratio: +(ours.step_ms / theirs.median_ms).toFixed(2),
    adapter: ours.adapter,
    torch: `torch ${theirs.torch}, ${theirs.threads} threads, ${theirs.blas.find((l) => /blas/i.test(l)) ?? 'BLAS unknown'}`,
  };
  if (opts.json) console.log(JSON.stringify([row], null, 2));
  else printTable([row]);
}

/** `mf bench kernels --compare tfjs`: our matmul and tfjs-backend-webgpu's on the same device. */
async function compareCommand(opts: { json?: boolean; quick?: boolean }): Promise<void> {
  const { compareTfjs, loadTfjs, AGREE_TOL } = await import('./compare_tfjs.ts');
  await loadTfjs(); // before any device exists, so that a missing dev dependency is the only line printed
  const backend = await initEngine({ backend: 'webgpu' });
  const report = await compareTfjs(backend, !!opts.quick);
  if (opts.json) console.log(JSON.stringify(report.results, null, 2));
  else {
    console.log(`ours: ${report.adapter}`);
    console.log(`tfjs: ${report.tfjsVersion}; adapter ${report.tfjsAdapter}`);
    printTable(
      report.results.map((r) => ({
        shape: r.shape,
        'ours ms': r.ours_ms,
        'ours GFLOP/s': r.ours_gflops,
        'tfjs ms': r.tfjs_ms,
        'tfjs GFLOP/s': r.tfjs_gflops,
        'speed-up (tfjs ms / ours ms)': `${r.speedup}x`,
        'max rel err': r.max_rel_err,
      })),
    );
  }
  for (const r of report.results) {
    if (r.agree) continue;
    process.stderr.write(
      `FAIL: matmul ${r.shape}: ours and tfjs disagree: max |ours - tfjs| / max |tfjs| = ${r.max_rel_err} > ${AGREE_TOL}\n`,
    );
    process.exitCode = 1;
  }
}
