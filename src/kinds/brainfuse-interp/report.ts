// The interpolation run's report: report.md with the per-gap table, the loss and validation curves, and a strip
// of examples (slice i | linear blend | network | ground truth | slice i + gap).
import path from 'node:path';
import type { RunContext } from '../../train/context.ts';
import { lineChartSvg, readLog, reportHeader, series } from '../../train/report.ts';
import { writeFileAtomic } from '../../util/files.ts';
import { encodePng } from '../../util/png.ts';
import type { Example, GapResult } from './evaluate.ts';
import type { InterpSettings } from './schema.ts';

/** Rows of: slice i | linear blend | network | ground truth | slice j, on a common [0, 1] window. */
export function writeExamplesPng(file: string, examples: readonly Example[], n: number): void {
  if (examples.length === 0) return;
  const scale = Math.max(1, Math.round(96 / n));
  const cell = n * scale;
  const W = 5 * cell;
  const H = examples.length * cell;
  const img = new Uint8Array(W * H);
  examples.forEach((ex, row) => {
    [ex.before, ex.linear, ex.model, ex.truth, ex.after].forEach((s, col) => {
      for (let v = 0; v < n; v++) {
        for (let u = 0; u < n; u++) {
          const g = Math.round(255 * Math.min(1, Math.max(0, s[u + n * v]!)));
          const py = row * cell + (n - 1 - v) * scale;
          for (let dy = 0; dy < scale; dy++)
            img.fill(g, (py + dy) * W + col * cell + u * scale, (py + dy) * W + col * cell + (u + 1) * scale);
        }
      }
    });
  });
  writeFileAtomic(file, encodePng(img, W, H));
}

export function writeInterpReport(
  ctx: RunContext,
  s: InterpSettings,
  splitText: string,
  byGap: Record<string, GapResult>,
  steps: number,
  seconds: number,
): void {
  const cfg = s.interp;
  const records = readLog(ctx.outDir);
  const enc = (text: string) => new TextEncoder().encode(text);
  writeFileAtomic(
    path.join(ctx.outDir, 'loss.svg'),
    enc(lineChartSvg('training loss', 'step', series(records, 'train', 'loss'), { logY: true })),
  );
  const val = [...series(records, 'val', 'psnr_model'), ...series(records, 'val', 'psnr_linear')];
  writeFileAtomic(path.join(ctx.outDir, 'val_psnr.svg'), enc(lineChartSvg(`validation PSNR at gap ${cfg.gap.max} (dB)`, 'step', val)));
  const rows = Object.entries(byGap).map(
    ([g, r]) =>
      `| ${g} | ${r.slices} | ${r.model.psnr.toFixed(2)} | ${r.linear.psnr.toFixed(2)} | ${(r.model.psnr - r.linear.psnr).toFixed(2)} | ${r.model.ssim.toFixed(4)} | ${r.linear.ssim.toFixed(4)} | ${(100 * r.model_better).toFixed(0)}% |`,
  );
  const md = [
    ...reportHeader(s.name, s.description, ctx.backend.describe()),
    'BrainFuse slice interpolation (Simionescu 2025, PhD thesis, section 5.1): a 2D U-Net predicts the slice halfway between slices i and i + gap of a preprocessed IXI T1 volume. ' +
      `Self-supervised on real volumes; curriculum over the gap from ${cfg.gap.start} to ${cfg.gap.max} (+2 every ${cfg.gap.every_epochs} epochs); loss ${cfg.loss === 'l1' ? 'L1 (Charbonnier, ε = 1e-3)' : 'L2'}${cfg.grad_weight > 0 ? ` + ${cfg.grad_weight} × the same loss on image gradients` : ''}. ` +
      `${steps} steps in ${seconds.toFixed(0)} s at ${s.data.shape}³.`,
    '',
    `Data: ${splitText}. Only 16 IXI subjects are available here, so this is a demonstration of the method, not a reproduction (the thesis figures transcribed for this project hold no interpolation PSNR/SSIM to compare with).`,
    '',
    `Held-out (test) subjects, slices along axes ${cfg.eval.axes.join(', ')} with at least ${(100 * cfg.min_foreground).toFixed(0)}% brain, at most ${cfg.eval.per_axis} evenly spaced positions per volume and axis; PSNR over the whole slice (range [0, 1]); SSIM with an 11-tap Gaussian window (σ 1.5).`,
    '',
    '| gap | slices | PSNR network (dB) | PSNR linear (dB) | Δ PSNR | SSIM network | SSIM linear | network better |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    'Examples (largest gap; columns: slice i, linear blend, network, ground truth, slice i + gap):',
    '',
    '![examples](examples.png)',
    '',
    '![loss](loss.svg)',
    '',
    '![validation PSNR](val_psnr.svg)',
    '',
  ].join('\n');
  writeFileAtomic(path.join(ctx.outDir, 'report.md'), enc(md));
}
