// Repeated runs: one experiment run once per seed, each in its own folder (<run>/seed-<s>/), then the test
// scores summarised as mean ± std over the seeds in the run folder's own metrics.json, which `mf table` reads
// like any run's. Only kinds whose metrics.json holds per-dataset test scores are summarised.
import fs from 'node:fs';
import path from 'node:path';
import type { RunSettings } from '../kinds/kind.ts';
import { writeFileAtomic, writeJsonAtomic } from '../util/files.ts';
import { mergeSources } from '../data/provenance.ts';
import { meanStd } from './metrics.ts';
import { checkJson, type DatasetResultJson, readJsonFile, SupervisedMetricsSchema } from './records.ts';

export const seedFolder = (dir: string, seed: number): string => path.join(dir, `seed-${seed}`);

const num = (x: number | null): number => (x === null ? Number.NaN : x);

/**
 * Summarises the per-seed metrics.json files into one with the same per-dataset shape: `test` and `val` are
 * means, `test_std` their standard deviations, `seeds` the seeds behind them. Null when the kind writes no
 * per-dataset scores.
 */
export function summariseSeeds(dir: string, seeds: readonly number[]): Record<string, unknown> | null {
  const per = seeds.map((s) => {
    const file = path.join(seedFolder(dir, s), 'metrics.json');
    return {
      seed: s,
      file,
      metrics: readJsonFile(file, SupervisedMetricsSchema, { what: "a seed run's metrics", fix: 'rerun that seed with --resume' }),
    };
  });
  const first = per[0];
  if (!first) return null;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(first.metrics)) {
    const rows: DatasetResultJson[] = per.map(
      (p) => checkJson(SupervisedMetricsSchema, p.metrics, { file: p.file, fix: 'rerun that seed' })[key]!,
    );
    const stat = (f: (r: DatasetResultJson) => number | null) => {
      const [mean, std] = meanStd(rows.map((r) => num(f(r))));
      return { mean, std };
    };
    const auc = stat((r) => r.test.auc);
    const acc = stat((r) => r.test.acc);
    const majority = first.metrics[key]!.majority_acc;
    out[key] = {
      test: { auc: auc.mean, acc: acc.mean },
      test_std: { auc: auc.std, acc: acc.std },
      val: { auc: stat((r) => r.val.auc).mean, acc: stat((r) => r.val.acc).mean },
      best_epoch: Math.round(stat((r) => r.best_epoch).mean),
      steps: first.metrics[key]!.steps,
      wall_s: +rows.reduce((a, r) => a + r.wall_s, 0).toFixed(1),
      samples_per_s: +stat((r) => r.samples_per_s).mean.toFixed(2),
      ...(majority !== undefined && majority !== null ? { majority_acc: majority, beats_majority: acc.mean > majority } : {}),
      seeds: [...seeds],
      per_seed: rows.map((r, i) => ({ seed: seeds[i], auc: r.test.auc, acc: r.test.acc })),
      // A stand-in in any seed marks the summary (mf table keeps it out of the thesis tables).
      ...(rows.some((r) => r.data_source)
        ? { data_source: mergeSources(rows.flatMap((r) => (r.data_source ? [r.data_source] : []))) }
        : {}),
    };
  }
  return out;
}

/** Writes the summary's metrics.json and a report.md table of every seed. */
export function writeSeedSummary(dir: string, settings: RunSettings, summary: Record<string, unknown>): void {
  writeJsonAtomic(path.join(dir, 'metrics.json'), summary);
  const f = (x: number | null | undefined, d: number) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : 'n/a');
  const lines = [
    `# ${settings.name} (${(settings.training.seeds ?? []).length} seeds)`,
    '',
    settings.description,
    '',
    '| dataset | test AUC (mean ± std) | test ACC % (mean ± std) | majority-class ACC % | seeds |',
    '|---|---|---|---|---|',
  ];
  for (const [key, v] of Object.entries(summary) as [
    string,
    {
      test: { auc: number; acc: number };
      test_std: { auc: number; acc: number };
      majority_acc?: number;
      beats_majority?: boolean;
      seeds: number[];
    },
  ][]) {
    const flag = v.beats_majority === false ? ' (not above the majority class)' : '';
    lines.push(
      `| ${key} | ${f(v.test.auc, 3)} ± ${f(v.test_std.auc, 3)} | ${f(100 * v.test.acc, 1)} ± ${f(100 * v.test_std.acc, 1)}${flag} | ${v.majority_acc === undefined ? 'n/a' : f(100 * v.majority_acc, 1)} | ${v.seeds.join(', ')} |`,
    );
  }
  lines.push('', `Each seed's run, with its own report, is in ${settings.training.seeds?.map((s) => `seed-${s}/`).join(', ')}.`, '');
  writeFileAtomic(path.join(dir, 'report.md'), new TextEncoder().encode(lines.join('\n')));
}

export const hasMetrics = (dir: string): boolean => fs.existsSync(path.join(dir, 'metrics.json'));
