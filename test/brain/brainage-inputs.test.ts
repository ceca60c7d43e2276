// What the brain-age study feeds its networks: the fused volumes of the Barlow Twins stage (chains of several
// brains, re-fused up to a generation limit, deterministic by seed), the RawBrainFuse arm unfiltered unless
// fusion.filter_raw, and multi-channel input (one channel per MRI modality, aligned on the first one's grid)
// through the loader and the 3D ResNet. Synthetic volumes only; the linear transition needs no device.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fuseChain, type TransitionMaker } from '../../src/brain/fusion.ts';
import { augmentVolume, downsampleVolume } from '../../src/brain/sampling.ts';
import { loadBrainSubjects } from '../../src/brain/subjects.ts';
import { preprocessBrain } from '../../src/data/brain.ts';
import { getSlice } from '../../src/data/fuse.ts';
import { writeNifti, type Vec3 } from '../../src/data/nifti.ts';
import { ConfigError, ShapeError } from '../../src/errors.ts';
import type { Sample } from '../../src/kinds/brainage/arms.ts';
import { chainSeams, countBy, makeFusions, makeSslFusions, type SslFusionSettings } from '../../src/kinds/brainage/fusions.ts';
import type { BrainAgeSettings } from '../../src/kinds/brainage/schema.ts';
import { validateExperiment } from '../../src/kinds/index.ts';
import { ResNet3d } from '../../src/models/resnet3d.ts';
import { ParameterStore } from '../../src/nn/parameters.ts';
import { setBackend, Tensor } from '../../src/tensor/tensor.ts';
import { Rng } from '../../src/util/rng.ts';
import { cpu } from '../helpers.ts';
import { blobVolume, tempDir } from './helpers.ts';

const N = 16;
const V = N ** 3;
const LINEAR: TransitionMaker = { kind: 'linear' };

/** `count` distinct brain-ish [channels, N³] volumes (each channel its own contrast). */
function volumes(count: number, channels = 1): { id: string; age: number; volume: Float32Array }[] {
  return Array.from({ length: count }, (_, i) => {
    const volume = new Float32Array(channels * V);
    for (let c = 0; c < channels; c++) {
      const b = blobVolume([N, N, N], [7.5 + (i % 3) - 1, 7.5, 7.5 - (i % 2)], [5 + (i % 3), 6, 5], 1);
      volume.set(
        b.map((x) => (x > 0 ? Math.min(1, (c + 1) * 0.3 * x + 0.02 * i) : 0)),
        c * V,
      );
    }
    return { id: `S${i}`, age: 20 + 5 * i, volume };
  });
}

const SSL: SslFusionSettings = { count: 24, chain: [2, 4], max_generation: 2, axes: [0, 1, 2], transition: 3, seed: 7 };

describe('fused volumes for Barlow Twins', () => {
  it('makes fused_per_real · real volumes, chains of 2..4 brains, re-fused only up to the generation limit', async () => {
    const real = volumes(6);
    const out = await makeSslFusions(real, { n: N, channels: 1 }, SSL, LINEAR);
    expect(out).toHaveLength(24);
    const ids = new Set(real.map((r) => r.id));
    const byId = new Map(out.map((x) => [x.id, x]));
    for (const x of out) {
      expect(x.sources.length).toBeGreaterThanOrEqual(2);
      expect(x.sources.length).toBeLessThanOrEqual(4);
      expect(new Set(x.sources).size).toBe(x.sources.length);
      expect(x.ks).toHaveLength(x.sources.length - 1);
      // A fused volume is one generation above its newest source, and never above the limit.
      const srcGen = x.sources.map((s) => (ids.has(s) ? 0 : byId.get(s)!.generation));
      expect(x.generation).toBe(Math.max(...srcGen) + 1);
      expect(x.generation).toBeLessThanOrEqual(2);
      expect(x.volume).toHaveLength(V);
    }
    // Every chain length and both generations occur, so the settings do something.
    expect(Object.keys(countBy(out.map((x) => x.sources.length)))).toEqual(['2', '3', '4']);
    expect(Object.keys(countBy(out.map((x) => x.generation)))).toEqual(['1', '2']);
    // The first source's slices up to the first seam are kept bit for bit.
    const first = out.find((x) => ids.has(x.sources[0]!))!;
    const src = real.find((r) => r.id === first.sources[0])!;
    for (let k = 0; k < first.ks[0]!; k++) {
      expect(getSlice({ shape: [N, N, N], data: first.volume }, first.axis, k)).toEqual(
        getSlice({ shape: [N, N, N], data: src.volume }, first.axis, k),
      );
    }
  });

  it('generation limit 1 fuses real scans only; chain [3, 3] makes chains of exactly 3', async () => {
    const real = volumes(5);
    const out = await makeSslFusions(real, { n: N, channels: 1 }, { ...SSL, count: 10, max_generation: 1, chain: [3, 3] }, LINEAR);
    expect(out.map((x) => x.generation)).toEqual(new Array(10).fill(1));
    expect(out.every((x) => x.sources.length === 3 && x.sources.every((s) => s.startsWith('S')))).toBe(true);
  });

  it('is deterministic for a seed and changes with it', async () => {
    const real = volumes(4);
    const g = { n: N, channels: 1 };
    const a = await makeSslFusions(real, g, { ...SSL, count: 6 }, LINEAR);
    const b = await makeSslFusions(real, g, { ...SSL, count: 6 }, LINEAR);
    const c = await makeSslFusions(real, g, { ...SSL, count: 6, seed: 8 }, LINEAR);
    expect(b.map((x) => [x.sources, x.axis, x.ks])).toEqual(a.map((x) => [x.sources, x.axis, x.ks]));
    b.forEach((x, i) => expect(x.volume).toEqual(a[i]!.volume));
    expect(c.map((x) => [x.sources, x.axis, x.ks])).not.toEqual(a.map((x) => [x.sources, x.axis, x.ks]));
  });

  it('fuses every channel at the same seams: channel c of the result is channel c fused alone', async () => {
    const real = volumes(4, 3);
    const [x] = await makeSslFusions(real, { n: N, channels: 3 }, { ...SSL, count: 1 }, LINEAR);
    expect(x!.volume).toHaveLength(3 * V);
    const srcs = x!.sources.map((s) => real.find((r) => r.id === s)!);
    for (let c = 0; c < 3; c++) {
      const alone = await fuseChain(
        srcs.map((s) => ({ shape: [N, N, N] as Vec3, data: s.volume.slice(c * V, (c + 1) * V) })),
        { axis: x!.axis, ks: x!.ks, transition: SSL.transition, maxGeneration: 0 },
        LINEAR,
      );
      expect(x!.volume.subarray(c * V, (c + 1) * V)).toEqual(alone.data);
    }
  });

  it('chain seams leave every brain a slice and every transition room, for any draw', () => {
    const rng = new Rng(3);
    for (let trial = 0; trial < 300; trial++) {
      const L = 2 + rng.int(4);
      const t = rng.int(5);
      const n = L * (t + 1) + rng.int(40);
      const ks = chainSeams(n, L, t, rng);
      expect(ks).toHaveLength(L - 1);
      expect(ks[0]).toBeGreaterThanOrEqual(1);
      for (let i = 1; i < ks.length; i++) expect(ks[i]! - ks[i - 1]!).toBeGreaterThanOrEqual(t + 1);
      expect(ks.at(-1)! + t).toBeLessThanOrEqual(n - 1);
    }
  });
});

/** Settings of a tiny study from the file's sections, resolved by the kind's own schema. */
function settings(fusion: Record<string, unknown>): BrainAgeSettings {
  const raw = {
    name: 'a',
    kind: 'brainage',
    data: { shape: N },
    training: { epochs: 1, batch_size: 2, lr: 0.001, weight_decay: 0, warmup_epochs: 0 },
    fusion: { per_subject: 2, transition: 3, axes: [2], ...fusion },
  };
  return validateExperiment(raw, 'x.json').settings as BrainAgeSettings;
}

describe('fused volumes for the arms', () => {
  // A seam threshold no concatenation of two different brains passes, so the filter's effect is visible.
  const train: Sample[] = volumes(5);
  const run = (fusion: Record<string, unknown>) =>
    makeFusions(
      train,
      { n: N, channels: 1 },
      settings(fusion),
      new Set(['interp', 'raw'] as const),
      { maker: LINEAR, transition: 'linear' },
      () => {},
    );

  it('RawBrainFuse is unfiltered by default: the first proposals are kept, implausible seams and all', async () => {
    const [bf, raw] = await run({ threshold: 1.01 });
    expect(raw!.filtered).toBe(false);
    expect([raw!.kept, raw!.proposed, raw!.rejected]).toEqual([10, 10, 0]);
    expect(raw!.implausible).toBeGreaterThan(0);
    expect(raw!.samples.filter((x) => x.smoothness > 1.01)).toHaveLength(raw!.implausible);
    // BrainFuse stays filtered: what it keeps passes the threshold.
    expect(bf!.filtered).toBe(true);
    expect(bf!.implausible).toBe(0);
    expect(bf!.samples.every((x) => x.smoothness <= 1.01)).toBe(true);
    expect(bf!.rejected).toBe(bf!.proposed - bf!.kept);
  });

  it('fusion.filter_raw applies the plausibility filter to RawBrainFuse as well', async () => {
    const [, raw] = await run({ threshold: 1.01, filter_raw: true });
    expect(raw!.filtered).toBe(true);
    expect(raw!.implausible).toBe(0);
    expect(raw!.rejected).toBeGreaterThan(0);
    expect(raw!.samples.every((x) => x.smoothness <= 1.01)).toBe(true);
  });
});

describe('multi-channel input', () => {
  const dir = tempDir('mf-brain-modalities-');
  const shape: Vec3 = [40, 40, 40];
  const subjects = [
    { id: 'IXI101', age: 30 },
    { id: 'IXI102', age: 60 },
  ];
  // T1 a bright blob; T2 and PD the same anatomy with other contrasts, PD also with a bright speck in a corner
  // that would pull a grid centred on PD's own foreground off the T1's.
  const write = (root: string, skipPd: string | null) => {
    fs.mkdirSync(root, { recursive: true });
    const rows = ['ixi_id,age_years,file'];
    subjects.forEach(({ id, age }, i) => {
      const blob = blobVolume(shape, [20 + i, 19, 21], [14, 16, 13], 1000);
      const base = `${id}-Synth-${i}`;
      writeNifti(path.join(root, `${base}-T1.nii.gz`), { shape, data: blob, spacing: [4, 4, 4] });
      writeNifti(path.join(root, `${base}-T2.nii.gz`), { shape, data: blob.map((x) => (x > 0 ? 1500 - x : 0)), spacing: [4, 4, 4] });
      if (id !== skipPd) {
        const pd = blob.map((x) => 0.5 * x);
        for (let z = 34; z < 40; z++) for (let y = 34; y < 40; y++) for (let x = 34; x < 40; x++) pd[x + 40 * (y + 40 * z)] = 2000;
        writeNifti(path.join(root, `${base}-PD.nii.gz`), { shape, data: pd, spacing: [4, 4, 4] });
      }
      rows.push(`${id.slice(3)},${age},${base}-T1.nii.gz`);
    });
    fs.writeFileSync(path.join(root, 'ixi_subjects.csv'), `${rows.join('\n')}\n`);
  };
  const paths = (root: string) => ({ dataDir: root, subjectsCsv: path.join(root, 'ixi_subjects.csv'), cacheDir: path.join(root, 'cache') });
  /** Intensity-weighted centre along x of an N³ channel. */
  const centroidX = (v: Float32Array) => {
    let s = 0;
    let w = 0;
    for (let i = 0; i < v.length; i++) (s += (i % N) * v[i]!), (w += v[i]!);
    return s / w;
  };

  it('stacks the modalities as channels, T1 first, every one on the T1 grid', () => {
    const root = path.join(dir, 'full');
    write(root, null);
    const [one] = loadBrainSubjects(paths(root), N, { needAges: true });
    const [three] = loadBrainSubjects(paths(root), N, { needAges: true, modalities: ['T1', 'T2', 'PD'] });
    expect(one!.volume).toHaveLength(V);
    expect(three!.volume).toHaveLength(3 * V);
    expect(three!.volume.subarray(0, V)).toEqual(one!.volume);
    expect(three!.file).toMatch(/-T1\.nii\.gz$/);
    const [t1, t2, pd] = [0, 1, 2].map((c) => three!.volume.slice(c * V, (c + 1) * V));
    expect(t2).not.toEqual(t1);
    // T2 and PD sit where T1 does: the brain's centre is in the same voxel.
    const masked = (v: Float32Array) => v.map((x, i) => (t1![i]! > 0 ? x : 0));
    expect(Math.abs(centroidX(masked(t2!)) - centroidX(t1!))).toBeLessThan(0.5);
    expect(Math.abs(centroidX(masked(pd!)) - centroidX(t1!))).toBeLessThan(0.5);
    // Centred on its own foreground (the speck included), PD alone lands elsewhere: the shared grid matters.
    const pdFile = path.join(root, `${subjects[0]!.id}-Synth-0-PD.nii.gz`);
    const own = preprocessBrain(pdFile, { shape: [N, N, N] }).data;
    const ownMasked = own.map((x, i) => (t1![i]! > 0 ? x : 0));
    expect(Math.abs(centroidX(ownMasked) - centroidX(t1!))).toBeGreaterThan(0.5);
  });

  it('a missing modality file is one line naming the file looked for and the fix', () => {
    const root = path.join(dir, 'nopd');
    write(root, 'IXI102');
    let msg = '';
    try {
      loadBrainSubjects(paths(root), N, { needAges: true, modalities: ['T1', 'T2', 'PD'] });
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      msg = (e as Error).message;
    }
    expect(msg).not.toContain('\n');
    expect(msg).toContain(`IXI102: no PD volume: ${path.join(root, 'IXI102-Synth-1-PD.nii.gz')} does not exist`);
    expect(msg).toMatch(/remove "PD" from data\.modalities/);
    // Without PD the same folder loads.
    expect(loadBrainSubjects(paths(root), N, { needAges: true, modalities: ['T1', 'T2'] })[1]!.volume).toHaveLength(2 * V);
  });

  it('downsampling and augmentation work channel by channel, with one flip and shift for all channels', () => {
    const [s] = volumes(1, 2);
    const d = downsampleVolume(s!.volume, N, 2, 2);
    expect(d).toHaveLength(2 * (N / 2) ** 3);
    expect(d.subarray((N / 2) ** 3)).toEqual(downsampleVolume(s!.volume.slice(V), N, 2));
    const a = augmentVolume(s!.volume, N, new Rng(5), 2);
    // Same geometry: the nonzero voxels of both channels coincide (both channels share the blob's support).
    const nz = (v: Float32Array) => Array.from(v, (x) => (x > 0 ? 1 : 0)).join('');
    expect(nz(a.subarray(0, V))).toBe(nz(a.subarray(V)));
    expect(nz(a.subarray(0, V))).not.toBe(nz(s!.volume.subarray(0, V)));
    expect(() => augmentVolume(s!.volume, N, new Rng(5), 3)).toThrow(/are not 3 × 16³/);
  });

  it("the 3D ResNet's stem takes C channels and refuses another count", async () => {
    setBackend(cpu);
    const store = new ParameterStore(0);
    const model = new ResNet3d(store, { width: 4, blocks: [1], groups: 2 }, 5, 3);
    store.finalize();
    const weights = await store.export();
    expect(weights.get('backbone.stem.weight')?.shape).toEqual([4, 3, 3, 3, 3]);
    const x = Tensor.from(
      new Float32Array(2 * 3 * 8 ** 3).map((_, i) => (i % 7) / 7),
      [2, 3, 8, 8, 8],
    );
    const logits = model.forward(x);
    expect(logits.shape).toEqual([2, 5]);
    expect((await logits.data()).every(Number.isFinite)).toBe(true);
    expect(() => model.forward(Tensor.from(new Float32Array(2 * 8 ** 3), [2, 1, 8, 8, 8]))).toThrow(ShapeError);
    store.dispose();
  });
});
