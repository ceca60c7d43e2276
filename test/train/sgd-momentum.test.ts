// SGD with (Nesterov) momentum, the Wide ResNet recipe of thesis section 5.4: several steps on both backends against
// torch.optim.SGD's arithmetic written out in float64, the momentum buffers through exportState/loadState, the
// experiment keys and their checks (absent by default, so every earlier run keeps its config hash), and `mf run`
// killed mid-run and resumed ending bit-identical to a run that never stopped.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, ShapeError } from '../../src/errors.ts';
import { loadExperiment, validateExperiment } from '../../src/kinds/index.ts';
import { ParameterStore, type ParamInit } from '../../src/nn/parameters.ts';
import { backend } from '../../src/tensor/tensor.ts';
import { loadCheckpoint } from '../../src/train/checkpoint.ts';
import { configHash } from '../../src/train/hash.ts';
import { Sgd, type SgdOptions } from '../../src/train/sgd.ts';
import { onEach, releaseGpu, uniform } from '../helpers.ts';
import { mf, ROOT, tmpDir } from '../run/helpers.ts';

afterAll(releaseGpu);

// Odd sizes (none a multiple of the 64-float block), decayed and undecayed, one frozen.
const SPECS: [string, number[], ParamInit][] = [
  ['enc.fc.weight', [3, 5], { kind: 'trunc_normal', std: 0.5 }],
  ['enc.fc.bias', [5], { kind: 'normal', std: 0.5 }],
  ['head.weight', [67, 1], { kind: 'xavier_uniform' }],
  ['frozen.weight', [4, 4], { kind: 'normal', std: 1 }],
  ['odd', [129], { kind: 'normal', std: 1 }],
];

function build(seed = 3): ParameterStore {
  const s = new ParameterStore(seed);
  for (const [n, shape, init] of SPECS) s.param(n, shape, init);
  s.finalize();
  s.setTrainable((n) => n !== 'frozen.weight');
  return s;
}

function setGrads(store: ParameterStore, seed: number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  let k = 0;
  for (const [name, t] of store.entries()) {
    const g = uniform(t.size, seed * 31 + k++);
    backend().write(t.grad!.buffer, g);
    out.set(name, g);
  }
  return out;
}

/** torch.optim.SGD (dampening 0, foreach off) after torch.nn.utils.clip_grad_norm_, in float64. */
class TorchSgd {
  readonly p = new Map<string, Float64Array>();
  readonly buf = new Map<string, Float64Array>();
  constructor(
    init: Map<string, { data: Float32Array }>,
    readonly o: Required<Omit<SgdOptions, 'maxGradNorm'>> & { maxGradNorm?: number },
    readonly decay: (n: string) => boolean,
    readonly trainable: (n: string) => boolean,
  ) {
    for (const [n, { data }] of init) this.p.set(n, Float64Array.from(data));
  }
  step(grads: Map<string, Float32Array>, lr = this.o.lr): void {
    let sq = 0;
    for (const [n, g] of grads) if (this.trainable(n)) for (const x of g) sq += x * x;
    const coef = this.o.maxGradNorm === undefined ? 1 : Math.min(1, this.o.maxGradNorm / (Math.sqrt(sq) + 1e-6));
    const mu = this.o.momentum;
    for (const [n, g] of grads) {
      if (!this.trainable(n)) continue;
      const p = this.p.get(n)!;
      const wd = this.decay(n) ? this.o.weightDecay : 0;
      const first = !this.buf.has(n);
      const buf = this.buf.get(n) ?? new Float64Array(p.length);
      this.buf.set(n, buf);
      for (let i = 0; i < p.length; i++) {
        const d = g[i] * coef + wd * p[i];
        // PyTorch: buf = clone(d) on the first step, buf = mu * buf + d after.
        buf[i] = first ? d : mu * buf[i] + d;
        p[i] -= lr * (this.o.nesterov ? d + mu * buf[i] : buf[i]);
      }
    }
  }
}

function expectNear(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  expect(actual.length, what).toBe(expected.length);
  let worst = 0;
  let at = 0;
  for (let i = 0; i < actual.length; i++) {
    const e = Math.abs(actual[i]! - expected[i]!) / (1 + Math.abs(expected[i]!));
    if (e > worst) [worst, at] = [e, i];
  }
  expect(worst, `${what}: worst at ${at}: ${actual[at]} vs ${expected[at]}`).toBeLessThanOrEqual(tol);
}

describe('SGD with momentum', () => {
  for (const nesterov of [false, true]) {
    it(`six steps with new gradients and a changing lr match torch.optim.SGD (momentum 0.9${nesterov ? ', Nesterov' : ''}) on both backends`, async () => {
      await onEach(async (b) => {
        const s = build();
        const opts = { lr: 0.1, weightDecay: 5e-4 * 40, momentum: 0.9, nesterov, maxGradNorm: 3 };
        const opt = new Sgd(s, opts);
        const ref = new TorchSgd(
          await s.export(),
          opts,
          (n) => s.info(n).decay,
          (n) => n !== 'frozen.weight',
        );
        const frozen = (await s.export()).get('frozen.weight')!.data;
        let clipped = false;
        for (let k = 0; k < 6; k++) {
          const lr = 0.1 * 0.2 ** Math.floor(k / 3);
          const g = setGrads(s, 5 + k);
          opt.step(lr);
          ref.step(g, lr);
          clipped ||= (await opt.lastGradNorm()) > 3;
        }
        expect(clipped, 'the clip engaged at least once').toBe(true);
        const p = await s.export();
        const st = await opt.exportState();
        expect(st.step).toBe(6);
        expect(st.v.size).toBe(0);
        for (const name of s.names()) {
          // f32 against float64 over six steps: ~1e-6 relative.
          expectNear(p.get(name)!.data, ref.p.get(name)!, 2e-6, `${b.name} ${name} param`);
          if (name === 'frozen.weight') continue;
          expectNear(st.m.get(name)!.data, ref.buf.get(name)!, 2e-6, `${b.name} ${name} momentum buffer`);
        }
        // Frozen: no update, no buffer.
        expect(Array.from(p.get('frozen.weight')!.data)).toEqual(Array.from(frozen));
        expect(Array.from(st.m.get('frozen.weight')!.data).every((v) => v === 0)).toBe(true);
        // The decay reached the decayed parameters only: the head's weight decays, the 1D bias does not.
        expect(s.info('head.weight').decay).toBe(true);
        expect(s.info('enc.fc.bias').decay).toBe(false);
        opt.dispose();
        s.dispose();
      });
    });
  }

  it('momentum 0 is the plain SGD update, bit for bit (the same kernel)', async () => {
    await onEach(async (b) => {
      const a = build();
      const c = build();
      const plain = new Sgd(a, { lr: 0.05, weightDecay: 0.01 });
      const zero = new Sgd(c, { lr: 0.05, weightDecay: 0.01, momentum: 0, nesterov: false });
      for (let k = 0; k < 3; k++) {
        setGrads(a, 40 + k);
        setGrads(c, 40 + k);
        plain.step();
        zero.step();
      }
      expect(await c.export(), b.name).toEqual(await a.export());
      expect((await zero.exportState()).m.size).toBe(0);
      [plain, zero].forEach((o) => o.dispose());
      [a, c].forEach((x) => x.dispose());
    });
  });

  it('exportState/loadState carries the momentum buffers: a restored optimizer continues bit-identically', async () => {
    await onEach(async (b) => {
      const opts = { lr: 0.1, weightDecay: 5e-4, momentum: 0.9, nesterov: true };
      const a = build();
      const optA = new Sgd(a, opts);
      for (let k = 0; k < 3; k++) {
        setGrads(a, 60 + k);
        optA.step();
      }
      const weights = await a.export();
      const state = await optA.exportState();
      expect(state.m.size).toBe(SPECS.length);
      expect([...state.m.values()].some((t) => t.data.some((v) => v !== 0))).toBe(true);
      const r = build(99);
      r.load(weights);
      const optR = new Sgd(r, opts);
      optR.loadState(state);
      expect(optR.stepCount).toBe(3);
      // Without the buffers the next step would differ: a fresh optimizer on the same weights.
      const f = build(98);
      f.load(weights);
      const optF = new Sgd(f, opts);
      for (const s of [a, r, f]) setGrads(s, 70);
      optA.step();
      optR.step();
      optF.step();
      expect(await r.export(), b.name).toEqual(await a.export());
      expect(await optR.exportState()).toEqual(await optA.exportState());
      expect(await f.export()).not.toEqual(await a.export());
      // AdamW state (a second moment), or moments for plain SGD, are refused; so are buffers of another shape.
      const v = new Map([['odd', { shape: [129], data: new Float32Array(129) }]]);
      expect(() => optR.loadState({ step: 1, m: state.m, v })).toThrow(ShapeError);
      expect(() => new Sgd(r, { lr: 0.1 }).loadState(state)).toThrow(/AdamW moments/);
      const bad = new Map(state.m);
      bad.set('odd', { shape: [128], data: new Float32Array(128) });
      expect(() => optR.loadState({ step: 1, m: bad, v: new Map() })).toThrow(/odd/);
      [optA, optR, optF].forEach((o) => o.dispose());
      [a, r, f].forEach((x) => x.dispose());
    });
  });

  it('a new optimizer starts with zero buffers, whatever an earlier phase left in the store (as a resumed run does)', async () => {
    await onEach(async (b) => {
      const s = build();
      const first = new Sgd(s, { lr: 0.1, momentum: 0.9 });
      setGrads(s, 80);
      first.step();
      expect([...(await first.exportState()).m.values()].some((t) => t.data.some((v) => v !== 0))).toBe(true);
      first.dispose();
      const second = new Sgd(s, { lr: 0.1, momentum: 0.9 });
      const left = [...(await second.exportState()).m.values()];
      expect(
        left.every((t) => t.data.every((v) => v === 0)),
        b.name,
      ).toBe(true);
      second.dispose();
      s.dispose();
    });
  });

  it('refuses a momentum outside [0, 1) and Nesterov without momentum', () => {
    const s = build();
    expect(() => new Sgd(s, { lr: 0.1, momentum: 1 })).toThrow(/momentum 1 must be in \[0, 1\)/);
    expect(() => new Sgd(s, { lr: 0.1, nesterov: true })).toThrow(ConfigError);
    s.dispose();
  });
});

describe('training.momentum and training.nesterov', () => {
  const exp = (training: Record<string, unknown>) => ({
    name: 'x',
    kind: 'supervised',
    model: { preset: 'mlp' },
    data: { datasets: ['mnist'], augment: 'none' },
    training: { epochs: 1, batch_size: 8, lr: 0.1, weight_decay: 0, warmup_epochs: 0, schedule: 'constant', ...training },
  });
  const training = (t: Record<string, unknown>) =>
    (validateExperiment(exp(t), 'x.json').settings as unknown as { training: Record<string, unknown> }).training;

  it('are absent from the settings at their defaults, present when set, and checked in one line naming the key', () => {
    const plain = training({ optimizer: 'sgd', momentum: 0, nesterov: false });
    expect('momentum' in plain || 'nesterov' in plain).toBe(false);
    expect(training({ optimizer: 'sgd', momentum: 0.9, nesterov: true })).toMatchObject({
      optimizer: 'sgd',
      momentum: 0.9,
      nesterov: true,
    });
    expect(() => training({ momentum: 0.9 })).toThrow(/x\.json: \/training\/momentum is for SGD; \/training\/optimizer is "adamw"/);
    expect(() => training({ optimizer: 'sgd', nesterov: true })).toThrow(/\/training\/nesterov needs a \/training\/momentum above 0/);
    expect(() => training({ optimizer: 'sgd', momentum: 1 })).toThrow(
      /\/training\/momentum must be SGD momentum, a number in \[0, 1\)|\/training\/momentum must be < 1/,
    );
  });

  it('leave the config hash of existing experiments as it was (hashes from before the keys existed)', () => {
    // configHash of these shipped files, computed with the code of commit 30c4e9f (before momentum and the
    // data-source records): a run started then still resumes now.
    const before: Record<string, string> = {
      'backforward-mnist.json': 'cba938ecce45ec223ed91c2ce3f60aff45b95d6c15af4178b552f7498012956e',
      'csa-small-breastmnist.json': '6c9bded465f77aa717570303e312440bc8e39f95c1a5f4f16347c2a67e5f7b57',
      'quickstart.json': 'bdc00469a7cb60c3a0b9a4311245810684cc14a2adb9f0c0bc710eb3ce2a83fc',
      'st-small-breastmnist.json': 'ec3a3f396ad98b9a5c6ce6352d2ee3515b89a9f58a0e7d29b15fcb438518ad42',
      'mt-small.json': 'b7175f75a3dfe2fd9861087f11c6fc9aba8c9d614fd82057b3a55f58e0da1a58',
      'finetune-small-breastmnist.json': 'a215139b9cdddce406fdf7ff5a7123b01b5712457931dce044351046c64722fb',
    };
    for (const [file, hash] of Object.entries(before)) {
      expect(configHash(loadExperiment(path.join(ROOT, 'experiments', file)).settings), file).toBe(hash);
    }
  });

  it('the 16 CIFAR experiments train with the WRN recipe: SGD, Nesterov momentum 0.9, lr 0.1, weight decay 5e-4', () => {
    const files = fs.readdirSync(path.join(ROOT, 'experiments')).filter((f) => /^cifar.*\.json$/.test(f));
    expect(files).toHaveLength(16);
    for (const f of files) {
      const s = loadExperiment(path.join(ROOT, 'experiments', f)).settings as unknown as {
        description: string;
        training: Record<string, unknown>;
      };
      expect(s.training, f).toMatchObject({ optimizer: 'sgd', momentum: 0.9, nesterov: true, lr: 0.1, weight_decay: 5e-4 });
      expect(s.description, f).toMatch(/Nesterov momentum 0\.9/);
      expect(s.description, f).not.toMatch(/AdamW/);
    }
  });
});

describe('mf run with SGD momentum, killed and resumed', () => {
  it('ends with the same weights as a run that never stopped (the buffers travel in the checkpoint)', () => {
    const dir = tmpDir('sgd-momentum');
    const file = path.join(dir, 'mlp-momentum.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        name: 'mlp-momentum',
        kind: 'supervised',
        model: { preset: 'mlp' },
        data: { datasets: ['mnist'], augment: 'none', train_limit: 128, root: path.join(dir, 'no-data') },
        training: {
          epochs: 2,
          batch_size: 32,
          lr: 0.05,
          weight_decay: 5e-4,
          warmup_epochs: 0,
          schedule: 'constant',
          optimizer: 'sgd',
          momentum: 0.9,
          nesterov: true,
          seed: 1,
          log_every: 1,
          checkpoint_every: 3,
        },
      }),
    );
    const trace = path.join(dir, 'trace.txt');
    const straight = path.join(dir, 'straight');
    const a = mf(['run', file, '--out', straight, '--quiet'], { MF_FAULT_TRACE: trace });
    expect(a.status, a.stderr).toBe(0);
    // Kill right after the 5th step, one past the checkpoint at the end of epoch 1 (step 4; 4 steps an epoch), whose
    // momentum buffers the resumed run needs.
    const points = fs.readFileSync(trace, 'utf8').trim().split('\n');
    const fifth = points.map((p, i) => [p, i] as const).filter(([p]) => p === 'step')[4]![1] + 1;
    const killed = path.join(dir, 'killed');
    const k = mf(['run', file, '--out', killed, '--quiet'], { MF_FAULT_KILL_AT: String(fifth) });
    expect(k.signal).toBe('SIGKILL');
    expect(loadCheckpoint(killed).step).toBe(4);
    const r = mf(['run', file, '--out', killed, '--quiet', '--resume']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/resume: continuing from step 4 /);
    const wa = loadCheckpoint(straight);
    const wb = loadCheckpoint(killed);
    expect(wb.step).toBe(wa.step);
    for (const [name, t] of wa.model)
      expect(Buffer.from(wb.model.get(name)!.data.buffer).equals(Buffer.from(t.data.buffer)), name).toBe(true);
    // The final state file holds the buffers, one per parameter.
    expect([...wa.optimizer.keys()].filter((n) => n.startsWith('m.'))).toHaveLength(wa.model.size);
    expect([...wb.optimizer.keys()].some((n) => n.startsWith('v.'))).toBe(false);
  });
});
