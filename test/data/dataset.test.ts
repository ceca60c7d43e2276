import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileFormatError } from '../../src/errors.ts';
import { loadSplit, md5File, nhwcToNchw, resolveDataRoot } from '../../src/data/dataset.ts';
import { writeNpz, type NpyArray } from '../../src/data/npz.ts';
import { tempDir } from './helpers.ts';

const root = tempDir();
const u8 = (shape: number[], f: (i: number) => number = (i) => i % 251): NpyArray => ({
  dtype: '|u1',
  shape,
  data: Uint8Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => f(i)),
});

/** Writes `<key>.npz` with the three splits; `over` replaces individual arrays. */
function fakeFile(
  key: string,
  imgShape: (n: number) => number[],
  counts: [number, number, number],
  labelCols = 1,
  over: Record<string, NpyArray> = {},
): void {
  const arrays: Record<string, NpyArray> = {};
  (['train', 'val', 'test'] as const).forEach((s, i) => {
    const n = counts[i]!;
    arrays[`${s}_images`] = u8(imgShape(n));
    arrays[`${s}_labels`] = u8([n, labelCols], (j) => j % 2);
  });
  writeNpz(join(root, `${key}.npz`), { ...arrays, ...over });
}

function expectErr(fn: () => unknown, ...parts: (string | RegExp)[]): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(FileFormatError);
  const m = (err as Error).message;
  expect(m).not.toContain('\n');
  for (const p of parts) typeof p === 'string' ? expect(m).toContain(p) : expect(m).toMatch(p);
}

describe('loadSplit', () => {
  it('loads an official-layout 2D gray file and checks counts', () => {
    fakeFile('breastmnist', (n) => [n, 28, 28], [546, 78, 156]);
    const s = loadSplit('breastmnist', 'val', { root });
    expect(s.n).toBe(78);
    expect(s.shape).toEqual([1, 28, 28]);
    expect(s.images.length).toBe(78 * 784);
    expect(s.labels.length).toBe(78);
    expect(s.numLabels).toBe(1);
  });

  it('converts RGB NHWC to NCHW', () => {
    const n = 120;
    fakeFile('retinamnist', (k) => [k, 28, 28, 3], [1080, n, 400], 1, {
      val_images: u8([n, 28, 28, 3], (i) => (i % 3) * 100 + (Math.floor(i / 3) % 7)),
    });
    const s = loadSplit('retinamnist', 'val', { root });
    expect(s.shape).toEqual([3, 28, 28]);
    // channel c of pixel p of sample k was written as c*100 + (p % 7)
    for (const [k, c, p] of [
      [0, 0, 0],
      [5, 2, 300],
      [119, 1, 783],
    ] as const) {
      expect(s.images[k * 3 * 784 + c * 784 + p]).toBe(c * 100 + ((k * 784 + p) % 7));
    }
    expect(Array.from(nhwcToNchw(new Uint8Array([1, 2, 3, 4, 5, 6]), 1, 2, 3))).toEqual([1, 4, 2, 5, 3, 6]);
  });

  it('rejects wrong counts (unless strictCounts is off), shapes, dtypes and label ranges', () => {
    fakeFile('pneumoniamnist', (n) => [n, 28, 28], [7, 5, 6]);
    expectErr(() => loadSplit('pneumoniamnist', 'train', { root }), 'pneumoniamnist.npz', 'train_images', /7 samples.*4708/);
    expect(loadSplit('pneumoniamnist', 'train', { root, strictCounts: false }).n).toBe(7);
    // Below, small files with strictCounts off: the other checks do not depend on the counts.
    const loose = { root, strictCounts: false };

    fakeFile('dermamnist', (n) => [n, 28, 28], [7, 5, 6]); // gray where RGB is expected
    expectErr(() => loadSplit('dermamnist', 'test', loose), 'dermamnist.npz', 'test_images', /expected \(6, 28, 28, 3\)/);

    fakeFile('octmnist', (n) => [n, 28, 28], [7, 5, 6], 1, {
      test_images: { dtype: '<f4', shape: [6, 28, 28], data: new Float32Array(6 * 784) },
    });
    expectErr(() => loadSplit('octmnist', 'test', loose), 'octmnist.npz', 'test_images', /dtype <f4/);

    fakeFile('bloodmnist', (n) => [n, 28, 28, 3], [7, 5, 6], 1, { test_labels: u8([6, 1], (i) => (i === 3 ? 8 : 0)) });
    expectErr(() => loadSplit('bloodmnist', 'test', loose), 'bloodmnist.npz', 'test_labels', /row 3: label 8, expected 0..7/);

    fakeFile('fracturemnist3d', (n) => [n, 28, 28, 28], [7, 5, 6], 1, { val_labels: u8([4, 1]) });
    expectErr(() => loadSplit('fracturemnist3d', 'val', loose), 'fracturemnist3d.npz', 'val_labels', /expected \(5, 1\)/);

    expectErr(() => loadSplit('organmnist3d', 'val', { root }), 'organmnist3d.npz', /not found/);
  });

  it('handles multi-label (14 columns) and 3D volumes', () => {
    const loose = { root, strictCounts: false };
    fakeFile('chestmnist', (n) => [n, 28, 28], [7, 5, 6], 14);
    const c = loadSplit('chestmnist', 'val', loose);
    expect(c.numLabels).toBe(14);
    expect(c.labels.length).toBe(5 * 14);
    fakeFile('chestmnist', (n) => [n, 28, 28], [7, 5, 6], 14, { val_labels: u8([5, 14], (i) => (i === 20 ? 3 : 1)) });
    expectErr(() => loadSplit('chestmnist', 'val', loose), 'chestmnist.npz', /row 1: flag 6 is 3, expected 0 or 1/);
    fakeFile('nodulemnist3d', (n) => [n, 28, 28, 28], [7, 5, 6], 1);
    const v = loadSplit('nodulemnist3d', 'val', loose);
    expect(v.shape).toEqual([1, 28, 28, 28]);
    fakeFile('synapsemnist3d', (n) => [n, 28, 28, 28], [7, 5, 6], 1, { val_labels: u8([5, 1], () => 2) });
    expectErr(() => loadSplit('synapsemnist3d', 'val', loose), 'synapsemnist3d.npz', /label 2, expected 0..1 \(binary\)/);
  });
});

describe('resolveDataRoot and md5File', () => {
  const saved = process.env.MEDMNIST_ROOT;
  afterEach(() => {
    if (saved === undefined) delete process.env.MEDMNIST_ROOT;
    else process.env.MEDMNIST_ROOT = saved;
  });

  it('prefers the flag, then $MEDMNIST_ROOT, then ~/.medmnist', () => {
    process.env.MEDMNIST_ROOT = '/env/root';
    expect(resolveDataRoot('rel/dir')).toBe(resolve('rel/dir'));
    expect(resolveDataRoot()).toBe('/env/root');
    expect(resolveDataRoot('~/x')).toBe(join(homedir(), 'x'));
    delete process.env.MEDMNIST_ROOT;
    expect(resolveDataRoot()).toBe(join(homedir(), '.medmnist'));
    expect(resolveDataRoot('  ')).toBe(join(homedir(), '.medmnist'));
  });

  it('hashes files and reports a missing one clearly', async () => {
    const p = join(root, 'abc.txt');
    (await import('node:fs')).writeFileSync(p, 'abc');
    expect(await md5File(p)).toBe('900150983cd24fb0d6963f7d28e17f72');
    await expect(md5File(join(root, 'missing.npz'))).rejects.toThrow(/missing\.npz: file not found/);
  });
});
