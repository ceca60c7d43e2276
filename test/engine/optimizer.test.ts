import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, MfError, ShapeError } from '../../src/errors.ts';
import { defaultDecay, ParameterStore, type ParamInit } from '../../src/nn/parameters.ts';
import { linear, square, sub, sum } from '../../src/ops/index.ts';
import { backend, Tensor, tidy } from '../../src/tensor/tensor.ts';
import { AdamW, type AdamWOptions } from '../../src/train/adamw.ts';
import { cpu, gpuBackend, onEach, uniform, releaseGpu, use } from '../helpers.ts';

afterAll(releaseGpu);

/** |a - e| <= atol + rtol * |e| everywhere, reporting the worst element. */
function expectNear(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < actual.length; i++) {
    const r = Math.abs(actual[i] - expected[i]) / (atol + rtol * Math.abs(expected[i]));
    if (!(r <= worst)) {
      worst = r;
      at = i;
    }
  }
  expect(worst, `${what}: worst at ${at}: ${actual[at]} vs ${expected[at]}`).toBeLessThanOrEqual(1);
}

// Odd sizes: none is a multiple of 64 floats (the alignment unit), two span several 64-float blocks.
const SPECS: [string, number[], ParamInit][] = [
  ['enc.fc.weight', [3, 5], { kind: 'trunc_normal', std: 0.5 }], // decays
  ['enc.fc.bias', [5], { kind: 'normal', std: 0.5 }], // 1D: no decay
  ['enc.pos_2d', [2, 3], { kind: 'trunc_normal', std: 0.5 }], // position table: no decay
  ['head.weight', [67, 1], { kind: 'xavier_uniform' }], // decays, two blocks
  ['norm.weight', [1], { kind: 'ones' }], // no decay
  ['odd', [129], { kind: 'normal', std: 1 }], // 1D, three blocks
];

function build(seed = 3, specs = SPECS): ParameterStore {
  const s = new ParameterStore(seed);
  for (const [n, shape, init] of specs) s.param(n, shape, init);
  s.finalize();
  return s;
}

/** Fresh random gradients written straight into the gradient views. */
function setGrads(store: ParameterStore, seed: number, scale = 1): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  let k = 0;
  for (const [name, t] of store.entries()) {
    const g = uniform(t.size, seed * 101 + k++).map((x) => x * scale);
    backend().write(t.grad!.buffer, g);
    out.set(name, g);
  }
  return out;
}

/** torch.optim.AdamW (single-tensor path) after torch.nn.utils.clip_grad_norm_, in float64. */
class TorchAdamW {
  t = 0;
  readonly p = new Map<string, Float64Array>();
  readonly m = new Map<string, Float64Array>();
  readonly v = new Map<string, Float64Array>();
  constructor(
    init: Map<string, { data: Float32Array }>,
    readonly o: Required<Omit<AdamWOptions, 'maxGradNorm'>> & { maxGradNorm?: number },
    readonly decay: (n: string) => boolean,
    readonly trainable: (n: string) => boolean = () => true,
  ) {
    for (const [n, { data }] of init) {
      this.p.set(n, Float64Array.from(data));
      this.m.set(n, new Float64Array(data.length));
      this.v.set(n, new Float64Array(data.length));
    }
  }
  /** Returns the total gradient norm before clipping. */
  step(grads: Map<string, Float32Array>, lr = this.o.lr): number {
    this.t++;
    let sq = 0;
    for (const [n, g] of grads) if (this.trainable(n)) for (const x of g) sq += x * x;
    const total = Math.sqrt(sq);
    const coef = this.o.maxGradNorm === undefined ? 1 : Math.min(1, this.o.maxGradNorm / (total + 1e-6));
    const [b1, b2] = this.o.betas;
    const bc1 = 1 - b1 ** this.t;
    const bc2 = 1 - b2 ** this.t;
    for (const [n, g] of grads) {
      if (!this.trainable(n)) continue;
      const p = this.p.get(n)!;
      const m = this.m.get(n)!;
      const v = this.v.get(n)!;
      const wd = this.decay(n) ? this.o.weightDecay : 0;
      for (let i = 0; i < p.length; i++) {
        const gi = g[i] * coef;
        p[i] *= 1 - lr * wd;
        m[i] += (1 - b1) * (gi - m[i]);
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        const denom = Math.sqrt(v[i]) / Math.sqrt(bc2) + this.o.eps;
        p[i] -= (lr / bc1) * (m[i] / denom);
      }
    }
    return total;
  }
}

const OPTS = { lr: 1e-2, betas: [0.9, 0.999] as [number, number], eps: 1e-8, weightDecay: 0.05 };

async function expectMatchesTorch(store: ParameterStore, opt: AdamW, ref: TorchAdamW, what: string): Promise<void> {
  const p = await store.export();
  const st = await opt.exportState();
  expect(st.step).toBe(ref.t);
  for (const name of store.names()) {
    // f32 arithmetic against float64: ~1e-6 relative per step; atol covers values near zero.
    expectNear(p.get(name)!.data, ref.p.get(name)!, 2e-5, 1e-6, `${what} ${name} param`);
    expectNear(st.m.get(name)!.data, ref.m.get(name)!, 2e-5, 1e-7, `${what} ${name} m`);
    expectNear(st.v.get(name)!.data, ref.v.get(name)!, 2e-5, 1e-9, `${what} ${name} v`);
  }
}

describe('ParameterStore', () => {
  it('lays parameters out at 64-float offsets in one arena, and the views alias it', async () => {
    await onEach(async () => {
      const s = build();
      expect(s.count()).toBe(15 + 5 + 6 + 67 + 1 + 129);
      const offsets = s.names().map((n) => s.info(n).offset);
      expect(offsets).toEqual([0, 64, 128, 192, 320, 384]);
      expect(s.arenaLength).toBe(384 + 192);
      expect(s.get('head.weight').shape).toEqual([67, 1]);
      expect(s.get('enc.fc.weight').requiresGrad).toBe(true);
      // Loading through the arena shows up in the views and in export.
      const vals = new Map(s.names().map((n, i) => [n, { shape: [...s.info(n).shape], data: uniform(s.info(n).size, 40 + i) }]));
      const r = s.load(vals);
      expect(r).toEqual({ loaded: s.names(), missing: [], unexpected: [], mismatched: [] });
      const ex = await s.export();
      for (const [n, v] of vals) {
        expect(ex.get(n)!.data).toEqual(v.data);
        expect(ex.get(n)!.shape).toEqual(v.shape);
        expect(await s.get(n).data()).toEqual(v.data);
      }
      // Padding between parameters stays zero.
      const arena = new Float32Array(await backend().read(s.buffers().params));
      for (const n of s.names()) {
        const { offset, size } = s.info(n);
        const next = Math.ceil((offset + size) / 64) * 64;
        expect(arena.subarray(offset + size, next).every((x) => x === 0)).toBe(true);
      }
      // A partial, non-strict load changes only what it names.
      const one = new Map([['odd', { shape: [129], data: new Float32Array(129).fill(7) }]]);
      const r2 = s.load(one, { strict: false });
      expect(r2.loaded).toEqual(['odd']);
      expect(r2.missing.length).toBe(5);
      const ex2 = await s.export();
      expect(ex2.get('odd')!.data.every((x) => x === 7)).toBe(true);
      expect(ex2.get('head.weight')!.data).toEqual(vals.get('head.weight')!.data);
      s.dispose();
    });
  });

  it('load reports missing, unexpected and mismatched names; strict throws and writes nothing', async () => {
    const s = build();
    const before = await s.export();
    const vals = new Map<string, { shape: number[]; data: Float32Array }>([
      ['enc.fc.weight', { shape: [5, 3], data: new Float32Array(15) }],
      ['odd', { shape: [129], data: new Float32Array(129).fill(1) }],
      ['extra', { shape: [2], data: new Float32Array(2) }],
    ]);
    expect(() => s.load(vals)).toThrow(ShapeError);
    expect(() => s.load(vals, { strict: true })).toThrow(/missing enc\.fc\.bias.*unexpected extra.*enc\.fc\.weight \[5, 3\] vs \[3, 5\]/);
    expect(await s.export()).toEqual(before);
    const r = s.load(vals, { strict: false });
    expect(r.loaded).toEqual(['odd']);
    expect(r.unexpected).toEqual(['extra']);
    expect(r.mismatched).toEqual(['enc.fc.weight']);
    expect(r.missing).toEqual(['enc.fc.bias', 'enc.pos_2d', 'head.weight', 'norm.weight']);
    expect((await s.export()).get('odd')!.data.every((x) => x === 1)).toBe(true);
    s.dispose();
  });

  it('initialises deterministically from the seed, with the requested distributions', async () => {
    const specs: [string, number[], ParamInit][] = [
      ['z', [3, 7], { kind: 'zeros' }],
      ['o', [5], { kind: 'ones' }],
      ['tn', [100, 100], { kind: 'trunc_normal', std: 0.02 }],
      ['n', [100, 100], { kind: 'normal', std: 0.5 }],
      ['x', [30, 70], { kind: 'xavier_uniform' }],
      ['f', [64, 90], { kind: 'fan_in_uniform' }],
    ];
    const a = await build(7, specs).export();
    const b = await build(7, specs).export();
    const c = await build(8, specs).export();
    expect(a).toEqual(b);
    expect(a.get('tn')!.data).not.toEqual(c.get('tn')!.data);
    expect(a.get('z')!.data.every((x) => x === 0)).toBe(true);
    expect(a.get('o')!.data.every((x) => x === 1)).toBe(true);
    const stats = (d: Float32Array) => {
      const mean = d.reduce((s, x) => s + x, 0) / d.length;
      return {
        mean,
        std: Math.sqrt(d.reduce((s, x) => s + (x - mean) ** 2, 0) / d.length),
        max: d.reduce((s, x) => Math.max(s, Math.abs(x)), 0),
      };
    };
    const tn = stats(a.get('tn')!.data);
    expect(tn.max).toBeLessThanOrEqual(0.04 + 1e-7);
    expect(Math.abs(tn.mean)).toBeLessThan(1e-3);
    // A normal cut at ±2σ has std 0.88σ.
    expect(tn.std).toBeGreaterThan(0.017);
    expect(tn.std).toBeLessThan(0.0182);
    const n = stats(a.get('n')!.data);
    expect(n.std).toBeGreaterThan(0.49);
    expect(n.std).toBeLessThan(0.51);
    const x = stats(a.get('x')!.data);
    const bound = Math.sqrt(6 / (30 + 70));
    expect(x.max).toBeLessThanOrEqual(bound);
    expect(x.std).toBeGreaterThan((bound / Math.sqrt(3)) * 0.95);
    // PyTorch's nn.Linear default: Uniform(±1/sqrt(fan_in)); weights are [in, out], so fan_in = 64.
    const f = stats(a.get('f')!.data);
    expect(f.max).toBeLessThanOrEqual(1 / 8);
    expect(f.max).toBeGreaterThan(0.95 / 8);
    expect(f.std).toBeGreaterThan((1 / 8 / Math.sqrt(3)) * 0.95);
    expect(f.std).toBeLessThan((1 / 8 / Math.sqrt(3)) * 1.05);
    // A parameter's values depend on its name and the seed, not on what else is declared.
    const alone = await build(7, [specs[2]]).export();
    expect(alone.get('tn')!.data).toEqual(a.get('tn')!.data);
  });

  it('zeroGrad zeroes the whole gradient arena, padding included, in one dispatch', async () => {
    await onEach(async (b) => {
      const s = build();
      const { grads, floats } = s.buffers();
      b.write(grads, new Float32Array(floats).fill(3));
      const d0 = b.stats().dispatches;
      s.zeroGrad();
      expect(b.stats().dispatches - d0).toBe(1);
      const all = new Float32Array(await b.read(grads));
      expect(all.length).toBe(floats);
      expect(all.every((x) => x === 0)).toBe(true);
      expect(await s.get('odd').grad!.data()).toEqual(new Float32Array(129));
      s.dispose();
    });
  });

  it('backward through linear accumulates into the arena gradients, twice gives twice', async () => {
    await onEach(async (b) => {
      const s = new ParameterStore(1);
      s.param('fc.weight', [5, 3], { kind: 'trunc_normal', std: 0.5 });
      s.param('fc.bias', [3], { kind: 'zeros' });
      s.param('unused', [2], { kind: 'ones' });
      s.finalize();
      const xd = uniform(4 * 5, 9);
      const x = Tensor.from(xd, [4, 5]);
      const backwardOnce = () =>
        tidy(() => {
          sum(linear(x, s.get('fc.weight'), s.get('fc.bias'))).backward();
        });
      backwardOnce();
      // d sum(xW + b)/dW[k][j] = sum_r x[r][k]; d/db[j] = rows.
      const gw = new Float32Array(15);
      for (let k = 0; k < 5; k++) for (let j = 0; j < 3; j++) for (let r = 0; r < 4; r++) gw[k * 3 + j] += xd[r * 5 + k];
      const g1 = await s.exportGrads();
      expectNear(g1.get('fc.weight')!.data, gw, 1e-6, 1e-6, `${b.name} dW`);
      expectNear(g1.get('fc.bias')!.data, [4, 4, 4], 1e-6, 1e-6, `${b.name} db`);
      expect(g1.get('unused')!.data).toEqual(new Float32Array(2));
      // The grad tensors are the arena views themselves (no new tensors were attached).
      const arena = new Float32Array(await b.read(s.buffers().grads));
      expect(arena.subarray(s.info('fc.bias').offset, s.info('fc.bias').offset + 3)).toEqual(g1.get('fc.bias')!.data);
      backwardOnce();
      const g2 = await s.exportGrads();
      expectNear(
        g2.get('fc.weight')!.data,
        gw.map((v) => 2 * v),
        1e-6,
        1e-6,
        `${b.name} 2x dW`,
      );
      expectNear(g2.get('fc.bias')!.data, [8, 8, 8], 1e-6, 1e-6, `${b.name} 2x db`);
      x.dispose();
      s.dispose();
    });
  });

  it('decides weight decay by name and rank, and the rule is configurable', () => {
    expect(defaultDecay('body.blocks.0.attn.q.weight', [8, 8])).toBe(true);
    expect(defaultDecay('input.patch_2d.weight', [16, 8])).toBe(true);
    expect(defaultDecay('output.heads.chest.weight', [8, 2])).toBe(true);
    for (const [n, shape] of [
      ['body.blocks.0.attn.q.bias', [8]],
      ['body.norm.weight', [8]],
      ['input.pos_2d', [16, 8]],
      ['input.latents', [4, 8]],
      ['input.modality_embed', [12, 8]],
      ['input.dim_embed', [2, 8]],
      ['output.task_latents.chest', [2, 8]],
      ['mask_token', [1, 8]],
    ] as const) {
      expect(defaultDecay(n, shape), n).toBe(false);
    }
    const s = new ParameterStore(0, { decay: (n) => n === 'a' });
    s.param('a', [2], { kind: 'zeros' });
    s.param('b', [2, 2], { kind: 'zeros' });
    expect(s.info('a').decay).toBe(true);
    expect(s.info('b').decay).toBe(false);
  });

  it('rejects misuse with errors that name the parameter', () => {
    const s = new ParameterStore(0);
    const h = s.param('w', [2, 3], { kind: 'zeros' });
    expect(() => h.tensor).toThrow(/w used before ParameterStore.finalize/);
    expect(() => s.param('w', [1], { kind: 'zeros' })).toThrow(ConfigError);
    expect(() => s.param('bad', [2, 0], { kind: 'zeros' })).toThrow(/bad: invalid shape \[2, 0\]/);
    expect(() => s.zeroGrad()).toThrow(/finalize/);
    s.finalize();
    expect(h.tensor).toBe(s.get('w'));
    expect(() => s.param('late', [1], { kind: 'zeros' })).toThrow(/already finalised/);
    expect(() => s.get('nope')).toThrow(MfError);
    const t = s.get('w');
    s.dispose();
    expect(t.isDisposed).toBe(true);
    expect(() => h.tensor).toThrow(/w: its ParameterStore was disposed/);
    expect(() => s.zeroGrad()).toThrow(/disposed/);
    expect(() => new AdamW(build(), { lr: -1 })).toThrow(ConfigError);
    expect(() => new AdamW(build(), { lr: 1, betas: [1, 0.9] })).toThrow(/beta1/);
    expect(() => new AdamW(build(), { lr: 1, maxGradNorm: 0 })).toThrow(/max grad norm/);
  });
});

describe('AdamW', () => {
  it('one step matches PyTorch AdamW on parameters of odd sizes', async () => {
    await onEach(async (b) => {
      const s = build();
      const opt = new AdamW(s, OPTS);
      const ref = new TorchAdamW(await s.export(), OPTS, (n) => s.info(n).decay);
      const g = setGrads(s, 1);
      opt.step();
      ref.step(g);
      await expectMatchesTorch(s, opt, ref, `${b.name} step 1`);
      opt.dispose();
      s.dispose();
    });
  });

  it('five steps with new gradients and a changing lr match PyTorch AdamW', async () => {
    await onEach(async (b) => {
      const s = build();
      const opts = { ...OPTS, betas: [0.8, 0.95] as [number, number], weightDecay: 0.3 };
      const opt = new AdamW(s, opts);
      const ref = new TorchAdamW(await s.export(), opts, (n) => s.info(n).decay);
      for (let k = 0; k < 5; k++) {
        const lr = 0.02 / (k + 1);
        const g = setGrads(s, 10 + k);
        opt.step(lr);
        ref.step(g, lr);
      }
      await expectMatchesTorch(s, opt, ref, `${b.name} step 5`);
      opt.dispose();
      s.dispose();
    });
  });

  it('with zero gradients only weight decay acts, and only on decayed parameters', async () => {
    await onEach(async (b) => {
      const s = build();
      const opt = new AdamW(s, { lr: 0.1, weightDecay: 0.5 });
      const before = await s.export();
      s.zeroGrad();
      opt.step();
      const after = await s.export();
      for (const n of s.names()) {
        const shrink = s.info(n).decay ? Math.fround(1 - Math.fround(0.1 * 0.5)) : 1;
        expect(['enc.fc.weight', 'head.weight'].includes(n), n).toBe(s.info(n).decay);
        expectNear(
          after.get(n)!.data,
          before.get(n)!.data.map((x) => x * shrink),
          1e-7,
          0,
          `${b.name} ${n}`,
        );
      }
      opt.dispose();
      s.dispose();
    });
  });

  it('frozen parameters get no update, no decay, no moments, and do not count in the norm', async () => {
    await onEach(async (b) => {
      const s = build();
      const trainable = (n: string) => !n.startsWith('enc.');
      s.setTrainable(trainable);
      expect(s.get('enc.fc.weight').requiresGrad).toBe(false);
      expect(s.get('odd').requiresGrad).toBe(true);
      expect(s.trainableCount()).toBe(67 + 1 + 129);
      const opts = { ...OPTS, maxGradNorm: 1 };
      const opt = new AdamW(s, opts);
      const before = await s.export();
      const ref = new TorchAdamW(before, opts, (n) => s.info(n).decay, trainable);
      for (let k = 0; k < 3; k++) {
        const g = setGrads(s, 20 + k, 5);
        opt.step();
        const total = ref.step(g);
        expectNear([await opt.lastGradNorm()], [total], 1e-5, 0, `${b.name} norm of trainable grads`);
      }
      const after = await s.export();
      const st = await opt.exportState();
      for (const n of ['enc.fc.weight', 'enc.fc.bias', 'enc.pos_2d']) {
        expect(after.get(n)!.data, n).toEqual(before.get(n)!.data);
        expect(st.m.get(n)!.data.every((x) => x === 0)).toBe(true);
        expect(st.v.get(n)!.data.every((x) => x === 0)).toBe(true);
      }
      await expectMatchesTorch(s, opt, ref, `${b.name} partly frozen`);
      opt.dispose();
      s.dispose();
    });
  });

  it('clipping engages above max_grad_norm and is exactly a no-op below it', async () => {
    await onEach(async (b) => {
      // Above: the first moment is (1 - beta1) * coef * g with coef = max / (norm + 1e-6).
      const s = build();
      const opts = { ...OPTS, maxGradNorm: 0.5 };
      const opt = new AdamW(s, opts);
      const ref = new TorchAdamW(await s.export(), opts, (n) => s.info(n).decay);
      const g = setGrads(s, 30, 3);
      opt.step();
      const total = ref.step(g);
      expect(total).toBeGreaterThan(5);
      const norm = await opt.lastGradNorm();
      expectNear([norm], [total], 1e-5, 0, `${b.name} pre-clip norm`);
      const m = (await opt.exportState()).m.get('odd')!.data;
      const coef = 0.5 / (total + 1e-6);
      expectNear(
        m,
        g.get('odd')!.map((x) => 0.1 * coef * x),
        1e-5,
        1e-9,
        `${b.name} clipped m`,
      );
      await expectMatchesTorch(s, opt, ref, `${b.name} clipped`);

      // Below: identical bits to an optimizer without clipping.
      const s1 = build();
      const s2 = build();
      const clipped = new AdamW(s1, { ...OPTS, maxGradNorm: 1e4 });
      const plain = new AdamW(s2, OPTS);
      for (let k = 0; k < 3; k++) {
        use(b);
        const g1 = setGrads(s1, 40 + k);
        setGrads(s2, 40 + k);
        clipped.step();
        plain.step();
        if (k === 0) {
          let sq = 0;
          for (const x of g1.values()) for (const v of x) sq += v * v;
          expectNear([await clipped.lastGradNorm()], [Math.sqrt(sq)], 1e-5, 0, `${b.name} norm below max`);
          // Without clipping the norm is computed on demand from the current gradients.
          expectNear([await plain.lastGradNorm()], [Math.sqrt(sq)], 1e-5, 0, `${b.name} on-demand norm`);
        }
      }
      expect(await s1.export()).toEqual(await s2.export());
      expect(await clipped.exportState()).toEqual(await plain.exportState());
      [opt, clipped, plain].forEach((o) => o.dispose());
      [s, s1, s2].forEach((x) => x.dispose());
    });
  });

  it('the guard skips a step whose gradient or loss is NaN or Inf on the device, and counts it', async () => {
    await onEach(async (b) => {
      const s = build();
      const opt = new AdamW(s, { ...OPTS, maxGradNorm: 1 });
      const lossOf = (x: number) => Tensor.from(new Float32Array([x]), []);
      const snapshot = async () => ({ p: await s.export(), st: await opt.exportState() });
      setGrads(s, 80);
      opt.step(undefined, lossOf(0.5).buffer); // 1: good
      const afterGood = await snapshot();
      // 2: a NaN in one gradient element (a non-logged step in a real run); 3: an infinite loss; 4: -Inf gradient.
      const nanGrads = setGrads(s, 81);
      const first = [...nanGrads.keys()][1];
      const g = nanGrads.get(first)!;
      g[0] = Number.NaN;
      b.write(s.get(first).grad!.buffer, g);
      opt.step(undefined, lossOf(0.5).buffer);
      setGrads(s, 82);
      opt.step(undefined, lossOf(Number.POSITIVE_INFINITY).buffer);
      const infGrads = setGrads(s, 83);
      const h = infGrads.get('odd')!;
      h[5] = Number.NEGATIVE_INFINITY;
      b.write(s.get('odd').grad!.buffer, h);
      opt.step();
      const afterBad = await snapshot();
      // Skipped means untouched: weights and both moments exactly as after step 1 (only the step count moved on).
      expect(afterBad.p, `${b.name} params`).toEqual(afterGood.p);
      expect(afterBad.st.m, `${b.name} m`).toEqual(afterGood.st.m);
      expect(afterBad.st.v, `${b.name} v`).toEqual(afterGood.st.v);
      expect(afterBad.st.step).toBe(4);
      for (const [, t] of afterBad.p) expect(Array.from(t.data).every(Number.isFinite)).toBe(true);
      expect(await opt.health(), b.name).toEqual({ steps: 4, bad: 3, first: 2, last: 4 });
      // 5: good again, and it updates.
      setGrads(s, 84);
      opt.step(undefined, lossOf(0.25).buffer);
      expect(await s.export()).not.toEqual(afterGood.p);
      expect(await opt.health()).toEqual({ steps: 5, bad: 3, first: 2, last: 4 });
      opt.dispose();
      s.dispose();
    });
  });

  it('WebGPU kernels agree with the CPU reference on a large arena (multi-chunk norm)', async () => {
    const gpu = await gpuBackend();
    if (!gpu) return;
    // 1.1M floats: 275k vec4s, so the norm uses 538 workgroups of 512-vec4 chunks (stage 2 strides too).
    const specs: [string, number[], ParamInit][] = [
      ['big.weight', [1100, 1000], { kind: 'trunc_normal', std: 0.02 }],
      ['big.bias', [1000], { kind: 'zeros' }],
      ['odd', [77], { kind: 'normal', std: 1 }],
    ];
    const results: { p: Float32Array; m: Float32Array; v: Float32Array; norms: number[] }[] = [];
    const prev = backend();
    try {
      for (const b of [cpu, gpu]) {
        use(b);
        const s = build(5, specs);
        s.setTrainable((n) => n !== 'odd');
        const opt = new AdamW(s, { ...OPTS, maxGradNorm: 100 });
        const norms: number[] = [];
        for (let k = 0; k < 3; k++) {
          setGrads(s, 50 + k, 0.3);
          opt.step(1e-3 * (k + 1));
          norms.push(await opt.lastGradNorm());
        }
        const { m, v } = s.moments();
        const { params } = s.buffers();
        results.push({
          p: new Float32Array(await b.read(params)),
          m: new Float32Array(await b.read(m)),
          v: new Float32Array(await b.read(v)),
          norms,
        });
        opt.dispose();
        s.dispose();
      }
    } finally {
      use(prev);
    }
    const [c, g] = results;
    // Same f32 operation order on both; only FMA contraction and sqrt/division ulps differ.
    expectNear(g.norms, c.norms, 1e-6, 0, 'grad norm');
    expect(c.norms[0]).toBeGreaterThan(100); // the clip engaged
    expectNear(g.p, c.p, 1e-6, 1e-8, 'params');
    expectNear(g.m, c.m, 1e-6, 1e-10, 'm');
    expectNear(g.v, c.v, 1e-6, 1e-12, 'v');
  });

  it('exportState/loadState resumes bit-identically', async () => {
    await onEach(async (b) => {
      const a = build();
      const optA = new AdamW(a, { ...OPTS, maxGradNorm: 1 });
      for (let k = 0; k < 2; k++) {
        setGrads(a, 60 + k);
        optA.step();
      }
      const weights = await a.export();
      const state = await optA.exportState();
      expect(state.step).toBe(2);
      const r = build(99);
      r.load(weights);
      const optR = new AdamW(r, { ...OPTS, maxGradNorm: 1 });
      optR.loadState(state);
      expect(optR.stepCount).toBe(2);
      setGrads(a, 70);
      setGrads(r, 70);
      optA.step();
      optR.step();
      expect(await r.export(), b.name).toEqual(await a.export());
      expect(await optR.exportState()).toEqual(await optA.exportState());
      const bad = new Map(state.m);
      bad.set('odd', { shape: [128], data: new Float32Array(128) });
      expect(() => optR.loadState({ step: 1, m: bad, v: state.v })).toThrow(/odd/);
      [optA, optR].forEach((o) => o.dispose());
      [a, r].forEach((x) => x.dispose());
    });
  });

  it('a 50-step training loop on WebGPU keeps live bytes flat and learns', async () => {
    const gpu = await gpuBackend();
    if (!gpu) return;
    const prev = backend();
    use(gpu);
    try {
      const s = new ParameterStore(2);
      s.param('fc1.weight', [6, 16], { kind: 'xavier_uniform' });
      s.param('fc1.bias', [16], { kind: 'zeros' });
      s.param('fc2.weight', [16, 3], { kind: 'xavier_uniform' });
      s.param('fc2.bias', [3], { kind: 'zeros' });
      s.finalize();
      const opt = new AdamW(s, { lr: 1e-2, weightDecay: 1e-4, maxGradNorm: 1 });
      const x = Tensor.from(uniform(10 * 6, 3), [10, 6]);
      const y = Tensor.from(uniform(10 * 3, 4), [10, 3]);
      const lossOf = () => {
        const h = linear(x, s.get('fc1.weight'), s.get('fc1.bias'), 'gelu');
        const d = linear(h, s.get('fc2.weight'), s.get('fc2.bias'));
        return sum(square(sub(d, y)));
      };
      const step = () => {
        s.zeroGrad();
        tidy(() => {
          lossOf().backward();
        });
        opt.step();
      };
      const first = tidy(lossOf);
      const l0 = await first.item();
      first.dispose();
      step();
      await gpu.sync();
      const base = gpu.stats();
      // The second step may still create buffers: the first one's moment arenas took pooled ones.
      step();
      await gpu.sync();
      const second = gpu.stats();
      expect(second.liveBytes).toBe(base.liveBytes);
      for (let k = 2; k < 50; k++) {
        step();
        if (k % 10 === 0) {
          await gpu.sync();
          expect(gpu.stats().liveBytes, `live bytes after step ${k + 1}`).toBe(base.liveBytes);
        }
      }
      await gpu.sync();
      const end = gpu.stats();
      expect(end.liveBytes).toBe(base.liveBytes);
      expect(end.created).toBe(second.created);
      // zeroGrad 1 + forward/backward + clip norm 2 + update 1, the same every step.
      const perStep = second.dispatches - base.dispatches;
      expect(end.dispatches - second.dispatches).toBe(48 * perStep);
      const last = tidy(lossOf);
      const l1 = await last.item();
      last.dispose();
      expect(l1).toBeLessThan(0.5 * l0);
      x.dispose();
      y.dispose();
      opt.dispose();
      s.dispose();
    } finally {
      use(prev);
    }
  });
});
