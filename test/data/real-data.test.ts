// Checks against the real MedMNIST files in $MEDFORMER_SHARED_DATA (skipped when it is unset).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dataVerify } from '../../src/cli/data.ts';
import { loadSplit, md5File } from '../../src/data/dataset.ts';
import { readNpz } from '../../src/data/npz.ts';
import { fileFor, getDataset, SPLITS } from '../../src/data/registry.ts';
import { SHARED_SKIP, sharedData } from './helpers.ts';

const dir = sharedData ?? '';

describe(`real MedMNIST files${SHARED_SKIP}`, () => {
  for (const key of ['breastmnist', 'retinamnist', 'adrenalmnist3d']) {
    it.skipIf(!sharedData)(`${key}: official MD5, split sizes, shapes and labels`, async () => {
      const ds = getDataset(key);
      const f = fileFor(ds, 28);
      expect(await md5File(join(dir, f.file))).toBe(f.md5);
      for (const split of SPLITS) {
        const s = loadSplit(ds, split, { root: dir });
        expect(s.n, split).toBe(ds.splits[split]);
        expect(s.shape).toEqual(ds.dim === 3 ? [1, 28, 28, 28] : [ds.channels, 28, 28]);
        expect(s.images.length).toBe(s.n * s.shape.reduce((a, b) => a * b, 1));
        const seen = new Set(s.labels);
        expect(seen.size, `${split} uses every class`).toBe(ds.labels.length);
      }
    });
  }

  it.skipIf(!sharedData)("retinamnist: NCHW images hold the file's NHWC pixels", () => {
    const raw = readNpz(join(dir, 'retinamnist.npz'), ['test_images']).get('test_images')!;
    const s = loadSplit('retinamnist', 'test', { root: dir });
    const P = 28 * 28;
    for (const [k, c, p] of [
      [0, 0, 0],
      [17, 1, 400],
      [399, 2, 783],
    ] as const) {
      expect(s.images[k * 3 * P + c * P + p]).toBe((raw.data as Uint8Array)[(k * P + p) * 3 + c]);
    }
  });

  it.skipIf(!sharedData)('adrenalmnist3d at 64px and vesselmnist3d load with the v3 counts', () => {
    if (existsSync(join(dir, 'adrenalmnist3d_64.npz'))) {
      const s = loadSplit('adrenalmnist3d', 'val', { root: dir, size: 64 });
      expect([s.n, ...s.shape]).toEqual([98, 1, 64, 64, 64]);
    }
    expect(loadSplit('vesselmnist3d', 'val', { root: dir }).n).toBe(191);
  });

  it.skipIf(!sharedData)('mf data verify passes on the shared folder', async () => {
    const r = await dataVerify(dir, ['breastmnist', 'retinamnist', 'adrenalmnist3d']);
    expect(r.ok, r.text).toBe(true);
    expect(r.rows.map((x) => x.file)).toContain('adrenalmnist3d.npz');
  });
});
