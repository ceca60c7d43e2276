// `mf run <experiment.json>`: read and validate the experiment, open the run folder, let its kind read its
// inputs, start the device, then hand over to the kind.
import path from 'node:path';
import { initEngine } from '../backend/index.ts';
import { ConfigError } from '../errors.ts';
import type { LoadedExperiment } from '../kinds/kind.ts';
import { loadExperiment } from '../kinds/index.ts';
import { writeJsonAtomic } from '../util/files.ts';
import { RunContext, RunFolder, type RunFolderOptions } from './context.ts';
import { configHash } from './hash.ts';
import { hasMetrics, seedFolder, summariseSeeds, writeSeedSummary } from './seeds.ts';
import type { TrainingSettings } from './schema.ts';

export interface RunFlags extends RunFolderOptions {
  epochs?: number;
  maxSteps?: number;
  batchSize?: number;
  seed?: number;
  /** --seeds 0,1,2: one run per seed, summarised. */
  seeds?: string;
  backend?: string;
  dataDir?: string;
}

function positiveInt(name: string, v: number | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v <= 0) throw new ConfigError(`${name} must be a positive integer, got ${v}`);
  return v;
}

/** The command line's overrides of `training`. */
export function trainingOverrides(flags: RunFlags): Partial<TrainingSettings> {
  const o: Partial<TrainingSettings> = {};
  const epochs = positiveInt('--epochs', flags.epochs);
  const maxSteps = positiveInt('--max-steps', flags.maxSteps);
  const batch = positiveInt('--batch-size', flags.batchSize);
  if (epochs !== undefined) o.epochs = epochs;
  if (maxSteps !== undefined) o.max_steps = maxSteps;
  if (batch !== undefined) o.batch_size = batch;
  if (flags.seed !== undefined) {
    if (!Number.isInteger(flags.seed) || flags.seed < 0) throw new ConfigError(`--seed must be a non-negative integer, got ${flags.seed}`);
    o.seed = flags.seed;
  }
  if (flags.seeds !== undefined) {
    const parts = flags.seeds.split(',').map((x) => x.trim());
    const seeds = parts.map(Number);
    if (parts.some((x) => !/^\d+$/.test(x)) || new Set(seeds).size !== seeds.length) {
      throw new ConfigError(`--seeds must be distinct non-negative integers separated by commas, got "${flags.seeds}"`);
    }
    if (flags.seed !== undefined) throw new ConfigError('--seed and --seeds are both given; keep one');
    o.seeds = seeds;
  }
  return o;
}

export async function runCommand(file: string, flags: RunFlags): Promise<void> {
  const overrides = trainingOverrides(flags);
  const exp: LoadedExperiment = loadExperiment(file, overrides);
  const seeds = exp.settings.training.seeds;
  if (seeds === null) return runOnce(exp, flags);

  // A repeated run: the run folder holds one folder per seed and the summary over them.
  const dir = path.resolve(flags.out ?? path.join('runs', exp.settings.name));
  for (const seed of seeds) {
    const out = seedFolder(dir, seed);
    if (flags.resume && hasMetrics(out)) {
      process.stderr.write(`seed ${seed}: finished in ${out}, kept\n`);
      continue;
    }
    process.stderr.write(`--- seed ${seed} (${seeds.indexOf(seed) + 1} of ${seeds.length}) -> ${out}\n`);
    await runOnce(loadExperiment(file, { ...overrides, seeds: null, seed }), { ...flags, out });
    if (process.exitCode === 130) return;
  }
  const summary = summariseSeeds(dir, seeds);
  writeJsonAtomic(path.join(dir, 'config.json'), exp.settings);
  if (summary) writeSeedSummary(dir, exp.settings, summary);
  process.stderr.write(
    `${seeds.length} seeds done: ${summary ? `summary in ${path.join(dir, 'metrics.json')}` : 'this kind writes no per-dataset scores to summarise'}\n`,
  );
}

async function runOnce(exp: LoadedExperiment, flags: RunFlags): Promise<void> {
  const { settings } = exp;
  const folder = RunFolder.open(settings.name, flags);
  let ctx: RunContext | null = null;
  try {
    const run = await exp.prepare({ dataDir: flags.dataDir, outDir: folder.dir });
    const backend = await initEngine({ backend: (flags.backend ?? 'auto') as 'auto' | 'webgpu' | 'cpu' });
    writeJsonAtomic(path.join(folder.dir, 'config.json'), settings);
    ctx = new RunContext(folder, backend, configHash(settings));
    ctx.say(`${settings.name} (${settings.kind}) on ${backend.describe()} -> ${folder.dir}`);
    await run(ctx);
  } finally {
    if (ctx) ctx.close();
    else folder.lock.release();
  }
}
