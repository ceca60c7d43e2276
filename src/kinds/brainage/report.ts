// The study's summary: each arm's test results over its seeds, a majority-bin baseline, and report.md with the
// thesis's table next to this project's numbers.
import type { AgeBins } from '../../data/age_bins.ts';
import type { RunContext } from '../../train/context.ts';
import { meanStd } from '../../train/metrics.ts';
import { reportHeader } from '../../train/report.ts';
import type { ArmResult, Sample } from './arms.ts';
import type { BrainAgeSettings } from './schema.ts';
import { THESIS_BRAINAGE } from './thesis.ts';

/** Top-k accuracy of always answering the k most frequent training bins (ties by lower bin). */
export function majorityBaseline(
  train: readonly Sample[],
  test: readonly Sample[],
  bins: AgeBins,
): Record<'top1' | 'top3' | 'top5', number> {
  const counts = new Array<number>(bins.count).fill(0);
  for (const x of train) counts[bins.index(x.age)]++;
  const order = counts
    .map((c, b) => [c, b] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .map(([, b]) => b);
  const acc = (k: number) => test.filter((x) => order.slice(0, k).includes(bins.index(x.age))).length / Math.max(1, test.length);
  return { top1: acc(1), top3: acc(3), top5: acc(5) };
}

/** One arm's test results over its seeds: top-k accuracy and MAE as [mean, std], prediction spread. */
export interface ArmSummary {
  top1: [number, number];
  top3: [number, number];
  top5: [number, number];
  mae: [number, number];
  spread: number;
  seeds: number;
}

/** Each arm's test results over its seeds, in percent (2 decimals). */
export function summariseArms(armNames: readonly string[], results: readonly ArmResult[]): Record<string, ArmSummary> {
  const arms: Record<string, ArmSummary> = {};
  for (const name of armNames) {
    const rs = results.filter((r) => r.arm === name);
    const pct = (k: 'top1' | 'top3' | 'top5') => meanStd(rs.map((r) => 100 * r[k])).map((x) => +x.toFixed(2)) as [number, number];
    // How much the predicted (expected) age varies across test subjects: near 0 means the network answers
    // the training set's age distribution whatever the input.
    const spread = rs.reduce((acc, r) => acc + meanStd(r.predictions.map((p) => p.expected_age))[1], 0) / Math.max(1, rs.length);
    arms[name] = {
      top1: pct('top1'),
      top3: pct('top3'),
      top5: pct('top5'),
      mae: meanStd(rs.map((r) => r.mae)).map((x) => +x.toFixed(2)) as [number, number],
      spread: +spread.toFixed(2),
      seeds: rs.length,
    };
  }
  return arms;
}

/** report.md of the study. */
export function brainAgeReport(
  ctx: RunContext,
  s: BrainAgeSettings,
  bins: AgeBins,
  splitText: string,
  arms: Record<string, ArmSummary>,
  majority: Record<'top1' | 'top3' | 'top5', number>,
  fusion: { mode: string; transition: string; filtered: boolean; proposed: number; kept: number; rejected: number; implausible: number }[],
  ssl: { real: number; fused: number; by_generation: Record<string, number>; by_chain_length: Record<string, number> },
  nTrain: number,
  nTest: number,
  trainSeconds: number,
): string {
  const m = s.data.size;
  const counts = (c: Record<string, number>) =>
    Object.entries(c)
      .map(([k, v]) => `${v} × ${k}`)
      .join(', ') || 'none';
  const pm = (x: readonly [number, number]) => `${x[0].toFixed(2)} ± ${x[1].toFixed(2)}`;
  const rows = Object.entries(arms).map(([name, a]) => {
    const th = THESIS_BRAINAGE[name];
    const thesis = th ? `${pm(th.top1)} | ${pm(th.top3)} | ${pm(th.top5)}` : '– | – | –';
    return `| ${name} | ${pm(a.top1)} | ${pm(a.top3)} | ${pm(a.top5)} | ${a.mae[0].toFixed(1)} | ${a.spread.toFixed(1)} | ${thesis} |`;
  });
  const wall = (Date.now() - ctx.started) / 1000;
  return [
    ...reportHeader(s.name, s.description, ctx.backend.describe()),
    '**A demonstration, not a reproduction.** The thesis trains on the full IXI set (about 580 subjects); only 16 IXI T1 volumes are available here, ' +
      `so each arm is trained on ${nTrain} real subjects and tested on ${nTest}: one test subject is ${nTest ? (100 / nTest).toFixed(0) : '?'} percentage points of accuracy. ` +
      'The numbers below show that the pipeline runs end to end, not how the methods compare.',
    '',
    `Data: ${splitText}. The split is at subject level; fused volumes are made only from training subjects, and the interpolation network was trained with the same split.`,
    '',
    `Task: ${bins.count} age bins of ${bins.edges[1]! - bins.edges[0]!} years from ${bins.edges[0]} to ${bins.edges.at(-1)}, Gaussian-smoothed labels (σ ${s.data.label_sigma} bin), soft-label cross-entropy. ` +
      `Input ${m}³ with ${s.data.modalities.length} channel(s) (${s.data.modalities.join(', ')}; preprocessed at ${s.data.shape}³, averaged ${s.data.shape / m}×). 3D ResNet (width ${s.model.width}, blocks [${s.model.blocks.join(', ')}], GroupNorm). ` +
      `Every arm takes the same number of optimizer steps (${s.training.epochs ?? '?'} epochs × ${s.training.steps_per_epoch} steps of ${s.training.batch_size}), so arms differ in data, not in compute. ` +
      `Barlow Twins: ${s.training.epochs ?? '?'} epochs × ${s.bt.steps_per_epoch} steps on the ${ssl.real} training volumes and ${ssl.fused} unlabelled fused ones (${s.bt.fused_per_real} per real volume; chains of ${s.bt.chain.join('–')} brains: ${counts(ssl.by_chain_length)} brains; generation limit ${s.bt.max_generation}: ${counts(ssl.by_generation)}), projector ${s.bt.dim}, λ ${s.bt.lambda}. Consistency weight ${s.consistency.weight}. ` +
      `${s.study.seeds} seed(s); mean ± sample std over seeds (the split is the same for every seed).`,
    '',
    'Top-k accuracy (%) on the held-out subjects, this project next to the thesis (Simionescu, C. (2025), PhD thesis, Alexandru Ioan Cuza University of Iasi, section 5.1, 3 runs each):',
    '',
    '| Method | Top-1 | Top-3 | Top-5 | MAE (y) | spread (y) | Top-1 thesis | Top-3 thesis | Top-5 thesis |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows,
    `| always the most frequent training bins | ${(100 * majority.top1).toFixed(2)} | ${(100 * majority.top3).toFixed(2)} | ${(100 * majority.top5).toFixed(2)} | | | | | |`,
    '',
    'MAE: of the expected age (bin centres weighted by the predicted probabilities). Spread: standard deviation of that expected age across the test subjects, averaged over seeds; ' +
      "a spread near 0 means the network predicts the training set's age distribution whatever the volume, i.e. it has learnt no usable age signal from this few subjects, and its top-k accuracy is that of the most frequent bins.",
    '',
    "Fusion for the arms (plausibility filter: the seam's largest slice step at most " +
      `${s.fusion.threshold}× the median step elsewhere; same proposals for both modes; BrainFuse is always filtered, RawBrainFuse ${s.fusion.filter_raw ? 'too (fusion.filter_raw true)' : 'is not (fusion.filter_raw false): it keeps the first proposals, seams and all'}):`,
    '',
    '| mode | transition | filtered | proposed | kept | rejected | kept but implausible |',
    '|---|---|---|---|---|---|---|',
    ...fusion.map(
      (f) =>
        `| ${f.mode} | ${f.transition} | ${f.filtered ? 'yes' : 'no'} | ${f.proposed} | ${f.kept} | ${f.rejected} | ${f.implausible} |`,
    ),
    '',
    fusion.length
      ? `Mid-slices of the first fused volumes (one row each; sagittal, coronal, axial): ${fusion
          .filter((f) => f.kept > 0)
          .map((f) => `![${f.mode}](fusions-${f.mode === 'BrainFuse' ? 'brainfuse' : 'raw'}.png)`)
          .join(' ')}`
      : '',
    ssl.fused ? '' : null,
    ssl.fused ? 'The last fused volumes made for Barlow Twins (the most re-fused): ![Barlow Twins fusions](fusions-ssl.png)' : null,
    '',
    `Time on this device: ${(trainSeconds / 60).toFixed(1)} min of training over all phases (validation, evaluation, fusion and kernel compilation come on top); this invocation took ${(wall / 60).toFixed(1)} min.`,
    '',
  ]
    .filter((line) => line !== null)
    .join('\n');
}
