// Held-out evaluation of the interpolator: PSNR and SSIM of the network and of the linear blend, per gap,
// over evenly spaced slice positions of every test volume, and a few examples for the report.
import { psnr, ssim } from '../../brain/metrics.ts';
import { foregroundSlices, tripletBatch, validMids, type Triplet } from '../../brain/sampling.ts';
import { DEFAULT_PREDICT_BATCH, predictMiddles } from '../../brain/interpolator.ts';
import type { SliceUNet } from '../../models/brainfuse.ts';
import type { InterpTask } from './schema.ts';

interface QualityAcc {
  psnr: number;
  ssim: number;
  n: number;
}

export interface GapResult {
  slices: number;
  model: { psnr: number; ssim: number };
  linear: { psnr: number; ssim: number };
  /** Share of slices where the network's PSNR beats the linear blend's. */
  model_better: number;
}

export interface Example {
  before: Float32Array;
  after: Float32Array;
  linear: Float32Array;
  model: Float32Array;
  truth: Float32Array;
}

/** PSNR and SSIM of the network and of the linear blend on every held-out volume, per gap. */
export async function evaluateInterp(
  model: SliceUNet,
  vols: readonly Float32Array[],
  n: number,
  cfg: Pick<InterpTask, 'eval' | 'min_foreground'>,
  batch = DEFAULT_PREDICT_BATCH,
): Promise<{ byGap: Record<string, GapResult>; examples: Example[] }> {
  const S = n * n;
  const byGap: Record<string, GapResult> = {};
  const examples: Example[] = [];
  const fgs = vols.map((v) => foregroundSlices(v, n, cfg.min_foreground));
  for (const gap of cfg.eval.gaps) {
    const triplets: Triplet[] = [];
    vols.forEach((_, vol) => {
      for (const axis of cfg.eval.axes) {
        const mids = validMids(fgs[vol]![axis]!, n, gap);
        // Evenly spaced positions through the brain, at most per_axis of them.
        const k = Math.min(cfg.eval.per_axis, mids.length);
        for (let i = 0; i < k; i++) triplets.push({ vol, axis, mid: mids[Math.floor(((i + 0.5) * mids.length) / k)]!, gap });
      }
    });
    const acc = { model: { psnr: 0, ssim: 0, n: 0 } as QualityAcc, linear: { psnr: 0, ssim: 0, n: 0 } as QualityAcc, better: 0 };
    const { x, y } = tripletBatch(vols, n, triplets);
    const pairs = triplets.map(
      (_, b) => [x.subarray(2 * b * S, (2 * b + 1) * S), x.subarray((2 * b + 1) * S, (2 * b + 2) * S)] as [Float32Array, Float32Array],
    );
    const preds = await predictMiddles(model, pairs, n, n, batch);
    preds.forEach((p, b) => {
      const truth = y.subarray(b * S, (b + 1) * S);
      const lin = pairs[b]![0].map((v, i) => (v + pairs[b]![1][i]!) / 2);
      const pm = psnr(p, truth);
      const pl = psnr(lin, truth);
      acc.model.psnr += pm;
      acc.model.ssim += ssim(p, truth, n, n);
      acc.linear.psnr += pl;
      acc.linear.ssim += ssim(lin, truth, n, n);
      if (pm > pl) acc.better++;
    });
    const m = Math.max(1, preds.length);
    byGap[String(gap)] = {
      slices: preds.length,
      model: { psnr: acc.model.psnr / m, ssim: acc.model.ssim / m },
      linear: { psnr: acc.linear.psnr / m, ssim: acc.linear.ssim / m },
      model_better: acc.better / m,
    };
    if (gap === cfg.eval.gaps.at(-1)) {
      // One example per axis from the first volume, near the middle of the brain.
      for (const axis of cfg.eval.axes) {
        const idx = triplets.findIndex((tr) => tr.vol === 0 && tr.axis === axis);
        const cnt = triplets.filter((tr) => tr.vol === 0 && tr.axis === axis).length;
        const b = idx + Math.floor(cnt / 2);
        if (idx < 0 || !preds[b]) continue;
        examples.push({
          before: pairs[b]![0],
          after: pairs[b]![1],
          linear: pairs[b]![0].map((v, i) => (v + pairs[b]![1][i]!) / 2),
          model: preds[b]!,
          truth: y.slice(b * S, (b + 1) * S),
        });
      }
    }
  }
  return { byGap, examples };
}
