// `mf predict` on one tiny multitask run with a 2D and a 3D head (synthetic2d + synthetic3d), trained here: a JPEG
// (encoded with jpeg-js) through the 2D head, a NIfTI volume, an .npy volume and an .npz batch of test volumes
// through the 3D head, each head picked with --task. The same volume as NIfTI, .npy and a member of an .npz batch
// gets the same probabilities (so the NIfTI axes land where the data set's do); a JPEG gets those of an .npy of its
// decoded pixels; a model with several heads and no --task, or an unknown --task, is refused in one line.
import fs from 'node:fs';
import path from 'node:path';
import jpeg from 'jpeg-js';
import { beforeAll, describe, expect, it } from 'vitest';
import { readInput } from '../../src/cli/predict.ts';
import { loadSplit } from '../../src/data/dataset.ts';
import { writeNifti } from '../../src/data/nifti.ts';
import { encodeNpy, writeNpz } from '../../src/data/npz.ts';
import { getDataset } from '../../src/data/registry.ts';
import { mf, TINY_MODEL_3D, tinyExperiment, tmpDir } from '../run/helpers.ts';

const data = tmpDir('predict-more-data');
const env = { MEDMNIST_ROOT: data, LP_NUM_THREADS: '1' };
const run = path.join(tmpDir('predict-more'), 'run');
const inputs = tmpDir('predict-more-inputs');
const S = 28;

interface PredictionJson {
  input: string;
  task: string;
  predicted: string;
  probabilities: Record<string, number>;
}

/** `mf predict` with --out predictions.json: exit status, stdout lines, the file's predictions. */
function predict(args: string[]): { status: number | null; lines: string[]; stderr: string; predictions: PredictionJson[] } {
  const out = path.join(tmpDir('predict-more-out'), 'p.json');
  const r = mf(['predict', run, ...args, '--out', out], env);
  const predictions = fs.existsSync(out) ? (JSON.parse(fs.readFileSync(out, 'utf8')) as PredictionJson[]) : [];
  return { status: r.status, lines: r.stdout.trim().split('\n'), stderr: r.stderr, predictions };
}

const gap = (a: Record<string, number>, b: Record<string, number>) => Math.max(...Object.keys(a).map((k) => Math.abs(a[k]! - b[k]!)));
const near = (a: Record<string, number>, b: Record<string, number>, what: string) => {
  expect(Object.keys(a), what).toEqual(Object.keys(b));
  expect(gap(a, b), what).toBeLessThanOrEqual(1e-6);
};

beforeAll(() => {
  const exp = tinyExperiment(
    tmpDir('predict-more-exp'),
    {
      name: 'predmt',
      kind: 'multitask',
      model: TINY_MODEL_3D,
      data: { datasets: ['synthetic2d', 'synthetic3d'], augment: false, train_limit: 16 },
      multitask: { sub_batches: 2 },
    },
    { epochs: 1, batch_size: 8 },
  );
  const r = mf(['run', exp, '--out', run, '--max-steps', '2', '--quiet'], env);
  if (r.status !== 0) throw new Error(`training the tiny multitask run failed: ${r.stderr}`);
}, 600_000);

describe('mf predict on a multitask model with a 3D head', () => {
  it('gives a NIfTI volume, an .npy volume and an .npz batch member of one test volume the same probabilities (--task synthetic3d)', () => {
    const test = loadSplit('synthetic3d', 'test', { root: data, size: S });
    const voxels = S * S * S;
    const volume = (i: number) => test.images.slice(i * voxels, (i + 1) * voxels);
    // NIfTI stores x fastest: a row-major D×H×W array is its [x, y, z] = [W, H, D] volume as it is.
    const nii = path.join(inputs, 'vol.nii.gz');
    writeNifti(nii, { shape: [S, S, S], data: Float32Array.from(volume(2)) });
    const npy = path.join(inputs, 'vol.npy');
    fs.writeFileSync(npy, encodeNpy({ dtype: '|u1', shape: [S, S, S], data: volume(2) }));
    const npz = path.join(inputs, 'batch.npz');
    writeNpz(npz, { test_images: { dtype: '|u1', shape: [2, S, S, S], data: test.images.slice(voxels, 3 * voxels) } });

    const r = predict([nii, npy, npz, '--task', 'synthetic3d']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.predictions.map((p) => p.input)).toEqual([nii, npy, `${npz}[0]`, `${npz}[1]`]);
    const labels = getDataset('synthetic3d').labels;
    for (const p of r.predictions) {
      expect(p.task).toBe('synthetic3d');
      expect(Object.keys(p.probabilities)).toEqual([...labels]);
      const sum = Object.values(p.probabilities).reduce((a, b) => a + b, 0);
      expect(Math.abs(sum - 1)).toBeLessThan(1e-5);
      expect(labels).toContain(p.predicted);
    }
    expect(r.lines[0]).toMatch(/vol\.nii\.gz: (ball|shell|two blobs) \(p: ball 0\.\d{4}, shell 0\.\d{4}, two blobs 0\.\d{4}\)$/);
    const [fromNifti, fromNpy, other, fromBatch] = r.predictions;
    near(fromNifti!.probabilities, fromNpy!.probabilities, 'NIfTI vs .npy');
    near(fromBatch!.probabilities, fromNpy!.probabilities, '.npz batch member 1 (test volume 2) vs .npy');
    // Another volume scores differently, so the equalities above are not those of a model that ignores its input.
    expect(gap(other!.probabilities, fromNpy!.probabilities)).toBeGreaterThan(1e-5);

    // A 2D image is refused by the 3D head, named, and the rest still predicted.
    const png = path.join(inputs, 'flat.jpg');
    fs.writeFileSync(png, jpeg.encode({ width: S, height: S, data: new Uint8Array(S * S * 4).fill(128) }, 90).data);
    const mixed = predict([png, npy, '--task', 'synthetic3d']);
    expect(mixed.status).toBe(1);
    expect(mixed.stderr).toMatch(/^error: .*flat\.jpg: a 2D image, but the model's head takes 3D volumes/m);
    expect(mixed.predictions.map((p) => p.input)).toEqual([npy]);
  });

  it('reads a JPEG through the 2D head (--task synthetic2d): close to the test image it encodes, predicted as its decoded pixels are', () => {
    const test = loadSplit('synthetic2d', 'test', { root: data, size: S });
    const gray = test.images.slice(4 * S * S, 5 * S * S);
    const rgba = new Uint8Array(S * S * 4);
    for (let i = 0; i < S * S; i++) rgba.set([gray[i]!, gray[i]!, gray[i]!, 255], i * 4);
    const jpg = path.join(inputs, 'sample.jpg');
    fs.writeFileSync(jpg, jpeg.encode({ width: S, height: S, data: rgba }, 100).data);

    const pixels = readInput(jpg, { dim: 2, channels: 1, size: S })[0]!.pixels;
    let worst = 0;
    for (let i = 0; i < pixels.length; i++) worst = Math.max(worst, Math.abs(pixels[i]! - gray[i]!));
    expect(worst, 'JPEG at quality 100 vs the image it encodes').toBeLessThanOrEqual(8);
    const decoded = path.join(inputs, 'decoded.npy');
    fs.writeFileSync(decoded, encodeNpy({ dtype: '|u1', shape: [S, S], data: pixels }));

    const r = predict([jpg, decoded, '--task', 'synthetic2d']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.predictions.map((p) => [p.input, p.task])).toEqual([
      [jpg, 'synthetic2d'],
      [decoded, 'synthetic2d'],
    ]);
    expect(Object.keys(r.predictions[0]!.probabilities)).toEqual(['disc', 'square', 'cross', 'ring']);
    near(r.predictions[0]!.probabilities, r.predictions[1]!.probabilities, 'JPEG vs its decoded pixels');
    expect(r.lines[0]).toMatch(
      /sample\.jpg: (disc|square|cross|ring) \(p: disc 0\.\d{4}, square 0\.\d{4}, cross 0\.\d{4}, ring 0\.\d{4}\)$/,
    );
  });

  it('asks for --task on a model with several heads and names an unknown one, in one line each', () => {
    const npy = path.join(inputs, 'vol.npy');
    const none = mf(['predict', run, npy], env);
    expect(none.status).toBe(1);
    expect(none.stderr.trim().split('\n')).toHaveLength(1);
    expect(none.stderr).toMatch(/^error: .*the model has 2 heads \(synthetic2d, synthetic3d\).*pick one with --task/);
    const wrong = mf(['predict', run, npy, '--task', 'breastmnist'], env);
    expect(wrong.status).toBe(1);
    expect(wrong.stderr.trim().split('\n')).toHaveLength(1);
    expect(wrong.stderr).toMatch(/^error: .*breastmnist/);
  });
});
