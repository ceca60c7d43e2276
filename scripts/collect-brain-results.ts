// The BrainFuse runs as data, in the shape scripts/collect-results.ts gives the Medformer runs (name, kind,
// config hash, commit, device, seeds, date, note, settings, metrics, wall time), and the tables BRAINFUSE.md
// shows, printed from those files. collect-results.ts cannot take these kinds: a brain-age study runs its
// seeds inside one folder (study.seeds from training.seed), not as training.seeds sub-folders.
//   npx tsx scripts/collect-brain-results.ts <run folder>... [--note TEXT]   -> results/<folder name>.json
//   npx tsx scripts/collect-brain-results.ts --tables results/brainfuse-interp.json results/brainage.json
import { execSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { BrainAgeSettings } from '../src/kinds/brainage/schema.ts';
import type { InterpSettings } from '../src/kinds/brainfuse-interp/schema.ts';
import { resultRecord } from '../src/report/results.ts';
import { BrainAgeMetricsSchema, InterpMetricsSchema, type BrainAgeMetrics, type InterpMetrics } from '../src/train/records.ts';
import { readJsonFile, writeJsonAtomic } from '../src/util/files.ts';

type BrainSettings = BrainAgeSettings | InterpSettings;

interface Collected {
  name: string;
  kind: string;
  source: string;
  config_hash: string;
  commit: string;
  device: string | null;
  seeds: number[];
  collected: string;
  note?: string;
  settings: BrainSettings;
  metrics: BrainAgeMetrics | InterpMetrics;
  wall_s: number;
}

const METRICS_FILE = { what: 'the metrics of a finished run', fix: 'collect a run folder whose run has finished' };

function collect(dir: string, note: string | undefined, commit: string): void {
  const settings = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as BrainSettings;
  const report = fs.readFileSync(path.join(dir, 'report.md'), 'utf8');
  const device = /^Device: (.*)$/m.exec(report)?.[1] ?? null;
  const base = settings.training.seed;
  let seeds: number[];
  let metrics: BrainAgeMetrics | InterpMetrics;
  let wall: number;
  if (settings.kind === 'brainage') {
    const m = readJsonFile(path.join(dir, 'metrics.json'), BrainAgeMetricsSchema, METRICS_FILE);
    seeds = Array.from({ length: (settings as BrainAgeSettings).study.seeds }, (_, i) => base + i);
    metrics = m;
    wall = m.brainage.wall_s;
  } else if (settings.kind === 'brainfuse-interp') {
    const m = readJsonFile(path.join(dir, 'metrics.json'), InterpMetricsSchema, METRICS_FILE);
    seeds = [base];
    metrics = m;
    wall = m.interp.wall_s + m.interp.eval_s;
  } else {
    throw new Error(`${dir}: kind ${String((settings as { kind: unknown }).kind)} is not a brain kind; use scripts/collect-results.ts`);
  }
  const out = { ...resultRecord(settings, { commit, device, seeds, ...(note ? { note } : {}), metrics }), wall_s: wall } as Collected;
  const file = path.join('results', `${path.basename(path.resolve(dir))}.json`);
  writeJsonAtomic(file, out);
  console.log(`${dir} -> ${file}`);
}

/** A measured number (metrics files write a non-finite one as null), fixed to `d` decimals. */
const f = (x: number | null, d: number) => (x === null ? '–' : x.toFixed(d));
const pm = (x: readonly [number | null, number | null]) => `${f(x[0], 1)} ± ${f(x[1], 1)}`;

function interpTable(r: Collected & { metrics: InterpMetrics }): string[] {
  const m = r.metrics.interp;
  return [
    `Interpolator (${r.name}, ${m.steps} steps at ${m.shape}³, held-out subjects ${m.split.test.join(', ')}; PSNR in dB):`,
    '',
    '| gap | slices | PSNR network | PSNR linear | SSIM network | SSIM linear | network better |',
    '|---|---|---|---|---|---|---|',
    ...Object.entries(m.by_gap).map(
      ([g, x]) =>
        `| ${g} | ${x.slices} | ${f(x.model.psnr, 2)} | ${f(x.linear.psnr, 2)} | ${f(x.model.ssim, 3)} | ${f(x.linear.ssim, 3)} | ${(100 * x.model_better).toFixed(0)}% |`,
    ),
  ];
}

function brainAgeTable(r: Collected & { metrics: BrainAgeMetrics }): string[] {
  const b = r.metrics.brainage;
  const thesis = r.metrics.thesis.table;
  const mb = b.majority_baseline;
  return [
    `Brain age (${r.name}, input ${b.input}, seeds ${r.seeds.join(', ')}; top-k accuracy in %, mean ± sample std over seeds; test subjects ${b.split.test.join(', ')}):`,
    '',
    '| Method | Top-1 | Top-3 | Top-5 | MAE (y) | spread (y) | Top-1 thesis | Top-3 thesis | Top-5 thesis |',
    '|---|---|---|---|---|---|---|---|---|',
    ...Object.entries(b.arms).map(([name, a]) => {
      const t = thesis[name];
      const th = t ? `${pm(t.top1)} | ${pm(t.top3)} | ${pm(t.top5)}` : '– | – | –';
      return `| ${name} | ${pm(a.top1)} | ${pm(a.top3)} | ${pm(a.top5)} | ${f(a.mae[0], 1)} | ${f(a.spread, 1)} | ${th} |`;
    }),
    `| always the most frequent training bins | ${f(mb.top1, 1)} | ${f(mb.top3, 1)} | ${f(mb.top5, 1)} | | | | | |`,
  ];
}

const args = process.argv.slice(2);
if (args[0] === '--tables') {
  for (const file of args.slice(1)) {
    const r = JSON.parse(fs.readFileSync(file, 'utf8')) as Collected;
    const lines =
      r.kind === 'brainage'
        ? brainAgeTable(r as Collected & { metrics: BrainAgeMetrics })
        : interpTable(r as Collected & { metrics: InterpMetrics });
    console.log(
      [
        ...lines,
        '',
        `(from ${file}: commit ${r.commit.slice(0, 10)}, ${r.device ?? 'device unknown'}, ${(r.wall_s / 60).toFixed(1)} min)`,
        '',
      ].join('\n'),
    );
  }
} else {
  const noteAt = args.indexOf('--note');
  const note = noteAt >= 0 ? args.splice(noteAt, 2)[1] : undefined;
  const commit = execSync('git rev-parse HEAD', { encoding: 'utf8' }).trim();
  for (const dir of args) collect(dir, note, commit);
}
