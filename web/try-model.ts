// "Try the model": a run's checkpoint scored in the page, on the browser's WebGPU, with the project's own kernels
// (the engine of src/ with the kernels bundled) and the input preparation of `mf predict` (src/data/model-input.ts):
// the same probabilities `mf predict` prints for the same files.
import { loadKernelSources } from '../src/backend/kernel-sources.ts';
import { reportAdapter, requestEngineDevice, WebGpuBackend } from '../src/backend/webgpu.ts';
import { normalizeU8 } from '../src/data/augment.ts';
import {
  arraySamples,
  checkImageHead,
  checkVolumeHead,
  decodeJpeg,
  type InputShape,
  interleaved,
  oneLine,
  type Planar,
  type Sample,
  toModelInput,
  volumeSample,
} from '../src/data/model-input.ts';
import { decodeNifti } from '../src/data/nifti-codec.ts';
import { parseNpy } from '../src/data/npy-codec.ts';
import { MfError } from '../src/errors.ts';
import { describedModel, type Prediction, scoreRows, type TaskModel, taskScores, toPrediction } from '../src/kinds/medformer/task-model.ts';
import { ParameterStore } from '../src/nn/parameters.ts';
import { noGrad, setBackend, Tensor, tidy } from '../src/tensor/tensor.ts';
import type { PageHead, PageModel } from '../src/serve/model.ts';

/** Why the page cannot run models, in one sentence for the user; null when it can. */
export async function noWebGpuReason(): Promise<string | null> {
  if (!('gpu' in navigator) || !navigator.gpu) {
    return 'This browser has no WebGPU (navigator.gpu is missing): use a recent Chrome, Edge or Chromium (or Firefox Nightly / Safari Technology Preview), over http://127.0.0.1 or https.';
  }
  const adapter = await navigator.gpu.requestAdapter();
  return adapter ? null : 'This browser offers WebGPU but found no GPU adapter: enable hardware acceleration (chrome://gpu shows why).';
}

let engine: Promise<WebGpuBackend> | null = null;

/** The engine on the page's WebGPU device, made once. */
export function pageEngine(): Promise<WebGpuBackend> {
  engine ??= (async () => {
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) throw new MfError('no WebGPU adapter');
    const device = await requestEngineDevice(adapter);
    const backend = new WebGpuBackend(device, reportAdapter(adapter, 'browser'), { sources: await loadKernelSources() });
    setBackend(backend);
    return backend;
  })();
  return engine;
}

/** A run's model on the page's device with one head's weights loaded. */
export interface PageRunModel {
  description: PageModel;
  head: PageHead;
  model: TaskModel;
  store: ParameterStore;
}

async function fetchOk(url: string): Promise<Response> {
  const r = await fetch(url);
  if (!r.ok) {
    const text = await r.text();
    let message = text;
    try {
      message = (JSON.parse(text) as { error?: string }).error ?? text;
    } catch {}
    throw new MfError(`${url}: ${message}`);
  }
  return r;
}

/** Builds run `id`'s model on the page's engine and loads the weights `mf predict` scores head `task` with. */
export async function loadRunModel(id: string, task?: string): Promise<PageRunModel> {
  await pageEngine();
  const base = `api/runs/${encodeURIComponent(id)}`;
  const description = (await (await fetchOk(`${base}/model`)).json()) as PageModel;
  const head = task === undefined ? description.heads[0] : description.heads.find((h) => h.key === task);
  if (!head) throw new MfError(`run ${id} has no head ${task ?? ''}`);
  const block = new Float32Array(await (await fetchOk(`${base}/weights/${encodeURIComponent(head.key)}`)).arrayBuffer());
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  let at = 0;
  for (const t of head.weights.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    tensors.set(t.name, { shape: t.shape, data: block.subarray(at, at + n) });
    at += n;
  }
  if (at !== block.length) throw new MfError(`${head.weights.file}: ${block.length} weights for ${at} listed`);
  const store = new ParameterStore(0);
  const model = describedModel(store, description);
  store.finalize();
  store.load(tensors, { strict: true });
  model.setTraining?.(false);
  return { description, head, model, store };
}

/** A PNG's pixels as the browser decodes them, without colour management; gray when the file's colour type is. */
async function decodePngInPage(bytes: Uint8Array, file: string): Promise<Planar> {
  if (!(bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47)) {
    throw new MfError(`${file}: not a PNG (no PNG signature)`, 're-save it as PNG or JPEG');
  }
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: 'image/png' }), {
      colorSpaceConversion: 'none',
      premultiplyAlpha: 'none',
    });
  } catch (e) {
    throw new MfError(`${file}: not a readable PNG (${oneLine(e)})`, 're-save it as PNG or JPEG');
  }
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext('2d')!;
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
  // IHDR's colour type (byte 25): bit 2 set for RGB, palette and RGBA; as pngjs's `color`, what mf predict reads.
  const color = (bytes[25]! & 2) !== 0;
  return interleaved(new Uint8Array(rgba.buffer, rgba.byteOffset, rgba.byteLength), bitmap.width, bitmap.height, 4, color ? 3 : 1);
}

/**
 * A dropped file's samples, prepared as `mf predict` prepares them: PNG and JPEG images, NIfTI volumes (.nii,
 * .nii.gz) and .npy arrays (one sample or a batch), each named as mf predict names it but by the file's name.
 */
export async function prepareFile(file: File, want: InputShape): Promise<Sample[]> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const name = file.name;
  const lower = name.toLowerCase();
  const kinds = want.dim === 2 ? 'a PNG, JPEG or .npy image' : 'a NIfTI volume (.nii, .nii.gz) or .npy';
  if (/\.(nii|nii\.gz)$/.test(lower)) {
    checkVolumeHead(want, name, kinds);
    return [volumeSample(decodeNifti(bytes, name), want, name)];
  }
  if (lower.endsWith('.npy')) return arraySamples(parseNpy(bytes, name, 'array'), want, name, name);
  if (/\.(png|jpe?g)$/.test(lower)) {
    checkImageHead(want, name, kinds);
    const planar = lower.endsWith('.png') ? await decodePngInPage(bytes, name) : decodeJpeg(bytes, name);
    return [{ input: name, pixels: toModelInput(planar, want, name) }];
  }
  if (/\.(npz|hdr|hdr\.gz)$/.test(lower)) {
    throw new MfError(
      `${name}: .npz archives and two-file .hdr/.img volumes are read by mf predict only`,
      'save the array as .npy or the volume as .nii.gz',
    );
  }
  throw new MfError(`${name}: not an input the page reads`, `give ${kinds}`);
}

/** The probabilities of each prepared input, as `mf predict` names them. */
export async function predict(run: PageRunModel, inputs: readonly Sample[]): Promise<Prediction[]> {
  if (inputs.length === 0) return [];
  const { head } = run;
  const want = head.want;
  const shape = want.dim === 2 ? [want.channels, want.size, want.size] : [1, want.size, want.size, want.size];
  const len = shape.reduce((a, b) => a * b, 1);
  const images = new Uint8Array(inputs.length * len);
  inputs.forEach((s, i) => images.set(s.pixels, i * len));
  const task = { ds: head.dataset, head: head.head };
  const scores = tidy(() =>
    noGrad(() => taskScores(task, run.model.forward(Tensor.from(normalizeU8(images), [inputs.length, ...shape]), head.meta, head.key))),
  );
  const data = await scores.data();
  scores.dispose();
  return scoreRows(task, data, inputs.length).map((row, i) => toPrediction(inputs[i]!.input, task, row));
}
