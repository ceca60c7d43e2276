// `mf run <experiment.json>`: read and validate the experiment, let its kind read its inputs, open the run
// folder, start the device, then hand over to the kind. A run refused before its first step leaves no folder.
import fs from 'node:fs';
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import { initEngine } from '../backend/index.ts';
import { ensureDataFiles } from '../data/download.ts';
import { ConfigError } from '../errors.ts';
import type { LoadedExperiment, RunSettings } from '../kinds/kind.ts';
import { loadExperiment } from '../kinds/index.ts';
import { readJsonFile, writeJsonAtomic } from '../util/files.ts';
import { RunContext, RunFolder, type RunFolderOptions } from './context.ts';
import { configHash } from './hash.ts';
import { hasMetrics, seedFolder, summariseSeeds, writeSeedSummary } from './seeds.ts';
import { TRAINING_LIMITS, type TrainingSettings } from './schema.ts';

export interface RunFlags extends RunFolderOptions {
  /** Numeric flags arrive as the text typed (commander is given no parser), so an error can quote it. */
  epochs?: string;
  maxSteps?: string;
  batchSize?: string;
  seed?: string;
  /** --seeds 0,1,2: one run per seed, summarised. */
  seeds?: string;
  backend?: string;
  dataDir?: string;
  /** --download: fetch missing official data files first, as data.download: true does. */
  download?: boolean;
}

/**
 * A whole-number flag in [min, max], or undefined when absent. Digits only: "abc", "1.5", "1e3", "-2" and "" are
 * refused, quoting what was typed (Number() would turn them into NaN, 1000 or 0 and the message into "got NaN").
 */
function intFlag(name: string, raw: string | undefined, min: number, max: number, example: string): number | undefined {
  if (raw === undefined) return undefined;
  const text = String(raw).trim();
  const v = /^\d{1,16}$/.test(text) ? Number(text) : Number.NaN;
  if (!(v >= min && v <= max)) {
    throw new ConfigError(
      `${name} ${JSON.stringify(String(raw))} is not a whole number in [${min}, ${max}]; give one, e.g. ${name} ${example}`,
    );
  }
  return v;
}

/** The command line's overrides of `training`, within the bounds experiment files have (TRAINING_LIMITS). */
export function trainingOverrides(flags: RunFlags): Partial<TrainingSettings> {
  const o: Partial<TrainingSettings> = {};
  const epochs = intFlag('--epochs', flags.epochs, 1, TRAINING_LIMITS.epochs, '100');
  const maxSteps = intFlag('--max-steps', flags.maxSteps, 1, TRAINING_LIMITS.max_steps, '1000');
  const batch = intFlag('--batch-size', flags.batchSize, 1, TRAINING_LIMITS.batch_size, '64');
  const seed = intFlag('--seed', flags.seed, 0, 2 ** 32 - 1, '0');
  if (epochs !== undefined) o.epochs = epochs;
  if (maxSteps !== undefined) o.max_steps = maxSteps;
  if (batch !== undefined) o.batch_size = batch;
  if (seed !== undefined) o.seed = seed;
  if (flags.seeds !== undefined) {
    const parts = flags.seeds.split(',').map((x) => x.trim());
    const seeds = parts.map(Number);
    const bad = parts.some((x) => !/^\d{1,10}$/.test(x)) || seeds.some((x) => x > 2 ** 32 - 1) || seeds.length > TRAINING_LIMITS.seeds;
    if (bad || new Set(seeds).size !== seeds.length) {
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
  const hash = configHash(settings);
  const dir = RunFolder.pathFor(settings.name, flags);
  // Everything that can refuse the run does so before the folder is created or touched: an existing run without
  // --resume, a resume under a changed config, then every input (prepare reads and checks data on the host).
  RunFolder.check(dir, flags, hash, configHashOfFile);
  const needs = exp.data(flags.dataDir);
  if (needs) {
    // Missing files: fetched when asked to (saying how much first), else one line naming them and the way to get them.
    await ensureDataFiles(needs.files, needs.root, {
      download: needs.download || flags.download === true,
      who: settings.source,
      say: (line) => process.stderr.write(`${line}\n`),
    });
  }
  const run = await exp.prepare({ dataDir: flags.dataDir, outDir: dir });
  const folder = RunFolder.open(settings.name, flags);
  let ctx: RunContext | null = null;
  try {
    const backend = await initEngine({ backend: (flags.backend ?? 'auto') as 'auto' | 'webgpu' | 'cpu' });
    writeJsonAtomic(path.join(folder.dir, 'config.json'), settings);
    ctx = new RunContext(folder, backend, hash);
    ctx.say(`${settings.name} (${settings.kind}) on ${backend.describe()} -> ${folder.dir}`);
    await run(ctx);
  } finally {
    if (ctx) ctx.close();
    else folder.lock.release();
  }
}

/** The config hash of a run folder's config.json, or null when it is missing or unreadable (the checkpoint's own hash still decides). */
export function configHashOfFile(file: string): string | null {
  if (!fs.existsSync(file)) return null;
  try {
    return configHash(readJsonFile(file, Type.Unknown(), { what: "the run's config", fix: 'none' }) as RunSettings);
  } catch {
    return null;
  }
}
