// A sweep file expanded into runs: every experiment of the list and of the grid (x datasets x overrides x seeds)
// becomes one run with its own name, its own merged experiment object and the runs it waits for. A fine-tune
// waits for the runs its finetune.init and finetune.baseline name, and those paths are pointed at the runs'
// folders under the sweep's output root; `after` adds any other order. Runs come out in dependency order, and
// in waves: a run's wave is one past the latest wave of the runs it waits for.
import path from 'node:path';
import { ConfigError } from '../errors.ts';
import { validateExperiment } from '../kinds/index.ts';
import { readTextFile } from '../util/files.ts';
import { parseJsonText } from '../util/json.ts';
import { loadSweepFile, type SweepFile } from './schema.ts';

type Json = Record<string, unknown>;

export interface PlannedRun {
  /** Its folder under the output root, and its experiment's `name`: <experiment>[-<override>][-seed<s>]. */
  id: string;
  /** The experiment file it was made from. */
  source: string;
  /** The `name` inside that file: what finetune.init / finetune.baseline paths and `after` refer to. */
  base: string;
  override: string | null;
  seed: number | null;
  /** The experiment `mf run` is given: the file, then the override, the sweep's `set`, the seed, the name. */
  experiment: Json;
  /** Ids of the runs it waits for. */
  after: string[];
  /** 0 for runs that wait for nothing. */
  wave: number;
}

export interface SweepPlan {
  name: string;
  file: string;
  /** Absolute output root; run r writes <output>/<r>/. */
  output: string;
  /** Tries per run on the queue. */
  attempts: number;
  /** In dependency order: every run after the runs it waits for. */
  runs: PlannedRun[];
}

const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

/** `patch` over `base`: objects merge key by key, anything else (arrays too) replaces. */
export function mergeExperiment(base: Json, patch: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(patch)) out[k] = isObject(v) && isObject(out[k]) ? mergeExperiment(out[k] as Json, v) : v;
  return out;
}

function readExperimentObject(file: string, sweepFile: string): Json {
  const text = readTextFile(
    file,
    'an experiment file',
    `named by ${sweepFile}; check the path (relative to the directory mf runs in)`,
    () => new ConfigError(`${sweepFile}: experiment ${file} does not exist`, 'paths are relative to the directory mf runs in'),
  );
  const raw = parseJsonText(text, { file, config: true });
  if (!isObject(raw) || typeof raw.name !== 'string') throw new ConfigError(`${file}: an experiment must be a JSON object with a "name"`);
  return raw;
}

interface Variant {
  source: string;
  override: { name: string; set: Json } | null;
  seed: number | null;
}

function variants(sweep: SweepFile, file: string): Variant[] {
  const out: Variant[] = (sweep.experiments ?? []).map((source) => ({ source, override: null, seed: null }));
  const g = sweep.grid;
  if (!g) return out;
  for (const template of g.experiments) {
    const perDataset = template.includes('{dataset}');
    if (perDataset && !g.datasets)
      throw new ConfigError(`${file}: /grid/experiments ${template} has {dataset} but /grid/datasets is missing`);
    const sources = perDataset ? (g.datasets ?? []).map((d) => template.replaceAll('{dataset}', d)) : [template];
    for (const source of sources)
      for (const override of g.overrides ?? [null])
        for (const seed of g.seeds ?? [null]) out.push({ source, override: override as Variant['override'], seed });
  }
  return out;
}

/** The run of experiment `base` that `from` depends on: same override and seed first, else the only one. */
function matchRun(runs: readonly PlannedRun[], base: string, from: PlannedRun): PlannedRun | undefined | 'ambiguous' {
  const named = runs.filter((r) => r.base === base || r.id === base);
  if (named.length <= 1) return named[0];
  const tiers = [
    (r: PlannedRun) => r.override === from.override && r.seed === from.seed,
    (r: PlannedRun) => r.seed === from.seed && r.override === null,
    (r: PlannedRun) => r.override === from.override && r.seed === null,
    (r: PlannedRun) => r.override === null && r.seed === null,
  ];
  for (const tier of tiers) {
    const found = named.filter(tier);
    if (found.length === 1) return found[0];
  }
  return 'ambiguous';
}

/** Expands a sweep file. `outOverride` replaces its output root (mf sweep --out). */
export function planSweep(file: string, outOverride?: string): SweepPlan {
  const sweep = loadSweepFile(file);
  const output = path.resolve(outOverride ?? sweep.output ?? path.join('runs', 'sweeps', sweep.name));
  const cache = new Map<string, Json>();
  const runs: PlannedRun[] = [];
  for (const v of variants(sweep, file)) {
    const raw = cache.get(v.source) ?? readExperimentObject(v.source, file);
    cache.set(v.source, raw);
    const base = raw.name as string;
    const id = `${base}${v.override ? `-${v.override.name}` : ''}${v.seed === null ? '' : `-seed${v.seed}`}`;
    if (runs.some((r) => r.id === id)) throw new ConfigError(`${file}: run ${id} appears twice`, 'list each experiment once');
    let experiment = mergeExperiment(raw, v.override?.set ?? {});
    experiment = mergeExperiment(experiment, sweep.set ?? {});
    if (v.seed !== null) {
      const training: Json = { ...((experiment.training as Json | undefined) ?? {}), seed: v.seed };
      delete training.seeds;
      experiment = { ...experiment, training };
    }
    runs.push({
      id,
      source: v.source,
      base,
      override: v.override?.name ?? null,
      seed: v.seed,
      experiment: { ...experiment, name: id },
      after: [],
      wave: 0,
    });
  }

  // Dependencies: the runs a fine-tune's paths name (pointed at their folders here), then `after`.
  for (const run of runs) {
    const ft = run.experiment.finetune;
    if (run.experiment.kind !== 'finetune' || !isObject(ft)) continue;
    const rewritten: Json = { ...ft };
    for (const key of ['init', 'baseline'] as const) {
      const p = ft[key];
      if (typeof p !== 'string' || p.endsWith('.safetensors')) continue;
      const dep = matchRun(runs, path.basename(p), run);
      if (dep === 'ambiguous')
        throw new ConfigError(`${file}: run ${run.id}: finetune.${key} ${p} matches several runs`, 'name one in "after"');
      if (!dep || dep === run) continue;
      rewritten[key] = path.join(output, dep.id);
      if (!run.after.includes(dep.id)) run.after.push(dep.id);
    }
    run.experiment = { ...run.experiment, finetune: rewritten };
  }
  for (const [key, deps] of Object.entries(sweep.after ?? {})) {
    const targets = runs.filter((r) => r.id === key || r.base === key);
    if (!targets.length) throw new ConfigError(`${file}: /after/${key} names no run of the sweep`);
    for (const run of targets)
      for (const d of deps) {
        const dep = matchRun(runs, d, run);
        if (!dep || dep === 'ambiguous')
          throw new ConfigError(`${file}: /after/${key}: ${d} ${dep ? 'matches several runs' : 'names no run of the sweep'}`);
        if (!run.after.includes(dep.id)) run.after.push(dep.id);
      }
  }

  for (const run of runs) validateExperiment(run.experiment, `${file}: run ${run.id} (from ${run.source})`);
  return { name: sweep.name, file, output, attempts: sweep.attempts ?? 3, runs: dependencyOrder(runs, file) };
}

/** Kahn's order, with waves; a cycle is a ConfigError naming its runs. */
function dependencyOrder(runs: PlannedRun[], file: string): PlannedRun[] {
  const byId = new Map(runs.map((r) => [r.id, r]));
  const done = new Set<string>();
  const ordered: PlannedRun[] = [];
  let pending = runs;
  while (pending.length) {
    const ready = pending.filter((r) => r.after.every((d) => done.has(d)));
    if (!ready.length) throw new ConfigError(`${file}: runs wait for each other in a cycle: ${pending.map((r) => r.id).join(', ')}`);
    for (const r of ready) {
      r.wave = Math.max(0, ...r.after.map((d) => (byId.get(d) as PlannedRun).wave + 1));
      ordered.push(r);
    }
    for (const r of ready) done.add(r.id);
    pending = pending.filter((r) => !done.has(r.id));
  }
  return ordered;
}

/** The runs of each wave, in order: wave k may start once waves < k are done. */
export function waves(plan: SweepPlan): PlannedRun[][] {
  const out: PlannedRun[][] = [];
  for (const r of plan.runs) {
    out[r.wave] ??= [];
    out[r.wave]!.push(r);
  }
  return out;
}

/** The runs that wait for `id`, directly. */
export const dependents = (plan: SweepPlan, id: string): PlannedRun[] => plan.runs.filter((r) => r.after.includes(id));
