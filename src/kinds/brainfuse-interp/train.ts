// BrainFuse slice interpolation (thesis section 5.1): a 2D U-Net learns, without labels, to predict the slice
// halfway between slices i and i + gap of real IXI T1 volumes, with a curriculum that widens the gap during
// training. The trained network synthesises the transition slices of fused volumes (`mf fuse`, and the
// BrainFuse arms of the brain-age study).
import path from 'node:path';
import { INTERP_WEIGHTS, predictMiddles, saveInterpolator } from '../../brain/interpolator.ts';
import { psnr } from '../../brain/metrics.ts';
import { foregroundSlices, sampleTriplets, tripletBatch } from '../../brain/sampling.ts';
import type { BrainSubject, SubjectSplit } from '../../brain/subjects.ts';
import { SliceUNet } from '../../models/brainfuse.ts';
import { ParameterStore } from '../../nn/parameters.ts';
import { Tensor, tidy } from '../../tensor/tensor.ts';
import type { RunContext } from '../../train/context.ts';
import { TrainingPhase } from '../../train/phase.ts';
import { writeJsonAtomic } from '../../util/files.ts';
import { hashSeed, Rng } from '../../util/rng.ts';
import { evaluateInterp } from './evaluate.ts';
import { gapAt, interpLoss } from './loss.ts';
import { writeExamplesPng, writeInterpReport } from './report.ts';
import type { InterpSettings } from './schema.ts';

/** What `prepare` read: the preprocessed subjects, split, and the lines to print once the run has started. */
export interface InterpInputs {
  split: SubjectSplit<BrainSubject>;
  notes: string[];
}

const ids = (xs: readonly { id: string }[]) => xs.map((x) => x.id);

export async function trainInterp(ctx: RunContext, s: InterpSettings, inputs: InterpInputs): Promise<void> {
  const t = s.training;
  const cfg = s.interp;
  const { split } = inputs;
  for (const line of inputs.notes) ctx.say(line);
  ctx.say(split.text);
  ctx.log({ event: 'split', train: ids(split.train), val: ids(split.val), test: ids(split.test) });
  const n = s.data.shape;
  const S = n * n;
  const trainVols = split.train.map((x) => x.volume);
  const trainFg = trainVols.map((v) => foregroundSlices(v, n, cfg.min_foreground));

  const store = new ParameterStore(t.seed);
  const model = new SliceUNet(store, s.model);
  store.finalize();
  ctx.say(
    `model: slice-interpolation U-Net (base ${s.model.base}, depth ${s.model.depth}), ${store.count().toLocaleString('en-US')} parameters`,
  );
  const phase = new TrainingPhase(ctx, { store, training: t });

  // A fixed validation set at the largest gap, so the curve is comparable from epoch to epoch.
  const valVols = split.val.map((x) => x.volume);
  const valFg = valVols.map((v) => foregroundSlices(v, n, cfg.min_foreground));
  const valSet = valVols.length
    ? sampleTriplets(new Rng(hashSeed(s.data.split.seed, 'interp-val')), 8 * valVols.length, cfg.gap.max, valFg, cfg.axes, n).map((x) => ({
        ...x,
        gap: cfg.gap.max,
      }))
    : [];

  const result = await phase.run({
    stepsPerEpoch: t.steps_per_epoch,
    step(epoch, position) {
      const maxGap = gapAt(cfg.gap, epoch);
      const rng = new Rng(hashSeed(t.seed, 'interp-batch', epoch, position));
      const batch = sampleTriplets(rng, t.batch_size, maxGap, trainFg, cfg.axes, n);
      const { x, y } = tripletBatch(trainVols, n, batch);
      return tidy(() => {
        const pred = model.forward(Tensor.from(x, [batch.length, 2, n, n]));
        const target = Tensor.from(y, [batch.length, 1, n, n]);
        const { loss, recon, grad } = interpLoss(cfg.loss, cfg.grad_weight, pred, target);
        loss.backward();
        const terms: Record<string, Tensor> = grad ? { recon, grad } : { recon };
        return { loss, terms, samples: batch.length, tag: { max_gap: maxGap } };
      });
    },
    async validate(epoch, step) {
      if (valSet.length === 0) return;
      const { x, y } = tripletBatch(valVols, n, valSet);
      const pairs = valSet.map(
        (_, b) => [x.subarray(2 * b * S, (2 * b + 1) * S), x.subarray((2 * b + 1) * S, (2 * b + 2) * S)] as [Float32Array, Float32Array],
      );
      const pred = await predictMiddles(model, pairs, n, n, t.batch_size);
      let pm = 0;
      let pl = 0;
      pred.forEach((p, b) => {
        const target = y.subarray(b * S, (b + 1) * S);
        pm += psnr(p, target) / pred.length;
        pl +=
          psnr(
            pairs[b]![0].map((v, i) => (v + pairs[b]![1][i]!) / 2),
            target,
          ) / pred.length;
      });
      ctx.log({ event: 'val', epoch, step, gap: cfg.gap.max, psnr_model: pm, psnr_linear: pl, max_gap: gapAt(cfg.gap, epoch) });
      ctx.say(
        `epoch ${epoch + 1} step ${step}: val PSNR at gap ${cfg.gap.max}: network ${pm.toFixed(2)} dB, linear ${pl.toFixed(2)} dB (curriculum gap ≤ ${gapAt(cfg.gap, epoch)})`,
      );
    },
  });
  if (!result) {
    store.dispose();
    return;
  }

  saveInterpolator(path.join(ctx.outDir, INTERP_WEIGHTS), await store.export(), {
    unet: s.model,
    shape: n,
    split: s.data.split,
    step: result.step,
  });

  ctx.say(`evaluating on ${split.test.length} held-out subjects (gaps ${cfg.eval.gaps.join(', ')}, axes ${cfg.eval.axes.join(', ')})`);
  const t0 = Date.now();
  const evaluation = await evaluateInterp(
    model,
    split.test.map((x) => x.volume),
    n,
    cfg,
    t.batch_size,
  );
  const evalSeconds = (Date.now() - t0) / 1000;
  writeExamplesPng(path.join(ctx.outDir, 'examples.png'), evaluation.examples, n);

  const metrics = {
    interp: {
      steps: result.step,
      wall_s: +result.trainSeconds.toFixed(1),
      eval_s: +evalSeconds.toFixed(1),
      samples_per_s: +((result.step * t.batch_size) / Math.max(1e-3, result.trainSeconds)).toFixed(2),
      shape: n,
      split: { seed: s.data.split.seed, train: ids(split.train), val: ids(split.val), test: ids(split.test) },
      by_gap: evaluation.byGap,
    },
  };
  writeJsonAtomic(path.join(ctx.outDir, 'metrics.json'), metrics);
  writeInterpReport(ctx, s, split.text, evaluation.byGap, result.step, result.trainSeconds);
  for (const [g, r] of Object.entries(evaluation.byGap)) {
    ctx.say(
      `gap ${g}: network PSNR ${r.model.psnr.toFixed(2)} dB SSIM ${r.model.ssim.toFixed(4)} | linear PSNR ${r.linear.psnr.toFixed(2)} dB SSIM ${r.linear.ssim.toFixed(4)} (${r.slices} slices)`,
    );
  }
  store.dispose();
}
