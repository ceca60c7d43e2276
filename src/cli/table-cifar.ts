// `mf table 5.1` / `mf table 5.2`: the thesis's CIFAR tables (section 5.4, Cascading Sum Augmentation on Wide
// ResNets in the sample-scarce regime) next to this project's runs. The thesis's figures of these two tables are not
// transcribed in this project (its reference data hold the Chapter 4 tables only), so the thesis column says so and
// nothing is compared. The row layout is issue 19's: samples per class (100, 500) × model (WRN-40-4, WRN-28-10) ×
// method (plain, CSA 8-4-2-1); that 5.1 is CIFAR-10 and 5.2 CIFAR-100 is this project's reading. A cell takes the
// newest finished supervised run (by metrics.json mtime) of that data set, model at 32 px, samples per class and
// method; other CIFAR runs of the data set (toy networks, other schedules) are listed below the table, never in it,
// and so are runs on the generated CIFAR-like stand-in (metrics.json data_source), marked "generated data".
import { ConfigError } from '../errors.ts';
import { csvLine, indexRuns, type OurScores, type Run, runLine } from './table-runs.ts';

/** `in_table` of a CSV line for a run on generated data. */
const GENERATED = 'generated data';

export const CIFAR_TABLES = {
  '5.1': { dataset: 'cifar10', name: 'CIFAR-10' },
  '5.2': { dataset: 'cifar100', name: 'CIFAR-100' },
} as const;
export type CifarTableId = keyof typeof CIFAR_TABLES;

export const isCifarTable = (id: string): id is CifarTableId => id in CIFAR_TABLES;

const SAMPLES_PER_CLASS = [100, 500] as const;
const MODELS = ['wrn-40-4', 'wrn-28-10'] as const;
const CSA_SCHEDULE = [8, 4, 2, 1];
const THESIS_CELL = 'not transcribed';
const MISSING = 'missing';
const SOURCE =
  'Simionescu, C. (2025). Multitask Multimodal Self-Supervised Learning for Medical Images. PhD thesis, Alexandru Ioan Cuza University of Iasi, section 5.4 (Tables 5.1 and 5.2; figures not transcribed here).';

export interface CifarRow {
  samples_per_class: number;
  model: string;
  method: string;
  thesis: typeof THESIS_CELL;
  ours: OurScores | typeof MISSING;
}

/** A CIFAR run of the table's data set that is no row of it. */
export interface CifarOtherRun {
  model: string;
  /** null: every training image. */
  samples_per_class: number | null;
  method: string;
  side: number;
  ours: OurScores;
}

export interface CifarTableView {
  id: CifarTableId;
  title: string;
  dataset: string;
  runs_dir: string;
  thesis_source: string;
  rows: CifarRow[];
  others: CifarOtherRun[];
  /** Runs on the generated stand-in for missing CIFAR files: never a row, whatever their settings. */
  generated: CifarOtherRun[];
  warnings: string[];
}

/** "WRN-40-4" for the presets, "WRN-<depth>-<k>" for a generic "wrn". */
function modelName(run: Run): string {
  const m = run.config.model;
  return m.preset === 'wrn' ? `WRN-${m.depth}-${m.widen_factor}` : m.preset.toUpperCase();
}

function methodName(run: Run): string {
  const schedule = run.config.csa?.schedule;
  return schedule ? `CSA ${schedule.join('-')}` : 'plain';
}

const isWrn = (run: Run) => run.config.model.preset === 'wrn' || (MODELS as readonly string[]).includes(run.config.model.preset);

/** The rows of table `id` for the runs under `runsDir`. Reads files; prints nothing. */
export function buildCifarTable(id: string, runsDir: string): CifarTableView {
  if (!isCifarTable(id)) throw new ConfigError(`no CIFAR table ${id}`, `use ${Object.keys(CIFAR_TABLES).join(' or ')}`);
  const { dataset, name } = CIFAR_TABLES[id];
  const index = indexRuns(runsDir);
  const all = index.runs
    .filter((r) => r.kind === 'supervised' && isWrn(r) && r.results.has(dataset))
    .sort((a, b) => b.mtimeMs - a.mtimeMs || a.ref.dir.localeCompare(b.ref.dir));
  const runs = all.filter((r) => !r.results.get(dataset)!.generated);
  const scores = (r: Run): OurScores => ({ ...r.results.get(dataset)!, run: r.ref });
  const used = new Set<Run>();
  const rows: CifarRow[] = [];
  for (const spc of SAMPLES_PER_CLASS) {
    for (const model of MODELS) {
      for (const csa of [false, true]) {
        const run = runs.find(
          (r) =>
            r.config.model.preset === model &&
            (r.config.model.image_size_2d ?? 32) === 32 &&
            r.config.data.samples_per_class === spc &&
            (csa ? r.config.csa?.schedule.join('-') === CSA_SCHEDULE.join('-') : !r.config.csa),
        );
        if (run) used.add(run);
        rows.push({
          samples_per_class: spc,
          model: model.toUpperCase(),
          method: csa ? `CSA ${CSA_SCHEDULE.join('-')}` : 'plain',
          thesis: THESIS_CELL,
          ours: run ? scores(run) : MISSING,
        });
      }
    }
  }
  const listed = (r: Run): CifarOtherRun => ({
    model: modelName(r),
    samples_per_class: r.config.data.samples_per_class ?? null,
    method: methodName(r),
    side: r.config.model.image_size_2d ?? 32,
    ours: scores(r),
  });
  const others = runs.filter((r) => !used.has(r)).map(listed);
  const generated = all.filter((r) => r.results.get(dataset)!.generated).map(listed);
  const pending = index.pending
    .filter((p) => p.kind === 'supervised' && p.datasets.includes(dataset))
    .map((p) => `${p.dir}: ${p.name} has no metrics.json yet (unfinished run?); not counted`);
  return {
    id,
    title: `Table ${id}: ${name}, Wide ResNets at 100 and 500 training images per class, plain and with Cascading Sum Augmentation`,
    dataset,
    runs_dir: runsDir,
    thesis_source: SOURCE,
    rows,
    others,
    generated,
    warnings: [...index.warnings, ...pending],
  };
}

const acc = (o: OurScores) => (o.std ? `${o.acc.toFixed(1)} ± ${o.std.acc.toFixed(1)} (n = ${o.seeds})` : o.acc.toFixed(1));
const auc = (o: OurScores) => (o.std ? `${o.auc.toFixed(3)} ± ${o.std.auc.toFixed(3)}` : o.auc.toFixed(3));

export function renderCifarMarkdown(view: CifarTableView): string {
  const lines = [
    `## ${view.title}`,
    '',
    `Thesis vs this project (runs of kind "supervised" on ${view.dataset}, from ${view.runs_dir}/). Test top-1 ACC in percent, AUC one-vs-rest. The thesis's figures of this table are not transcribed in this project, so nothing is compared; rows as issue 19 lays the table out (samples per class × model × method), ${view.id === '5.1' ? 'CIFAR-10 as Table 5.1' : 'CIFAR-100 as Table 5.2'} by this project's reading.`,
    '',
    '| Samples/class | Model | Method | Thesis ACC | Ours ACC | Ours AUC |',
    '|---:|---|---|---|---:|---:|',
  ];
  for (const r of view.rows) {
    const ours = r.ours === MISSING ? [MISSING, MISSING] : [acc(r.ours), auc(r.ours)];
    lines.push(`| ${r.samples_per_class} | ${r.model} | ${r.method} | ${r.thesis} | ${ours.join(' | ')} |`);
  }
  const filled = view.rows.filter((r): r is CifarRow & { ours: OurScores } => r.ours !== MISSING);
  if (filled.length) {
    lines.push('', 'Runs used:', '');
    for (const r of filled) lines.push(`- ${r.samples_per_class}/class ${r.model} ${r.method}: ${runLine(r.ours.run)}`);
  }
  if (view.others.length) {
    lines.push(
      '',
      `Other ${view.dataset} runs (not a row of the table: another network, side, samples per class or CSA schedule):`,
      '',
      '| Model | Side | Samples/class | Method | Ours ACC | Ours AUC | Run |',
      '|---|---:|---:|---|---:|---:|---|',
    );
    for (const o of view.others) {
      lines.push(
        `| ${o.model} | ${o.side} | ${o.samples_per_class ?? 'all'} | ${o.method} | ${acc(o.ours)} | ${auc(o.ours)} | ${runLine(o.ours.run)} |`,
      );
    }
  }
  if (view.generated.length) {
    lines.push(
      '',
      `Runs on generated data (the CIFAR-like stand-in for missing ${view.dataset} files; their numbers say nothing about ${view.dataset} and fill no row):`,
      '',
      '| Model | Side | Samples/class | Method | Ours ACC | Ours AUC | Data | Run |',
      '|---|---:|---:|---|---:|---:|---|---|',
    );
    for (const o of view.generated) {
      lines.push(
        `| ${o.model} | ${o.side} | ${o.samples_per_class ?? 'all'} | ${o.method} | ${acc(o.ours)} | ${auc(o.ours)} | ${GENERATED} | ${runLine(o.ours.run)} |`,
      );
    }
  }
  lines.push('', `Thesis: ${view.thesis_source}`);
  if (view.warnings.length) lines.push('', 'Warnings:', '', ...view.warnings.map((w) => `- ${w}`));
  return lines.join('\n');
}

/**
 * One line per row, then one per other run (`in_table` false) and one per run on generated data (`in_table`
 * "generated data"); numbers unrounded, accuracy in percent.
 */
export function renderCifarCsv(view: CifarTableView): string {
  const head = ['table', 'dataset', 'in_table', 'samples_per_class', 'model', 'method', 'thesis_acc', 'ours_acc', 'ours_auc', 'run'];
  const lines = [csvLine(head)];
  for (const r of view.rows) {
    const o = r.ours;
    lines.push(
      csvLine([
        view.id,
        view.dataset,
        'true',
        r.samples_per_class,
        r.model,
        r.method,
        r.thesis,
        o === MISSING ? MISSING : o.acc,
        o === MISSING ? MISSING : o.auc,
        o === MISSING ? null : o.run.dir,
      ]),
    );
  }
  for (const [inTable, list] of [
    ['false', view.others],
    [GENERATED, view.generated],
  ] as const) {
    for (const o of list) {
      lines.push(
        csvLine([view.id, view.dataset, inTable, o.samples_per_class, o.model, o.method, null, o.ours.acc, o.ours.auc, o.ours.run.dir]),
      );
    }
  }
  return lines.join('\n');
}
