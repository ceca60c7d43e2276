// `mf table <id>`: a thesis table (4.2-4.11) side by side with this project's runs and the MedMNIST v2
// baseline. Runs are the folders one level under the runs folder that hold config.json and metrics.json; a
// cell takes the newest qualifying run (by metrics.json mtime). A cell without a run says "missing", never 0.
// Finding and reading the runs is in table-runs.ts; here the views are built and rendered.
import { ConfigError } from '../errors.ts';
import {
  DELTA_KEYS,
  DELTA_LABELS,
  baselineSource,
  datasetKey,
  decimals,
  medmnistBaseline,
  round6,
  thesisFlags,
  thesisSource,
  thesisTable,
  type Baseline,
  type DeltaKey,
  type Flag,
  type ModelSize,
  type Regime,
  type Scores,
  type TableId,
} from '../report/thesis.ts';
import {
  csvLine,
  type GeneratedResult,
  generatedLines,
  generatedResults,
  indexRuns,
  pendingWarnings,
  pick,
  runLine,
  type Cell,
  type OurScores,
  type RunKind,
  type RunRef,
} from './table-runs.ts';
import { buildCifarTable, isCifarTable, renderCifarCsv, renderCifarMarkdown } from './table-cifar.ts';

export type { Cell, OurScores, RunKind, RunRef } from './table-runs.ts';

/** Which runs fill a regime's cells. */
const KIND_OF: Readonly<Record<Exclude<Regime, 'deltas'>, RunKind>> = {
  'single-task': 'supervised',
  'multi-task': 'multitask',
  'ssl-finetune': 'finetune',
};

export interface ValueRow {
  dataset: string;
  key: string;
  thesis: Scores;
  /** Why thesis figures of this row are doubtful (empty when none). */
  flags: Flag[];
  ours: Cell;
  /** ours − thesis; null where there is no run. `auc` is null where the thesis AUC is outside [0, 1]. */
  diff: { auc: number | null; acc: number } | null;
  /** MedMNIST v2 benchmark (ResNet-18 (28) for 2D, ResNet-18 + 3D for 3D), accuracy in percent. */
  baseline: Baseline | null;
  /**
   * This project's own ResNet-18 (28) run (`model.preset: "resnet18"`) in single-task tables of the small
   * configuration, so the pipeline can be read against the paper's figure beside it; null in other tables.
   */
  resnet18: Cell | null;
}

export type Steps = number | 'not reached' | 'not recorded' | 'missing';

export interface DeltaTableRow {
  dataset: string;
  key: string;
  thesis: Record<DeltaKey, Scores>;
  ours: Record<DeltaKey, Scores | 'missing'>;
  steps: { thesis: number; ours: Steps };
  flags: Flag[];
  runs: { st: RunRef | null; mt: RunRef | null; ssl: RunRef | null };
}

interface ViewBase {
  id: TableId;
  title: string;
  model: ModelSize;
  thesis_source: string;
  runs_dir: string;
  /** Run folders that could not be read, or that would count but have no results yet. */
  warnings: string[];
  /** Results that would count but were trained on a generated stand-in for missing files: listed, never in a cell. */
  generated: GeneratedResult[];
}
export interface ValueView extends ViewBase {
  regime: Exclude<Regime, 'deltas'>;
  run_kind: RunKind;
  baseline_source: string;
  rows: ValueRow[];
}
export interface DeltaView extends ViewBase {
  regime: 'deltas';
  rows: DeltaTableRow[];
}
export type TableView = ValueView | DeltaView;

// ---------------------------------------------------------------------------------------------------------------
// Building

const diffOf = (ours: Scores, thesis: Scores): Scores => ({ auc: round6(ours.auc - thesis.auc), acc: round6(ours.acc - thesis.acc) });

/**
 * The rows of table `id` for the runs under `runsDir`: thesis figures with their flags, this project's figures
 * (accuracy converted to percent), differences and the MedMNIST v2 baseline. Reads files; prints nothing.
 */
export function buildTable(id: string, runsDir: string): TableView {
  const table = thesisTable(id);
  const index = indexRuns(runsDir);
  const keys = table.rows.map((r) => datasetKey(r.dataset));
  const base = { id: table.id, title: table.title, model: table.model, thesis_source: thesisSource(), runs_dir: runsDir };

  if (table.regime !== 'deltas') {
    const kind = KIND_OF[table.regime];
    // The pipeline's ResNet-18 runs are at 28 px and single-task: they belong beside the small single-task tables.
    const withResNet = table.regime === 'single-task' && table.model === 'small';
    const rows = table.rows.map((r): ValueRow => {
      const key = datasetKey(r.dataset);
      const ours = pick(index, kind, table.model, key);
      const thesis = { auc: r.auc, acc: r.acc };
      const diff =
        ours === 'missing' ? null : { auc: r.auc >= 0 && r.auc <= 1 ? diffOf(ours, thesis).auc : null, acc: diffOf(ours, thesis).acc };
      return {
        dataset: r.dataset,
        key,
        thesis,
        flags: thesisFlags(table.id, r.dataset),
        ours,
        diff,
        baseline: medmnistBaseline(r.dataset) ?? null,
        resnet18: withResNet ? pick(index, 'supervised', 'resnet18', key) : null,
      };
    });
    const warnings = [...index.warnings, ...pendingWarnings(index, [kind], table.model, keys)];
    const generated = generatedResults(index, [kind], withResNet ? [table.model, 'resnet18'] : [table.model], keys);
    return { ...base, regime: table.regime, run_kind: kind, baseline_source: baselineSource(), rows, warnings, generated };
  }

  const rows = table.rows.map((r): DeltaTableRow => {
    const key = datasetKey(r.dataset);
    const st = pick(index, 'supervised', table.model, key);
    const mt = pick(index, 'multitask', table.model, key);
    const ssl = pick(index, 'finetune', table.model, key);
    const minus = (a: Cell, b: Cell): Scores | 'missing' => (a === 'missing' || b === 'missing' ? 'missing' : diffOf(a, b));
    let steps: Steps = 'missing';
    if (ssl !== 'missing') steps = ssl.ssl_steps === undefined ? 'not recorded' : ssl.ssl_steps === null ? 'not reached' : ssl.ssl_steps;
    const ref = (c: Cell) => (c === 'missing' ? null : c.run);
    return {
      dataset: r.dataset,
      key,
      thesis: { mt_minus_st: r.mt_minus_st, ssl_minus_st: r.ssl_minus_st, ssl_minus_mt: r.ssl_minus_mt },
      ours: { mt_minus_st: minus(mt, st), ssl_minus_st: minus(ssl, st), ssl_minus_mt: minus(ssl, mt) },
      steps: { thesis: r.ssl_finetune_steps, ours: steps },
      flags: thesisFlags(table.id, r.dataset),
      runs: { st: ref(st), mt: ref(mt), ssl: ref(ssl) },
    };
  });
  const kinds: RunKind[] = ['supervised', 'multitask', 'finetune'];
  const warnings = [...index.warnings, ...pendingWarnings(index, kinds, table.model, keys)];
  return { ...base, regime: 'deltas', rows, warnings, generated: generatedResults(index, kinds, [table.model], keys) };
}

// ---------------------------------------------------------------------------------------------------------------
// Rendering

const MISSING = 'missing';
const DAGGER = '†';

/** A printed AUC: 3 decimals, more where it was printed with more, as printed where it is out of range (99.3). */
function fmtAuc(x: number): string {
  return Math.abs(x) > 1 ? String(x) : x.toFixed(Math.max(3, decimals(x)));
}
/** A printed accuracy (percent): 1 decimal, or 2 where it was printed with 2 (9.93). */
function fmtAcc(x: number): string {
  return x.toFixed(Math.min(2, Math.max(1, decimals(x))));
}
/** A measured figure: AUC to 3 decimals, accuracy (percent) to 1. */
const fmtOurAuc = (x: number) => x.toFixed(3);
const fmtOurAcc = (x: number) => x.toFixed(1);
const AT_MAJORITY = '§';
/** Our AUC and ACC cells: mean ± std over seeds where there are several; ACC marked when not above the majority class. */
function ourCells(o: OurScores): [string, string] {
  const n = o.seeds > 1 ? ` (n = ${o.seeds})` : '';
  const auc = o.std ? `${fmtOurAuc(o.auc)} ± ${fmtOurAuc(o.std.auc)}${n}` : fmtOurAuc(o.auc);
  const acc = o.std ? `${fmtOurAcc(o.acc)} ± ${fmtOurAcc(o.std.acc)}` : fmtOurAcc(o.acc);
  return [auc, o.majority_acc !== undefined && o.acc <= o.majority_acc ? `${acc}${AT_MAJORITY}` : acc];
}
/** A difference with its sign (a true minus sign); zero as printed has none. */
const signed = (s: string) => (Number(s) === 0 ? s.replace(/^-/, '') : s.startsWith('-') ? `−${s.slice(1)}` : `+${s}`);
const fmtDiffAuc = (x: number) => signed(x.toFixed(3));
const fmtDiffAcc = (x: number) => signed(x.toFixed(1));
const mark = (text: string, flags: readonly Flag[], field: string) =>
  flags.some((f) => f.fields.includes(field)) ? `${text}${DAGGER}` : text;

function fieldNames(fields: readonly string[]): string {
  return fields
    .map((f) => {
      const [head, metric] = f.includes('.') ? f.split('.') : [undefined, f];
      const m = metric.toUpperCase();
      return head ? `${DELTA_LABELS[head as DeltaKey] ?? head} ${m}` : m;
    })
    .join(', ');
}

function footnotes(rows: readonly { dataset: string; flags: readonly Flag[] }[]): string[] {
  const flagged = rows.filter((r) => r.flags.length > 0);
  if (flagged.length === 0) return [];
  const lines = ['', `${DAGGER} Thesis figures that should not be taken at face value:`, ''];
  for (const r of flagged) for (const f of r.flags) lines.push(`- ${r.dataset} (${fieldNames(f.fields)}): ${f.reason} [${f.rule}]`);
  return lines;
}

function warningLines(view: TableView): string[] {
  return view.warnings.length ? ['', 'Warnings:', '', ...view.warnings.map((w) => `- ${w}`)] : [];
}

function markdownValues(view: ValueView): string {
  const lines = [
    `## ${view.title}`,
    '',
    `Thesis vs this project (runs of kind "${view.run_kind}", preset "${view.model}", from ${view.runs_dir}/). ACC in percent; Δ = this project − thesis.`,
    '',
  ];
  // Our ResNet-18 columns only where such a run exists: a column of "missing" in every table would say nothing.
  const withResNet = view.rows.some((r) => r.resnet18 !== null && r.resnet18 !== 'missing');
  const resnetHead = withResNet ? ' Ours ResNet-18 (28) AUC | Ours ResNet-18 (28) ACC |' : '';
  lines.push(
    `| Dataset | Thesis AUC | Thesis ACC | Ours AUC | Ours ACC | ΔAUC | ΔACC | ResNet-18 (28) AUC | ResNet-18 (28) ACC |${resnetHead}`,
    `|---|---:|---:|---:|---:|---:|---:|---:|---:|${withResNet ? '---:|---:|' : ''}`,
  );
  let otherBaseline = false;
  let atMajority = false;
  for (const r of view.rows) {
    const ours = r.ours === 'missing' ? [MISSING, MISSING] : ourCells(r.ours);
    const resnet = r.resnet18 === null || r.resnet18 === 'missing' ? [MISSING, MISSING] : ourCells(r.resnet18);
    for (const c of [r.ours, r.resnet18])
      atMajority ||= c !== null && c !== 'missing' && c.majority_acc !== undefined && c.acc <= c.majority_acc;
    const diff = r.diff === null ? ['–', '–'] : [r.diff.auc === null ? 'n/a' : fmtDiffAuc(r.diff.auc), fmtDiffAcc(r.diff.acc)];
    let baseline = ['–', '–'];
    if (r.baseline) {
      const note = r.baseline.model === 'ResNet-18 (28)' ? '' : '‡';
      otherBaseline ||= note !== '';
      baseline = [`${fmtAuc(r.baseline.auc)}${note}`, `${fmtAcc(r.baseline.acc)}${note}`];
    }
    const thesis = [mark(fmtAuc(r.thesis.auc), r.flags, 'auc'), mark(fmtAcc(r.thesis.acc), r.flags, 'acc')];
    lines.push(`| ${r.dataset} | ${[...thesis, ...ours, ...diff, ...baseline, ...(withResNet ? resnet : [])].join(' | ')} |`);
  }
  lines.push(...footnotes(view.rows));
  if (atMajority)
    lines.push(
      '',
      `${AT_MAJORITY} Not above the majority class: always answering the training split's most common class scores this ACC (or more) on the test split.`,
    );
  if (view.rows.some((r) => [r.ours, r.resnet18].some((c) => c !== null && c !== 'missing' && c.seeds > 1)))
    lines.push('', 'Ours: mean ± standard deviation over the seeds given as (n = seeds).');
  if (otherBaseline) lines.push('', '‡ MedMNIST v2 has no ResNet-18 (28) row for 3D sets; the figure is its ResNet-18 + 3D (28×28×28).');
  const used = view.rows.filter((r): r is ValueRow & { ours: OurScores } => r.ours !== 'missing');
  if (used.length) {
    lines.push('', 'Runs used:', '');
    for (const r of used) lines.push(`- ${r.dataset}: ${runLine(r.ours.run)}`);
  }
  const resnetRuns = view.rows.filter((r): r is ValueRow & { resnet18: OurScores } => r.resnet18 !== null && r.resnet18 !== 'missing');
  if (resnetRuns.length) {
    lines.push('', 'Our ResNet-18 (28) runs used:', '');
    for (const r of resnetRuns) lines.push(`- ${r.dataset}: ${runLine(r.resnet18.run)}`);
  }
  lines.push(...generatedLines(view.generated));
  lines.push('', `Thesis: ${view.thesis_source}`, '', `Baseline: ${view.baseline_source}`, ...warningLines(view));
  return lines.join('\n');
}

function fmtSteps(s: Steps): string {
  return typeof s === 'number' ? String(s) : s;
}

function markdownDeltas(view: DeltaView): string {
  const head = DELTA_KEYS.flatMap((k) => [`${DELTA_LABELS[k]} AUC`, `${DELTA_LABELS[k]} ACC`]);
  const lines = [
    `## ${view.title}`,
    '',
    `Each cell: thesis / this project (preset "${view.model}": supervised = ST, multitask = MT, finetune = SSL, from ${view.runs_dir}/). ACC differences in points. SSL steps: fine-tuning steps until the validation AUC reached the single-task baseline.`,
    '',
    `| Dataset | ${head.join(' | ')} | SSL steps |`,
    `|---|${head.map(() => '---:').join('|')}|---:|`,
  ];
  for (const r of view.rows) {
    const cells = DELTA_KEYS.flatMap((k) => {
      const ours = r.ours[k];
      return [
        `${mark(fmtDiffAuc(r.thesis[k].auc), r.flags, `${k}.auc`)} / ${ours === 'missing' ? MISSING : fmtDiffAuc(ours.auc)}`,
        `${mark(fmtDiffAcc(r.thesis[k].acc), r.flags, `${k}.acc`)} / ${ours === 'missing' ? MISSING : fmtDiffAcc(ours.acc)}`,
      ];
    });
    lines.push(`| ${r.dataset} | ${cells.join(' | ')} | ${r.steps.thesis} / ${fmtSteps(r.steps.ours)} |`);
  }
  lines.push(...footnotes(view.rows), ...generatedLines(view.generated), '', `Thesis: ${view.thesis_source}`, ...warningLines(view));
  return lines.join('\n');
}

/** The table as Markdown: a header, one row a dataset, then footnotes on flagged thesis figures, runs used and sources. */
export function renderMarkdown(view: TableView): string {
  return view.regime === 'deltas' ? markdownDeltas(view) : markdownValues(view);
}

/** The table as CSV: one header line, one line a dataset; numbers unrounded (accuracy in percent), "missing" where no run. */
export function renderCsv(view: TableView): string {
  const flagsOf = (flags: readonly Flag[]) => flags.map((f) => f.rule).join(';');
  if (view.regime !== 'deltas') {
    const lines = [
      csvLine([
        'table',
        'dataset',
        'key',
        'thesis_auc',
        'thesis_acc',
        'ours_auc',
        'ours_acc',
        'diff_auc',
        'diff_acc',
        'baseline_model',
        'baseline_auc',
        'baseline_acc',
        'thesis_flags',
        'run',
        'ours_resnet18_auc',
        'ours_resnet18_acc',
        'resnet18_run',
      ]),
    ];
    for (const r of view.rows) {
      const o = r.ours;
      lines.push(
        csvLine([
          view.id,
          r.dataset,
          r.key,
          r.thesis.auc,
          r.thesis.acc,
          o === 'missing' ? MISSING : o.auc,
          o === 'missing' ? MISSING : o.acc,
          r.diff === null ? MISSING : (r.diff.auc ?? 'n/a'),
          r.diff === null ? MISSING : r.diff.acc,
          r.baseline?.model ?? null,
          r.baseline?.auc ?? null,
          r.baseline?.acc ?? null,
          flagsOf(r.flags),
          o === 'missing' ? null : o.run.dir,
          // Empty where the table has no ResNet-18 column (not single-task small), "missing" where it has no run.
          r.resnet18 === null ? null : r.resnet18 === 'missing' ? MISSING : r.resnet18.auc,
          r.resnet18 === null ? null : r.resnet18 === 'missing' ? MISSING : r.resnet18.acc,
          r.resnet18 === null || r.resnet18 === 'missing' ? null : r.resnet18.run.dir,
        ]),
      );
    }
    return lines.join('\n');
  }
  const deltaHead = DELTA_KEYS.flatMap((k) => [`thesis_${k}_auc`, `ours_${k}_auc`, `thesis_${k}_acc`, `ours_${k}_acc`]);
  const lines = [csvLine(['table', 'dataset', 'key', ...deltaHead, 'thesis_ssl_steps', 'ours_ssl_steps', 'thesis_flags'])];
  for (const r of view.rows) {
    const cells = DELTA_KEYS.flatMap((k) => {
      const o = r.ours[k];
      return [r.thesis[k].auc, o === 'missing' ? MISSING : o.auc, r.thesis[k].acc, o === 'missing' ? MISSING : o.acc];
    });
    lines.push(csvLine([view.id, r.dataset, r.key, ...cells, r.steps.thesis, r.steps.ours, flagsOf(r.flags)]));
  }
  return lines.join('\n');
}

/** The table as JSON: the whole view, including the run each cell came from. */
export function renderJson(view: TableView): string {
  return JSON.stringify(view, null, 2);
}

export async function tableCommand(id: string, opts: { runs: string; csv?: boolean; json?: boolean }): Promise<void> {
  if (opts.csv && opts.json) throw new ConfigError('--csv and --json exclude each other; pass one of them');
  if (isCifarTable(id)) {
    // Tables 5.1/5.2 (CIFAR, Wide ResNets) have their own layout: table-cifar.ts.
    const cifar = buildCifarTable(id, opts.runs);
    const text = opts.json ? JSON.stringify(cifar, null, 2) : opts.csv ? renderCifarCsv(cifar) : renderCifarMarkdown(cifar);
    process.stdout.write(`${text}\n`);
    if (opts.csv) for (const w of cifar.warnings) process.stderr.write(`warning: ${w}\n`);
    return;
  }
  const view = buildTable(id, opts.runs);
  if (opts.json) {
    process.stdout.write(`${renderJson(view)}\n`);
    return;
  }
  if (opts.csv) {
    process.stdout.write(`${renderCsv(view)}\n`);
    for (const w of view.warnings) process.stderr.write(`warning: ${w}\n`);
    for (const g of view.generated) process.stderr.write(`warning: ${g.run.dir}: ${g.key} trained on generated data; not counted\n`);
    return;
  }
  process.stdout.write(`${renderMarkdown(view)}\n`);
}
