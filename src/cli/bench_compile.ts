// `mf bench compile`: what a fresh machine pays before the quickstart's first step. Every kernel
// specialisation becomes one compute pipeline, and on lavapipe llvmpipe turns each into machine code at its
// first dispatch (seconds each) unless Mesa's shader cache already holds it. One pass builds the quickstart's
// model as the supervised kind does, runs its first training step and its first validation pass, and counts
// the pipelines each created. `cold` runs a pass in a child process whose Mesa cache is a new, empty folder;
// `warm` runs a second child on the same folder. Numbers are measured, never estimated.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initEngine } from '../backend/index.ts';
import { WebGpuBackend } from '../backend/webgpu.ts';
import { MfError } from '../errors.ts';
import { loadExperiment } from '../kinds/index.ts';
import { evalBatchSize, evaluateSplit } from '../kinds/medformer/evaluate.ts';
import { trainLoaders } from '../kinds/medformer/sampling.ts';
import type { AnyModelSettings } from '../kinds/medformer/schema.ts';
import { buildModel, loadTasks, taskLoss } from '../kinds/medformer/tasks.ts';
import { Tensor, tidy } from '../tensor/tensor.ts';
import { AdamW } from '../train/adamw.ts';

const QUICKSTART = fileURLToPath(new URL('../../experiments/quickstart.json', import.meta.url));
const MF = fileURLToPath(new URL('../../bin/mf.js', import.meta.url));
/** Set in the child processes: which pass this is ('cold', 'warm', or 'env' for the cache as configured). */
const PASS_ENV = 'MF_BENCH_COMPILE_PASS';

/** `--only` for `mf bench compile`. */
export const COMPILE_PASSES = ['cold', 'warm'] as const;
export type CompilePassName = (typeof COMPILE_PASSES)[number];

/** What one stretch of work cost in compiling. */
export interface PhaseCost {
  /** Pipelines (kernel specialisations) it created. */
  pipelines: number;
  /** Milliseconds in createShaderModule + createComputePipeline (see CompileStats.compileMs). */
  compile_ms: number;
  /** Wall seconds of the stretch, waiting for the device included. */
  seconds: number;
  /** The keys of the pipelines it created. */
  keys: string[];
}

/** Runs `fn` and reports the pipelines it created and its compile and wall time. */
export async function measureCompile<T>(backend: WebGpuBackend, fn: () => Promise<T>): Promise<{ result: T; cost: PhaseCost }> {
  const before = backend.compileStats();
  const t0 = performance.now();
  const result = await fn();
  await backend.sync();
  const seconds = (performance.now() - t0) / 1000;
  const after = backend.compileStats();
  return {
    result,
    cost: {
      pipelines: after.pipelines - before.pipelines,
      compile_ms: +(after.compileMs - before.compileMs).toFixed(1),
      seconds: +seconds.toFixed(2),
      keys: after.keys.slice(before.keys.length),
    },
  };
}

/** Distinct specialisations per kernel family (a key's first field), most first. */
export function familyCounts(keys: readonly string[]): Record<string, number> {
  const counts = new Map<string, number>();
  for (const k of new Set(keys)) {
    const family = k.slice(0, k.indexOf(':'));
    counts.set(family, (counts.get(family) ?? 0) + 1);
  }
  return Object.fromEntries([...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])));
}

export interface CompilePass {
  /** 'cold': an empty Mesa shader cache; 'warm': the same cache after a cold pass; 'env': the cache as configured. */
  cache: 'cold' | 'warm' | 'env';
  first_step: Omit<PhaseCost, 'keys'>;
  first_validation: Omit<PhaseCost, 'keys'>;
  /** Seconds from the process's start to the end of the first step (module loading, data, device, model included). */
  wall_to_first_step_s: number;
  pipelines: number;
  compile_ms: number;
  /** Distinct specialisations per kernel family over both. */
  families: Record<string, number>;
  /** Keys of the pipelines the validation created that the step did not (the target: none). */
  validation_new: string[];
  adapter: string;
}

export interface CompileReport {
  experiment: string;
  machine: string;
  cold?: CompilePass;
  /** Bytes Mesa's cache held after the cold pass. */
  cache_bytes_after_cold?: number;
  warm?: CompilePass;
}

/**
 * One pass in this process: the quickstart's model built as the supervised kind builds it, its first training
 * step (forward, backward, AdamW on the first batch of epoch 0), then one validation pass over the val split at
 * the batch size the trainer validates with (evalBatchSize in src/kinds/medformer/evaluate.ts).
 */
export async function compilePass(cache: CompilePass['cache'], experiment = QUICKSTART): Promise<CompilePass> {
  const loaded = loadExperiment(experiment);
  if (loaded.settings.kind !== 'supervised') throw new MfError(`${experiment}: mf bench compile runs a "supervised" experiment`);
  const s = loaded.settings as AnyModelSettings;
  // Synthetic data sets are generated into a scratch folder, so the pass needs (and leaves) no data directory.
  const dataDir = mkdtempSync(path.join(tmpdir(), 'mf-bench-data-'));
  try {
    const tasks = loadTasks(s, dataDir);
    const backend = await initEngine({ backend: 'webgpu' });
    if (!(backend instanceof WebGpuBackend)) throw new MfError('mf bench compile needs the WebGPU backend');
    const { model, store } = buildModel(() => {}, s, tasks);
    const t = s.training;
    const opt = new AdamW(store, { lr: t.lr, weightDecay: t.weight_decay, maxGradNorm: t.grad_clip ?? undefined });
    const task = tasks[0];
    const batch = trainLoaders(s, tasks)[0].batchAt(0, 0);
    model.setTraining?.(true);
    const step = await measureCompile(backend, async () => {
      store.zeroGrad();
      const loss = tidy(() => {
        const l = taskLoss(task, model.forward(Tensor.from(batch.x, batch.shape), task.meta, task.ds.key), batch.labels);
        l.backward();
        return l;
      });
      opt.step(t.lr, loss.buffer);
      const v = await loss.item();
      loss.dispose();
      return v;
    });
    const wall = performance.now() / 1000;
    const val = await measureCompile(backend, () => evaluateSplit(model, task, task.val, evalBatchSize(t.batch_size)));
    store.dispose();
    const keys = [...step.cost.keys, ...val.cost.keys];
    const stepKeys = new Set(step.cost.keys);
    const strip = ({ keys: _k, ...c }: PhaseCost) => c;
    return {
      cache,
      first_step: strip(step.cost),
      first_validation: strip(val.cost),
      wall_to_first_step_s: +wall.toFixed(2),
      pipelines: keys.length,
      compile_ms: +(step.cost.compile_ms + val.cost.compile_ms).toFixed(1),
      families: familyCounts(keys),
      validation_new: val.cost.keys.filter((k) => !stepKeys.has(k)),
      adapter: backend.describe(),
    };
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function folderBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    n += e.isDirectory() ? folderBytes(p) : statSync(p).size;
  }
  return n;
}

/** A pass in a child process (`mf bench compile` again, told which pass by PASS_ENV), its JSON read from stdout. */
function childPass(cache: CompilePass['cache'], cacheDir: string | null): Promise<CompilePass> {
  const env: NodeJS.ProcessEnv = { ...process.env, [PASS_ENV]: cache };
  if (cacheDir !== null) {
    env.MESA_SHADER_CACHE_DIR = cacheDir;
    delete env.MESA_SHADER_CACHE_DISABLE;
  }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MF, 'bench', 'compile', '--json'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new MfError(`the ${cache} pass of mf bench compile exited with status ${code}`));
      try {
        resolve(JSON.parse(out) as CompilePass);
      } catch {
        reject(new MfError(`the ${cache} pass of mf bench compile printed no JSON: ${out.slice(0, 200)}`));
      }
    });
  });
}

/**
 * `mf bench compile [--only cold|warm]`: the report, or null in a child pass (which has printed its own JSON).
 * Without --only: a cold pass, then a warm one on the same cache folder; `--only cold` the cold pass alone;
 * `--only warm` one pass on the Mesa cache this environment already uses (what `mf run` sees after earlier runs).
 */
export async function benchCompile(only?: CompilePassName): Promise<CompileReport | null> {
  const inChild = process.env[PASS_ENV];
  if (inChild === 'cold' || inChild === 'warm' || inChild === 'env') {
    console.log(JSON.stringify(await compilePass(inChild)));
    return null;
  }
  const report: CompileReport = {
    experiment: path.relative(process.cwd(), QUICKSTART) || QUICKSTART,
    machine: 'cold: MESA_SHADER_CACHE_DIR set to a new empty folder; warm: a second process on the same folder',
  };
  if (only === 'warm') {
    report.machine = `warm: Mesa's shader cache as configured (${process.env.MESA_SHADER_CACHE_DIR ?? 'its default folder'})`;
    report.warm = await childPass('env', null);
    return report;
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'mf-mesa-cache-'));
  try {
    report.cold = await childPass('cold', dir);
    report.cache_bytes_after_cold = folderBytes(dir);
    if (only !== 'cold') report.warm = await childPass('warm', dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return report;
}

/** The report as tables: one row per pass, then the specialisations per family of the first pass. */
export function compileTables(report: CompileReport): { passes: object[]; families: object[]; validationNew: string[] } {
  const passes = [report.cold, report.warm].filter((p): p is CompilePass => p !== undefined);
  return {
    passes: passes.map((p) => ({
      cache: p.cache,
      'step pipelines': p.first_step.pipelines,
      'validation pipelines': p.first_validation.pipelines,
      'compile ms': p.compile_ms,
      'first step s': p.first_step.seconds,
      'validation s': p.first_validation.seconds,
      'wall to first step s': p.wall_to_first_step_s,
    })),
    families: Object.entries(passes[0]?.families ?? {}).map(([family, n]) => ({ family, specialisations: n })),
    validationNew: passes[0]?.validation_new ?? [],
  };
}
