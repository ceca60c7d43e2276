// Run discovery for `mf table`: the run folders one level under the runs folder that hold config.json and,
// once finished, metrics.json. Only supervised, multitask and finetune runs fill tables; a folder that cannot
// be read becomes a warning, never an error.
import fs from 'node:fs';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { MfError } from '../errors.ts';
import { percent, type ModelSize, type Scores } from '../report/thesis.ts';
import { checkJson, DatasetResultSchema, GENERATED_STAND_IN, pointer, readJsonFile } from '../train/records.ts';

export type RunKind = 'supervised' | 'multitask' | 'finetune';
const RUN_KINDS: readonly string[] = ['supervised', 'multitask', 'finetune'] satisfies RunKind[];

/** The run a cell was taken from. */
export interface RunRef {
  /** The run folder, as runsDir/<folder>. */
  dir: string;
  /** config.json `name`. */
  name: string;
  /** metrics.json modification time (ISO 8601): the newest run wins a cell. */
  metrics_mtime: string;
  /** The run's training length from config.json (epochs or max_steps), so shortened runs show as such. */
  length?: string;
}

/** This project's test scores for one dataset (accuracy in percent) and where they come from. */
export interface OurScores extends Scores, SeedSpread {
  run: RunRef;
  /** Fine-tuning only: the first step whose validation AUC reached the single-task baseline; null: never reached. */
  ssl_steps?: number | null;
}

/** What a run adds to its scores: the spread over seeds (`mf run --seeds`) and the majority-class baseline. */
export interface SeedSpread {
  /** Standard deviations over seeds (ACC in percent); absent for a single run. */
  std?: Scores;
  /** Number of seeds behind the scores (1 for a single run). */
  seeds: number;
  /** Test ACC (percent) of always answering the training split's majority class; absent in older runs. */
  majority_acc?: number;
}

export type Cell = OurScores | 'missing';

/** Which kind of run config.json describes; read first, so runs of other kinds are passed over whatever their shape. */
const ConfigKindSchema = Type.Object({ kind: Type.String() });

/** The fields of a table run's config.json (the resolved experiment `mf run` writes) that this command reads. */
const RunConfigSchema = Type.Object({
  name: Type.String(),
  kind: Type.String(),
  model: Type.Object({
    preset: Type.String(),
    // Wide ResNet runs (CIFAR Tables 5.1/5.2): which network.
    depth: Type.Optional(Type.Number()),
    image_size_2d: Type.Optional(Type.Number()),
    widen_factor: Type.Optional(Type.Number()),
  }),
  data: Type.Object({
    datasets: Type.Array(Type.String()),
    samples_per_class: Type.Optional(Type.Union([Type.Number(), Type.Null()])),
  }),
  /** Cascading Sum Augmentation's stages, when the run trained with them. */
  csa: Type.Optional(Type.Union([Type.Object({ schedule: Type.Array(Type.Number()) }), Type.Null()])),
  training: Type.Optional(
    Type.Object({
      epochs: Type.Optional(Type.Union([Type.Number(), Type.Null()])),
      max_steps: Type.Optional(Type.Union([Type.Number(), Type.Null()])),
    }),
  ),
});
export type RunConfig = Static<typeof RunConfigSchema>;

export interface DatasetScores extends SeedSpread {
  auc: number;
  /** percent */
  acc: number;
  ssl_steps?: number | null;
  /**
   * True when metrics.json says the run trained on a generated stand-in for missing files (data_source): such a
   * result fills no table cell and is listed below the table as generated data. Absent for real files (and for runs
   * made before data_source was recorded).
   */
  generated?: true;
}

export interface Run {
  ref: RunRef;
  mtimeMs: number;
  kind: RunKind;
  preset: string;
  /** The fields of config.json read here (the CIFAR tables tell their rows apart by model, samples per class, CSA). */
  config: RunConfig;
  results: ReadonlyMap<string, DatasetScores>;
}

export interface RunIndex {
  runs: Run[];
  /** Folders with a config.json but no metrics.json yet: kind, preset, datasets and where. */
  pending: { dir: string; name: string; kind: RunKind; preset: string; datasets: string[] }[];
  warnings: string[];
}

const SKIP_RUN = { what: 'the run', fix: 'run skipped' } as const;

/** The message of an MfError (the warning for a skipped run or dataset); anything else is a bug and rethrown. */
function warning(e: unknown): string {
  if (e instanceof MfError) return e.message;
  throw e;
}

/** The dataset results of a finished run; entries that do not conform become warnings and are left out. */
function readResults(metricsFile: string, datasets: readonly string[], warnings: string[]): Map<string, DatasetScores> {
  const metrics = readJsonFile(metricsFile, Type.Record(Type.String(), Type.Unknown()), SKIP_RUN);
  const results = new Map<string, DatasetScores>();
  for (const key of datasets) {
    if (metrics[key] === undefined) continue;
    const at = pointer('', key);
    try {
      const r = checkJson(DatasetResultSchema, metrics[key], { file: metricsFile, at, fix: `${key} skipped` });
      const { test, ssl_steps } = r;
      if (test.auc === null || test.acc === null) {
        warnings.push(`${metricsFile}: ${at}/test has no AUC or ACC (null: NaN when the run wrote it); ${key} skipped`);
        continue;
      }
      const std =
        r.test_std && r.test_std.auc !== null && r.test_std.acc !== null
          ? { auc: r.test_std.auc, acc: percent(r.test_std.acc) }
          : undefined;
      results.set(key, {
        auc: test.auc,
        acc: percent(test.acc),
        seeds: r.seeds?.length ?? 1,
        ...(std ? { std } : {}),
        ...(typeof r.majority_acc === 'number' ? { majority_acc: percent(r.majority_acc) } : {}),
        ...(ssl_steps !== undefined ? { ssl_steps } : {}),
        ...(r.data_source?.origin === GENERATED_STAND_IN ? { generated: true as const } : {}),
      });
    } catch (e) {
      warnings.push(warning(e));
    }
  }
  return results;
}

/** Scans the run folders one level under `runsDir`. Unreadable folders become warnings, not errors. */
export function indexRuns(runsDir: string): RunIndex {
  const index: RunIndex = { runs: [], pending: [], warnings: [] };
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(runsDir, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    index.warnings.push(
      code === 'ENOENT' ? `${runsDir}: no such runs folder; every cell is missing` : `${runsDir}: cannot read (${code ?? String(e)})`,
    );
    return index;
  }
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (!entry.isDirectory()) continue;
    const dir = path.join(runsDir, entry.name);
    const configFile = path.join(dir, 'config.json');
    const metricsFile = path.join(dir, 'metrics.json');
    if (!fs.existsSync(configFile)) continue;
    let config: RunConfig;
    try {
      const raw = readJsonFile(configFile, Type.Unknown(), SKIP_RUN);
      if (!RUN_KINDS.includes(checkJson(ConfigKindSchema, raw, { file: configFile, fix: SKIP_RUN.fix }).kind)) continue;
      config = checkJson(RunConfigSchema, raw, { file: configFile, fix: SKIP_RUN.fix });
    } catch (e) {
      index.warnings.push(warning(e));
      continue;
    }
    const kind = config.kind as RunKind;
    const datasets = config.data.datasets.map((d) => d.toLowerCase());
    if (!fs.existsSync(metricsFile)) {
      index.pending.push({ dir, name: config.name, kind, preset: config.model.preset, datasets });
      continue;
    }
    let results: Map<string, DatasetScores>;
    try {
      results = readResults(metricsFile, datasets, index.warnings);
    } catch (e) {
      index.warnings.push(warning(e));
      continue;
    }
    const t = config.training;
    const length =
      typeof t?.max_steps === 'number' ? `${t.max_steps} steps` : typeof t?.epochs === 'number' ? `${t.epochs} epochs` : undefined;
    const mtimeMs = fs.statSync(metricsFile).mtimeMs;
    index.runs.push({
      ref: { dir, name: config.name, metrics_mtime: new Date(mtimeMs).toISOString(), ...(length ? { length } : {}) },
      mtimeMs,
      kind,
      preset: config.model.preset,
      config,
      results,
    });
  }
  return index;
}

/** The newest run of a kind and model preset (a size, or "resnet18") with a test result for `key` on real data. */
export function pick(index: RunIndex, kind: RunKind, model: ModelSize | 'resnet18', key: string): Cell {
  const candidates = index.runs
    .filter((r) => r.kind === kind && r.preset === model && r.results.has(key) && !r.results.get(key)!.generated)
    .sort((a, b) => b.mtimeMs - a.mtimeMs || a.ref.dir.localeCompare(b.ref.dir));
  const run = candidates[0];
  if (!run) return 'missing';
  const res = run.results.get(key) as DatasetScores;
  return { ...res, run: run.ref };
}

/** A result on a generated stand-in that would otherwise be a candidate for a cell: listed below the table. */
export interface GeneratedResult extends DatasetScores {
  key: string;
  kind: RunKind;
  run: RunRef;
}

/** Results on generated data of these kinds, presets (any when null) and data sets, newest first. */
export function generatedResults(
  index: RunIndex,
  kinds: readonly RunKind[],
  presets: readonly string[] | null,
  keys: readonly string[],
): GeneratedResult[] {
  return index.runs
    .filter((r) => kinds.includes(r.kind) && (presets === null || presets.includes(r.preset)))
    .sort((a, b) => b.mtimeMs - a.mtimeMs || a.ref.dir.localeCompare(b.ref.dir))
    .flatMap((r) =>
      keys.filter((k) => r.results.get(k)?.generated).map((key) => ({ ...r.results.get(key)!, key, kind: r.kind, run: r.ref })),
    );
}

/** The lines that list results on generated data below a table (none when there are none). */
export function generatedLines(results: readonly GeneratedResult[]): string[] {
  if (!results.length) return [];
  return [
    '',
    'Runs on generated data (a stand-in for missing data set files; their numbers say nothing about the data set and fill no cell):',
    '',
    ...results.map((g) => `- ${g.key} (${g.kind}): ACC ${g.acc.toFixed(1)}, AUC ${g.auc.toFixed(3)}, generated data: ${runLine(g.run)}`),
  ];
}

/** The run a cell came from, as the tables list it under "Runs used". */
export const runLine = (run: RunRef): string =>
  `${run.dir} (${run.name}${run.length ? `, ${run.length}` : ''}, metrics ${run.metrics_mtime})`;

function csvField(v: string | number | null): string {
  const s = v === null ? '' : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
/** One CSV line: fields quoted where they hold a comma, quote or line break; null as an empty field. */
export const csvLine = (fields: (string | number | null)[]): string => fields.map(csvField).join(',');

/** Warnings for runs that would fill a cell of this table but have not written metrics.json yet. */
export function pendingWarnings(index: RunIndex, kinds: readonly RunKind[], model: ModelSize, keys: readonly string[]): string[] {
  return index.pending
    .filter((p) => kinds.includes(p.kind) && p.preset === model && p.datasets.some((d) => keys.includes(d)))
    .map((p) => `${p.dir}: ${p.name} has no metrics.json yet (unfinished run?); not counted`);
}
