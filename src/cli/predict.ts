// `mf predict <run folder | model.safetensors> <inputs...>`: class probabilities for new images (PNG, JPEG), arrays
// (.npy, .npz) or volumes (NIfTI, 3D models), preprocessed as the training data are: resized to the model's input
// side (an antialiased bilinear filter, Pillow's BILINEAR, per axis; non-square inputs are stretched), converted to
// the data set's channels (RGB to gray by Pillow's "L" luma, gray to RGB by copying), rounded to 8 bits as MedMNIST
// stores them, then normalised by the batch loader itself (normalizeU8). uint8 data, and data of other dtypes that
// hold only whole numbers in 0-255, are taken as they are; any other array or volume is min-max scaled to 0-255 per
// sample first. A file that cannot be read is named in one error line and skipped; the others are still predicted
// and the exit status says one failed.
import { PNG } from 'pngjs';
import { initEngine } from '../backend/index.ts';
import type { LoadedSplit } from '../data/dataset.ts';
import { readNifti } from '../data/nifti.ts';
import { parseNpy, readNpz } from '../data/npz.ts';
import { datasetInfo } from '../data/lookup.ts';
import { numLabelColumns, numOutputs } from '../data/registry.ts';
import { ConfigError, FileFormatError, MfError } from '../errors.ts';
import type { HeadDescription } from '../kinds/medformer/trainer.ts';
import {
  arraySamples,
  checkImageHead,
  checkVolumeHead,
  type InputShape,
  inputKindsHint,
  interleaved,
  oneLine,
  type Planar,
  type Sample,
  toModelInput,
  decodeJpeg,
  volumeSample,
} from '../data/model-input.ts';
import { type Prediction, toPrediction } from '../kinds/medformer/task-model.ts';
import { MAX_BINARY_BYTES, readRegularFile, writeFileAtomic } from '../util/files.ts';
import { buildModel, type HeadTask, headTask, inputSize, type LoadedModel, readModel, selectHeads } from './load-model.ts';

import { evalBatchSize, splitScores } from '../kinds/medformer/evaluate.ts';

// The preparation of inputs and the naming of scores live where the page of `mf serve` can import them too.
export type { InputShape, Prediction, Sample };
export { toPrediction };

export interface PredictFlags {
  task?: string;
  out?: string;
  backend?: string;
}

export async function predictCommand(target: string, inputs: string[], flags: PredictFlags): Promise<void> {
  const out = flags.out;
  if (out !== undefined && !/\.(csv|json)$/i.test(out)) throw new ConfigError(`--out ${out}: give a .csv or .json file name`);
  const source = readModel(target);
  const d = source.description;
  if (flags.task === undefined && d.heads.length > 1) {
    throw new ConfigError(
      `${target}: the model has ${d.heads.length} heads (${d.heads.map((h) => h.key).join(', ')})`,
      'pick one with --task',
    );
  }
  const head = selectHeads(d, flags.task, '--task')[0]!;
  const want: InputShape = { dim: head.dim, channels: head.channels, size: inputSize(d, head) };

  // Every input read on the host first; a bad one is named and skipped.
  const samples: Sample[] = [];
  let failed = 0;
  for (const file of inputs) {
    try {
      samples.push(...readInput(file, want));
    } catch (e) {
      if (!(e instanceof MfError)) throw e;
      process.stderr.write(`error: ${e.message}\n`);
      failed++;
    }
  }

  const predictions: Prediction[] = [];
  if (samples.length) {
    await initEngine({ backend: (flags.backend ?? 'auto') as 'auto' | 'webgpu' | 'cpu' });
    const loaded = buildModel(source);
    try {
      loaded.use(head.key);
      const task = headTask(head);
      const scores = await scoreSamples(loaded, task, samples, want, evalBatchSize(d.batchSize));
      samples.forEach((s, i) => predictions.push(toPrediction(s.input, task, scores[i]!)));
    } finally {
      loaded.dispose();
    }
  }
  for (const p of predictions) console.log(describePrediction(p, head));
  if (out !== undefined && predictions.length) {
    const text = /\.json$/i.test(out) ? `${JSON.stringify(predictions, null, 2)}\n` : toCsv(predictions, datasetInfo(head.key).labels);
    writeFileAtomic(out, new TextEncoder().encode(text));
    process.stderr.write(`wrote ${predictions.length} predictions to ${out}\n`);
  }
  if (failed) {
    process.stderr.write(`error: ${failed} of ${inputs.length} inputs could not be read; the others were predicted\n`);
    process.exitCode = 1;
  }
}

/**
 * The scores of each sample: the inputs as one split, scored by the evaluator's own path (splitScores: the batch
 * loader's normalisation, no augmentation, file order, the last batch padded).
 */
export async function scoreSamples(
  loaded: LoadedModel,
  task: HeadTask,
  samples: readonly Sample[],
  want: InputShape,
  batchSize: number,
): Promise<Float32Array[]> {
  const shape = want.dim === 2 ? [want.channels, want.size, want.size] : [1, want.size, want.size, want.size];
  const len = shape.reduce((a, b) => a * b, 1);
  const images = new Uint8Array(samples.length * len);
  samples.forEach((s, i) => images.set(s.pixels, i * len));
  const cols = numLabelColumns(task.ds);
  const split: LoadedSplit = {
    ds: task.ds,
    split: 'test',
    size: want.size,
    file: 'inputs',
    n: samples.length,
    images,
    labels: new Int32Array(samples.length * cols),
    numLabels: cols,
    shape,
  };
  const k = numOutputs(task.ds);
  const scores = await splitScores(loaded.model, task, split, batchSize);
  return Array.from({ length: split.n }, (_, i) => scores.slice(i * k, (i + 1) * k));
}

function describePrediction(p: Prediction, head: HeadDescription): string {
  const what = Array.isArray(p.predicted) ? (p.predicted.length ? p.predicted.join(', ') : 'no finding above 0.5') : p.predicted;
  const kind = head.head === 'regression' ? 'scores' : 'p';
  const list = Object.entries(p.probabilities)
    .map(([l, v]) => `${l} ${v.toFixed(4)}`)
    .join(', ');
  return `${p.input}: ${what} (${kind}: ${list})`;
}

function toCsv(predictions: readonly Prediction[], labels: readonly string[]): string {
  const cell = (s: string) => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const rows = [['input', 'task', 'predicted', ...labels].map(cell).join(',')];
  for (const p of predictions) {
    const predicted = Array.isArray(p.predicted) ? p.predicted.join(';') : p.predicted;
    rows.push([cell(p.input), cell(p.task), cell(predicted), ...labels.map((l) => String(p.probabilities[l]))].join(','));
  }
  return `${rows.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading inputs

const NIFTI = /\.(nii|nii\.gz|hdr|hdr\.gz)$/i;

/** The samples of one input file, fitted to `want`; every failure is one MfError naming the file. */
export function readInput(file: string, want: InputShape): Sample[] {
  const lower = file.toLowerCase();
  const kindHint = inputKindsHint(want);
  if (NIFTI.test(lower)) {
    checkVolumeHead(want, file);
    return [volumeSample(readNifti(file), want, file)];
  }
  if (lower.endsWith('.npy')) {
    const bytes = readRegularFile(file, { what: 'a .npy array', fix: 'check the path', maxBytes: MAX_BINARY_BYTES });
    return arraySamples(parseNpy(bytes, file, 'array'), want, file, file);
  }
  if (lower.endsWith('.npz')) {
    const arrays = readNpz(file);
    const names = [...arrays.keys()];
    const images = names.filter((n) => /images$/.test(n));
    const use = images.length ? images : names;
    if (!use.length) throw new FileFormatError(`${file}: holds no arrays`, 'save the images with np.savez');
    return use.flatMap((n) => arraySamples(arrays.get(n)!, want, file, use.length === 1 && names.length === 1 ? file : `${file}:${n}`));
  }
  if (/\.(png|jpe?g)$/.test(lower)) {
    checkImageHead(want, file);
    const bytes = readRegularFile(file, { what: 'an image', fix: 'check the path', maxBytes: MAX_BINARY_BYTES });
    return [{ input: file, pixels: toModelInput(lower.endsWith('.png') ? decodePng(bytes, file) : decodeJpeg(bytes, file), want, file) }];
  }
  throw new ConfigError(`${file}: not an input mf predict reads`, `give ${kindHint}`);
}

function decodePng(bytes: Uint8Array, file: string): Planar {
  if (!(bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47)) {
    throw new FileFormatError(`${file}: not a PNG (no PNG signature)`, 're-save it as PNG or JPEG');
  }
  let png: ReturnType<typeof PNG.sync.read>;
  try {
    png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    throw new FileFormatError(`${file}: not a readable PNG (${oneLine(e)})`, 're-save it as PNG or JPEG');
  }
  // pngjs gives 8-bit RGBA whatever the file holds; a gray file has R = G = B.
  return interleaved(png.data, png.width, png.height, 4, png.color ? 3 : 1);
}
