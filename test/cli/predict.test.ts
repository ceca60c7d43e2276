// `mf predict` end to end on a tiny synthetic run trained here: a PNG written with pngjs and an .npy, both samples of
// the test split, get the probabilities the evaluator's path (the batch loader on the split, the model, taskScores)
// gives those samples; a bad input is named and skipped. The preprocessing itself is checked without a device.
import fs from 'node:fs';
import path from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildModel, headTask, readModel } from '../../src/cli/load-model.ts';
import { type Prediction, readInput } from '../../src/cli/predict.ts';
import { loadSplit } from '../../src/data/dataset.ts';
import { BatchLoader } from '../../src/data/loader.ts';
import { encodeNpy } from '../../src/data/npz.ts';
import { taskScores } from '../../src/kinds/medformer/tasks.ts';
import { noGrad, Tensor, tidy } from '../../src/tensor/tensor.ts';
import { releaseGpu, requireGpu, use } from '../helpers.ts';
import { mf, tinyExperiment, tmpDir } from '../run/helpers.ts';

const data = tmpDir('predict-data');
const env = { MEDMNIST_ROOT: data, LP_NUM_THREADS: '1' };
const run = path.join(tmpDir('predict'), 'run');
const inputs = tmpDir('predict-inputs');
const SIDE = 28;
const PNG_SAMPLE = 5;
const NPY_SAMPLE = 6;

const sample = (images: Uint8Array, i: number) => images.slice(i * SIDE * SIDE, (i + 1) * SIDE * SIDE);

function writeGrayPng(file: string, gray: Uint8Array, width: number, height: number): void {
  const png = new PNG({ width, height });
  for (let i = 0; i < width * height; i++) png.data.set([gray[i]!, gray[i]!, gray[i]!, 255], i * 4);
  fs.writeFileSync(file, PNG.sync.write(png, { colorType: 0 }));
}

beforeAll(() => {
  const r = mf(['run', tinyExperiment(tmpDir('predict-exp'), { name: 'predtiny' }), '--out', run, '--quiet'], env);
  if (r.status !== 0) throw new Error(`training the tiny run failed: ${r.stderr}`);
});
afterAll(() => releaseGpu());

describe('mf predict', () => {
  it('gives a PNG and an .npy of test samples the probabilities the evaluation path computes for them (1e-5), names a bad input and exits 1', async () => {
    const test = loadSplit('synthetic2d', 'test', { root: data, size: SIDE });
    const png = path.join(inputs, 'sample.png');
    const npy = path.join(inputs, 'sample.npy');
    const bad = path.join(inputs, 'broken.png');
    writeGrayPng(png, sample(test.images, PNG_SAMPLE), SIDE, SIDE);
    fs.writeFileSync(npy, encodeNpy({ dtype: '|u1', shape: [SIDE, SIDE], data: sample(test.images, NPY_SAMPLE) }));
    fs.writeFileSync(bad, 'not a png');
    const out = path.join(inputs, 'predictions.json');
    const r = mf(['predict', run, png, npy, bad, '--out', out], env);
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^error: .*broken\.png: not a PNG/m);
    expect(r.stderr).toMatch(/1 of 3 inputs could not be read/);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/sample\.png: (disc|square|cross|ring) \(p: disc 0\.\d{4}, square 0\.\d{4}, cross 0\.\d{4}, ring 0\.\d{4}\)$/);
    const predictions = JSON.parse(fs.readFileSync(out, 'utf8')) as Prediction[];
    expect(predictions.map((p) => p.input)).toEqual([png, npy]);

    // The evaluator's path for the same two samples, in this process: the split through the batch loader, the
    // model rebuilt from the run folder with the weights the trainer tested, taskScores.
    use(await requireGpu());
    const source = readModel(run);
    const loaded = buildModel(source);
    const task = headTask(source.description.heads[0]!);
    loaded.use(task.ds.key);
    const loader = new BatchLoader(test, { batchSize: 32, seed: 0, shuffle: false, dropLast: false, prefetch: false });
    const batch = loader.batchAt(0, 0);
    const probs = tidy(() =>
      noGrad(() => taskScores(task, loaded.model.forward(Tensor.from(batch.x, batch.shape), task.meta, task.ds.key))),
    );
    const scores = await probs.data();
    probs.dispose();
    loaded.dispose();
    [PNG_SAMPLE, NPY_SAMPLE].forEach((s, i) => {
      const p = predictions[i]!;
      const got = test.ds.labels.map((l) => p.probabilities[l]!);
      const want = Array.from(scores.subarray(s * 4, (s + 1) * 4));
      got.forEach((g, j) => expect(Math.abs(g - want[j]!), `${p.input} ${test.ds.labels[j]}`).toBeLessThanOrEqual(1e-5));
      let best = 0;
      for (let j = 1; j < 4; j++) if (want[j]! > want[best]!) best = j;
      expect(p.predicted).toBe(test.ds.labels[best]);
    });

    // CSV: one column per label name of the registry.
    const csv = path.join(inputs, 'predictions.csv');
    expect(mf(['predict', run, png, '--out', csv], env).status).toBe(0);
    const rows = fs.readFileSync(csv, 'utf8').trim().split('\n');
    expect(rows[0]).toBe('input,task,predicted,disc,square,cross,ring');
    expect(rows[1]!.split(',').slice(3).map(Number)).toEqual(test.ds.labels.map((l) => predictions[0]!.probabilities[l]));
  });

  it('prepares inputs as the training data: the bytes of the split at its size, Pillow luma for RGB, resized to the model side', () => {
    const test = loadSplit('synthetic2d', 'test', { root: data, size: SIDE });
    const want = { dim: 2 as const, channels: 1, size: SIDE };
    const png = path.join(inputs, 'exact.png');
    writeGrayPng(png, sample(test.images, 3), SIDE, SIDE);
    expect(readInput(png, want)[0]!.pixels).toEqual(sample(test.images, 3));

    // An RGB image of another size and shape: one colour, so the resize keeps it; gray by Pillow's L formula.
    const rgb = new PNG({ width: 40, height: 30 });
    for (let i = 0; i < 40 * 30; i++) rgb.data.set([200, 100, 50, 255], i * 4);
    const rgbFile = path.join(inputs, 'rgb.png');
    fs.writeFileSync(rgbFile, PNG.sync.write(rgb));
    const luma = Math.round((200 * 19595 + 100 * 38470 + 50 * 7471) / 65536);
    const got = readInput(rgbFile, want)[0]!.pixels;
    expect(got).toHaveLength(SIDE * SIDE);
    expect(new Set(got)).toEqual(new Set([luma]));

    // A batch in one array: each sample named by its index; float data min-max scaled to 0..255.
    const batch = path.join(inputs, 'batch.npy');
    const floats = Float32Array.from({ length: 2 * SIDE * SIDE }, (_, i) => (i % (SIDE * SIDE)) / 10);
    fs.writeFileSync(batch, encodeNpy({ dtype: '<f4', shape: [2, SIDE, SIDE], data: floats }));
    const two = readInput(batch, want);
    expect(two.map((s) => s.input)).toEqual([`${batch}[0]`, `${batch}[1]`]);
    expect(Math.min(...two[1]!.pixels)).toBe(0);
    expect(Math.max(...two[1]!.pixels)).toBe(255);

    expect(() => readInput(path.join(inputs, 'volume.nii.gz'), want)).toThrow(/a 3D volume, but the model's head takes 2D images/);
  });
});
