// The thesis's result tables (Simionescu, 2025, chapter 4) and the MedMNIST v2 baseline, as typed data. The
// figures live in thesis-tables.json next to this file (with their citations), checked against
// ThesisTablesSchema when first used; nothing outside the project is read. Thesis accuracies are percent, AUCs
// are in [0, 1] as printed (one is not: see the flags in thesis.ts).
import { fileURLToPath } from 'node:url';
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { ConfigError, FileFormatError } from '../errors.ts';
import { pointer, readJsonFile } from '../train/records.ts';

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

// ---------------------------------------------------------------------------------------------------------------
// The file's schema

const Count = Type.Integer({ minimum: 0, description: 'a non-negative integer' });
const ScoresSchema = Type.Object({ auc: Type.Number(), acc: Type.Number() });
const DeltaRowSchema = Type.Object({
  mt_minus_st: ScoresSchema,
  ssl_minus_st: ScoresSchema,
  ssl_minus_mt: ScoresSchema,
  ssl_finetune_steps: Count,
});
const byDataset = <T extends TSchema>(row: T) => Type.Record(Type.String(), row, { description: 'an object of datasets' });
const valueTable = (model: ModelSize, regime: Exclude<Regime, 'deltas'>) =>
  Type.Object({ model: Type.Literal(model), regime: Type.Literal(regime), rows: byDataset(ScoresSchema) });
const deltaTable = (model: ModelSize) =>
  Type.Object({ model: Type.Literal(model), regime: Type.Literal('deltas'), rows: byDataset(DeltaRowSchema) });

/**
 * src/report/thesis-tables.json: the parts this project reads. Each table id has its model size and regime
 * fixed here, so a table pasted under the wrong id is refused. (Open objects: the file also carries notes,
 * the thesis's model configs and training values, which other code reads.)
 */
export const ThesisTablesSchema = Type.Object({
  thesis: Type.Object({
    source: Type.String(),
    notes: Type.Array(Type.String()),
    /** Table 4.1, by display name, in its order (which is the order datasets are listed in). */
    datasets_table_4_1: byDataset(
      Type.Object({
        modality: Type.String(),
        dim: Type.Union([Type.Literal('2D'), Type.Literal('3D')]),
        /** As Table 4.1 prints it (ChestMNIST says Binary; MedMNIST v2 has it as 14-label). */
        task: Type.String(),
        samples: Count,
      }),
    ),
    tables: Type.Object({
      '4.2': valueTable('small', 'single-task'),
      '4.3': valueTable('small', 'single-task'),
      '4.4': valueTable('small', 'multi-task'),
      '4.5': valueTable('small', 'ssl-finetune'),
      '4.6': deltaTable('small'),
      '4.7': valueTable('large', 'single-task'),
      '4.8': valueTable('large', 'single-task'),
      '4.9': valueTable('large', 'multi-task'),
      '4.10': valueTable('large', 'ssl-finetune'),
      '4.11': deltaTable('large'),
    }),
  }),
  medmnist_v2: Type.Object({
    source: Type.String(),
    transcribed_from: Type.String(),
    /** Fractions, as the paper prints them. */
    baseline: byDataset(Type.Object({ model: Type.String(), auc: Type.Number(), acc: Type.Number() })),
    /** The best accuracy of any method of the benchmark (a fraction), and which. */
    best_acc: byDataset(Type.Object({ method: Type.String(), acc: Type.Number() })),
  }),
  /** Test-split label counts this project counted itself, by display name; `source` says how. */
  test_label_counts: Type.Object({ source: Type.String() }, { additionalProperties: Type.Array(Count) }),
});
export type ThesisTablesFile = Static<typeof ThesisTablesSchema>;

// ---------------------------------------------------------------------------------------------------------------
// Loading

interface Data {
  source: string;
  /** Display name -> 2D/3D, in the order of Table 4.1. */
  dims: ReadonlyMap<string, '2D' | '3D'>;
  tables: ReadonlyMap<TableId, ThesisTable>;
  baselineSource: string;
  baseline: ReadonlyMap<string, Baseline>;
  bestAcc: ReadonlyMap<string, { method: string; acc: number }>;
  testCounts: ReadonlyMap<string, readonly number[]>;
}

const FILE = fileURLToPath(new URL('./thesis-tables.json', import.meta.url));
const FIX = 'the figures file of the project is damaged (restore it from git)';

const DELTA_SOURCES: Readonly<Record<ModelSize, DeltaTable['sources']>> = {
  small: { st: ['4.2', '4.3'], mt: '4.4', ssl: '4.5' },
  large: { st: ['4.7', '4.8'], mt: '4.9', ssl: '4.10' },
};

function build(file: ThesisTablesFile): Data {
  const { thesis, medmnist_v2: mm } = file;
  const dims = new Map(Object.entries(thesis.datasets_table_4_1).map(([name, d]) => [name, d.dim] as const));
  const tables = new Map<TableId, ThesisTable>();
  for (const id of TABLE_IDS) {
    const t = thesis.tables[id];
    const rowsAt = pointer(pointer('/thesis/tables', id), 'rows');
    for (const name of Object.keys(t.rows)) {
      if (!dims.has(name)) throw new FileFormatError(`${FILE}: ${pointer(rowsAt, name)} names no dataset of Table 4.1; ${FIX}`);
    }
    const tableDims = new Set(Object.keys(t.rows).map((n) => dims.get(n)));
    const what = tableDims.size > 1 ? '2D and 3D' : [...tableDims][0];
    const scores = (s: Scores): Scores => ({ auc: s.auc, acc: s.acc });
    if (t.regime === 'deltas') {
      const rows = Object.entries(t.rows).map(
        ([dataset, r]): DeltaRow => ({
          dataset,
          mt_minus_st: scores(r.mt_minus_st),
          ssl_minus_st: scores(r.ssl_minus_st),
          ssl_minus_mt: scores(r.ssl_minus_mt),
          ssl_finetune_steps: r.ssl_finetune_steps,
        }),
      );
      const title = `Table ${id}: Medformer-${t.model}, differences between regimes (MT−ST, SSL−ST, SSL−MT) and SSL fine-tuning steps, ${what}`;
      tables.set(id, { id, model: t.model, regime: 'deltas', title, rows, sources: DELTA_SOURCES[t.model] });
    } else {
      const rows = Object.entries(t.rows).map(([dataset, r]) => ({ dataset, ...scores(r) }));
      tables.set(id, { id, model: t.model, regime: t.regime, title: `Table ${id}: Medformer-${t.model}, ${t.regime}, ${what}`, rows });
    }
  }
  const baseline = new Map(
    Object.entries(mm.baseline).map(([name, b]) => [name, { model: b.model, auc: b.auc, acc: percent(b.acc) }] as const),
  );
  const bestAcc = new Map(Object.entries(mm.best_acc).map(([name, b]) => [name, { method: b.method, acc: percent(b.acc) }] as const));
  const { source: _source, ...counts } = file.test_label_counts;
  return {
    source: thesis.source,
    dims,
    tables,
    baselineSource: `${mm.source} Transcribed from ${mm.transcribed_from}`,
    baseline,
    bestAcc,
    testCounts: new Map(Object.entries(counts as Record<string, number[]>)),
  };
}

let cache: Data | undefined;
function data(): Data {
  cache ??= build(readJsonFile(FILE, ThesisTablesSchema, { what: 'the thesis figures', fix: FIX }));
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
/** Decimals of a printed figure (9.93 -> 2), so it is shown as printed. */
export function decimals(x: number): number {
  return round6(x).toString().split('.')[1]?.length ?? 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Access

/** The thesis citation. */
export function thesisSource(): string {
  return data().source;
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
  if (!t) throw new FileFormatError(`${FILE}: table ${key} is missing`);
  return t;
}

/** The printed row of a value table for a dataset (display name), or undefined where the table has none. */
export function thesisRow(id: TableId, dataset: string): ThesisRow | undefined {
  const t = thesisTable(id);
  return t.regime === 'deltas' ? undefined : t.rows.find((r) => r.dataset === dataset);
}

/** The 18 datasets in the order of Table 4.1, by display name. */
export function thesisDatasets(): readonly string[] {
  return [...data().dims.keys()];
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
  if (!hit)
    throw new ConfigError(
      `unknown dataset '${key}'`,
      `the thesis tables have: ${thesisDatasets()
        .map((d) => d.toLowerCase())
        .join(', ')}`,
    );
  return hit;
}

/** The MedMNIST v2 benchmark figure for a dataset (display name or key), accuracy in percent. */
export function medmnistBaseline(dataset: string): Baseline | undefined {
  return data().baseline.get(datasetName(dataset));
}

/** The benchmark figure by exact display name, or undefined (no lookup of keys, never throws). */
export function baselineOf(dataset: string): Baseline | undefined {
  return data().baseline.get(dataset);
}
/** The best accuracy (percent) of any MedMNIST v2 benchmark method on a dataset (display name), and which. */
export function bestBenchmarkAcc(dataset: string): { method: string; acc: number } | undefined {
  return data().bestAcc.get(dataset);
}
/** Label counts of the official test split (display name), where this project has counted them. */
export function testLabelCounts(dataset: string): readonly number[] | undefined {
  return data().testCounts.get(dataset);
}
