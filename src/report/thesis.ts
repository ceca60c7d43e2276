// The thesis's result tables (Simionescu, 2025, chapter 4) and the MedMNIST v2 baseline, as typed data, and
// the checks that mark the printed figures no model evaluated by the official MedMNIST evaluator could give.
// The figures live in thesis-tables.json next to this file (with their citations); nothing outside the
// project is read. Thesis accuracies are percent, AUCs are in [0, 1] as printed (one is not: see the flags).
import fs from 'node:fs';
import { getDataset, type Task } from '../data/registry.ts';
import { ConfigError, FileFormatError } from '../errors.ts';

export const TABLE_IDS = ['4.2', '4.3', '4.4', '4.5', '4.6', '4.7', '4.8', '4.9', '4.10', '4.11'] as const;
export type TableId = (typeof TABLE_IDS)[number];
export type ModelSize = 'small' | 'large';
export type Regime = 'single-task' | 'multi-task' | 'ssl-finetune' | 'deltas';

/** Test AUC and accuracy; accuracy in percent, as the thesis prints it. */
export interface Scores {
  auc: number;
  acc: number;
}

/** One printed row of a results table: the dataset's display name and its scores. */
export interface ThesisRow extends Scores {
  dataset: string;
}

export const DELTA_KEYS = ['mt_minus_st', 'ssl_minus_st', 'ssl_minus_mt'] as const;
export type DeltaKey = (typeof DELTA_KEYS)[number];
export const DELTA_LABELS: Readonly<Record<DeltaKey, string>> = { mt_minus_st: 'MT−ST', ssl_minus_st: 'SSL−ST', ssl_minus_mt: 'SSL−MT' };

/** One row of a difference table (4.6, 4.11): three differences and the fine-tuning steps to reach the baseline. */
export interface DeltaRow extends Record<DeltaKey, Scores> {
  dataset: string;
  ssl_finetune_steps: number;
}

interface TableBase {
  id: TableId;
  model: ModelSize;
  /** A description made from the metadata (not the thesis's caption). */
  title: string;
}
export interface ValueTable extends TableBase {
  regime: Exclude<Regime, 'deltas'>;
  rows: readonly ThesisRow[];
}
export interface DeltaTable extends TableBase {
  regime: 'deltas';
  rows: readonly DeltaRow[];
  /** The value tables the differences are taken from: single-task (2D and 3D), multi-task, SSL fine-tuned. */
  sources: { st: readonly TableId[]; mt: TableId; ssl: TableId };
}
export type ThesisTable = ValueTable | DeltaTable;

/** A MedMNIST v2 benchmark figure; accuracy in percent (the paper prints fractions). */
export interface Baseline extends Scores {
  /** 'ResNet-18 (28)' for 2D sets; 'ResNet-18 + 3D' for 3D sets, where the paper has no ResNet-18 (28) row. */
  model: string;
}

export interface DatasetFacts {
  modality: string;
  dim: '2D' | '3D';
  /** As Table 4.1 prints it (ChestMNIST says Binary; MedMNIST v2 has it as 14-label). */
  task: string;
  samples: number;
}

export type FlagRule =
  | 'auc-out-of-range'
  | 'auc-below-chance'
  | 'acc-at-chance'
  | 'acc-above-benchmark'
  | 'task-mismatch'
  | 'identical-row'
  | 'delta-mismatch'
  | 'delta-reads-corrected'
  | 'delta-from-flagged';

/** Why a printed figure should not be taken at face value. `fields` names what it concerns ('auc', 'acc', 'ssl_minus_mt.acc'). */
export interface Flag {
  rule: FlagRule;
  fields: readonly string[];
  reason: string;
}

// ---------------------------------------------------------------------------------------------------------------
// Loading

interface Data {
  source: string;
  notes: readonly string[];
  datasets: ReadonlyMap<string, DatasetFacts>;
  tables: ReadonlyMap<TableId, ThesisTable>;
  baselineSource: string;
  baseline: ReadonlyMap<string, Baseline>;
  bestAcc: ReadonlyMap<string, { method: string; acc: number }>;
  testCounts: ReadonlyMap<string, readonly number[]>;
}

const FILE = new URL('./thesis-tables.json', import.meta.url);

const TABLE_META: Readonly<Record<TableId, { model: ModelSize; regime: Regime }>> = {
  '4.2': { model: 'small', regime: 'single-task' },
  '4.3': { model: 'small', regime: 'single-task' },
  '4.4': { model: 'small', regime: 'multi-task' },
  '4.5': { model: 'small', regime: 'ssl-finetune' },
  '4.6': { model: 'small', regime: 'deltas' },
  '4.7': { model: 'large', regime: 'single-task' },
  '4.8': { model: 'large', regime: 'single-task' },
  '4.9': { model: 'large', regime: 'multi-task' },
  '4.10': { model: 'large', regime: 'ssl-finetune' },
  '4.11': { model: 'large', regime: 'deltas' },
};

const DELTA_SOURCES: Readonly<Record<ModelSize, DeltaTable['sources']>> = {
  small: { st: ['4.2', '4.3'], mt: '4.4', ssl: '4.5' },
  large: { st: ['4.7', '4.8'], mt: '4.9', ssl: '4.10' },
};

type Obj = Record<string, unknown>;

function bad(where: string, what: string): never {
  throw new FileFormatError(`${FILE.pathname}: ${where} ${what}; the figures file of the project is damaged (restore it from git)`);
}
function obj(v: unknown, where: string): Obj {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) bad(where, 'is not an object');
  return v as Obj;
}
function num(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) bad(where, 'is not a number');
  return v;
}
function str(v: unknown, where: string): string {
  if (typeof v !== 'string') bad(where, 'is not a string');
  return v;
}
function list(v: unknown, where: string): readonly unknown[] {
  if (!Array.isArray(v)) bad(where, 'is not a list');
  return v as readonly unknown[];
}
function scores(v: unknown, where: string): Scores {
  const o = obj(v, where);
  return { auc: num(o.auc, `${where}.auc`), acc: num(o.acc, `${where}.acc`) };
}

function parse(raw: unknown): Data {
  const root = obj(raw, 'the file');
  const thesis = obj(root.thesis, 'thesis');
  const datasets = new Map<string, DatasetFacts>();
  for (const [name, v] of Object.entries(obj(thesis.datasets_table_4_1, 'thesis.datasets_table_4_1'))) {
    const o = obj(v, `datasets_table_4_1.${name}`);
    const dim = str(o.dim, `datasets_table_4_1.${name}.dim`);
    if (dim !== '2D' && dim !== '3D') bad(`datasets_table_4_1.${name}.dim`, 'is neither 2D nor 3D');
    datasets.set(name, { modality: str(o.modality, name), dim, task: str(o.task, name), samples: num(o.samples, name) });
  }
  const rawTables = obj(thesis.tables, 'thesis.tables');
  const tables = new Map<TableId, ThesisTable>();
  for (const id of TABLE_IDS) {
    const t = obj(rawTables[id], `thesis.tables.${id}`);
    const { model, regime } = TABLE_META[id];
    if (t.model !== model || t.regime !== regime) bad(`thesis.tables.${id}`, `is not ${model}/${regime}`);
    const rowsObj = obj(t.rows, `thesis.tables.${id}.rows`);
    for (const name of Object.keys(rowsObj)) if (!datasets.has(name)) bad(`thesis.tables.${id}.rows.${name}`, 'names no dataset of Table 4.1');
    const dims = new Set(Object.keys(rowsObj).map((n) => datasets.get(n)?.dim));
    const what = dims.size > 1 ? '2D and 3D' : [...dims][0];
    if (regime === 'deltas') {
      const rows = Object.entries(rowsObj).map(([dataset, v]): DeltaRow => {
        const o = obj(v, `${id}.${dataset}`);
        return {
          dataset,
          mt_minus_st: scores(o.mt_minus_st, `${id}.${dataset}.mt_minus_st`),
          ssl_minus_st: scores(o.ssl_minus_st, `${id}.${dataset}.ssl_minus_st`),
          ssl_minus_mt: scores(o.ssl_minus_mt, `${id}.${dataset}.ssl_minus_mt`),
          ssl_finetune_steps: num(o.ssl_finetune_steps, `${id}.${dataset}.ssl_finetune_steps`),
        };
      });
      const title = `Table ${id}: Medformer-${model}, differences between regimes (MT−ST, SSL−ST, SSL−MT) and SSL fine-tuning steps, ${what}`;
      tables.set(id, { id, model, regime, title, rows, sources: DELTA_SOURCES[model] });
    } else {
      const rows = Object.entries(rowsObj).map(([dataset, v]) => ({ dataset, ...scores(v, `${id}.${dataset}`) }));
      tables.set(id, { id, model, regime, title: `Table ${id}: Medformer-${model}, ${regime}, ${what}`, rows });
    }
  }
  const mm = obj(root.medmnist_v2, 'medmnist_v2');
  const baseline = new Map<string, Baseline>();
  for (const [name, v] of Object.entries(obj(mm.baseline, 'medmnist_v2.baseline'))) {
    const o = obj(v, `medmnist_v2.baseline.${name}`);
    const s = scores(o, `medmnist_v2.baseline.${name}`);
    baseline.set(name, { model: str(o.model, `medmnist_v2.baseline.${name}.model`), auc: s.auc, acc: percent(s.acc) });
  }
  const bestAcc = new Map<string, { method: string; acc: number }>();
  for (const [name, v] of Object.entries(obj(mm.best_acc, 'medmnist_v2.best_acc'))) {
    const o = obj(v, `medmnist_v2.best_acc.${name}`);
    bestAcc.set(name, { method: str(o.method, name), acc: percent(num(o.acc, name)) });
  }
  const testCounts = new Map<string, readonly number[]>();
  for (const [name, v] of Object.entries(obj(root.test_label_counts, 'test_label_counts'))) {
    if (name === 'source') continue;
    testCounts.set(name, list(v, `test_label_counts.${name}`).map((c, i) => num(c, `test_label_counts.${name}[${i}]`)));
  }
  return {
    source: str(thesis.source, 'thesis.source'),
    notes: list(thesis.notes, 'thesis.notes').map((n, i) => str(n, `thesis.notes[${i}]`)),
    datasets,
    tables,
    baselineSource: `${str(mm.source, 'medmnist_v2.source')} Transcribed from ${str(mm.transcribed_from, 'medmnist_v2.transcribed_from')}`,
    baseline,
    bestAcc,
    testCounts,
  };
}

let cache: Data | undefined;
function data(): Data {
  if (!cache) {
    let text: string;
    try {
      text = fs.readFileSync(FILE, 'utf8');
    } catch (e) {
      throw new FileFormatError(`${FILE.pathname}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)}); restore it from git`);
    }
    cache = parse(JSON.parse(text));
  }
  return cache;
}

/** A fraction as percent, without float noise (0.863 -> 86.3, not 86.29999999999998). */
export function percent(fraction: number): number {
  return round6(fraction * 100);
}
/** Rounds to 6 decimals: enough for any printed figure, and it removes binary float noise from differences. */
export function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

// ---------------------------------------------------------------------------------------------------------------
// Access

/** The thesis citation. */
export function thesisSource(): string {
  return data().source;
}
/** The notes that came with the transcription of the tables. */
export function thesisNotes(): readonly string[] {
  return data().notes;
}
/** Where the MedMNIST v2 baseline figures come from. */
export function baselineSource(): string {
  return data().baselineSource;
}

export function isTableId(id: string): id is TableId {
  return (TABLE_IDS as readonly string[]).includes(id);
}

/** A table by id; an unknown id is a ConfigError naming the valid ones. */
export function thesisTable(id: string): ThesisTable {
  const key = id.trim();
  if (!isTableId(key)) throw new ConfigError(`unknown table '${id}'`, `valid ids: ${TABLE_IDS.join(', ')}`);
  const t = data().tables.get(key);
  if (!t) throw new FileFormatError(`${FILE.pathname}: table ${key} is missing`);
  return t;
}

/** The printed row of a value table for a dataset (display name), or undefined where the table has none. */
export function thesisRow(id: TableId, dataset: string): ThesisRow | undefined {
  const t = thesisTable(id);
  return t.regime === 'deltas' ? undefined : t.rows.find((r) => r.dataset === dataset);
}

/** The 18 datasets in the order of Table 4.1, by display name. */
export function thesisDatasets(): readonly string[] {
  return [...data().datasets.keys()];
}
/** Table 4.1's facts on a dataset (display name). */
export function datasetFacts(name: string): DatasetFacts {
  const f = data().datasets.get(datasetName(datasetKey(name)));
  if (!f) throw new ConfigError(`unknown dataset '${name}'`);
  return f;
}

/** 'BreastMNIST' -> 'breastmnist', 'OrganMNIST3D' -> 'organmnist3d' (a key passes through); unknown names are a ConfigError. */
export function datasetKey(name: string): string {
  const hit = thesisDatasets().find((d) => d.toLowerCase() === name.trim().toLowerCase());
  if (!hit) throw new ConfigError(`unknown dataset '${name}'`, `the thesis tables have: ${thesisDatasets().join(', ')}`);
  return hit.toLowerCase();
}
/** 'breastmnist' -> 'BreastMNIST'; unknown keys are a ConfigError. */
export function datasetName(key: string): string {
  const hit = thesisDatasets().find((d) => d.toLowerCase() === key.trim().toLowerCase());
  if (!hit) throw new ConfigError(`unknown dataset '${key}'`, `the thesis tables have: ${thesisDatasets().map((d) => d.toLowerCase()).join(', ')}`);
  return hit;
}

/** The MedMNIST v2 benchmark figure for a dataset (display name or key), accuracy in percent. */
export function medmnistBaseline(dataset: string): Baseline | undefined {
  return data().baseline.get(datasetName(dataset));
}

// ---------------------------------------------------------------------------------------------------------------
// Flags

/** Points of accuracy above chance that make an AUC below 0.5 a contradiction rather than noise. */
const WELL_ABOVE_CHANCE = 10;
/** Accuracy within this many points of 1/K counts as chance, for the "chance accuracy, high AUC" check. */
const AT_CHANCE_MARGIN = 2;
const AT_CHANCE_MIN_AUC = 0.75;
/** Points above the best MedMNIST v2 benchmark accuracy (any of its methods) that no reported model comes near. */
const ABOVE_BENCHMARK = 20;

const fmtAuc = (x: number) => (Math.abs(x) > 1 ? String(x) : x.toFixed(3));
/** Decimals of a printed figure (9.93 -> 2), so it is shown as printed. */
export function decimals(x: number): number {
  return round6(x).toString().split('.')[1]?.length ?? 0;
}
const fmtPct = (x: number) => `${x.toFixed(Math.min(2, Math.max(1, decimals(x))))}%`;

/** Classes of a single-label task from the registry, or undefined (binary, multi-label, unknown). */
function numClasses(dataset: string): number | undefined {
  try {
    const ds = getDataset(datasetKey(dataset));
    return ds.task === 'multi-class' || ds.task === 'ordinal' ? ds.labels.length : undefined;
  } catch {
    return undefined;
  }
}

/** The share (percent) of the most frequent class in the official test split, where this project has counted it. */
function majorityPercent(dataset: string): number | undefined {
  const counts = data().testCounts.get(dataset);
  if (!counts) return undefined;
  return round6((100 * Math.max(...counts)) / counts.reduce((a, b) => a + b, 0));
}

/**
 * Checks one printed (AUC, ACC) pair against what the official MedMNIST evaluator can produce for a task
 * (the registry's task type: ChestMNIST 'multi-label', RetinaMNIST 'ordinal', scored as multi-class):
 * - an AUC outside [0, 1];
 * - multi-class/ordinal: macro one-vs-rest AUC below 0.5 (a worse-than-random ranking) while accuracy, the
 *   argmax of the same scores, is well above chance;
 * - multi-class: accuracy at chance (1/K) beside a high AUC;
 * - accuracy far above every method of the MedMNIST v2 benchmark (e.g. RetinaMNIST 95%, best published 53.1%,
 *   majority class 43.5% of the 400 test images);
 * - multi-label (ChestMNIST): the thesis scores it as binary (Table 4.1), so its accuracy is not on the official
 *   per-label scale.
 */
export function implausible(row: ThesisRow, taskType: Task): Flag[] {
  const flags: Flag[] = [];
  const { dataset, auc, acc } = row;
  if (auc > 1 || auc < 0) {
    const hint = auc > 1 && auc <= 100 ? `; likely ${round6(auc / 100)} written as a percent` : '';
    flags.push({ rule: 'auc-out-of-range', fields: ['auc'], reason: `AUC printed as ${auc}, outside [0, 1]${hint}` });
  }
  const k = taskType === 'multi-class' || taskType === 'ordinal' ? numClasses(dataset) : undefined;
  const majority = majorityPercent(dataset);
  if (k !== undefined) {
    const chance = Math.max(100 / k, majority ?? 0);
    const chanceText = majority !== undefined ? `majority class ${fmtPct(majority)} of the test set` : `chance 1/${k} = ${fmtPct(round6(100 / k))}`;
    if (auc >= 0 && auc < 0.5 && acc >= chance + WELL_ABOVE_CHANCE) {
      flags.push({
        rule: 'auc-below-chance',
        fields: ['auc', 'acc'],
        reason: `AUC ${fmtAuc(auc)} < 0.5 (worse than a random ranking) yet ACC ${fmtPct(acc)} is far above chance (${chanceText}); from the same scores the official evaluator cannot give both`,
      });
    }
    if (taskType === 'multi-class' && acc <= 100 / k + AT_CHANCE_MARGIN && auc >= AT_CHANCE_MIN_AUC && auc <= 1) {
      flags.push({
        rule: 'acc-at-chance',
        fields: ['acc'],
        reason: `ACC ${fmtPct(acc)} is at chance (1/${k} = ${fmtPct(round6(100 / k))}) beside AUC ${fmtAuc(auc)}; a collapsed prediction or a misprint`,
      });
    }
  }
  const best = data().bestAcc.get(dataset);
  if (best && acc > best.acc + ABOVE_BENCHMARK) {
    const extra = majority !== undefined ? `; the majority class is ${fmtPct(majority)} of the test set` : '';
    flags.push({
      rule: 'acc-above-benchmark',
      fields: ['acc'],
      reason: `ACC ${fmtPct(acc)} is ${round6(acc - best.acc).toFixed(1)} points above the best MedMNIST v2 benchmark ACC (${fmtPct(best.acc)}, ${best.method})${extra}`,
    });
  }
  if (taskType === 'multi-label') {
    const b = data().baseline.get(dataset);
    const ref = b ? ` (${b.model}: ${fmtPct(b.acc)})` : '';
    flags.push({
      rule: 'task-mismatch',
      fields: ['acc'],
      reason: `${dataset} is 14-label in MedMNIST v2 but Table 4.1 calls it Binary; this ACC is not on the official per-label scale${ref}`,
    });
  }
  return flags;
}

/** The registry's task type of a thesis dataset. */
function taskOf(dataset: string): Task {
  return getDataset(datasetKey(dataset)).task;
}

function valueTables(): ValueTable[] {
  return TABLE_IDS.map((id) => thesisTable(id)).filter((t): t is ValueTable => t.regime !== 'deltas');
}

/** The printed scores of a dataset in the value tables a difference table is taken from. */
function sourceRows(t: DeltaTable, dataset: string): { st?: ThesisRow; mt?: ThesisRow; ssl?: ThesisRow } {
  const st = t.sources.st.map((id) => thesisRow(id, dataset)).find((r) => r !== undefined);
  return { st, mt: thesisRow(t.sources.mt, dataset), ssl: thesisRow(t.sources.ssl, dataset) };
}

/** Tolerances for a difference of two printed figures (3 decimals of AUC, 1 of ACC), with room for float error. */
const DELTA_TOL: Readonly<Record<keyof Scores, number>> = { auc: 0.0015, acc: 0.15 };

function deltaFlags(t: DeltaTable, row: DeltaRow): Flag[] {
  const flags: Flag[] = [];
  const src = sourceRows(t, row.dataset);
  const pairs: Record<DeltaKey, [ThesisRow | undefined, ThesisRow | undefined, string]> = {
    mt_minus_st: [src.mt, src.st, `${t.sources.mt} − ${t.sources.st.join('/')}`],
    ssl_minus_st: [src.ssl, src.st, `${t.sources.ssl} − ${t.sources.st.join('/')}`],
    ssl_minus_mt: [src.ssl, src.mt, `${t.sources.ssl} − ${t.sources.mt}`],
  };
  const asPrinted = (x: number) => x;
  const asFraction = (x: number) => (x > 1 && x <= 100 ? x / 100 : x);
  for (const key of DELTA_KEYS) {
    const [a, b, tables] = pairs[key];
    if (!a || !b) continue;
    for (const m of ['auc', 'acc'] as const) {
      const printed = row[key][m];
      const calc = (f: (x: number) => number) => round6(f(a[m]) - f(b[m]));
      if (Math.abs(calc(asPrinted) - printed) <= DELTA_TOL[m]) continue;
      const field = `${key}.${m}`;
      if (m === 'auc' && Math.abs(calc(asFraction) - printed) <= DELTA_TOL[m]) {
        const odd = [a, b].find((r) => r.auc > 1);
        flags.push({
          rule: 'delta-reads-corrected',
          fields: [field],
          reason: `${DELTA_LABELS[key]} AUC ${printed} matches Tables ${tables} only with ${row.dataset} AUC ${odd?.auc} read as ${round6((odd?.auc ?? 0) / 100)}`,
        });
        continue;
      }
      const show = (x: number) => (m === 'auc' ? x.toFixed(3) : `${x.toFixed(1)} points`);
      flags.push({
        rule: 'delta-mismatch',
        fields: [field],
        reason: `${DELTA_LABELS[key]} ${m.toUpperCase()} printed ${show(printed)}, but Tables ${tables} give ${show(calc(asPrinted))}`,
      });
    }
  }
  // A difference of a figure flagged as impossible inherits the doubt (the task-mismatch and identical-row notes do not
  // make a difference meaningless, and an AUC out of range is covered above).
  const doubtful = new Set<FlagRule>(['auc-below-chance', 'acc-at-chance', 'acc-above-benchmark']);
  const tableOf: Record<'st' | 'mt' | 'ssl', (r: ThesisRow) => TableId | undefined> = {
    st: (r) => t.sources.st.find((id) => thesisRow(id, r.dataset) === r),
    mt: () => t.sources.mt,
    ssl: () => t.sources.ssl,
  };
  const fields: string[] = [];
  const origins = new Set<string>();
  const uses: Record<DeltaKey, ('st' | 'mt' | 'ssl')[]> = { mt_minus_st: ['mt', 'st'], ssl_minus_st: ['ssl', 'st'], ssl_minus_mt: ['ssl', 'mt'] };
  for (const key of DELTA_KEYS) {
    for (const m of ['auc', 'acc'] as const) {
      for (const which of uses[key]) {
        const r = src[which];
        if (!r) continue;
        const bad = implausible(r, taskOf(r.dataset)).filter((f) => doubtful.has(f.rule) && f.fields.includes(m));
        if (bad.length === 0) continue;
        if (!fields.includes(`${key}.${m}`)) fields.push(`${key}.${m}`);
        origins.add(`Table ${tableOf[which](r)} ${m.toUpperCase()}`);
      }
    }
  }
  if (fields.length) {
    flags.push({ rule: 'delta-from-flagged', fields, reason: `taken from figures flagged in their own tables (${[...origins].sort().join(', ')})` });
  }
  return flags;
}

/**
 * Everything to say about a dataset's row of a table: for a value table, `implausible` plus rows printed
 * identically in another table (a different regime or model size giving the very same AUC and ACC); for a
 * difference table, differences that do not follow from the value tables they are taken from.
 */
export function thesisFlags(id: TableId, dataset: string): Flag[] {
  const t = thesisTable(id);
  if (t.regime === 'deltas') {
    const row = t.rows.find((r) => r.dataset === dataset);
    return row ? deltaFlags(t, row) : [];
  }
  const row = t.rows.find((r) => r.dataset === dataset);
  if (!row) return [];
  const flags = implausible(row, taskOf(dataset));
  for (const other of valueTables()) {
    if (other.id === id) continue;
    const o = other.rows.find((r) => r.dataset === dataset);
    if (o && o.auc === row.auc && o.acc === row.acc) {
      flags.push({
        rule: 'identical-row',
        fields: ['auc', 'acc'],
        reason: `same AUC and ACC (${fmtAuc(row.auc)} / ${fmtPct(row.acc)}) as Table ${other.id} (Medformer-${other.model}, ${other.regime}): a copied row?`,
      });
    }
  }
  return flags;
}
