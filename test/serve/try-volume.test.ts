// "Try the model" on a 3D run, in a real browser (headless Chromium, WebGPU on SwiftShader): a tiny synthetic3d
// run trained here; a NIfTI volume (.nii.gz, float, another shape: min-max scaled and resampled to the model's
// side), an .npy volume (uint8, as it is) and an .npy batch of two float volumes, dropped on the run's page, are
// read by the page's own parsers (nifti-codec.ts, npy-codec.ts) and prepared by mf predict's code
// (model-input.ts), and get the probabilities `mf predict` gives the same files, to 1e-4. A 2D image and an .npz
// among them are refused by name while the others are scored.
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Browser, Page } from 'playwright-core';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSplit } from '../../src/data/dataset.ts';
import { writeNifti } from '../../src/data/nifti.ts';
import { encodeNpy } from '../../src/data/npz.ts';
import { TINY_MODEL_3D, tmpDir } from '../run/helpers.ts';
import { expectSamePredictions, launchChromium, noBrowser, predictJson, shownPredictions, startServer, trainTinyRun } from './helpers.ts';

const S = 28;
let run: string;
let env: Record<string, string>;
let app: FastifyInstance;
let url: string;
let browser: Browser | null = null;
let why = '';

beforeAll(async () => {
  ({ browser, why } = await launchChromium());
  if (!browser) return;
  let runs: string;
  ({ runs, run, env } = trainTinyRun('serve-3d', {
    name: 'tiny3d',
    over: { model: TINY_MODEL_3D, data: { datasets: ['synthetic3d'], augment: false, train_limit: 16 } },
    training: { epochs: 1, batch_size: 8 },
    flags: ['--max-steps', '2'],
  }));
  ({ app, url } = await startServer(runs));
}, 600_000);
afterAll(async () => {
  await browser?.close();
  await app?.close();
});

describe('mf serve: try a 3D model in the page', () => {
  it('scores .nii.gz and .npy volumes in the page with the probabilities mf predict gives them (1e-4)', async () => {
    if (!browser) noBrowser(why);
    const test = loadSplit('synthetic3d', 'test', { root: env.MEDMNIST_ROOT!, size: S });
    const volume = (i: number) => test.images.subarray(i * S ** 3, (i + 1) * S ** 3);
    const dir = tmpDir('serve-3d-inputs');

    // NIfTI stores x fastest: voxel (x, y, z) of a 24×20×32 float volume, nearest to the row-major D×H×W test volume.
    const [X, Y, Z] = [24, 20, 32];
    const src = volume(4);
    const vox = new Float32Array(X * Y * Z);
    for (let z = 0; z < Z; z++)
      for (let y = 0; y < Y; y++)
        for (let x = 0; x < X; x++) {
          const v = src[Math.floor((z * S) / Z) * S * S + Math.floor((y * S) / Y) * S + Math.floor((x * S) / X)]!;
          vox[x + X * (y + Y * z)] = v * 3.7 - 120;
        }
    const nii = path.join(dir, 'scan.nii.gz');
    writeNifti(nii, { shape: [X, Y, Z], data: vox });
    const npy = path.join(dir, 'volume.npy');
    fs.writeFileSync(npy, encodeNpy({ dtype: '|u1', shape: [S, S, S], data: Uint8Array.from(volume(9)) }));
    const batch = path.join(dir, 'batch.npy');
    const floats = Float32Array.from([...volume(1), ...volume(2)], (v) => v / 255 + 0.25);
    fs.writeFileSync(batch, encodeNpy({ dtype: '<f4', shape: [2, S, S, S], data: floats }));
    const files = [nii, npy, batch];
    const expected = predictJson(run, files, env);
    expect(expected.map((e) => path.basename(e.input))).toEqual(['scan.nii.gz', 'volume.npy', 'batch.npy[0]', 'batch.npy[1]']);

    // Refused in the page, by name, while the volumes are scored: a 2D image, and an archive the page does not read.
    const png = path.join(dir, 'slice.png');
    fs.writeFileSync(png, PNG.sync.write(new PNG({ width: S, height: S })));
    const npz = path.join(dir, 'volumes.npz');
    fs.writeFileSync(npz, new Uint8Array([0x50, 0x4b, 0x05, 0x06]));

    const p: Page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const pageErrors: string[] = [];
    p.on('pageerror', (e) => pageErrors.push(e.message));
    await p.goto(`${url}/#/run/tiny3d`);
    await p.locator('#try-files').setInputFiles([...files, png, npz]);
    await expect.poll(() => p.getAttribute('#try', 'data-state'), { timeout: 300_000 }).toMatch(/^(done|error|no-webgpu)$/);
    expect(await p.locator('#try-status').textContent()).toMatch(/^4 scored .* on this page's WebGPU \(synthetic3d\)/);
    const problems = await p.locator('#try-output p.problem').allTextContents();
    expect(problems).toHaveLength(2);
    expect(problems[0]).toBe("slice.png: a 2D image, but the model's head takes 3D volumes (give a NIfTI volume (.nii, .nii.gz) or .npy)");
    expect(problems[1]).toMatch(/^volumes\.npz: \.npz archives and two-file \.hdr\/\.img volumes are read by mf predict only \(save/);

    const rows = await shownPredictions(p);
    expectSamePredictions(rows, expected);
    for (const row of rows) expect(Object.keys(row.probabilities)).toEqual(['ball', 'shell', 'two blobs']);
    // Four different volumes: the comparison is not of one constant output.
    expect(new Set(rows.map((r) => r.probabilities.ball!.toFixed(6))).size).toBeGreaterThan(1);
    expect(pageErrors).toEqual([]);
    await p.close();
  });
});
