// `mf export` end to end on one tiny multitask model trained here (a 2D and a 3D synthetic head, so one run covers
// both input kinds and several heads): the ONNX file runs in onnxruntime-node to the engine's own logits and to
// mf predict's probabilities on test samples (1e-4); --task keeps one head; the torch state dict loads into the
// PyTorch peer (bench/medformer_small_torch.py) and gives the engine's logits; bad targets are refused in one line.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildInterpolator, readInterpolator, saveInterpolator } from '../../src/brain/interpolator.ts';
import { buildModel, headTask, readModel } from '../../src/cli/load-model.ts';
import { normalizeU8 } from '../../src/data/augment.ts';
import { loadSplit } from '../../src/data/dataset.ts';
import { encodeNpy, parseNpy } from '../../src/data/npz.ts';
import { engineModel } from '../../src/export/onnx.ts';
import { SliceUNet, type SliceUNetConfig } from '../../src/models/brainfuse.ts';
import { ParameterStore } from '../../src/nn/parameters.ts';
import { decodeModel, IR_VERSION, OPSET_VERSION } from '../../src/export/onnx-proto.ts';
import type { TorchKey } from '../../src/export/torch.ts';
import { readSafetensors, writeSafetensors } from '../../src/train/safetensors.ts';
import { noGrad, Tensor, tidy } from '../../src/tensor/tensor.ts';
import { expectClose, releaseGpu, requireGpu, uniform, use } from '../helpers.ts';
import { exited, mf, mfAsync, ROOT, TINY_MODEL_3D, tinyExperiment, tmpDir } from '../run/helpers.ts';

const data = tmpDir('export-data');
const env = { MEDMNIST_ROOT: data, LP_NUM_THREADS: '1' };
const run = path.join(tmpDir('export'), 'run');
const out = tmpDir('export-out');
const SIDE = 28;
const HEADS = ['synthetic2d', 'synthetic3d'] as const;
type Head = (typeof HEADS)[number];
/** Test samples per head: the first few of each test split. */
const N: Record<Head, number> = { synthetic2d: 3, synthetic3d: 2 };
const SHAPE: Record<Head, number[]> = { synthetic2d: [1, SIDE, SIDE], synthetic3d: [1, SIDE, SIDE, SIDE] };
/** What mf predict --out x.json writes per input (the fields read here). */
type Prediction = { input: string; probabilities: Record<string, number> };
const per = (h: Head) => SHAPE[h].reduce((a, b) => a * b, 1);

/** The bytes of a head's test samples and the batch the engine's forward receives for them. */
function samples(h: Head): { bytes: Uint8Array; x: Float32Array; dims: number[] } {
  const test = loadSplit(h, 'test', { root: data, size: SIDE });
  const bytes = test.images.slice(0, N[h] * per(h));
  return { bytes, x: normalizeU8(bytes), dims: [N[h], ...SHAPE[h]] };
}

async function runOnnx(file: string, feeds: Record<string, { x: Float32Array; dims: number[] }>): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(file);
  try {
    const inputs = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, new ort.Tensor('float32', v.x, v.dims)]));
    const result = await session.run(inputs);
    return Object.fromEntries(Object.entries(result).map(([k, v]) => [k, v.data as Float32Array]));
  } finally {
    await session.release();
  }
}

/** Logits of each head from the engine itself, for its test samples: the model mf eval / mf predict rebuild. */
const engineLogits: Partial<Record<Head, Float32Array>> = {};

beforeAll(() => {
  const exp = tinyExperiment(
    tmpDir('export-exp'),
    {
      name: 'exptiny',
      kind: 'multitask',
      model: TINY_MODEL_3D,
      data: { datasets: [...HEADS], augment: false, train_limit: 16 },
      multitask: { sub_batches: 2 },
    },
    { epochs: 1, batch_size: 8 },
  );
  const r = mf(['run', exp, '--out', run, '--quiet'], env);
  if (r.status !== 0) throw new Error(`training the tiny run failed: ${r.stderr}`);
}, 600_000);
afterAll(() => releaseGpu());

async function engine(h: Head): Promise<Float32Array> {
  const cached = engineLogits[h];
  if (cached) return cached;
  use(await requireGpu());
  const source = readModel(run);
  const loaded = buildModel(source);
  try {
    for (const key of HEADS) {
      const task = headTask(source.description.heads.find((x) => x.key === key)!);
      loaded.use(key);
      const { x, dims } = samples(key);
      const logits = tidy(() => noGrad(() => loaded.model.forward(Tensor.from(x, dims), task.meta, key)));
      engineLogits[key] = await logits.data();
      logits.dispose();
    }
  } finally {
    loaded.dispose();
  }
  return engineLogits[h]!;
}

describe('mf export --format onnx', () => {
  it("writes every head's graph (2D and 3D inputs), which onnxruntime runs to the engine's logits and mf predict's probabilities (1e-4)", async () => {
    const file = path.join(out, 'all.onnx');
    const r = mf(['export', run, '--format', 'onnx', '--out', file, '--json'], env);
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as { inputs: { name: string; shape: unknown[] }[]; outputs: { name: string }[] };
    expect(summary.inputs).toEqual([
      { name: 'input_2d_c1', shape: ['batch', 1, SIDE, SIDE] },
      { name: 'input_3d_c1', shape: ['batch', 1, SIDE, SIDE, SIDE] },
    ]);

    // A standard-opset file whose initializers are exactly the engine's parameters (names as in the checkpoint).
    const model = decodeModel(fs.readFileSync(file));
    expect(model.ir_version).toBe(IR_VERSION);
    expect(model.opset_import).toEqual([{ version: OPSET_VERSION }]);
    expect(model.doc_string).toMatch(/v \* 2 \/ 255 - 1/);
    const ops = new Set(model.graph.node.map((n) => n.op_type));
    expect([...ops].sort()).toEqual(
      [
        'Add',
        'Clip',
        'Concat',
        'Expand',
        'Gather',
        'LayerNormalization',
        'MatMul',
        'Mul',
        'ReduceMean',
        'Reshape',
        'Shape',
        'Softmax',
        'Tanh',
        'Transpose',
      ].sort(),
    );
    const params = engineModel(readModel(run).description).store.names().sort();
    const weights = model.graph.initializer.map((t) => t.name).filter((n) => !n.startsWith('const/'));
    expect(weights.sort()).toEqual(params);

    // mf predict on the same test samples, as .npy files of bytes.
    const predicted: Partial<Record<Head, Prediction[]>> = {};
    for (const h of HEADS) {
      const { bytes } = samples(h);
      const npy = path.join(out, `${h}.npy`);
      // With its channel axis: a 2D batch of 3 as [3, 28, 28] would read as one RGB image.
      fs.writeFileSync(npy, encodeNpy({ dtype: '|u1', shape: [N[h], ...SHAPE[h]], data: bytes }));
      const json = path.join(out, `${h}.json`);
      const p = mf(['predict', run, npy, '--task', h, '--out', json], env);
      expect(p.status, p.stderr).toBe(0);
      predicted[h] = JSON.parse(fs.readFileSync(json, 'utf8')) as Prediction[];
    }

    const got = await runOnnx(file, { input_2d_c1: samples('synthetic2d'), input_3d_c1: samples('synthetic3d') });
    for (const h of HEADS) {
      expectClose(got[`logits_${h}`]!, await engine(h), 1e-4, `${h} logits, onnxruntime vs the engine`);
      const labels = headTask(readModel(run).description.heads.find((x) => x.key === h)!).ds.labels;
      const fromPredict = Float32Array.from(predicted[h]!.flatMap((p) => labels.map((l) => p.probabilities[l]!)));
      expectClose(got[`probabilities_${h}`]!, fromPredict, 1e-4, `${h} probabilities, onnxruntime vs mf predict`);
    }
  }, 600_000);

  it('--task keeps one head: one input named "input", its two outputs, only the weights it uses, the same numbers', async () => {
    const file = path.join(out, 'three-d.onnx');
    const r = mf(['export', run, '--format', 'onnx', '--task', 'synthetic3d', '--out', file], env);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /^wrote .*three-d\.onnx: ONNX opset 17, .*inputs input \[batch, 1, 28, 28, 28\]; outputs logits_synthetic3d \[batch, 3\], probabilities_synthetic3d \[batch, 3\]/,
    );
    const model = decodeModel(fs.readFileSync(file));
    expect(model.graph.input.map((v) => v.name)).toEqual(['input']);
    expect(model.graph.output.map((v) => v.name)).toEqual(['logits_synthetic3d', 'probabilities_synthetic3d']);
    const names = model.graph.initializer.map((t) => t.name);
    expect(names).toContain('output.heads.synthetic3d.weight');
    expect(names.filter((n) => /synthetic2d|2d_c1/.test(n))).toEqual([]);
    const got = await runOnnx(file, { input: samples('synthetic3d') });
    expectClose(got.logits_synthetic3d!, await engine('synthetic3d'), 1e-4, 'synthetic3d logits');
    // The batch dimension is symbolic: one sample runs too.
    const one = samples('synthetic3d');
    const single = await runOnnx(file, { input: { x: one.x.slice(0, per('synthetic3d')), dims: [1, ...SHAPE.synthetic3d] } });
    expectClose(single.logits_synthetic3d!, got.logits_synthetic3d!.slice(0, 3), 1e-5, 'one sample');
  }, 600_000);
});

describe('mf export --format onnx, per-task checkpoints', () => {
  it("gives each head the weights the trainer tested it with: a second file's initializers carry that head's key", async () => {
    // The run as if picked per task: best-<task> files, the 3D head's with its output bias moved by +1.
    const perTask = path.join(tmpDir('export-per-task'), 'run');
    fs.cpSync(run, perTask, { recursive: true });
    const config = JSON.parse(fs.readFileSync(path.join(perTask, 'config.json'), 'utf8'));
    config.multitask.selection = 'per-task';
    fs.writeFileSync(path.join(perTask, 'config.json'), JSON.stringify(config));
    const best = readSafetensors(path.join(perTask, 'best-all.safetensors'));
    fs.renameSync(path.join(perTask, 'best-all.safetensors'), path.join(perTask, 'best-synthetic2d.safetensors'));
    const moved = new Map(best.tensors);
    const bias = best.tensors.get('output.heads.synthetic3d.bias')!;
    moved.set('output.heads.synthetic3d.bias', {
      ...bias,
      data: Float32Array.from(bias.data as Float32Array, (v) => v + 1),
    } as typeof bias);
    writeSafetensors(path.join(perTask, 'best-synthetic3d.safetensors'), moved, Object.fromEntries(best.metadata));

    const file = path.join(out, 'per-task.onnx');
    const r = mf(['export', perTask, '--format', 'onnx', '--out', file], env);
    expect(r.status, r.stderr).toBe(0);
    const names = decodeModel(fs.readFileSync(file)).graph.initializer.map((t) => t.name);
    expect(names).toContain('output.heads.synthetic2d.bias');
    expect(names).toContain('synthetic3d:output.heads.synthetic3d.bias');
    expect(names).not.toContain('output.heads.synthetic3d.bias');
    const feeds = { input_2d_c1: samples('synthetic2d'), input_3d_c1: samples('synthetic3d') };
    const all = path.join(out, 'all.onnx');
    if (!fs.existsSync(all)) expect(mf(['export', run, '--format', 'onnx', '--out', all], env).status).toBe(0);
    const [mean, picked] = [await runOnnx(all, feeds), await runOnnx(file, feeds)];
    expect(picked.logits_synthetic2d).toEqual(mean.logits_synthetic2d);
    expectClose(
      picked.logits_synthetic3d!,
      mean.logits_synthetic3d!.map((v) => v + 1),
      1e-6,
      'the 3D head of its own file',
    );
  }, 300_000);
});

describe('mf export --format torch', () => {
  it("writes one head's state dict in PyTorch layouts with its key mapping; the PyTorch peer loads it strictly and gives the engine's logits", async (ctx) => {
    const file = path.join(out, 'synthetic2d.safetensors');
    const r = mf(['export', run, '--format', 'torch', '--task', 'synthetic2d', '--out', file, '--json'], env);
    expect(r.status, r.stderr).toBe(0);
    const printed = JSON.parse(r.stdout) as { mapping: TorchKey[]; dropped: string[] };
    const st = readSafetensors(file);
    expect(JSON.parse(st.metadata.get('mapping')!)).toEqual(printed.mapping);
    const engineWeights = readSafetensors(path.join(run, 'best-all.safetensors')).tensors;
    for (const m of printed.mapping) {
      const t = st.tensors.get(m.torch)!;
      const e = engineWeights.get(m.engine)!;
      expect(t.shape, m.torch).toEqual(m.shape);
      if (m.transform === 'transpose') {
        // nn.Linear's [out, in] of the engine's [in, out].
        expect(t.shape).toEqual([e.shape[1], e.shape[0]]);
        expect(t.data[1 * e.shape[0]!]).toBe(e.data[1]);
      } else if (m.transform.startsWith('row ')) {
        const row = Number(m.transform.slice(4));
        expect(Array.from(t.data)).toEqual(Array.from(e.data.slice(row * t.shape[0]!, (row + 1) * t.shape[0]!)));
      } else expect(t.data).toEqual(e.data);
    }
    expect(printed.mapping.find((m) => m.engine === 'input.modality_embed')).toMatchObject({ torch: 'modality_embed', transform: 'row 8' });
    expect(printed.dropped).toContain('output.heads.synthetic3d.weight');
    expect(printed.dropped).toContain('input.patch_3d_c1.weight');

    // The peer is a benchmark instrument, not a dependency: CI does not install PyTorch.
    if (process.env.CI)
      ctx.skip('CI: the PyTorch peer (bench/medformer_small_torch.py) is a benchmark instrument; CI installs no python3-torch');
    const python = process.env.MF_PYTHON ?? '/usr/bin/python3';
    if (spawnSync(python, ['-c', 'import torch, numpy'], { encoding: 'utf8' }).status !== 0) {
      ctx.skip(`${python} has no torch/numpy (apt-get install python3-torch): the PyTorch load is not checked`);
    }
    const { x, dims } = samples('synthetic2d');
    const xFile = path.join(out, 'x2d.npy');
    const yFile = path.join(out, 'y2d.npy');
    fs.writeFileSync(xFile, encodeNpy({ dtype: '<f4', shape: dims, data: x }));
    const py = spawnSync(
      python,
      [
        path.join(ROOT, 'bench/medformer_small_torch.py'),
        '--load-safetensors',
        file,
        '--predict-npy',
        xFile,
        '--out',
        yFile,
        '--threads',
        '1',
      ],
      { encoding: 'utf8', timeout: 300_000 },
    );
    expect(py.status, py.stderr).toBe(0);
    const y = parseNpy(fs.readFileSync(yFile), yFile, 'logits');
    expect(y.shape).toEqual([N.synthetic2d, 4]);
    expectClose(Float32Array.from(y.data as Float32Array), await engine('synthetic2d'), 1e-4, 'PyTorch peer vs the engine');
  }, 600_000);
});

describe('mf export of a BrainFuse interpolator', () => {
  it("writes the slice U-Net as ONNX, which onnxruntime runs to the engine's middle slices (1e-4), GELU/avg and ReLU/max", async () => {
    // Random weights (an untrained head is zero, which would hide the whole network behind the linear blend).
    const configs: SliceUNetConfig[] = [
      { base: 4, depth: 1, groups: 2, act: 'gelu', down: 'avg' },
      { base: 4, depth: 1, groups: 2, act: 'relu', down: 'max' },
    ];
    const [B, H, W] = [2, 16, 12];
    const x = uniform(B * 2 * H * W, 7, 0, 1);
    for (const [n, unet] of configs.entries()) {
      const shapes = new ParameterStore(0);
      new SliceUNet(shapes, unet);
      const weights = new Map(
        shapes.names().map((name, k) => {
          const shape = [...shapes.info(name).shape];
          return [
            name,
            {
              shape,
              data: uniform(
                shape.reduce((a, b) => a * b, 1),
                100 + k,
                -0.5,
                0.5,
              ),
            },
          ] as const;
        }),
      );
      const dir = tmpDir('export-interp');
      saveInterpolator(path.join(dir, 'model.safetensors'), weights, { unet, shape: 16, split: { seed: 0, test: 4, val: 2 }, step: 0 });
      const file = path.join(out, `interp-${n}.onnx`);
      const r = mf(['export', dir, '--format', 'onnx', '--out', file], env);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(
        /inputs slices \[batch, 2, height, width\]; outputs middle \[batch, 1, height, width\] \(BrainFuse interpolator; height and width multiples of 2\)/,
      );
      const got = (await runOnnx(file, { slices: { x, dims: [B, 2, H, W] } })).middle!;

      use(await requireGpu());
      const loaded = buildInterpolator(readInterpolator(dir));
      const y = tidy(() => noGrad(() => loaded.model.forward(Tensor.from(x, [B, 2, H, W]))));
      const want = await y.data();
      y.dispose();
      loaded.dispose();
      expectClose(got, want, 1e-4, `${unet.act}/${unet.down} middle slices, onnxruntime vs the engine`);
    }
  }, 600_000);
});

describe('mf export refuses', () => {
  it('a missing target, an SSL run or checkpoint, an unknown --task and a several-head torch export, each in one line', async () => {
    const sslRun = tmpDir('export-ssl');
    fs.writeFileSync(path.join(sslRun, 'config.json'), JSON.stringify({ name: 'pre', kind: 'ssl', model: { preset: 'small' } }));
    const best = readSafetensors(path.join(run, 'best-all.safetensors'));
    const sslFile = path.join(out, 'ssl.safetensors');
    writeSafetensors(sslFile, best.tensors, { ...Object.fromEntries(best.metadata), kind: 'ssl', tasks: '[]' });
    const cases: [string[], RegExp][] = [
      [[path.join(out, 'nothing-here'), '--format', 'onnx'], /nothing-here does not exist/],
      [[sslRun, '--format', 'onnx'], /self-supervised \(ssl\) run: .*no task heads/],
      [[sslFile, '--format', 'torch'], /ssl\.safetensors is a self-supervised \(ssl\) run/],
      [[run, '--format', 'onnx', '--task', 'nosuch'], /--task nosuch: the model has no such head.*synthetic2d, synthetic3d/],
      [[run, '--format', 'torch'], /--format torch writes one head .*pick one with --task/],
    ];
    // The commands start no device: run them side by side.
    const results = await Promise.all(
      cases.map(async ([args]) => {
        const child = mfAsync(['export', ...args, '--out', path.join(out, 'refused.onnx')], env);
        let stderr = '';
        child.stderr?.on('data', (b: Buffer) => {
          stderr += b.toString();
        });
        return { status: await exited(child), stderr };
      }),
    );
    for (const [n, [args, message]] of cases.entries()) {
      const r = results[n]!;
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr).toMatch(new RegExp(`^error: .*${message.source}`));
    }
    expect(fs.existsSync(path.join(out, 'refused.onnx'))).toBe(false);
  }, 300_000);
});
