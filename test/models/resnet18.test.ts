// ResNet-18 (28), the MedMNIST v2 baseline, and its BatchNorm2d: BatchNorm's forward against a float64 reference,
// its backward against finite differences, the running statistics (momentum, unbiased variance, eval mode, and
// their place in the parameter store as untrained buffers); the model's parameter count, names, initialisation and
// output shapes (CPU reference backend); `"preset": "resnet18"` in experiment files and the multi-step schedule;
// the evaluator's eval mode; and one tiny `mf run` end to end.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSplit } from '../../src/data/dataset.ts';
import { getDataset } from '../../src/data/registry.ts';
import { ensureSynthetic } from '../../src/data/synthetic.ts';
import { ConfigError, ShapeError } from '../../src/errors.ts';
import { loadExperiment, validateExperiment } from '../../src/kinds/index.ts';
import { evaluateSplit } from '../../src/kinds/medformer/evaluate.ts';
import type { AnyModelSettings } from '../../src/kinds/medformer/schema.ts';
import type { TaskModel } from '../../src/kinds/medformer/tasks.ts';
import { RESNET18_WIDTHS, ResNet18 } from '../../src/models/resnet18.ts';
import { BatchNorm2d } from '../../src/nn/batchnorm.ts';
import { Conv2d } from '../../src/nn/conv_layers.ts';
import type { ParamHandle, ParamInit, ParamSource } from '../../src/nn/param.ts';
import { ParameterStore } from '../../src/nn/parameters.ts';
import { mul, sum } from '../../src/ops/index.ts';
import { AdamW } from '../../src/train/adamw.ts';
import { loadCheckpoint } from '../../src/train/checkpoint.ts';
import { readSafetensors } from '../../src/train/safetensors.ts';
import { multiStep } from '../../src/train/schedule.ts';
import { backend, setBackend, Tensor, tidy } from '../../src/tensor/tensor.ts';
import { checkOp, cpu, expectClose, gpuBackend, releaseGpu, uniform } from '../helpers.ts';
import { mf, tmpDir } from '../run/helpers.ts';

afterAll(releaseGpu);

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Per-channel batch statistics of x [B, C, H, W] in float64, and the normalised, affine output. */
function bnReference(x: Float32Array, shape: number[], gamma: Float32Array, beta: Float32Array, eps = 1e-5) {
  const [B, C, H, W] = shape;
  const S = H * W;
  const n = B * S;
  const mean = new Float64Array(C);
  const variance = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let b = 0; b < B; b++) for (let i = 0; i < S; i++) s += x[(b * C + c) * S + i];
    mean[c] = s / n;
    let v = 0;
    for (let b = 0; b < B; b++) for (let i = 0; i < S; i++) v += (x[(b * C + c) * S + i] - mean[c]) ** 2;
    variance[c] = v / n;
  }
  const y = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const c = Math.floor(i / S) % C;
    y[i] = ((x[i] - mean[c]) / Math.sqrt(variance[c] + eps)) * gamma[c] + beta[c];
  }
  const unbiased = Float64Array.from(variance, (v) => (v * n) / (n - 1));
  return { y, mean, variance, unbiased };
}

/** x with a different offset and scale per channel, so each channel's statistics differ. */
function channelData(shape: number[], seed: number): Float32Array {
  const [, C, H, W] = shape;
  const u = uniform(numel(shape), seed, -1, 1);
  return u.map((v, i) => {
    const c = Math.floor(i / (H * W)) % C;
    return v * (0.5 + c) + (c - 1) * 2;
  });
}

/** A ParamSource handing out given tensors (for checkOp, whose inputs are the BatchNorm's weight and bias). */
function fixedSource(values: Record<string, Tensor>): ParamSource {
  const handle = (name: string, shape: readonly number[], init: ParamInit): ParamHandle => {
    const suffix = name.slice(name.lastIndexOf('.') + 1);
    const tensor = values[suffix] ?? Tensor.from(new Float32Array(numel(shape)).fill(init.kind === 'ones' ? 1 : 0), [...shape]);
    return { name, shape, tensor };
  };
  return { param: handle, buffer: handle };
}

async function read(store: ParameterStore, name: string): Promise<Float32Array> {
  return store.get(name).data();
}

describe('BatchNorm2d', () => {
  const shape = [3, 4, 5, 5];
  const C = shape[1];

  it('training mode: batch statistics (biased variance), running mean and variance moved by momentum 0.1 (unbiased variance)', async () => {
    for (const be of [cpu, await gpuBackend()]) {
      if (!be) continue;
      const prev = backend();
      setBackend(be);
      try {
        const store = new ParameterStore(1);
        const bn = new BatchNorm2d(store, 'bn', C);
        store.finalize();
        const gamma = uniform(C, 2, 0.5, 1.5);
        const beta = uniform(C, 3);
        store.load(
          new Map([
            ['bn.weight', { shape: [C], data: gamma }],
            ['bn.bias', { shape: [C], data: beta }],
            ['bn.running_mean', { shape: [C], data: new Float32Array(C) }],
            ['bn.running_var', { shape: [C], data: new Float32Array(C).fill(1) }],
          ]),
        );
        let rm = new Float64Array(C);
        let rv = new Float64Array(C).fill(1);
        for (const seed of [4, 5]) {
          const x = channelData(shape, seed);
          const ref = bnReference(x, shape, gamma, beta);
          const y = tidy(() => bn.forward(Tensor.from(x, shape)));
          expectClose(await y.data(), ref.y, 1e-5, `${be.name} output`);
          y.dispose();
          rm = rm.map((r, c) => 0.9 * r + 0.1 * ref.mean[c]);
          rv = rv.map((r, c) => 0.9 * r + 0.1 * ref.unbiased[c]);
          expectClose(await read(store, 'bn.running_mean'), Float32Array.from(rm), 1e-6, `${be.name} running mean`);
          expectClose(await read(store, 'bn.running_var'), Float32Array.from(rv), 1e-6, `${be.name} running var`);
        }
        store.dispose();
      } finally {
        setBackend(prev);
      }
    }
  });

  it('eval mode: normalises with the running statistics, per sample, and leaves them unchanged', async () => {
    const store = new ParameterStore(1);
    const bn = new BatchNorm2d(store, 'bn', C);
    store.finalize();
    const rm = uniform(C, 6);
    const rv = uniform(C, 7, 0.5, 2);
    const gamma = uniform(C, 8, 0.5, 1.5);
    const beta = uniform(C, 9);
    store.load(
      new Map([
        ['bn.weight', { shape: [C], data: gamma }],
        ['bn.bias', { shape: [C], data: beta }],
        ['bn.running_mean', { shape: [C], data: rm }],
        ['bn.running_var', { shape: [C], data: rv }],
      ]),
    );
    bn.training = false;
    const x = channelData(shape, 10);
    const y = tidy(() => bn.forward(Tensor.from(x, shape)));
    const S = shape[2] * shape[3];
    const want = x.map((v, i) => {
      const c = Math.floor(i / S) % C;
      return ((v - rm[c]) / Math.sqrt(rv[c] + 1e-5)) * gamma[c] + beta[c];
    });
    expectClose(await y.data(), want, 1e-5, 'eval output');
    // One sample alone gives the same rows as inside the batch: no batch statistics.
    const one = tidy(() => bn.forward(Tensor.from(x.subarray(0, C * S), [1, C, shape[2], shape[3]])));
    expectClose(await one.data(), want.subarray(0, C * S), 1e-6, 'one sample in eval mode');
    expect(await read(store, 'bn.running_mean')).toEqual(rm);
    expect(await read(store, 'bn.running_var')).toEqual(rv);
    store.dispose();
  });

  it('backward matches finite differences, in training and in eval mode', async () => {
    const small = [2, 3, 3, 3];
    const c = small[1];
    for (const training of [true, false]) {
      await checkOp(
        {
          inputs: [
            { data: channelData(small, 11), shape: small, grad: true },
            { data: uniform(c, 12, 0.5, 1.5), shape: [c], grad: true },
            { data: uniform(c, 13), shape: [c], grad: true },
          ],
          fn: (x, weight, bias) => {
            const runs = { running_mean: Tensor.from(uniform(c, 14), [c]), running_var: Tensor.from(uniform(c, 15, 0.5, 2), [c]) };
            const bn = new BatchNorm2d(fixedSource({ weight, bias, ...runs }), 'bn', c);
            bn.training = training;
            return bn.forward(x);
          },
        },
        { gradTol: 3e-2, tol: 1e-4 },
      );
    }
  });

  it('running statistics are buffers: exported and loaded with the parameters, never given a gradient, an update or weight decay', async () => {
    const store = new ParameterStore(2);
    const conv = new Conv2d(store, 'conv', 2, C, 3, { padding: 1, bias: false });
    const bn = new BatchNorm2d(store, 'bn', C);
    store.finalize();
    // Every rule that would train or decay everything leaves the buffers alone.
    store.setTrainable(() => true);
    store.setDecay(() => true);
    for (const name of ['bn.running_mean', 'bn.running_var']) {
      expect(store.info(name)).toMatchObject({ buffer: true, trainable: false, decay: false });
      expect(store.get(name).requiresGrad).toBe(false);
    }
    expect(store.info('bn.weight')).toMatchObject({ buffer: false, trainable: true });
    expect(store.bufferCount()).toBe(2 * C);
    expect(store.trainableCount()).toBe(store.count() - 2 * C);

    const opt = new AdamW(store, { lr: 0.1, weightDecay: 0.5 });
    const x = Tensor.from(uniform(2 * 2 * 6 * 6, 16), [2, 2, 6, 6]);
    tidy(() => {
      const loss = sum(mul(bn.forward(conv.forward(x)), Tensor.from(uniform(2 * C * 36, 17), [2, C, 6, 6])));
      loss.backward();
      return loss;
    });
    const afterForward = await store.export();
    const grads = await store.exportGrads();
    expect(grads.get('bn.running_mean')!.data.every((g) => g === 0)).toBe(true);
    expect(grads.get('bn.weight')!.data.some((g) => g !== 0)).toBe(true);
    opt.step();
    const afterStep = await store.export();
    expect(afterStep.get('bn.running_mean')!.data).toEqual(afterForward.get('bn.running_mean')!.data);
    expect(afterStep.get('bn.running_var')!.data).toEqual(afterForward.get('bn.running_var')!.data);
    expect(afterStep.get('bn.weight')!.data).not.toEqual(afterForward.get('bn.weight')!.data);
    expect(afterStep.get('bn.running_mean')!.data.some((v) => v !== 0)).toBe(true);

    // A fresh store of the same model loads them back (checkpoints, best-<task>.safetensors, --resume).
    const again = new ParameterStore(99);
    new Conv2d(again, 'conv', 2, C, 3, { padding: 1, bias: false });
    new BatchNorm2d(again, 'bn', C);
    again.finalize();
    again.load(afterStep, { strict: true });
    expect(await read(again, 'bn.running_var')).toEqual(afterStep.get('bn.running_var')!.data);
    store.dispose();
    again.dispose();
    opt.dispose();
  });

  it('refuses a batch with one value per channel in training mode, and a wrong shape', () => {
    const store = new ParameterStore(1);
    const bn = new BatchNorm2d(store, 'bn', 2);
    store.finalize();
    expect(() => bn.forward(Tensor.from([1, 2], [1, 2, 1, 1]))).toThrow(/more than one value per channel/);
    expect(() => bn.forward(Tensor.from(uniform(12, 1), [2, 3, 2, 1]))).toThrow(ShapeError);
    bn.training = false;
    expect(() => bn.forward(Tensor.from([1, 2], [1, 2, 1, 1]))).not.toThrow();
    store.dispose();
  });
});

describe('ResNet-18 (28)', () => {
  it("has torchvision's parameter count with the 3×3 stem: 11,168,706 for 1 channel and 2 classes", () => {
    const count = (inChannels: number, outputs: number) => {
      const store = new ParameterStore(0);
      new ResNet18(store, { inChannels, tasks: [{ name: 'a', outputs }] });
      return { params: store.count() - store.bufferCount(), buffers: store.bufferCount(), store };
    };
    // torchvision resnet18: 11,689,512 = stem 7×7×3×64 (9,408) + fc 512×1000 + 1000 (513,000) + the rest (11,167,104).
    // With a 3×3 stem on 1 channel (576) and a 2-class fc (1,026): 11,167,104 + 576 + 1,026.
    const two = count(1, 2);
    expect(two.params).toBe(11_168_706);
    // Running mean and variance of its 20 BatchNorm layers (4,800 channels); num_batches_tracked is not kept.
    expect(two.buffers).toBe(9_600);
    expect(count(3, 2).params).toBe(11_168_706 + 2 * 64 * 9);
    expect(count(1, 1).params).toBe(11_168_706 - 513);

    const names = two.store.names();
    expect(names.filter((n) => n.endsWith('.running_mean'))).toHaveLength(20);
    expect(names.filter((n) => n.includes('downsample'))).toEqual([
      ...['layer2', 'layer3', 'layer4'].flatMap((l) => [
        `${l}.0.downsample.0.weight`,
        `${l}.0.downsample.1.weight`,
        `${l}.0.downsample.1.bias`,
        `${l}.0.downsample.1.running_mean`,
        `${l}.0.downsample.1.running_var`,
      ]),
    ]);
    expect(two.store.info('conv1.weight').shape).toEqual([64, 1, 3, 3]);
    expect(two.store.info('layer2.0.conv1.weight').shape).toEqual([128, 64, 3, 3]);
    expect(two.store.info('layer4.1.conv2.weight').shape).toEqual([512, 512, 3, 3]);
    expect(two.store.info('layer3.0.downsample.0.weight').shape).toEqual([256, 128, 1, 1]);
    expect(two.store.info('heads.a.weight').shape).toEqual([512, 2]);
    expect(names.some((n) => /conv\d?\.bias$/.test(n))).toBe(false);
  });

  it("starts from PyTorch's defaults: conv and head Uniform(±1/√fan_in), BatchNorm 1 and 0, running mean 0 and variance 1", async () => {
    const store = new ParameterStore(7);
    new ResNet18(store, { inChannels: 1, tasks: [{ name: 'a', outputs: 2 }] });
    store.finalize();
    const w = await store.export();
    const within = (name: string, fanIn: number) => {
      const d = w.get(name)!.data;
      const bound = 1 / Math.sqrt(fanIn);
      const max = d.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(max, name).toBeLessThanOrEqual(bound);
      // Hundreds of draws or more reach near the bound; a bias of two values only has to be non-zero.
      expect(max, name).toBeGreaterThan(d.length > 100 ? 0.9 * bound : 0);
    };
    within('conv1.weight', 9);
    within('layer1.0.conv1.weight', 64 * 9);
    within('layer4.1.conv2.weight', 512 * 9);
    within('layer2.0.downsample.0.weight', 64);
    within('heads.a.weight', 512);
    within('heads.a.bias', 512);
    expect(w.get('bn1.weight')!.data.every((v) => v === 1)).toBe(true);
    expect(w.get('layer3.1.bn2.bias')!.data.every((v) => v === 0)).toBe(true);
    expect(w.get('layer4.0.downsample.1.running_mean')!.data.every((v) => v === 0)).toBe(true);
    expect(w.get('layer4.0.downsample.1.running_var')!.data.every((v) => v === 1)).toBe(true);
    store.dispose();
  });

  it('gives [B, outputs] for 1- and 3-channel 28 px input, in training and eval mode (CPU reference)', async () => {
    const prev = backend();
    setBackend(cpu);
    try {
      for (const inChannels of [1, 3]) {
        const store = new ParameterStore(3);
        const net = new ResNet18(store, {
          inChannels,
          tasks: [
            { name: 'a', outputs: 5 },
            { name: 'b', outputs: 1 },
          ],
        });
        store.finalize();
        const shape = [2, inChannels, 28, 28];
        const x = Tensor.from(uniform(numel(shape), 20 + inChannels), shape);
        expect(net.training).toBe(true);
        const y = tidy(() => net.forward(x, 'a'));
        expect(y.shape).toEqual([2, 5]);
        expect((await y.data()).every(Number.isFinite)).toBe(true);
        // Training mode moved the deepest running statistics off their start.
        const rm = await read(store, 'layer4.1.bn2.running_mean');
        expect(rm.some((v) => v !== 0)).toBe(true);
        if (inChannels === 1) {
          net.setTraining(false);
          expect(net.training).toBe(false);
          const e = tidy(() => net.forward(x, 'b'));
          expect(e.shape).toEqual([2, 1]);
          expect((await e.data()).every(Number.isFinite)).toBe(true);
          expect(await read(store, 'layer4.1.bn2.running_mean')).toEqual(rm);
          e.dispose();
        }
        expect(() => net.forward(x, 'c')).toThrow(/no head for task 'c'/);
        expect(() => net.forward(Tensor.from(uniform(2 * 4 * 28 * 28, 1), [2, 4, 28, 28]), 'a')).toThrow(ShapeError);
        y.dispose();
        x.dispose();
        store.dispose();
      }
    } finally {
      setBackend(prev);
    }
  });

  it('the evaluator scores in eval mode and hands the model back in training mode', async () => {
    const root = tmpDir('rn18-eval');
    ensureSynthetic(root, 'synthetic2d', { counts: { train: 4, val: 6, test: 4 } });
    const ds = getDataset('synthetic2d');
    const split = loadSplit(ds, 'val', { root });
    let training = true;
    const modes: boolean[] = [];
    const model: TaskModel = {
      forward(x) {
        modes.push(training);
        return Tensor.from(new Float32Array(x.shape[0] * 4), [x.shape[0], 4]);
      },
      setTraining(on) {
        training = on;
      },
    };
    const meta = { dim: 2 as const, channels: 1, modality: 0, bodyPart: 0 };
    const m = await evaluateSplit(model, { ds, head: 'classes', meta }, split, 4);
    expect(modes).toEqual([false, false]);
    expect(training).toBe(true);
    expect(m.acc).toBeGreaterThanOrEqual(0);
    fs.rmSync(root, { recursive: true, force: true });
  });
});

describe('"preset": "resnet18" in an experiment file', () => {
  const file = (over: Record<string, unknown> = {}, model: Record<string, unknown> = { preset: 'resnet18' }) => ({
    name: 'rn',
    kind: 'supervised',
    model,
    data: { datasets: ['breastmnist'], augment: 'none' },
    training: { epochs: 100, batch_size: 128, lr: 1e-3, weight_decay: 0, warmup_epochs: 0 },
    ...over,
  });
  const settings = (raw: unknown) => validateExperiment(raw, 'inline.json').settings as AnyModelSettings;

  it('builds ResNet-18 (28) settings for kind "supervised"', () => {
    const s = settings(file());
    expect(s.model).toEqual({ preset: 'resnet18', image_size_2d: 28 });
    expect(s.data.size).toBe(28);
    expect(s.data.augment).toBeNull();
    expect(s.training.schedule).toBeUndefined();
  });

  it('refuses other model keys, other kinds, other sizes and 3D data sets, each with a ConfigError', () => {
    const fails = (raw: unknown, pattern: RegExp) => {
      expect(() => settings(raw)).toThrow(ConfigError);
      expect(() => settings(raw)).toThrow(pattern);
    };
    fails(file({}, { preset: 'resnet18', hidden_dim: 64 }), /resnet18" takes no other model key, got \/model\/hidden_dim/);
    fails(file({ kind: 'multitask' }), /"resnet18" is for kind "supervised", not "multitask"/);
    fails(
      file({
        kind: 'ssl',
        data: { datasets: ['breastmnist'], augment: 'ssl' },
        ssl: { expander: [8], sim_coeff: 1, std_coeff: 1, cov_coeff: 1 },
      }),
      /"resnet18" is for kind "supervised", not "ssl"/,
    );
    fails(file({ data: { datasets: ['breastmnist'], size: 64 } }), /\/data\/size 64.*ResNet-18 \(28\)/);
    fails(file({ data: { datasets: ['organmnist3d'] } }), /2D model.*organmnist3d/);
    fails(file({}, { preset: 'resnet' }), /\/model\/preset must be one of "small", "large", "resnet18"/);
  });

  it('the shipped MedMNIST v2 recipes: 100 epochs, batch 128, Adam lr 1e-3, x0.1 at epochs 50 and 75, no augmentation', () => {
    for (const [f, ds] of [
      ['resnet18-breastmnist.json', 'breastmnist'],
      ['resnet18-retinamnist.json', 'retinamnist'],
    ]) {
      const s = loadExperiment(path.join('experiments', f)).settings as AnyModelSettings;
      expect(s.model.preset).toBe('resnet18');
      expect(s.data.datasets).toEqual([ds]);
      expect(s.data.augment).toBeNull();
      expect(s.training).toMatchObject({ epochs: 100, batch_size: 128, lr: 0.001, weight_decay: 0, warmup_epochs: 0, grad_clip: null });
      expect(s.training.schedule).toEqual({ kind: 'multistep', milestones: [50, 75], gamma: 0.1 });
    }
  });
});

describe('training.schedule "multistep"', () => {
  it("is PyTorch's MultiStepLR stepped per epoch, in steps", () => {
    const s = multiStep({ lr: 1e-3, milestones: [50 * 4, 75 * 4], gamma: 0.1 });
    expect([0, 199, 200, 299, 300, 399].map((k) => s.lr(k))).toEqual([
      1e-3,
      1e-3,
      1e-3 * 0.1,
      1e-3 * 0.1,
      1e-3 * 0.1 ** 2,
      1e-3 * 0.1 ** 2,
    ]);
    expect(() => multiStep({ lr: 1e-3, milestones: [5, 5], gamma: 0.1 })).toThrow(ConfigError);
  });

  it('resolves only when asked for: "onecycle" and no key leave the settings (and so the config hash) as before', () => {
    const base = { name: 'x', kind: 'supervised', model: { preset: 'small' }, data: { datasets: ['breastmnist'] } };
    const t = { epochs: 10, batch_size: 8, lr: 1e-3, weight_decay: 0, warmup_epochs: 0 };
    const training = (extra: Record<string, unknown>) =>
      (validateExperiment({ ...base, training: { ...t, ...extra } }, 'inline.json').settings as AnyModelSettings).training;
    expect('schedule' in training({})).toBe(false);
    expect(training({ schedule: 'onecycle' })).toEqual(training({}));
    expect(training({ schedule: { kind: 'multistep', milestones: [3, 6], gamma: 0.5 } }).schedule).toEqual({
      kind: 'multistep',
      milestones: [3, 6],
      gamma: 0.5,
    });
    expect(() => training({ warmup_epochs: 1, schedule: { kind: 'multistep', milestones: [3], gamma: 0.5 } })).toThrow(/no warm-up/);
    expect(() => training({ schedule: { kind: 'multistep', milestones: [6, 3], gamma: 0.5 } })).toThrow(/ascending/);
    expect(() => training({ schedule: 'cosine' })).toThrow(/\/training\/schedule must be "onecycle", "constant" or/);
  });
});

describe('mf run with ResNet-18', () => {
  it('trains on a tiny synthetic set, writes metrics.json, and keeps the running statistics in its checkpoints', () => {
    const dir = tmpDir('rn18-run');
    const data = path.join(dir, 'data');
    fs.mkdirSync(data);
    // Evaluation batches of 4 (the val and test sizes) are the training batch's shape: no new kernels to compile.
    ensureSynthetic(data, 'synthetic2d', { counts: { train: 8, val: 4, test: 4 } });
    const exp = path.join(dir, 'rn18.json');
    fs.writeFileSync(
      exp,
      JSON.stringify({
        name: 'rn18',
        kind: 'supervised',
        model: { preset: 'resnet18' },
        data: { datasets: ['synthetic2d'], augment: 'none', train_limit: 8 },
        training: {
          epochs: 2,
          max_steps: 3,
          batch_size: 4,
          lr: 0.001,
          weight_decay: 0,
          warmup_epochs: 0,
          schedule: { kind: 'multistep', milestones: [1], gamma: 0.1 },
          seed: 1,
          log_every: 1,
        },
      }),
    );
    const out = path.join(dir, 'out');
    const r = mf(['run', exp, '--out', out, '--quiet'], { MEDMNIST_ROOT: data });
    expect(r.status, r.stderr).toBe(0);
    const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    expect(metrics.synthetic2d.steps).toBe(3);
    expect(metrics.synthetic2d.test.auc).toBeGreaterThanOrEqual(0);
    expect(metrics.synthetic2d.test.auc).toBeLessThanOrEqual(1);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).model).toEqual({ preset: 'resnet18', image_size_2d: 28 });
    // Two steps per epoch: the rate drops ×0.1 at the start of epoch 2 (milestone 1).
    const lrs = fs
      .readFileSync(path.join(out, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((e) => e.event === 'train')
      .map((e) => e.lr);
    expect(lrs).toEqual([0.001, 0.001, 0.001 * 0.1]);
    const best = readSafetensors(path.join(out, 'best-synthetic2d.safetensors')).tensors;
    expect(best.get('bn1.running_mean')?.shape).toEqual([64]);
    expect(best.get('layer4.1.bn2.running_var')?.shape).toEqual([RESNET18_WIDTHS[3]]);
    const last = loadCheckpoint(out).model;
    const rv = last.get('layer4.1.bn2.running_var')!;
    expect(Array.from(rv.data as ArrayLike<number>).some((v) => v !== 1)).toBe(true);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
