// The BrainFuse brain-age study (thesis section 5.1): a small 3D ResNet classifies IXI T1 volumes into age
// bins (trained on Gaussian-smoothed bin labels), in the arms of the thesis's table:
//   NT              normal training on the real training volumes
//   +BT             the backbone first pre-trained with Barlow Twins (no labels) on the training volumes and
//                   bt.fused_per_real times as many fused ones: chains of several brains, re-fused up to
//                   bt.max_generation (the thesis's "unlabeled, heavily fused volumes")
//   +BrainFuse      extra training volumes fused from pairs of training subjects, transition slices made
//                   by the trained interpolation network, labelled with the slice-weighted mean age
//   +RawBrainFuse   the same proposals (pairs, axes and seams) by plain concatenation, unfiltered by default
//   +ConsistencyReg MSE between the class probabilities of two augmentations of each volume
// Each arm runs for every seed; top-1/3/5 accuracy on the held-out subjects is reported as mean ± std next
// to the thesis's figures. Every arm and seed (and each Barlow Twins pre-training) is a phase of the study
// (phases.ts).
import path from 'node:path';
import type { InterpolatorFile } from '../../brain/interpolator.ts';
import { downsampleVolume } from '../../brain/sampling.ts';
import type { BrainSubject, SubjectSplit } from '../../brain/subjects.ts';
import { ageBins } from '../../data/age_bins.ts';
import { filesSource } from '../../data/provenance.ts';
import { midSliceMontagePng } from '../../data/fuse.ts';
import type { Vec3 } from '../../data/nifti.ts';
import type { RunContext } from '../../train/context.ts';
import { writeFileAtomic, writeJsonAtomic } from '../../util/files.ts';
import { type ArmResult, type BtResult, type Sample, type StudySetup, trainArm, trainBarlowTwins } from './arms.ts';
import { countBy, makeStudyFusions } from './fusions.ts';
import { Study } from './phases.ts';
import { brainAgeReport, majorityBaseline, summariseArms } from './report.ts';
import { type BrainAgeSettings, parseArm } from './schema.ts';
import { THESIS_BRAINAGE, THESIS_CITATION } from './thesis.ts';

/** What `prepare` read: the preprocessed subjects (with ages), split, the interpolator's weights, and notes. */
export interface BrainAgeInputs {
  split: SubjectSplit<BrainSubject>;
  /** The trained interpolator (read on the host); null when no arm uses BrainFuse or fusion.interp_run is null. */
  interpolator: InterpolatorFile | null;
  /** Lines to print once the run has started. */
  notes: string[];
}

export async function runStudy(ctx: RunContext, s: BrainAgeSettings, inputs: BrainAgeInputs): Promise<void> {
  const { split } = inputs;
  const bins = ageBins(s.data.bins);
  const arms = s.study.arms.map(parseArm);
  const n = s.data.shape;
  const m = s.data.size;
  const C = s.data.modalities.length;
  const down = (v: Float32Array) => downsampleVolume(v, n, n / m, C);
  const toSample = (x: BrainSubject): Sample => ({ id: x.id, age: x.age!, volume: down(x.volume) });
  const ids = (xs: readonly Sample[]) => xs.map((x) => x.id);
  const train = split.train.map(toSample);
  const val = split.val.map(toSample);
  const test = split.test.map(toSample);
  const splitRecord = { ...s.data.split, train: ids(train), val: ids(val), test: ids(test) };
  const study = Study.open(ctx, splitRecord);
  for (const line of inputs.notes) ctx.say(line);
  ctx.say(split.text);

  // Fusions are made at the preprocessing grid (where the interpolator was trained), then downsampled.
  const modes = new Set(arms.map((a) => a.fusion).filter((x): x is 'interp' | 'raw' => x !== null));
  const sslCount = arms.some((a) => a.bt) ? s.bt.fused_per_real * split.train.length : 0;
  const fullTrain: Sample[] = split.train.map((x) => ({ id: x.id, age: x.age!, volume: x.volume }));
  const { fusions, ssl } = await makeStudyFusions(fullTrain, { n, channels: C }, s, { modes, sslCount }, inputs.interpolator, (l) =>
    ctx.say(l),
  );
  const shape: Vec3 = [n, n, n];
  const firstChannel = (v: Float32Array) => ({ shape, data: v.subarray(0, n * n * n) });
  const fusedSamples = new Map<'interp' | 'raw', Sample[]>();
  for (const f of fusions) {
    fusedSamples.set(
      f.mode,
      f.samples.map((x) => ({ id: x.id, age: x.age, volume: down(x.volume) })),
    );
    if (f.samples.length) {
      midSliceMontagePng(
        f.samples.slice(0, 4).map((x) => firstChannel(x.volume)),
        path.join(ctx.outDir, `fusions-${f.mode === 'interp' ? 'brainfuse' : 'raw'}.png`),
      );
    }
  }
  if (ssl.length) {
    // The last ones: the most re-fused.
    midSliceMontagePng(
      ssl.slice(-4).map((x) => firstChannel(x.volume)),
      path.join(ctx.outDir, 'fusions-ssl.png'),
    );
  }
  const btPool: { volume: Float32Array }[] = [...train, ...ssl.map((x) => ({ volume: down(x.volume) }))];
  const fusionSummary = fusions.map((f) => ({
    mode: f.mode === 'interp' ? 'BrainFuse' : 'RawBrainFuse',
    transition: f.transition,
    filtered: f.filtered,
    proposed: f.proposed,
    kept: f.kept,
    rejected: f.rejected,
    implausible: f.implausible,
    samples: f.samples.map((x) => ({ a: x.a, b: x.b, axis: x.axis, k: x.k, age: +x.age.toFixed(2), smoothness: +x.smoothness.toFixed(3) })),
  }));
  const sslSummary = {
    real: train.length,
    fused: ssl.length,
    chain: s.bt.chain,
    max_generation: s.bt.max_generation,
    by_generation: countBy(ssl.map((x) => x.generation)),
    by_chain_length: countBy(ssl.map((x) => x.sources.length)),
  };
  const sslRecords = ssl.map(({ volume: _v, ...x }) => ({ ...x, smoothness: +x.smoothness.toFixed(3) }));
  // The full-size volumes are no longer needed.
  for (const f of fusions) f.samples.length = 0;
  ssl.length = 0;

  const setup: StudySetup = { ctx, s, bins, m, channels: C };
  const base = s.training.seed;
  const results: ArmResult[] = [];
  for (let i = 0; i < s.study.seeds && !ctx.interrupted; i++) {
    const seed = base + i;
    let backbone: string | null = null;
    if (arms.some((a) => a.bt)) {
      const name = `BT-s${seed}`;
      const bt = await study.phase<BtResult>(name, () => trainBarlowTwins(setup, name, seed, btPool));
      if (!bt) break;
      backbone = path.join(ctx.outDir, bt.backbone);
    }
    for (const arm of arms) {
      const name = `${arm.name}-s${seed}`;
      const pool = [...train, ...(arm.fusion ? (fusedSamples.get(arm.fusion) ?? []) : [])];
      const r = await study.phase<ArmResult>(name, () => trainArm(setup, name, arm, seed, { pool, val, test }, arm.bt ? backbone : null));
      if (!r) break;
      results.push(r);
    }
  }
  if (ctx.interrupted) {
    ctx.say(`interrupted: finished phases are recorded in ${study.file}; continue with --resume`);
    process.exitCode = 130;
    return;
  }

  const summary = summariseArms(s.study.arms, results);
  const majority = majorityBaseline(train, test, bins);
  // Training time of every phase, summed over however many invocations the study took.
  const trainSeconds = Object.values(study.finished).reduce(
    (acc: number, p) => acc + (typeof (p as { wall_s?: unknown }).wall_s === 'number' ? (p as { wall_s: number }).wall_s : 0),
    0,
  );
  const metrics = {
    brainage: {
      demonstration: true,
      split: splitRecord,
      bins: { edges: bins.edges, count: bins.count, label_sigma: s.data.label_sigma },
      input: `${m}³ × ${C} (${s.data.modalities.join(', ')}) (preprocessed at ${n}³, averaged ${n / m}×)`,
      modalities: s.data.modalities,
      data_source: filesSource([...split.train, ...split.val, ...split.test].map((x) => x.file)),
      arms: summary,
      majority_baseline: {
        top1: +(100 * majority.top1).toFixed(2),
        top3: +(100 * majority.top3).toFixed(2),
        top5: +(100 * majority.top5).toFixed(2),
      },
      fusion: fusionSummary.map(({ samples: _samples, ...rest }) => rest),
      ssl: sslSummary,
      wall_s: +((Date.now() - ctx.started) / 1000).toFixed(1),
      train_s: +trainSeconds.toFixed(1),
      runs: results.map(({ predictions: _p, ...r }) => r),
    },
    thesis: { citation: THESIS_CITATION, table: THESIS_BRAINAGE },
  };
  writeJsonAtomic(path.join(ctx.outDir, 'metrics.json'), metrics);
  writeJsonAtomic(path.join(ctx.outDir, 'fusions.json'), fusionSummary);
  writeJsonAtomic(path.join(ctx.outDir, 'ssl-fusions.json'), sslRecords);
  const md = brainAgeReport(
    ctx,
    s,
    bins,
    split.text,
    summary,
    majority,
    fusionSummary,
    sslSummary,
    train.length,
    test.length,
    trainSeconds,
  );
  writeFileAtomic(path.join(ctx.outDir, 'report.md'), new TextEncoder().encode(md));
  for (const [name, a] of Object.entries(summary)) {
    ctx.say(
      `${name}: top-1 ${a.top1[0].toFixed(1)} ± ${a.top1[1].toFixed(1)}, top-3 ${a.top3[0].toFixed(1)} ± ${a.top3[1].toFixed(1)}, top-5 ${a.top5[0].toFixed(1)} ± ${a.top5[1].toFixed(1)} (${a.seeds} seeds)`,
    );
  }
}
