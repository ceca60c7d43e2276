// results/*.json: finished runs kept as data (scripts/collect-results.ts writes them), and the Markdown table
// REPRODUCE.md shows of them. The table is rendered from the files (scripts/render-results.ts) and a test checks
// that REPRODUCE.md holds exactly that rendering, so the figures a reader sees cannot drift from the data.
import { execSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { isStandIn } from '../data/provenance.ts';
import type { RunSettings } from '../kinds/kind.ts';
import { configHash } from '../train/hash.ts';
import { meanStd } from '../train/metrics.ts';
import { checkJson, readJsonFile, SupervisedMetricsSchema, type DatasetResultJson } from '../train/records.ts';
import { datasetName, medmnistBaseline, TABLE_IDS, thesisFlags, thesisRow, thesisTable, type Regime, type TableId } from './thesis.ts';

/** The fields of a results file this module reads; the rest (the whole resolved settings) is kept for the reader. */
export const ResultFileSchema = Type.Object({
  name: Type.String(),
  kind: Type.String(),
  config_hash: Type.String(),
  commit: Type.String(),
  device: Type.Union([Type.String(), Type.Null()]),
  seeds: Type.Array(Type.Integer({ minimum: 0 })),
  collected: Type.String(),
  note: Type.Optional(Type.String()),
  settings: Type.Object({
    model: Type.Object({ preset: Type.String() }),
    data: Type.Object({ augment: Type.Union([Type.Boolean(), Type.Object({ policy: Type.Optional(Type.String()) })]) }),
    training: Type.Object({
      lr: Type.Number(),
      epochs: Type.Optional(Type.Union([Type.Number(), Type.Null()])),
      max_steps: Type.Optional(Type.Union([Type.Number(), Type.Null()])),
    }),
    /** A Cascading Sum Augmentation run (thesis 5.4.3): K per stage and when a stage ends. */
    csa: Type.Optional(
      Type.Object({
        schedule: Type.Array(Type.Integer({ minimum: 1 })),
        stop: Type.Union([
          Type.Object({ rule: Type.Literal('epochs'), epochs: Type.Integer() }),
          Type.Object({ rule: Type.Literal('patience'), patience: Type.Integer(), metric: Type.String(), max_epochs: Type.Integer() }),
        ]),
      }),
    ),
  }),
  metrics: Type.Unknown(),
});
export type ResultFile = Static<typeof ResultFileSchema>;

/**
 * The record a results file holds for a finished run: what ran (kind, the config hash and the resolved settings),
 * on what commit and device, with which seeds, and its metrics (scripts/collect-results.ts and
 * scripts/collect-brain-results.ts write it).
 */
export function resultRecord<M>(
  settings: RunSettings,
  run: { commit: string; device: string | null; seeds: number[]; note?: string; metrics: M },
): Record<string, unknown> {
  const root = execSync('git rev-parse --show-toplevel', { encoding: 'utf8' }).trim();
  return relativeToCheckout(root, {
    name: settings.name,
    kind: settings.kind,
    source: settings.source,
    config_hash: configHash(settings),
    commit: run.commit,
    // Whether the checkout held uncommitted changes when the result was collected: then `commit` alone does not
    // say what code ran.
    worktree_clean: execSync('git status --porcelain --untracked-files=no', { encoding: 'utf8' }).trim() === '',
    device: run.device,
    seeds: run.seeds,
    collected: new Date().toISOString(),
    ...(run.note ? { note: run.note } : {}),
    settings,
    metrics: run.metrics,
  }) as Record<string, unknown>;
}

/**
 * `value` with every absolute path in its strings (paths, and paths inside notes) written relative to the checkout
 * `root`: `experiments/x.json`, `../shared/data/brain`, `../runs/x`. A results file is committed, and the machine it
 * was collected on says nothing to the next reader. The config hash is taken before, from the settings as they ran.
 */
export function relativeToCheckout(root: string, value: unknown): unknown {
  const parent = path.dirname(root);
  const fix = (s: string) => s.split(`${root}/`).join('').split(`${parent}/`).join('../');
  if (typeof value === 'string') return fix(value);
  if (Array.isArray(value)) return value.map((v) => relativeToCheckout(root, v));
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, relativeToCheckout(root, v)]));
  return value;
}

/** The kinds whose metrics hold test scores per data set, and the thesis regime each is compared with. */
const REGIME_OF: Readonly<Record<string, Exclude<Regime, 'deltas'>>> = {
  supervised: 'single-task',
  multitask: 'multi-task',
  finetune: 'ssl-finetune',
};

export interface ResultRow {
  file: string;
  dataset: string;
  kind: string;
  preset: string;
  policy: string;
  schedule: string;
  lr: number;
  seeds: number[];
  result: DatasetResultJson;
  note: string | undefined;
  /** Trained and tested on a generated stand-in for missing files (metrics.json `data_source`): says nothing of the data set. */
  generated: boolean;
  /** The thesis figure for this preset, regime and data set (ACC in percent); null for the ResNet-18 baseline. */
  thesis: { table: TableId; auc: number; acc: number } | null;
}

/** Every results file in `dir` with test scores per data set, one row per (file, data set), in a stable order. */
export function readResultRows(dir: string): ResultRow[] {
  const rows: ResultRow[] = [];
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.json')) : [];
  for (const name of files.sort()) {
    const file = path.join(dir, name);
    const fix = 'rewrite it with scripts/collect-results.ts';
    const raw = readJsonFile(file, Type.Object({ kind: Type.String() }), { what: 'a results file', fix });
    // ssl, brainfuse-interp, brainage: no per-data-set test scores (BRAINFUSE.md renders the brain kinds).
    const regime = REGIME_OF[raw.kind];
    if (!regime) continue;
    const r = checkJson(ResultFileSchema, raw, { file, fix });
    const metrics = checkJson(SupervisedMetricsSchema, r.metrics, {
      file,
      at: '/metrics',
      fix: 'rewrite it with scripts/collect-results.ts',
    });
    const preset = r.settings.model.preset;
    for (const [key, result] of Object.entries(metrics)) {
      const dataset = datasetName(key);
      rows.push({
        file: name,
        dataset,
        kind: r.kind,
        preset,
        policy: policyOf(r.settings.data.augment),
        schedule: scheduleOf(r.settings.training, r.settings.csa),
        lr: r.settings.training.lr,
        seeds: r.seeds,
        result,
        note: r.note,
        generated: isStandIn(result.data_source),
        thesis: thesisFigure(preset, regime, dataset),
      });
    }
  }
  return rows.sort((a, b) => a.dataset.localeCompare(b.dataset) || a.file.localeCompare(b.file));
}

function policyOf(augment: ResultFile['settings']['data']['augment']): string {
  if (augment === false) return 'none';
  if (augment === true) return 'thesis';
  return augment.policy ?? 'custom';
}

function scheduleOf(t: ResultFile['settings']['training'], csa: ResultFile['settings']['csa']): string {
  if (csa) {
    const stop =
      csa.stop.rule === 'epochs' ? `${csa.stop.epochs} epochs` : `patience ${csa.stop.patience}, at most ${csa.stop.max_epochs} epochs`;
    return `CSA ${csa.schedule.join('-')}, ${stop} a stage`;
  }
  if (typeof t.max_steps === 'number') return `${t.max_steps} steps`;
  return typeof t.epochs === 'number' ? `${t.epochs} epochs` : '–';
}

function thesisFigure(preset: string, regime: Exclude<Regime, 'deltas'>, dataset: string): ResultRow['thesis'] {
  for (const id of TABLE_IDS) {
    const t = thesisTable(id);
    if (t.model !== preset || t.regime !== regime) continue;
    const row = thesisRow(id, dataset);
    if (row) return { table: id, auc: row.auc, acc: row.acc };
  }
  return null;
}

const auc = (x: number | null) => (x === null ? 'n/a' : x.toFixed(3));
const acc = (x: number | null) => (x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`);
const REGIME_LABEL: Readonly<Record<string, string>> = { supervised: 'ST', multitask: 'MT', finetune: 'SSL → FT' };

/** A test score with its spread over seeds where there are several. */
function withStd(mean: number | null, std: number | null | undefined, fmt: (x: number | null) => string): string {
  return std === undefined || std === null ? fmt(mean) : `${fmt(mean)} ± ${fmt(std).replace('%', '')}`;
}

/** Where the test ACC stands against the majority class: "above", "**at or below**", or "–" when not recorded. */
function versusMajority(r: DatasetResultJson): string {
  if (r.majority_acc === undefined || r.majority_acc === null || r.test.acc === null) return '–';
  return r.test.acc > r.majority_acc ? 'above' : '**at or below**';
}

/** The cells that name a row's setting: data set, regime, model, augmentation, lr, schedule. */
function settingCells(row: ResultRow): string[] {
  return [
    // Also the pooling key: a stand-in run never pools with runs on the real files.
    row.generated ? `${row.dataset} **(generated stand-in data)**` : row.dataset,
    REGIME_LABEL[row.kind] ?? row.kind,
    row.preset === 'resnet18' ? 'ResNet-18 (28)' : `Medformer-${row.preset}`,
    `\`${row.policy}\``,
    String(row.lr),
    row.schedule,
  ];
}

/** The thesis figure for a row, † when the official evaluator cannot produce it, "–" when the thesis has none. */
function thesisCell(row: ResultRow): string {
  if (row.thesis === null) return '–';
  const flagged = thesisFlags(row.thesis.table, row.dataset).length > 0;
  return `${row.thesis.auc.toFixed(3)} / ${row.thesis.acc.toFixed(1)}%${flagged ? '†' : ''} (Table ${row.thesis.table})`;
}

/**
 * The Markdown table of every result row: this project's test figures (mean ± std over seeds) beside the
 * majority class, the thesis figure and the MedMNIST v2 ResNet-18 figure, then each file's note.
 */
export function renderResults(dir: string): string {
  const rows = readResultRows(dir);
  const lines = [
    '| data set | regime | model | augmentation | lr | schedule | seeds | test AUC | test ACC | majority ACC | vs majority | thesis AUC / ACC | MedMNIST v2 ResNet-18 AUC / ACC | training wall | results file |',
    '|---|---|---|---|---:|---|---|---:|---:|---:|---|---|---|---:|---|',
  ];
  for (const row of rows) {
    const r = row.result;
    const base = medmnistBaseline(row.dataset);
    lines.push(
      `| ${[
        ...settingCells(row),
        row.seeds.join(', '),
        withStd(r.test.auc, r.test_std?.auc, auc),
        withStd(r.test.acc, r.test_std?.acc, acc),
        r.majority_acc === undefined ? '–' : acc(r.majority_acc),
        versusMajority(r),
        thesisCell(row),
        base ? `${base.auc.toFixed(3)} / ${base.acc.toFixed(1)}%${base.model === 'ResNet-18 (28)' ? '' : ` (${base.model})`}` : '–',
        `${Math.round(r.wall_s).toLocaleString('en-US')} s`,
        `[${row.file}](results/${row.file})`,
      ].join(' | ')} |`,
    );
  }
  const notes = new Map<string, string>();
  for (const row of rows) if (row.note) notes.set(row.file, row.note);
  if (notes.size) lines.push('', ...[...notes].map(([name, note]) => `- \`${name}\`: ${note}`));
  if (rows.some((r) => r.thesis !== null && thesisFlags(r.thesis.table, r.dataset).length > 0))
    lines.push('', '† A thesis figure the official evaluator cannot produce; `mf table <id>` gives the reason.');
  lines.push('', seedSummary(rows));
  const pooled = pooledSeeds(rows);
  if (pooled.length) lines.push('', ...pooled);
  return lines.join('\n');
}

/**
 * Single-seed rows of one setting (data set, regime, model, augmentation, lr, schedule) collected as separate
 * files, pooled: mean ± sample standard deviation over their seeds, and how many seeds beat the majority class.
 * Only where two or more distinct seeds exist; each file's own row stays in the table above.
 */
function pooledSeeds(rows: readonly ResultRow[]): string[] {
  const groups = new Map<string, ResultRow[]>();
  for (const row of rows) {
    if (row.seeds.length !== 1 || row.result.test.auc === null || row.result.test.acc === null) continue;
    const key = settingCells(row).join('|');
    groups.set(key, [...(groups.get(key) ?? []), row]);
  }
  const out: string[] = [];
  for (const g of groups.values()) {
    const seeds = new Set(g.map((r) => r.seeds[0]));
    if (seeds.size < 2 || seeds.size !== g.length) continue;
    if (!out.length)
      out.push(
        'Single-seed files of the same setting, pooled (mean ± sample standard deviation over the seeds):',
        '',
        '| data set | regime | model | augmentation | lr | schedule | seeds | test AUC | test ACC | majority ACC | seeds above the majority | thesis AUC / ACC |',
        '|---|---|---|---|---:|---|---|---:|---:|---:|---|---|',
      );
    const [aucMean, aucStd] = meanStd(g.map((r) => r.result.test.auc as number));
    const [accMean, accStd] = meanStd(g.map((r) => r.result.test.acc as number));
    const r0 = g[0]!;
    const majority = r0.result.majority_acc;
    const above =
      majority === undefined || majority === null
        ? '–'
        : `${g.filter((r) => (r.result.test.acc as number) > majority).length} of ${g.length}`;
    out.push(
      `| ${[
        ...settingCells(r0),
        [...seeds].sort((a, b) => a - b).join(', '),
        withStd(aucMean, aucStd, auc),
        withStd(accMean, accStd, acc),
        majority === undefined ? '–' : acc(majority),
        above,
        thesisCell(r0),
      ].join(' | ')} |`,
    );
  }
  return out;
}

/** How to read the seed columns. */
function seedSummary(rows: readonly ResultRow[]): string {
  return rows.some((r) => r.seeds.length > 1)
    ? 'Rows with several seeds show mean ± sample standard deviation over them; rows with one seed are indications, not means.'
    : 'Every row is one seed: an indication, not a mean over seeds.';
}

export const RESULTS_BEGIN =
  '<!-- results:begin (rendered by `npx tsx scripts/render-results.ts` from results/*.json; do not edit by hand) -->';
export const RESULTS_END = '<!-- results:end -->';

/** `doc` with the text between the results markers replaced by `table`; an error when the markers are absent. */
export function spliceResults(doc: string, table: string, docName: string): string {
  const begin = doc.indexOf(RESULTS_BEGIN);
  const end = doc.indexOf(RESULTS_END);
  if (begin < 0 || end < begin)
    throw new Error(`${docName}: no results markers; put ${RESULTS_BEGIN} and ${RESULTS_END} where the table goes`);
  return `${doc.slice(0, begin + RESULTS_BEGIN.length)}\n\n${table}\n\n${doc.slice(end)}`;
}
