// Thesis Tables 5.1/5.2 (section 5.4): the Wide ResNets (their parameter counts against the paper's, names, a toy
// forward on the CPU reference), the CIFAR experiment files and their checks, and, end to end at toy size, a tiny
// WRN trained by `mf run` for 2 epochs with CSA [2, 1] on CIFAR-10 files written in the official binary layout,
// then `mf table 5.1` listing it (and filling a row when a run of the row's settings is there).
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import { buildCifarTable, renderCifarCsv, renderCifarMarkdown } from '../../src/cli/table-cifar.ts';
import { loadExperiment, validateExperiment } from '../../src/kinds/index.ts';
import type { AnyModelSettings } from '../../src/kinds/medformer/schema.ts';
import { WideResNet, wrnShape } from '../../src/models/wrn.ts';
import { ParameterStore } from '../../src/nn/parameters.ts';
import { backend, setBackend, Tensor, tidy } from '../../src/tensor/tensor.ts';
import { cpu, uniform } from '../helpers.ts';
import { mf, ROOT, tmpDir } from '../run/helpers.ts';
import { toyCifarExperiment, writeToyCifar10 } from './cifar-fixture.ts';

const trainable = (depth: number, k: number, classes: number) => {
  const store = new ParameterStore(0);
  new WideResNet(store, { depth, widenFactor: k, inChannels: 3, tasks: [{ name: 'cifar', outputs: classes }] });
  return { params: store.count() - store.bufferCount(), store };
};

describe('Wide ResNets', () => {
  it("have the paper's parameter counts: WRN-28-10 36.5M, WRN-40-4 8.9M, WRN-16-8 11.0M on CIFAR-10", () => {
    // Zagoruyko & Komodakis, Wide Residual Networks (BMVC 2016, arXiv:1605.07146), Table 4's "# params" column.
    const counts = { 'wrn-28-10': trainable(28, 10, 10), 'wrn-40-4': trainable(40, 4, 10), 'wrn-16-8': trainable(16, 8, 10) };
    expect(counts['wrn-28-10'].params).toBe(36_479_194);
    expect(counts['wrn-40-4'].params).toBe(8_949_210);
    expect(counts['wrn-16-8'].params).toBe(10_961_370);
    const millions = Object.values(counts).map((c) => +(c.params / 1e6).toFixed(1));
    expect(millions).toEqual([36.5, 8.9, 11.0]);
    // CIFAR-100's head: 640 × 90 more weights and 90 more biases.
    expect(trainable(28, 10, 100).params - counts['wrn-28-10'].params).toBe(640 * 90 + 90);
  });

  it('are built as the paper lays them out: 16, 16k, 32k, 64k channels, (d − 4) / 6 blocks a group, 1×1 shortcuts where channels change', () => {
    expect(wrnShape(28, 10)).toEqual({ widths: [16, 160, 320, 640], blocks: 4 });
    expect(wrnShape(40, 4)).toEqual({ widths: [16, 64, 128, 256], blocks: 6 });
    const names = trainable(40, 4, 10).store.names();
    expect(names.filter((n) => n.includes('convdim'))).toEqual([
      'group0.block0.convdim.weight',
      'group1.block0.convdim.weight',
      'group2.block0.convdim.weight',
    ]);
    expect(names.filter((n) => n.endsWith('.running_mean'))).toHaveLength(3 * 6 * 2 + 1);
    // Convolutions have no bias; the head has one.
    expect(names.filter((n) => n.endsWith('.bias') && !n.includes('bn'))).toEqual(['heads.cifar.bias']);
    // k = 1 keeps group 0 at 16 channels: an identity shortcut there.
    expect(
      trainable(10, 1, 10)
        .store.names()
        .filter((n) => n.includes('convdim')),
    ).toEqual(['group1.block0.convdim.weight', 'group2.block0.convdim.weight']);
    expect(() => wrnShape(27, 10)).toThrow(/depth 27 is not 6n \+ 4/);
    expect(() => wrnShape(10, 0.3)).toThrow(/16k = 4\.8 channels/);
  });

  it('give [B, classes] logits at toy width, in training and eval mode (CPU reference)', async () => {
    const prev = backend();
    setBackend(cpu);
    try {
      const store = new ParameterStore(1);
      const net = new WideResNet(store, { depth: 10, widenFactor: 0.5, inChannels: 3, tasks: [{ name: 'c', outputs: 10 }] });
      store.finalize();
      const x = Tensor.from(uniform(2 * 3 * 8 * 8, 4), [2, 3, 8, 8]);
      const y = tidy(() => net.forward(x, 'c'));
      expect(y.shape).toEqual([2, 10]);
      expect((await y.data()).every(Number.isFinite)).toBe(true);
      // Features: 64k = 32 channels after the last group, pooled.
      const f = tidy(() => net.represent(x));
      expect(f.shape).toEqual([2, 32]);
      net.setTraining(false);
      const e = tidy(() => net.forward(x, 'c'));
      expect(e.shape).toEqual([2, 10]);
      expect(() => net.forward(x, 'd')).toThrow(/no head for task 'd'/);
      expect(() => net.forward(Tensor.from(uniform(2 * 8 * 8, 1), [2, 1, 8, 8]), 'c')).toThrow(/input must be \[B, 3, H, W\]/);
      for (const t of [x, y, f, e]) t.dispose();
      store.dispose();
    } finally {
      setBackend(prev);
    }
  });
});

describe('CIFAR experiment files', () => {
  const base = (over: Record<string, unknown> = {}, data: Record<string, unknown> = {}, model: Record<string, unknown> = {}) => ({
    name: 'x',
    kind: 'supervised',
    model: { preset: 'wrn-40-4', ...model },
    data: { datasets: ['cifar10'], samples_per_class: 100, ...data },
    training: { epochs: 2, batch_size: 8, lr: 0.001, weight_decay: 0, warmup_epochs: 0 },
    ...over,
  });
  const settings = (x: unknown) => validateExperiment(x, 'x.json').settings as AnyModelSettings;

  it('the 16 shipped files: CIFAR-10/100 × 100/500 a class × WRN-40-4/28-10 × plain/CSA 8-4-2-1', () => {
    const dir = path.join(ROOT, 'experiments');
    const files = fs.readdirSync(dir).filter((f) => /^cifar.*\.json$/.test(f));
    expect(files).toHaveLength(16);
    const seen = new Set<string>();
    for (const f of files) {
      const s = loadExperiment(path.join(dir, f)).settings as AnyModelSettings & { csa?: { schedule: number[] } | null };
      const m = /^(cifar10|cifar100)-(wrn-40-4|wrn-28-10)-(100|500)pc(-csa)?\.json$/.exec(f)!;
      expect(m, f).not.toBeNull();
      expect(s.data.datasets).toEqual([m[1]]);
      expect(s.model).toMatchObject({ preset: m[2], image_size_2d: 32 });
      expect(s.data.samples_per_class).toBe(Number(m[3]));
      // The Wide ResNet paper's augmentation: pad-4 random crops and horizontal flips, nothing else.
      expect(s.data.augment?.['2d'], f).toEqual({ crop: 4, flips: 'horizontal', rotate: 0, randaugment: null, intensity: null });
      expect(s.csa?.schedule ?? null).toEqual(m[4] ? [8, 4, 2, 1] : null);
      // The same 200-epoch budget: 4 stages of 50 or one run of 200.
      expect((s.training.epochs ?? 0) * (m[4] ? 4 : 1)).toBe(200);
      seen.add(f);
    }
    expect(seen.size).toBe(16);
  });

  it('resolves the presets and a generic "wrn"; refuses what they cannot take, each with a ConfigError', () => {
    expect(settings(base()).model).toEqual({ preset: 'wrn-40-4', image_size_2d: 32, depth: 40, widen_factor: 4 });
    expect(settings(base({}, {}, { preset: 'wrn', depth: 16, widen_factor: 2, image_size_2d: 8 })).model).toEqual({
      preset: 'wrn',
      image_size_2d: 8,
      depth: 16,
      widen_factor: 2,
    });
    // Without samples_per_class the key stays out of the settings (and of every other run's config hash).
    expect('samples_per_class' in settings(base({}, { samples_per_class: undefined })).data).toBe(false);
    const refused: [unknown, RegExp][] = [
      [base({}, { datasets: ['breastmnist'] }), /is for CIFAR .*lists breastmnist/],
      [base({}, {}, { depth: 16 }), /fixes depth and widen_factor/],
      [base({}, {}, { preset: 'wrn', depth: 16 }), /needs \/model\/depth and \/model\/widen_factor/],
      [base({}, {}, { preset: 'wrn', depth: 15, widen_factor: 1 }), /depth 15 is not 6n \+ 4/],
      [base({}, {}, { dropout: 0.3 }), /no dropout/],
      [base({}, {}, { image_size_2d: 28 }), /image_size_2d 28/],
      [base({}, {}, { hidden_dim: 8 }), /takes no \/model\/hidden_dim/],
      [base({}, { size: 28 }), /\/data\/size is for MedMNIST/],
      [base({ kind: 'multitask' }), /is for kind "supervised"/],
      [{ ...base({}, { datasets: ['breastmnist'] }), model: { preset: 'small' } }, /samples_per_class is for CIFAR/],
    ];
    for (const [x, re] of refused) {
      expect(() => settings(x), String(re)).toThrow(ConfigError);
      expect(() => settings(x), String(re)).toThrow(re);
    }
  });
});

describe('end to end at toy size: mf run, then mf table 5.1', () => {
  let dir = '';
  let runs = '';
  let run = { status: -1 as number | null, stderr: '', stdout: '' };

  beforeAll(() => {
    dir = tmpDir('cifar-e2e');
    const data = path.join(dir, 'data');
    // Five training batches of 20 records and a test batch of 20, in the official layout (cifar-fixture.ts).
    writeToyCifar10(data);
    runs = path.join(dir, 'runs');
    const exp = toyCifarExperiment(dir, data, { over: { csa: { schedule: [2, 1], stop: { epochs: 1 } } } });
    run = mf(['run', exp, '--out', path.join(runs, 'cifar-toy'), '--quiet']);
  }, 300_000);

  it('trains the tiny WRN on the binary files for 2 epochs (CSA stages k2, k1) and tests it', () => {
    expect(run.status, run.stderr).toBe(0);
    // The reader was used, not the generated stand-in: 100 training records, 10 held out, 4 a class for training.
    expect(run.stderr).not.toMatch(/GENERATED/);
    expect(run.stderr).toMatch(/cifar10: 40 training images \(4 a class, seed 2\), 10 validation, 20 test/);
    expect(run.stderr).toMatch(/model: WRN-10-0.5, [\d,]+ parameters/);
    const out = path.join(runs, 'cifar-toy');
    const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    expect(metrics.cifar10.csa.stages.map((s: { k: number; epochs: number }) => [s.k, s.epochs])).toEqual([
      [2, 1],
      [1, 1],
    ]);
    expect(metrics.cifar10.test.auc).toBeGreaterThanOrEqual(0);
    expect(metrics.cifar10.test.auc).toBeLessThanOrEqual(1);
    expect(fs.existsSync(path.join(out, 'csa-k2-best.safetensors'))).toBe(true);
    const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(config.model).toEqual({ preset: 'wrn', image_size_2d: 8, depth: 10, widen_factor: 0.5 });
    expect(config.data.samples_per_class).toBe(4);
  });

  it('mf table 5.1 lists the toy run below the table, every thesis cell "not transcribed", no row filled by it', () => {
    expect(run.status, run.stderr).toBe(0);
    const r = mf(['table', '5.1', '--runs', runs]);
    expect(r.status, r.stderr).toBe(0);
    const acc = (100 * JSON.parse(fs.readFileSync(path.join(runs, 'cifar-toy', 'metrics.json'), 'utf8')).cifar10.test.acc).toFixed(1);
    expect(r.stdout).toContain('## Table 5.1: CIFAR-10');
    expect(r.stdout).toMatch(
      new RegExp(`\\| WRN-10-0\\.5 \\| 8 \\| 4 \\| CSA 2-1 \\| ${acc.replace('.', '\\.')} \\| [01]\\.\\d{3} \\| .*cifar-toy`),
    );
    const rows = r.stdout.split('\n').filter((l) => /^\| (100|500) \| WRN-/.test(l));
    expect(rows).toHaveLength(8);
    for (const l of rows) expect(l).toMatch(/\| not transcribed \| missing \| missing \|$/);
    expect(rows.map((l) => l.split(' | ').slice(0, 3).join(' | '))).toEqual([
      '| 100 | WRN-40-4 | plain',
      '| 100 | WRN-40-4 | CSA 8-4-2-1',
      '| 100 | WRN-28-10 | plain',
      '| 100 | WRN-28-10 | CSA 8-4-2-1',
      '| 500 | WRN-40-4 | plain',
      '| 500 | WRN-40-4 | CSA 8-4-2-1',
      '| 500 | WRN-28-10 | plain',
      '| 500 | WRN-28-10 | CSA 8-4-2-1',
    ]);
    // Table 5.2 is CIFAR-100: the CIFAR-10 run is in neither its rows nor its list.
    const other = mf(['table', '5.2', '--runs', runs]);
    expect(other.status, other.stderr).toBe(0);
    expect(other.stdout).toContain('## Table 5.2: CIFAR-100');
    expect(other.stdout).not.toContain('cifar-toy');
  });

  it("a run with a row's settings fills that row, the newest such run winning", () => {
    expect(run.status, run.stderr).toBe(0);
    // The toy run's folder under the row's settings (WRN-40-4 at 32 px, 100 a class, CSA 8-4-2-1): where it lands.
    const src = path.join(runs, 'cifar-toy');
    const row = tmpDir('cifar-row');
    for (const [name, preset, spc] of [
      ['as-row', 'wrn-40-4', 100],
      ['as-row-older', 'wrn-40-4', 100],
      ['other-spc', 'wrn-40-4', 250],
    ] as const) {
      const to = path.join(row, name);
      fs.mkdirSync(to);
      const config = JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8'));
      config.name = name;
      config.model = { preset, image_size_2d: 32, depth: 40, widen_factor: 4 };
      config.data.samples_per_class = spc;
      config.csa.schedule = [8, 4, 2, 1];
      fs.writeFileSync(path.join(to, 'config.json'), JSON.stringify(config));
      fs.copyFileSync(path.join(src, 'metrics.json'), path.join(to, 'metrics.json'));
    }
    const hourAgo = new Date(Date.now() - 3_600_000);
    fs.utimesSync(path.join(row, 'as-row-older', 'metrics.json'), hourAgo, hourAgo);
    const view = buildCifarTable('5.1', row);
    const filled = view.rows.filter((r) => r.ours !== 'missing');
    expect(filled.map((r) => [r.samples_per_class, r.model, r.method])).toEqual([[100, 'WRN-40-4', 'CSA 8-4-2-1']]);
    const metrics = JSON.parse(fs.readFileSync(path.join(src, 'metrics.json'), 'utf8'));
    const ours = filled[0]!.ours as Exclude<(typeof filled)[0]['ours'], 'missing'>;
    expect(ours.run.dir).toBe(path.join(row, 'as-row'));
    expect(ours.acc).toBeCloseTo(100 * metrics.cifar10.test.acc, 6);
    expect(ours.auc).toBe(metrics.cifar10.test.auc);
    // The older run of the same settings and the run of another size are listed below the table.
    expect(view.others.map((o) => [o.model, o.samples_per_class, path.basename(o.ours.run.dir)]).sort()).toEqual([
      ['WRN-40-4', 100, 'as-row-older'],
      ['WRN-40-4', 250, 'other-spc'],
    ]);
    expect(renderCifarMarkdown(view)).toContain(`- 100/class WRN-40-4 CSA 8-4-2-1: ${path.join(row, 'as-row')}`);
    const csv = renderCifarCsv(view).split('\n');
    expect(csv[0]).toBe('table,dataset,in_table,samples_per_class,model,method,thesis_acc,ours_acc,ours_auc,run');
    expect(csv).toHaveLength(1 + 8 + 2);
    expect(csv[2]).toMatch(/^5\.1,cifar10,true,100,WRN-40-4,CSA 8-4-2-1,not transcribed,[\d.]+,[\d.]+,/);
  });
});
