import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import { augmentPolicy, normalizeU8 } from '../../src/data/augment.ts';
import type { LoadedSplit } from '../../src/data/dataset.ts';
import { BatchLoader, type Batch, type BatchLoaderOptions } from '../../src/data/loader.ts';
import { getDataset } from '../../src/data/registry.ts';
import { Rng } from '../../src/util/rng.ts';

/** A small in-memory split: sample i has label i % classes and pixels seeded by i. */
function fakeSplit(n: number, shape: number[], key = 'synthetic2d'): LoadedSplit {
  const L = shape.reduce((a, b) => a * b, 1);
  const r = new Rng(99);
  const images = Uint8Array.from({ length: n * L }, () => r.int(256));
  const labels = Int32Array.from({ length: n }, (_, i) => i % 4);
  return { ds: getDataset(key), split: 'train', size: shape[1]!, file: 'fake.npz', n, images, labels, numLabels: 1, shape };
}

async function take(l: BatchLoader, k: number): Promise<Batch[]> {
  const out: Batch[] = [];
  for (let i = 0; i < k; i++) out.push(await l.next());
  return out;
}

function sameBatches(a: Batch[], b: Batch[]): void {
  expect(b.length).toBe(a.length);
  for (let i = 0; i < a.length; i++) {
    expect([b[i]!.epoch, b[i]!.batchIndex]).toEqual([a[i]!.epoch, a[i]!.batchIndex]);
    expect(b[i]!.indices).toEqual(a[i]!.indices);
    expect(b[i]!.labels).toEqual(a[i]!.labels);
    expect(b[i]!.x).toEqual(a[i]!.x);
  }
}

describe('BatchLoader', () => {
  const data = fakeSplit(50, [1, 8, 8]);

  it('covers every sample once per epoch, with a smaller last batch', async () => {
    const l = new BatchLoader(data, { batchSize: 16, seed: 1 });
    expect(l.batchesPerEpoch).toBe(4);
    const seen: number[] = [];
    for await (const b of l.epoch()) {
      seen.push(...b.indices);
      expect(b.shape).toEqual([b.size, 1, 8, 8]);
      expect(b.x.length).toBe(b.size * 64);
      for (let j = 0; j < b.size; j++) expect(b.labels[j]).toBe(b.indices[j]! % 4);
    }
    expect(seen.length).toBe(50);
    expect(new Set(seen).size).toBe(50);
    expect(l.position()).toEqual({ epoch: 1, batchIndex: 0 });
    const dl = new BatchLoader(data, { batchSize: 16, seed: 1, dropLast: true });
    expect(dl.batchesPerEpoch).toBe(3);
    const sizes = (await take(dl, 4)).map((b) => [b.epoch, b.size, b.last]);
    expect(sizes).toEqual([
      [0, 16, false],
      [0, 16, false],
      [0, 16, true],
      [1, 16, false],
    ]);
  });

  it('shuffles per epoch from the seed; no shuffle keeps file order; no augmentation is plain normalisation', async () => {
    const a = new BatchLoader(data, { batchSize: 50, seed: 1 });
    const [e0, e1] = await take(a, 2);
    expect(e0!.indices).not.toEqual(e1!.indices);
    const [f0] = await take(new BatchLoader(data, { batchSize: 50, seed: 1 }), 1);
    expect(f0!.indices).toEqual(e0!.indices);
    const [g0] = await take(new BatchLoader(data, { batchSize: 50, seed: 2 }), 1);
    expect(g0!.indices).not.toEqual(e0!.indices);
    const [h0] = await take(new BatchLoader(data, { batchSize: 50, seed: 1, shuffle: false }), 1);
    expect(Array.from(h0!.indices)).toEqual([...Array(50).keys()]);
    expect(h0!.x).toEqual(normalizeU8(data.images));
  });

  const ra2 = augmentPolicy('thesis', 2, 8);
  const cases: [string, LoadedSplit, BatchLoaderOptions][] = [
    ['2D, augmented', data, { batchSize: 16, seed: 7, augment: ra2 }],
    ['2D, flips-rotations policy', data, { batchSize: 16, seed: 7, augment: augmentPolicy('flips-rotations', 2, 8) }],
    ['2D, dropLast, no prefetch', data, { batchSize: 12, seed: 7, dropLast: true, prefetch: false, augment: ra2 }],
    [
      '3D, augmented',
      fakeSplit(10, [1, 6, 6, 6], 'synthetic3d'),
      { batchSize: 4, seed: 3, augment: augmentPolicy('flips-rotations', 3, 6) },
    ],
  ];
  for (const [name, split, opts] of cases) {
    it(`seek/resume gives the batches of an uninterrupted run (${name})`, async () => {
      const full = new BatchLoader(split, opts);
      const total = full.batchesPerEpoch * 3;
      const all = await take(full, total);
      expect(all.every((b) => b.x.every((v) => v >= -1 && v <= 1))).toBe(true);
      // Augmentations differ across epochs for the same sample.
      expect(all[0]!.x).not.toEqual(all[full.batchesPerEpoch]!.x);
      for (const stop of [1, full.batchesPerEpoch, full.batchesPerEpoch + 1, total - 1]) {
        const { epoch, batchIndex } = all[stop]!;
        const resumed = new BatchLoader(split, opts);
        resumed.seek(epoch, batchIndex);
        expect(resumed.position()).toEqual({ epoch, batchIndex });
        sameBatches(all.slice(stop), await take(resumed, total - stop));
      }
      // Seeking back on a live loader (dropping its prefetch) also works.
      const live = new BatchLoader(split, opts);
      await take(live, 3);
      live.seek(0, 0);
      sameBatches(all.slice(0, 4), await take(live, 4));
    });
  }

  it('prefetching does not change the batches', async () => {
    const opts = { batchSize: 16, seed: 5, augment: augmentPolicy('thesis', 2, 8) };
    sameBatches(await take(new BatchLoader(data, { ...opts, prefetch: false }), 7), await take(new BatchLoader(data, opts), 7));
  });

  it('rejects bad sizes and positions', () => {
    expect(() => new BatchLoader(data, { batchSize: 0, seed: 1 })).toThrow(ConfigError);
    expect(() => new BatchLoader(data, { batchSize: 64, seed: 1, dropLast: true })).toThrow(/larger than the 50 samples/);
    const l = new BatchLoader(data, { batchSize: 16, seed: 1 });
    expect(() => l.seek(0, 5)).toThrow(ConfigError);
    expect(() => l.seek(-1, 0)).toThrow(ConfigError);
    l.seek(2, 4); // the end of epoch 2 is the start of epoch 3
    expect(l.position()).toEqual({ epoch: 3, batchIndex: 0 });
    expect(
      () => new BatchLoader(fakeSplit(4, [1, 4, 4, 4], 'synthetic3d'), { batchSize: 4, seed: 1, augment: augmentPolicy('thesis', 2, 4) }),
    ).toThrow(/2D data only/);
  });
});
