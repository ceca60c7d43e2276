// loadLabels: one split's labels without its images, for the majority-class baseline of `mf eval`. The labels and
// the baseline are loadSplit's; the images are not read (a file whose train images are damaged still gives its
// train labels); the label checks and the official counts still apply.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadLabels, loadSplit } from '../../src/data/dataset.ts';
import { type NpyArray, writeNpz } from '../../src/data/npz.ts';
import { numOutputs } from '../../src/data/registry.ts';
import { FileFormatError } from '../../src/errors.ts';
import { majorityAccuracy } from '../../src/train/metrics.ts';
import { SHARED_SKIP, sharedData, tempDir } from './helpers.ts';

const u8 = (shape: number[], f: (i: number) => number): NpyArray => ({
  dtype: '|u1',
  shape,
  data: Uint8Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => f(i)),
});

describe('loadLabels', () => {
  it("gives loadSplit's labels, and so the same majority-class baseline, for the synthetic set", () => {
    const root = tempDir();
    const train = loadSplit('synthetic2d', 'train', { root });
    const test = loadSplit('synthetic2d', 'test', { root });
    const labels = loadLabels('synthetic2d', 'train', { root });
    expect(labels.n).toBe(train.n);
    expect(labels.numLabels).toBe(1);
    expect(labels.labels).toEqual(train.labels);
    const k = numOutputs(train.ds);
    expect(majorityAccuracy(train.ds.task, labels, test.labels, test.n, k)).toBe(
      majorityAccuracy(train.ds.task, train, test.labels, test.n, k),
    );
  });

  it.skipIf(!sharedData)(`gives loadSplit's labels for the real RetinaMNIST train split${SHARED_SKIP}`, () => {
    const a = loadLabels('retinamnist', 'train', { root: sharedData! });
    expect(a.n).toBe(1080);
    expect(a.labels).toEqual(loadSplit('retinamnist', 'train', { root: sharedData! }).labels);
  });

  it('does not read the images: a file whose train images are damaged still gives its train labels', () => {
    const root = tempDir();
    const n = [546, 78, 156];
    const arrays: Record<string, NpyArray> = {};
    (['train', 'val', 'test'] as const).forEach((s, i) => {
      // 0xab fills the train images only, so the first run of it in the stored (uncompressed) zip is their payload.
      arrays[`${s}_images`] = u8([n[i]!, 28, 28], () => (s === 'train' ? 0xab : 7));
      arrays[`${s}_labels`] = u8([n[i]!, 1], (j) => j % 2);
    });
    const file = join(root, 'breastmnist.npz');
    writeNpz(file, arrays);
    const bytes = new Uint8Array(readFileSync(file));
    const at = bytes.findIndex((b, i) => b === 0xab && bytes[i + 1] === 0xab && bytes[i + 2] === 0xab);
    bytes[at + 100] = 0;
    writeFileSync(file, bytes);
    expect(() => loadSplit('breastmnist', 'train', { root })).toThrow(/train_images.*CRC-32 mismatch/);
    const labels = loadLabels('breastmnist', 'train', { root });
    expect(labels.n).toBe(546);
    expect(Array.from(labels.labels.subarray(0, 4))).toEqual([0, 1, 0, 1]);
  });

  it('keeps the label checks: the official count and the label range', () => {
    const root = tempDir();
    const file = join(root, 'breastmnist.npz');
    writeNpz(file, { train_labels: u8([10, 1], (j) => j % 2) });
    expect(() => loadLabels('breastmnist', 'train', { root })).toThrow(/train_labels\]: 10 samples, BreastMNIST train has 546/);
    expect(loadLabels('breastmnist', 'train', { root, strictCounts: false }).n).toBe(10);
    writeNpz(file, { train_labels: u8([546, 1], (j) => (j === 3 ? 2 : 0)) });
    expect(() => loadLabels('breastmnist', 'train', { root })).toThrow(FileFormatError);
    expect(() => loadLabels('breastmnist', 'train', { root })).toThrow(/row 3: label 2, expected 0\.\.1/);
  });
});
