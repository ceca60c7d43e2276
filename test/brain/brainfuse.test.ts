// BrainFuse: the slice-interpolation U-Net, its curriculum, `mf fuse`, the Barlow Twins loss, and tiny
// interpolation and brain-age runs end to end. Synthetic volumes made here; real IXI only with MEDFORMER_SHARED_DATA.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { preprocessBrain } from '../../src/data/brain.ts';
import { getSlice } from '../../src/data/fuse.ts';
import { readNifti, writeNifti, type Vec3 } from '../../src/data/nifti.ts';
import { ShapeError } from '../../src/errors.ts';
import { SliceUNet, type SliceUNetConfig } from '../../src/models/brainfuse.ts';
import { ParameterStore } from '../../src/nn/parameters.ts';
import { mseLoss } from '../../src/ops/index.ts';
import { AdamW } from '../../src/train/adamw.ts';
import { synthesizeSlices } from '../../src/brain/interpolator.ts';
import { psnr, ssim } from '../../src/brain/metrics.ts';
import { downsampleVolume, foregroundSlices, sampleTriplets, tripletBatch } from '../../src/brain/sampling.ts';
import { barlowTwins, barlowTwinsReference, softCrossEntropy } from '../../src/kinds/brainage/losses.ts';
import { gapAt, interpLoss } from '../../src/kinds/brainfuse-interp/loss.ts';
import { setBackend, Tensor, tidy } from '../../src/tensor/tensor.ts';
import { readSafetensors } from '../../src/train/safetensors.ts';
import { Rng } from '../../src/util/rng.ts';
import { cpu, gpuBackend, uniform, releaseGpu } from '../helpers.ts';
import { mf } from '../run/helpers.ts';
import { brainLike, SHARED_SKIP, sharedData, syntheticIxiFolder, tempDir } from './helpers.ts';

afterAll(releaseGpu);

const UNET: SliceUNetConfig = { base: 4, depth: 2, groups: 2, act: 'gelu', down: 'avg' };
const dir = tempDir('mf-brainfuse-');

beforeAll(async () => {
  const gpu = await gpuBackend();
  setBackend(gpu ?? cpu);
});

describe('slice-interpolation U-Net', () => {
  it('maps [B, 2, H, W] to [B, 1, H, W], starts as the linear blend, and gives every parameter a finite gradient', async () => {
    const store = new ParameterStore(3);
    const model = new SliceUNet(store, UNET);
    store.finalize();
    const B = 4;
    const n = 16;
    const x = uniform(B * 2 * n * n, 5, 0, 1);
    const { y, loss } = tidy(() => {
      const y = model.forward(Tensor.from(x, [B, 2, n, n]));
      const loss = mseLoss(y, Tensor.from(uniform(B * n * n, 6, 0, 1), [B, 1, n, n]));
      loss.backward();
      return { y, loss };
    });
    expect(y.shape).toEqual([B, 1, n, n]);
    const out = await y.data();
    // The output convolution starts at zero: an untrained network is exactly linear interpolation.
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < n * n; i += 37) {
        expect(out[b * n * n + i]).toBeCloseTo((x[2 * b * n * n + i]! + x[(2 * b + 1) * n * n + i]!) / 2, 5);
      }
    }
    expect(Number.isFinite(await loss.item())).toBe(true);
    const grads = await store.exportGrads();
    const params = await store.export();
    expect(grads.size).toBe(params.size);
    for (const [name, g] of grads) {
      expect(g.shape, name).toEqual(params.get(name)!.shape);
      expect(g.data.every(Number.isFinite), name).toBe(true);
    }
    // The zero-initialised head still learns: its gradient is not zero.
    expect(grads.get('unet.head.weight')!.data.some((v) => v !== 0)).toBe(true);
    y.dispose();
    loss.dispose();
    expect(() => model.forward(Tensor.from(new Float32Array(2 * 2 * 18 * 18), [2, 2, 18, 18]))).toThrow(ShapeError);
    expect(() => model.forward(Tensor.from(new Float32Array(2 * 2 * 18 * 18), [2, 2, 18, 18]))).toThrow(/SliceUNet.*\[2, 2, 18, 18\]/);
    store.dispose();
  });

  it('trains through the gap curriculum on one downsampled volume: batches respect the gap, the loss falls at every stage', async () => {
    const n = 16;
    const vol = downsampleVolume(brainLike(32, 50), 32, 2);
    const fg = [foregroundSlices(vol, n, 0.1)];
    expect(fg[0]!.every((a) => a.length >= 6)).toBe(true);
    const store = new ParameterStore(1);
    const model = new SliceUNet(store, UNET);
    store.finalize();
    const opt = new AdamW(store, { lr: 1e-2, weightDecay: 0 });
    const schedule = { start: 2, max: 6, every_epochs: 1 };
    expect([0, 1, 2, 3].map((e) => gapAt(schedule, e))).toEqual([2, 4, 6, 6]);
    const B = 4;
    for (let stage = 0; stage < 3; stage++) {
      const maxGap = gapAt(schedule, stage);
      const batch = sampleTriplets(new Rng(stage), B, maxGap, fg, [0, 1, 2], n);
      for (const t of batch) {
        expect(t.gap % 2).toBe(0);
        expect(t.gap).toBeLessThanOrEqual(maxGap);
        expect(t.mid - t.gap / 2).toBeGreaterThanOrEqual(0);
        expect(t.mid + t.gap / 2).toBeLessThan(n);
      }
      const { x, y } = tripletBatch([vol], n, batch);
      // The target really is the middle slice, the inputs the slices gap/2 either side.
      expect(y.subarray(0, n * n)).toEqual(getSlice({ shape: [n, n, n], data: vol }, batch[0]!.axis, batch[0]!.mid));
      const losses: number[] = [];
      for (let step = 0; step < 6; step++) {
        store.zeroGrad();
        const l = tidy(() => {
          const r = interpLoss('l2', 0.1, model.forward(Tensor.from(x, [B, 2, n, n])), Tensor.from(y, [B, 1, n, n]));
          r.loss.backward();
          return r.loss;
        });
        opt.step();
        losses.push(await l.item());
        l.dispose();
      }
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(losses.at(-1)!, `stage ${stage} (gap ≤ ${maxGap}): ${losses.map((v) => v.toFixed(5)).join(' ')}`).toBeLessThan(
        0.95 * losses[0]!,
      );
    }
    // Bisection with the network fills any number of transition slices with finite values of the right size.
    const made = await synthesizeSlices(
      model,
      getSlice({ shape: [n, n, n], data: vol }, 2, 4),
      getSlice({ shape: [n, n, n], data: vol }, 2, 10),
      5,
      n,
      n,
      B,
    );
    expect(made.length).toBe(5);
    for (const s of made) {
      expect(s.length).toBe(n * n);
      expect(s.every(Number.isFinite)).toBe(true);
    }
    store.dispose();
  });
});

describe('image quality metrics', () => {
  it('PSNR and SSIM: identical images are perfect, noise lowers both, SSIM is symmetric', () => {
    const W = 24;
    const H = 20;
    const a = uniform(W * H, 1, 0, 1);
    const noisy = a.map((v, i) => v + 0.1 * Math.sin(i * 7.1));
    expect(ssim(a, a, W, H)).toBeCloseTo(1, 10);
    expect(psnr(a, a)).toBeGreaterThan(100);
    const s = ssim(a, noisy, W, H);
    expect(s).toBeLessThan(1);
    expect(s).toBeCloseTo(ssim(noisy, a, W, H), 12);
    // MSE of 0.1·sin(...) is about 0.005: PSNR about 23 dB.
    expect(psnr(noisy, a)).toBeGreaterThan(20);
    expect(psnr(noisy, a)).toBeLessThan(26);
  });
});

describe('Barlow Twins loss', () => {
  it('matches a plain float64 TypeScript reference, value and gradient', async () => {
    const n = 6;
    const d = 5;
    const z1 = uniform(n * d, 11);
    const z2 = uniform(n * d, 12).map((v, i) => 0.6 * v + 0.5 * z1[i]!);
    for (const lambda of [0.005, 0.7]) {
      const want = barlowTwinsReference(z1, z2, n, d, lambda);
      const t1 = Tensor.from(z1, [n, d]);
      t1.requiresGrad = true;
      const got = tidy(() => {
        const r = barlowTwins(t1, Tensor.from(z2, [n, d]), lambda);
        r.loss.backward();
        return r;
      });
      expect(await got.loss.item()).toBeCloseTo(want.loss, 4);
      expect(await got.onDiag.item()).toBeCloseTo(want.onDiag, 4);
      expect(await got.offDiag.item()).toBeCloseTo(want.offDiag, 4);
      // d loss / d z1 against central differences of the reference.
      const g = await t1.grad!.data();
      const eps = 1e-3;
      for (const k of [0, 7, 13, 29]) {
        const up = Float64Array.from(z1);
        const dn = Float64Array.from(z1);
        up[k] += eps;
        dn[k] -= eps;
        const fd = (barlowTwinsReference(up, z2, n, d, lambda).loss - barlowTwinsReference(dn, z2, n, d, lambda).loss) / (2 * eps);
        expect(g[k]!, `grad[${k}] lambda ${lambda}`).toBeCloseTo(fd, 2);
      }
      t1.grad!.dispose();
      t1.grad = null;
      t1.dispose();
    }
    expect(() => barlowTwins(Tensor.from(z1, [n, d]), Tensor.from(z2.subarray(0, 5 * 4), [5, 4]), 1)).toThrow(
      /barlowTwins.*\[6, 5\].*\[5, 4\]/,
    );
  });

  it('soft-label cross-entropy equals cross-entropy for one-hot targets', async () => {
    const logits = uniform(3 * 4, 21, -2, 2);
    const onehot = new Float32Array(12);
    [1, 3, 0].forEach((c, i) => (onehot[i * 4 + c] = 1));
    const got = await tidy(() => softCrossEntropy(Tensor.from(logits, [3, 4]), Tensor.from(onehot, [3, 4]))).item();
    let want = 0;
    [1, 3, 0].forEach((c, i) => {
      const row = Array.from(logits.subarray(i * 4, i * 4 + 4));
      const mx = Math.max(...row);
      want += (Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0)) + mx - row[c]!) / 3;
    });
    expect(got).toBeCloseTo(want, 4);
  });
});

describe('mf fuse', () => {
  const shape: Vec3 = [20, 24, 18];
  const a = path.join(dir, 'IXI901-A-T1.nii');
  const b = path.join(dir, 'IXI902-B-T1.nii');
  beforeAll(() => {
    writeNifti(a, { shape, data: Float32Array.from(uniform(20 * 24 * 18, 31, 0, 1)) });
    writeNifti(b, { shape, data: Float32Array.from(uniform(20 * 24 * 18, 32, 0, 1)) });
  });

  it('--raw keeps every slice of both sources bit for bit and labels the fusion with the slice-weighted age', () => {
    const out = path.join(dir, 'fused.nii.gz');
    const r = mf(['fuse', a, b, '--raw', '--as-is', '--axis', '1', '--k', '9', '--ages', '30,70', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/RawBrainFuse/);
    const f = readNifti(out);
    const A = readNifti(a);
    const B = readNifti(b);
    expect(f.shape).toEqual(shape);
    for (let s = 0; s < 24; s++) expect(getSlice(f, 1, s), `slice ${s}`).toEqual(getSlice(s < 9 ? A : B, 1, s));
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'fused.json'), 'utf8'));
    expect(meta.mode).toBe('RawBrainFuse');
    expect(meta.age).toBeCloseTo((9 / 24) * 30 + (15 / 24) * 70, 3);
    expect(meta.generation).toBe(1);
    expect(meta.smoothness).toHaveLength(1);
    expect(typeof meta.plausible).toBe('boolean');
    expect(fs.existsSync(path.join(dir, 'fused.png'))).toBe(true);
    // The fused volume is generation 1: fusing it again is refused unless asked for.
    const again = mf(['fuse', out, a, '--raw', '--as-is', '--axis', '1', '--out', path.join(dir, 'again.nii.gz')]);
    expect(again.status).not.toBe(0);
    expect(again.stderr).toMatch(/generation-1/);
  });

  it('--count makes random fusions, reports how many the plausibility filter kept and writes each with its label', () => {
    const out = path.join(dir, 'many');
    const r = mf([
      'fuse',
      a,
      b,
      '--count',
      '3',
      '--linear',
      '--as-is',
      '--transition',
      '3',
      '--ages',
      '30,70',
      '--seed',
      '4',
      '--threshold',
      '100',
      '--out',
      out,
      '--json',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
    expect(summary.kept).toBe(3);
    expect(summary.rejected).toBe(0);
    expect(summary.proposed).toBe(3);
    for (const f of summary.files) expect(fs.existsSync(f.file)).toBe(true);
    expect(fs.existsSync(path.join(out, 'montage.png'))).toBe(true);
    // A strict threshold rejects the random seams, and the counts say so.
    const strict = mf(['fuse', a, b, '--count', '2', '--raw', '--as-is', '--threshold', '0.01', '--out', path.join(dir, 'none'), '--json']);
    expect(strict.status, strict.stderr).toBe(0);
    const s2 = JSON.parse(fs.readFileSync(path.join(dir, 'none', 'summary.json'), 'utf8'));
    expect(s2.kept).toBe(0);
    expect(s2.rejected).toBe(s2.proposed);
    expect(strict.stderr).toMatch(/only 0 of 2 fusions passed/);
  });

  it.skipIf(!sharedData)(`real IXI: --raw fusion of two subjects by id keeps their preprocessed slices exactly${SHARED_SKIP}`, () => {
    const data = path.join(sharedData ?? '', 'brain');
    const cache = path.join(dir, 'ixi-cache');
    const out = path.join(dir, 'ixi.nii.gz');
    const r = mf([
      'fuse',
      'IXI057',
      'IXI259',
      '--raw',
      '--shape',
      '32',
      '--k',
      '14',
      '--data-dir',
      data,
      '--cache-dir',
      cache,
      '--out',
      out,
      '--json',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const meta = JSON.parse(r.stdout);
    expect(meta.age).toBeCloseTo((14 / 32) * 28.1588 + (18 / 32) * 59.7837, 2);
    const f = readNifti(out);
    const A = preprocessBrain(meta.sources[0].file, { shape: [32, 32, 32], cacheDir: cache });
    const B = preprocessBrain(meta.sources[1].file, { shape: [32, 32, 32], cacheDir: cache });
    for (let s = 0; s < 32; s++) expect(getSlice(f, 2, s)).toEqual(getSlice(s < 14 ? A : B, 2, s));
  });
});

let ixiFolder: string | null = null;
/** The synthetic IXI folder (see syntheticIxiFolder), made once per file. */
function syntheticIxi(): string {
  ixiFolder ??= syntheticIxiFolder(path.join(dir, 'ixi'));
  return ixiFolder;
}

describe('slice-interpolation run', () => {
  it('a tiny run trains through the curriculum, writes the interpolator, metrics and report; mf fuse uses it for BrainFuse transitions', () => {
    const data = syntheticIxi();
    const exp = {
      name: 'tiny-interp',
      kind: 'brainfuse-interp',
      data: { data_dir: data, cache_dir: 'cache', shape: 16, split: { seed: 0, test: 3, val: 1 } },
      model: { base: 4, depth: 2, groups: 2 },
      training: { epochs: 2, steps_per_epoch: 3, batch_size: 4, lr: 0.003, weight_decay: 0, warmup_epochs: 0, seed: 0, log_every: 1 },
      interp: { gap: { start: 2, max: 4, every_epochs: 1 }, eval: { per_axis: 2 } },
    };
    const file = path.join(dir, 'tiny-interp.json');
    fs.writeFileSync(file, JSON.stringify(exp, null, 2));
    const run = path.join(dir, 'interp');
    const r = mf(['run', file, '--out', run, '--quiet']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/subject-level split \(seed 0\): train 6 .*; val 1 .*; test 3/);
    const metrics = JSON.parse(fs.readFileSync(path.join(run, 'metrics.json'), 'utf8')).interp;
    expect(metrics.steps).toBe(6);
    expect(metrics.shape).toBe(16);
    expect(metrics.split.test).toHaveLength(3);
    expect(Object.keys(metrics.by_gap)).toEqual(['2', '4']);
    for (const g of Object.values(metrics.by_gap) as { slices: number; model: { psnr: number; ssim: number }; model_better: number }[]) {
      expect(g.slices).toBeGreaterThan(0);
      expect(Number.isFinite(g.model.psnr) && Number.isFinite(g.model.ssim)).toBe(true);
      expect(g.model_better).toBeGreaterThanOrEqual(0);
    }
    const log = fs
      .readFileSync(path.join(run, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(log.filter((x) => x.event === 'train').map((x) => x.max_gap)).toEqual([2, 2, 2, 4, 4, 4]);
    expect(log.filter((x) => x.event === 'val')).toHaveLength(2);
    const weights = readSafetensors(path.join(run, 'model.safetensors'));
    expect(weights.metadata.get('format')).toBe('brainfuse-interp');
    expect(weights.metadata.get('shape')).toBe('16');
    expect(weights.metadata.get('split')).toBe('{"seed":0,"test":3,"val":1}');
    for (const f of ['examples.png', 'loss.svg', 'val_psnr.svg']) expect(fs.existsSync(path.join(run, f)), f).toBe(true);
    expect(fs.readFileSync(path.join(run, 'report.md'), 'utf8')).toMatch(/\| 4 \| \d+ \| [\d.]+ \| [\d.]+ \|/);

    // `mf fuse` with this network: kept slices are the sources' exactly, the transition is the network's.
    const cache = path.join(run, 'cache');
    const out = path.join(dir, 'brainfuse.nii.gz');
    const f = mf([
      'fuse',
      'IXI100',
      'IXI102',
      '--data-dir',
      data,
      '--shape',
      '16',
      '--cache-dir',
      cache,
      '--checkpoint',
      run,
      '--transition',
      '3',
      '--k',
      '6',
      '--out',
      out,
      '--json',
    ]);
    expect(f.status, f.stderr).toBe(0);
    const meta = JSON.parse(f.stdout);
    expect(meta.mode).toBe('BrainFuse');
    expect(meta.age).toBeCloseTo((7.5 / 16) * 22 + (8.5 / 16) * 38, 3);
    const fused = readNifti(out);
    const A = preprocessBrain(meta.sources[0].file, { shape: [16, 16, 16], cacheDir: cache });
    const B = preprocessBrain(meta.sources[1].file, { shape: [16, 16, 16], cacheDir: cache });
    for (let k = 0; k < 16; k++) if (k < 6 || k >= 9) expect(getSlice(fused, 2, k), `slice ${k}`).toEqual(getSlice(k < 6 ? A : B, 2, k));
    expect(fused.shape).toEqual([16, 16, 16]);
    expect(fused.data.length).toBe(16 ** 3);
    expect(fused.data.every(Number.isFinite), 'fused volume finite').toBe(true);

    // The same fusion with --linear: same shape and kept slices, but the transition is the network's. An
    // untrained network is exactly the linear blend (zero output layer; bisection of a linear blend is linear),
    // so a difference in every transition slice shows the trained weights were loaded and used.
    const linOut = path.join(dir, 'brainfuse-linear.nii.gz');
    const args = ['fuse', 'IXI100', 'IXI102', '--data-dir', data, '--shape', '16', '--cache-dir', cache, '--transition', '3', '--k', '6'];
    const l = mf([...args, '--linear', '--out', linOut, '--json']);
    expect(l.status, l.stderr).toBe(0);
    expect(JSON.parse(l.stdout).mode).toBe('BrainFuse-linear');
    const linear = readNifti(linOut);
    expect(linear.shape).toEqual(fused.shape);
    for (let k = 0; k < 16; k++) {
      const a = getSlice(fused, 2, k);
      const b = getSlice(linear, 2, k);
      const diff = a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
      if (k < 6 || k >= 9) expect(diff, `kept slice ${k}`).toBe(0);
      else expect(diff, `transition slice ${k}: network vs linear`).toBeGreaterThan(5e-4);
    }
  }, 600_000);
});

describe('brain-age study', () => {
  it('a tiny two-channel study (1 seed, 2 epochs) runs end to end and reports top-1/3/5 next to the thesis', () => {
    const data = syntheticIxi();
    const exp = {
      name: 'tiny-brainage',
      kind: 'brainage',
      data: { data_dir: data, cache_dir: 'cache', shape: 16, split: { seed: 0, test: 3, val: 1 }, size: 16, modalities: ['T1', 'T2'] },
      model: { width: 4, blocks: [1, 1], groups: 2 },
      training: { epochs: 2, batch_size: 4, lr: 0.003, weight_decay: 0, warmup_epochs: 0, seed: 0, log_every: 1, steps_per_epoch: 2 },
      study: { arms: ['NT', 'NT+BT+BrainFuse', 'NT+RawBrainFuse+ConsistencyReg'], seeds: 1 },
      bt: { steps_per_epoch: 2, dim: 8 },
      fusion: { interp_run: null, per_subject: 1, transition: 3, threshold: 100 },
    };
    const file = path.join(dir, 'tiny-brainage.json');
    fs.writeFileSync(file, JSON.stringify(exp, null, 2));
    const out = path.join(dir, 'study');
    const r = mf(['run', file, '--out', out, '--quiet']);
    expect(r.status, r.stderr).toBe(0);
    const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    const arms = metrics.brainage.arms as Record<string, Record<string, [number, number]>>;
    expect(Object.keys(arms)).toEqual(['NT', 'NT+BT+BrainFuse', 'NT+RawBrainFuse+ConsistencyReg']);
    for (const a of Object.values(arms)) {
      for (const k of ['top1', 'top3', 'top5']) {
        expect(a[k]![0]).toBeGreaterThanOrEqual(0);
        expect(a[k]![0]).toBeLessThanOrEqual(100);
        expect(a[k]![1]).toBe(0); // one seed
      }
      expect(a.top1![0]).toBeLessThanOrEqual(a.top3![0]!);
      expect(a.top3![0]).toBeLessThanOrEqual(a.top5![0]!);
    }
    expect(metrics.brainage.split.test).toHaveLength(3);
    // Every subject's (first-modality) volume, read from disk, in the provenance record.
    const split = metrics.brainage.split;
    const source = metrics.brainage.data_source;
    expect(source.origin).toBe('files');
    expect(source.files).toHaveLength(split.train.length + split.val.length + split.test.length);
    for (const f of source.files) expect(f.bytes).toBe(fs.statSync(f.path).size);
    expect(metrics.brainage.input).toBe('16³ × 2 (T1, T2) (preprocessed at 16³, averaged 1×)');
    expect(
      metrics.brainage.fusion.map((f: { mode: string; kept: number; filtered: boolean; proposed: number }) => [
        f.mode,
        f.kept,
        f.filtered,
        f.proposed,
      ]),
    ).toEqual([
      ['BrainFuse', 6, true, 6],
      ['RawBrainFuse', 6, false, 6],
    ]);
    // Barlow Twins saw the 6 training volumes and 4 fused ones per real one, chains re-fused up to generation 2.
    const ssl = metrics.brainage.ssl;
    expect([ssl.real, ssl.fused, ssl.max_generation]).toEqual([6, 24, 2]);
    const sslFusions = JSON.parse(fs.readFileSync(path.join(out, 'ssl-fusions.json'), 'utf8')) as {
      generation: number;
      sources: string[];
    }[];
    expect(sslFusions).toHaveLength(24);
    expect(sslFusions.every((x) => x.generation >= 1 && x.generation <= 2 && x.sources.length >= 2 && x.sources.length <= 4)).toBe(true);
    expect(metrics.thesis.table.NT.top1).toEqual([32.1, 0.27]);
    const report = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
    expect(report).toMatch(/demonstration, not a reproduction/);
    expect(report).toMatch(
      /\| NT \| [\d.]+ ± [\d.]+ \| [\d.]+ ± [\d.]+ \| [\d.]+ ± [\d.]+ \| [\d.]+ \| [\d.]+ \| 32\.10 ± 0\.27 \| 53\.80 ± 0\.18 \| 64\.21 ± 0\.32 \|/,
    );
    expect(report).toMatch(/subject-level split/);
    expect(report).toMatch(/with 2 channel\(s\) \(T1, T2;/);
    expect(report).toMatch(/on the 6 training volumes and 24 unlabelled fused ones \(4 per real volume/);
    expect(report).toMatch(/RawBrainFuse is not \(fusion\.filter_raw false\)/);
    const study = JSON.parse(fs.readFileSync(path.join(out, 'study.json'), 'utf8'));
    expect(Object.keys(study.phases)).toEqual(['BT-s0', 'NT-s0', 'NT+BT+BrainFuse-s0', 'NT+RawBrainFuse+ConsistencyReg-s0']);
    // Running again without --resume refuses; with --resume every phase is already done and nothing retrains.
    const again = mf(['run', file, '--out', out, '--quiet']);
    expect(again.status).not.toBe(0);
    expect(again.stderr).toMatch(/already holds a run|already holds a brain-age study/);
    const resumed = mf(['run', file, '--out', out, '--quiet', '--resume']);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stderr).not.toMatch(/^--- /m);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8')).brainage.arms).toEqual(arms);
  }, 600_000);
});
