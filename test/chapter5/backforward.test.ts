// Backforward Propagation (thesis section 5.3) and what its experiment needs: plain SGD on both backends against
// its formula; backforward's L updates per batch, each group updated after a fresh forward through the groups
// already updated (checked against the same passes written out by hand), and equal to plain backprop for a model of
// one layer group; the MNIST IDX reader and the generated digits; and, end to end, an MLP run comparing backprop
// with backforward (compare_updates) on the generated digits, with its accuracy chart.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMnist, mnistDir, readIdx, syntheticDigits, writeIdx } from '../../src/data/mnist.ts';
import { ConfigError, FileFormatError } from '../../src/errors.ts';
import { loadExperiment } from '../../src/kinds/index.ts';
import { Mlp } from '../../src/models/mlp.ts';
import { medformerLayerGroups } from '../../src/models/medformer.ts';
import { ParameterStore } from '../../src/nn/parameters.ts';
import { crossEntropy } from '../../src/ops/losses.ts';
import { Tensor, tidy } from '../../src/tensor/tensor.ts';
import { backforwardStep, type StepOutput } from '../../src/train/phase.ts';
import { readSafetensors } from '../../src/train/safetensors.ts';
import { Sgd } from '../../src/train/sgd.ts';
import { cpu, expectClose, gpuBackend, onEach, releaseGpu, uniform, use } from '../helpers.ts';
import { mf, tmpDir } from '../run/helpers.ts';

afterAll(releaseGpu);

const N = 6;
const x = uniform(N * 12, 3, -1, 1);
const y = Int32Array.from({ length: N }, (_, i) => i % 3);

/** A 12-[hidden]-3 perceptron with seeded weights, and one training pass over the fixed batch. */
function mlp(hidden: number[]) {
  const store = new ParameterStore(7);
  const net = new Mlp(store, { inputs: 12, hidden, tasks: [{ name: 't', outputs: 3 }] });
  store.finalize();
  const pass = (): StepOutput => {
    const loss = tidy(() => {
      const l = crossEntropy(net.forward(Tensor.from(x, [N, 12]), 't'), Tensor.from(y, [N], 'i32'));
      l.backward();
      return l;
    });
    return { loss, samples: N };
  };
  return { store, net, pass };
}

const values = async (store: ParameterStore) => new Map([...(await store.export())].map(([k, v]) => [k, v.data]));

describe('SGD without momentum', () => {
  it('p ← p·(1 − lr·wd) − lr·clip·g on both backends, decay only where the mask says, frozen parameters untouched', async () => {
    await onEach(async (b) => {
      const { store, pass } = mlp([5]);
      store.setTrainable((n) => n !== 'fc0.bias');
      const before = await values(store);
      store.zeroGrad();
      pass().loss.dispose();
      const grads = new Map([...(await store.exportGrads())].map(([k, v]) => [k, v.data]));
      let n2 = 0;
      for (const [k, g] of grads) if (k !== 'fc0.bias') for (const v of g) n2 += v * v;
      const clip = Math.min(1, 0.5 / (Math.sqrt(n2) + 1e-6));
      const opt = new Sgd(store, { lr: 0.1, weightDecay: 0.2, maxGradNorm: 0.5 });
      opt.step();
      expect(opt.stepCount).toBe(1);
      const after = await values(store);
      for (const [k, p] of before) {
        const g = grads.get(k)!;
        const decays = store.info(k).decay;
        const want = k === 'fc0.bias' ? p : p.map((v, i) => (decays ? v * (1 - 0.1 * 0.2) : v) - 0.1 * clip * g[i]);
        expectClose(after.get(k)!, Float32Array.from(want), 1e-5, `${b.name} ${k}`);
      }
      expect(Array.from(after.get('fc0.bias')!)).toEqual(Array.from(before.get('fc0.bias')!));
      // No moments: a checkpoint of it carries none, and AdamW moments are refused.
      const state = await opt.exportState();
      expect(state.m.size + state.v.size).toBe(0);
      expect(() =>
        opt.loadState({ step: 1, m: new Map([['fc0.weight', { shape: [1], data: new Float32Array(1) }]]), v: new Map() }),
      ).toThrow(/AdamW moments/);
      store.dispose();
    });
  });
});

describe('backforward updates', () => {
  it('makes exactly L updates per batch, each after a fresh forward through the groups already updated', async () => {
    use(cpu);
    const lr = 0.2;
    const a = mlp([5, 4]);
    const groups = a.net.layerGroups();
    expect(groups).toEqual([
      ['fc0.weight', 'fc0.bias'],
      ['fc1.weight', 'fc1.bias'],
      ['heads.t.weight', 'heads.t.bias'],
    ]);
    const optA = new Sgd(a.store, { lr });
    let passes = 0;
    const out = backforwardStep(
      a.store,
      optA,
      lr,
      groups.map((g) => new Set(g)),
      () => {
        passes++;
        return a.pass();
      },
    );
    out.loss.dispose();
    expect(passes).toBe(3);
    expect(optA.stepCount).toBe(3);
    // Every parameter is trainable again afterwards.
    expect(a.store.names().every((n) => a.store.info(n).trainable)).toBe(true);

    // The same three passes by hand: backward through everything, then move only group l by its gradient.
    const b = mlp([5, 4]);
    for (const group of groups) {
      b.store.zeroGrad();
      b.pass().loss.dispose();
      const grads = await b.store.exportGrads();
      const now = await b.store.export();
      for (const name of group)
        now.set(name, { shape: now.get(name)!.shape, data: now.get(name)!.data.map((v, i) => v - lr * grads.get(name)!.data[i]) });
      b.store.load(now);
    }
    const [va, vb] = [await values(a.store), await values(b.store)];
    for (const [k, v] of vb) expectClose(va.get(k)!, v, 1e-6, k);

    // Plain backprop moves every layer by the gradients of one forward pass: the result differs.
    const c = mlp([5, 4]);
    c.store.zeroGrad();
    c.pass().loss.dispose();
    new Sgd(c.store, { lr }).step();
    const vc = await values(c.store);
    expect(Array.from(vc.get('heads.t.weight')!)).not.toEqual(Array.from(va.get('heads.t.weight')!));
    for (const s of [a, b, c]) s.store.dispose();
  });

  it('equals plain backprop for a model of one layer group, on both backends', async () => {
    await onEach(async (bk) => {
      const a = mlp([]);
      const b = mlp([]);
      const groups = a.net.layerGroups();
      expect(groups.length).toBe(1);
      const optA = new Sgd(a.store, { lr: 0.3 });
      const optB = new Sgd(b.store, { lr: 0.3 });
      for (let step = 0; step < 3; step++) {
        backforwardStep(a.store, optA, 0.3, [new Set(groups[0])], a.pass).loss.dispose();
        b.store.zeroGrad();
        b.pass().loss.dispose();
        optB.step(0.3);
      }
      expect(optA.stepCount).toBe(3);
      const [va, vb] = [await values(a.store), await values(b.store)];
      for (const [k, v] of vb) expect(Array.from(va.get(k)!), `${bk.name} ${k}`).toEqual(Array.from(v));
      a.store.dispose();
      b.store.dispose();
    });
  });

  it("Medformer's groups: the input Adaptformer, each block, then the rest", () => {
    const names = [
      'input.latents',
      'input.to_hidden.weight',
      'body.blocks.0.attn.w',
      'body.blocks.1.mlp.w',
      'body.norm.weight',
      'output.heads.t.weight',
    ];
    expect(medformerLayerGroups(names, 2)).toEqual([
      ['input.latents', 'input.to_hidden.weight'],
      ['body.blocks.0.attn.w'],
      ['body.blocks.1.mlp.w'],
      ['body.norm.weight', 'output.heads.t.weight'],
    ]);
  });

  it('is refused without SGD, in one line naming the key', () => {
    const dir = tmpDir('c5-bf-schema');
    const file = path.join(dir, 'x.json');
    const exp = (training: Record<string, unknown>, extra: Record<string, unknown> = {}) => {
      fs.writeFileSync(
        file,
        JSON.stringify({
          name: 'x',
          kind: 'supervised',
          model: { preset: 'mlp' },
          data: { datasets: ['mnist'], augment: false },
          training: { epochs: 1, batch_size: 8, lr: 0.1, weight_decay: 0, warmup_epochs: 0, ...training },
          ...extra,
        }),
      );
      return () => loadExperiment(file);
    };
    expect(exp({ update: 'backforward' })).toThrow(ConfigError);
    expect(exp({ update: 'backforward' })).toThrow(/\/training\/update "backforward" needs \/training\/optimizer "sgd"/);
    expect(exp({}, { compare_updates: ['backprop', 'backforward'] })).toThrow(/needs \/training\/optimizer "sgd"/);
    const ok = loadExperiment((exp({ update: 'backforward', optimizer: 'sgd', schedule: 'constant' }), file)).settings as unknown as {
      training: Record<string, unknown>;
      model: unknown;
    };
    expect(ok.training).toMatchObject({
      update: 'backforward',
      optimizer: 'sgd',
      schedule: { kind: 'multistep', milestones: [], gamma: 1 },
    });
    expect(ok.model).toEqual({ preset: 'mlp', image_size_2d: 28, hidden: [256] });
  });
});

describe('MNIST', () => {
  it('reads the IDX files, gzipped or not: 50,000 / 10,000 / t10k in the full set, the last sixth for validation here', () => {
    const root = tmpDir('c5-mnist');
    const dir = mnistDir(root);
    fs.mkdirSync(dir);
    const n = 60;
    const img = Uint8Array.from({ length: n * 784 }, (_, e) => (e * 7) % 256);
    const lab = Uint8Array.from({ length: n }, (_, i) => i % 10);
    writeIdx(path.join(dir, 'train-images-idx3-ubyte'), [n, 28, 28], img);
    fs.writeFileSync(
      path.join(dir, 'train-labels-idx1-ubyte.gz'),
      zlib.gzipSync(Buffer.concat([Buffer.from([0, 0, 8, 1, 0, 0, 0, n]), Buffer.from(lab)])),
    );
    writeIdx(path.join(dir, 't10k-images-idx3-ubyte'), [10, 28, 28], img.subarray(0, 10 * 784));
    writeIdx(path.join(dir, 't10k-labels-idx1-ubyte'), [10], lab.subarray(0, 10));
    const m = loadMnist(root);
    expect(m.real).toBe(true);
    expect([m.train.n, m.val.n, m.test.n]).toEqual([50, 10, 10]);
    expect(Array.from(m.val.labels)).toEqual(Array.from(lab.subarray(50)).map(Number));
    expect(Array.from(m.train.images.subarray(784, 790))).toEqual(Array.from(img.subarray(784, 790)));
    expect(m.test.shape).toEqual([1, 28, 28]);
    expect(readIdx(path.join(dir, 'train-labels-idx1-ubyte.gz')).dims).toEqual([n]);

    // A cut file, a wrong type and a missing partner are each one line naming the file.
    fs.writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte'), Buffer.from([0, 0, 8, 1, 0, 0, 0, 10, 1, 2]));
    expect(() => loadMnist(root)).toThrow(FileFormatError);
    expect(() => loadMnist(root)).toThrow(/t10k-labels-idx1-ubyte: IDX header says 10 = 10 bytes, the file holds 2/);
    fs.writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte'), Buffer.from([0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]));
    expect(() => loadMnist(root)).toThrow(/IDX type 0xd is not unsigned bytes/);
    fs.rmSync(path.join(dir, 't10k-labels-idx1-ubyte'));
    expect(() => loadMnist(root)).toThrow(/MNIST is missing t10k-labels-idx1-ubyte/);
  });

  it('without files, the generated seven-segment digits: seeded, balanced, ink on a dark ground', () => {
    const m = loadMnist(tmpDir('c5-nomnist'));
    expect(m.real).toBe(false);
    expect([m.train.n, m.val.n, m.test.n]).toEqual([2000, 500, 500]);
    const again = syntheticDigits(0);
    expect(Buffer.from(again.train.images).equals(Buffer.from(m.train.images))).toBe(true);
    expect(Buffer.from(syntheticDigits(1).train.images).equals(Buffer.from(m.train.images))).toBe(false);
    const counts = new Array(10).fill(0);
    for (const v of m.train.labels) counts[v]++;
    expect(counts).toEqual(new Array(10).fill(200));
    // A "1" has two segments, an "8" seven: on average far more ink.
    const ink = (d: number) => {
      let total = 0;
      let count = 0;
      m.train.labels.forEach((v, i) => {
        if (v !== d) return;
        count++;
        for (const p of m.train.images.subarray(i * 784, (i + 1) * 784)) if (p > 128) total++;
      });
      return total / count;
    };
    expect(ink(8)).toBeGreaterThan(2 * ink(1));
    expect(ink(1)).toBeGreaterThan(10);
  });
});

describe('compare_updates on an MLP, end to end', () => {
  let run: string;
  beforeAll(async () => {
    if (!(await gpuBackend())) return;
    const dir = tmpDir('c5-bf');
    const file = path.join(dir, 'bf.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        name: 'bf-tiny',
        kind: 'supervised',
        model: { preset: 'mlp' },
        data: { datasets: ['mnist'], augment: false, train_limit: 128 },
        training: {
          epochs: 2,
          batch_size: 32,
          lr: 0.05,
          weight_decay: 0,
          warmup_epochs: 0,
          schedule: 'constant',
          optimizer: 'sgd',
          seed: 1,
          log_every: 2,
        },
        compare_updates: ['backprop', 'backforward'],
      }),
    );
    run = path.join(dir, 'run');
    const r = mf(['run', file, '--out', run, '--data-dir', path.join(dir, 'no-data'), '--quiet']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/training on the generated seven-segment digits/);
  }, 300_000);

  it('trains both arms from one initialisation, backforward with two updates per batch, and charts both', async (ctx) => {
    if (!run) return ctx.skip();
    const m = JSON.parse(fs.readFileSync(path.join(run, 'metrics.json'), 'utf8')).mnist;
    expect(m.arms.map((a: { update: string }) => a.update)).toEqual(['backprop', 'backforward']);
    expect(m.arms.map((a: { steps: number }) => a.steps)).toEqual([8, 8]);
    // The final checkpoint is the backforward arm's: 8 batches, 2 layer groups, 16 updates.
    const pointer = JSON.parse(fs.readFileSync(path.join(run, 'checkpoint.json'), 'utf8'));
    const state = readSafetensors(path.join(run, pointer.state)).metadata;
    const training = JSON.parse(state.get('training_state')!);
    expect(training.extra.phase).toBe('update-backforward');
    expect(training.step).toBe(8);
    expect(training.extra.adam_step).toBe(16);
    const log = fs
      .readFileSync(path.join(run, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const trainAcc = log.filter((r) => r.event === 'val' && r.split === 'train');
    expect(trainAcc.map((r) => r.phase)).toEqual(['update-backprop', 'update-backprop', 'update-backforward', 'update-backforward']);
    // Both arms start from the same weights: their first logged losses are from the same model on the same batch.
    const first = (phase: string) => log.find((r) => r.event === 'train' && r.phase === phase);
    expect(first('update-backprop').step).toBe(first('update-backforward').step);
    const svg = fs.readFileSync(path.join(run, 'accuracy.svg'), 'utf8');
    expect(svg.match(/<polyline/g)?.length).toBe(4);
    for (const label of ['backprop train', 'backprop val', 'backforward train', 'backforward val']) expect(svg).toContain(label);
    const report = fs.readFileSync(path.join(run, 'report.md'), 'utf8');
    expect(report).toMatch(/## Update rules compared/);
    expect(report).toMatch(/\| mnist \| backforward \| 8 \| \d \| [0-9.]+% \| [0-9.]+% \| [0-9.]+ \|/);
  });
});
