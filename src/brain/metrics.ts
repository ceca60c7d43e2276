// Image quality of synthesised slices: PSNR and SSIM, on the host in float64.
import { MfError } from '../errors.ts';

/** PSNR in dB for images in [0, range]; both are clipped to that range first. */
export function psnr(pred: ArrayLike<number>, target: ArrayLike<number>, range = 1): number {
  let se = 0;
  for (let i = 0; i < target.length; i++) {
    const d = Math.min(range, Math.max(0, pred[i]!)) - Math.min(range, Math.max(0, target[i]!));
    se += d * d;
  }
  const mse = se / target.length;
  return 10 * Math.log10((range * range) / Math.max(mse, 1e-12));
}

const SSIM_SIGMA = 1.5;
const SSIM_RADIUS = 5;
const SSIM_KERNEL = (() => {
  const k = Array.from({ length: 2 * SSIM_RADIUS + 1 }, (_, i) => Math.exp(-((i - SSIM_RADIUS) ** 2) / (2 * SSIM_SIGMA ** 2)));
  const s = k.reduce((a, b) => a + b, 0);
  return k.map((x) => x / s);
})();

/** Separable Gaussian blur over the positions where the whole window fits: [H - 2r] × [W - 2r]. */
function blurValid(img: Float64Array, W: number, H: number): { data: Float64Array; w: number; h: number } {
  const r = SSIM_RADIUS;
  const w = W - 2 * r;
  const h = H - 2 * r;
  const tmp = new Float64Array(w * H);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let k = 0; k <= 2 * r; k++) s += SSIM_KERNEL[k]! * img[y * W + x + k]!;
      tmp[y * w + x] = s;
    }
  }
  const out = new Float64Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let k = 0; k <= 2 * r; k++) s += SSIM_KERNEL[k]! * tmp[(y + k) * w + x]!;
      out[y * w + x] = s;
    }
  }
  return { data: out, w, h };
}

/**
 * Mean SSIM (Wang et al. 2004) of two W×H images in [0, range]: Gaussian window σ 1.5 (11 taps),
 * K1 0.01, K2 0.03, averaged over the positions where the window fits inside the image.
 */
export function ssim(a: ArrayLike<number>, b: ArrayLike<number>, W: number, H: number, range = 1): number {
  if (a.length !== W * H || b.length !== W * H) throw new MfError(`ssim: ${a.length} and ${b.length} values for ${W}×${H}`);
  if (W <= 2 * SSIM_RADIUS || H <= 2 * SSIM_RADIUS)
    throw new MfError(`ssim: ${W}×${H} is smaller than the ${2 * SSIM_RADIUS + 1}-pixel window`);
  const n = W * H;
  const x = new Float64Array(n);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    x[i] = Math.min(range, Math.max(0, a[i]!));
    y[i] = Math.min(range, Math.max(0, b[i]!));
  }
  const prod = (p: Float64Array, q: Float64Array) => p.map((v, i) => v * q[i]!);
  const mx = blurValid(x, W, H);
  const my = blurValid(y, W, H).data;
  const sxx = blurValid(prod(x, x), W, H).data;
  const syy = blurValid(prod(y, y), W, H).data;
  const sxy = blurValid(prod(x, y), W, H).data;
  const c1 = (0.01 * range) ** 2;
  const c2 = (0.03 * range) ** 2;
  let total = 0;
  for (let i = 0; i < mx.data.length; i++) {
    const ux = mx.data[i]!;
    const uy = my[i]!;
    const vx = sxx[i]! - ux * ux;
    const vy = syy[i]! - uy * uy;
    const cxy = sxy[i]! - ux * uy;
    total += ((2 * ux * uy + c1) * (2 * cxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
  }
  return total / mx.data.length;
}
