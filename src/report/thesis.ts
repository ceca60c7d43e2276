// The checks that mark the printed figures of the thesis's tables (Simionescu, 2025, chapter 4) that no model
// evaluated by the official MedMNIST evaluator could give. The tables themselves, as typed data, are in
// thesis-data.ts; this module re-exports them, so callers import both from here.
import { getDataset, type Task } from '../data/registry.ts';
import {
  DELTA_KEYS,
  DELTA_LABELS,
  TABLE_IDS,
  baselineOf,
  bestBenchmarkAcc,
  datasetKey,
  decimals,
  round6,
  testLabelCounts,
  thesisRow,
  thesisTable,
  type DeltaKey,
  type DeltaRow,
  type DeltaTable,
  type Scores,
  type TableId,
  type ThesisRow,
  type ValueTable,
} from './thesis-data.ts';

export * from './thesis-data.ts';

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

/** Points of accuracy above chance that make an AUC below 0.5 a contradiction rather than noise. */
const WELL_ABOVE_CHANCE = 10;
/** Accuracy within this many points of 1/K counts as chance, for the "chance accuracy, high AUC" check. */
const AT_CHANCE_MARGIN = 2;
const AT_CHANCE_MIN_AUC = 0.75;
/** Points above the best MedMNIST v2 benchmark accuracy (any of its methods) that no reported model comes near. */
const ABOVE_BENCHMARK = 20;

const fmtAuc = (x: number) => (Math.abs(x) > 1 ? String(x) : x.toFixed(3));
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
  const counts = testLabelCounts(dataset);
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
    const chanceText =
      majority !== undefined ? `majority class ${fmtPct(majority)} of the test set` : `chance 1/${k} = ${fmtPct(round6(100 / k))}`;
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
  const best = bestBenchmarkAcc(dataset);
  if (best && acc > best.acc + ABOVE_BENCHMARK) {
    const extra = majority !== undefined ? `; the majority class is ${fmtPct(majority)} of the test set` : '';
    flags.push({
      rule: 'acc-above-benchmark',
      fields: ['acc'],
      reason: `ACC ${fmtPct(acc)} is ${round6(acc - best.acc).toFixed(1)} points above the best MedMNIST v2 benchmark ACC (${fmtPct(best.acc)}, ${best.method})${extra}`,
    });
  }
  if (taskType === 'multi-label') {
    const b = baselineOf(dataset);
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
  const uses: Record<DeltaKey, ('st' | 'mt' | 'ssl')[]> = {
    mt_minus_st: ['mt', 'st'],
    ssl_minus_st: ['ssl', 'st'],
    ssl_minus_mt: ['ssl', 'mt'],
  };
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
    flags.push({
      rule: 'delta-from-flagged',
      fields,
      reason: `taken from figures flagged in their own tables (${[...origins].sort().join(', ')})`,
    });
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
