// The experiment files of the brain kinds: the shipped files resolve to the settings the old `brainfuse`
// section reader produced, defaults are the same, and every mistake is one ConfigError line naming the file
// and the key.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { brainPaths, defaultBrainCache } from '../../src/brain/settings.ts';
import { ConfigError } from '../../src/errors.ts';
import type { BrainAgeSettings } from '../../src/kinds/brainage/schema.ts';
import type { InterpSettings } from '../../src/kinds/brainfuse-interp/schema.ts';
import { loadExperiment, validateExperiment } from '../../src/kinds/index.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const FILE = 'x.json';
type Json = Record<string, unknown>;

const TRAINING = { epochs: 2, batch_size: 4, lr: 0.001, weight_decay: 0, warmup_epochs: 0 };
const interp = (over: Json = {}): Json => ({ name: 'i', kind: 'brainfuse-interp', training: { ...TRAINING }, ...over });
const age = (over: Json = {}): Json => ({ name: 'a', kind: 'brainage', training: { ...TRAINING }, ...over });

const interpSettings = (raw: Json) => validateExperiment(raw, FILE).settings as InterpSettings;
const ageSettings = (raw: Json) => validateExperiment(raw, FILE).settings as BrainAgeSettings;

/** The message of the ConfigError `raw` gives, without the leading "x.json: ". */
function errorFor(raw: Json): string {
  try {
    validateExperiment(raw, FILE);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    const msg = (e as Error).message;
    expect(msg.startsWith(`${FILE}: `), msg).toBe(true);
    expect(msg).not.toContain('\n');
    return msg.slice(FILE.length + 2);
  }
  throw new Error('expected a ConfigError');
}

const DATA_DEFAULTS = { data_dir: null, subjects_csv: null, cache_dir: null, shape: 64, split: { seed: 0, test: 4, val: 2 } };

describe('brainfuse-interp experiment files', () => {
  it('experiments/brainfuse-interp.json resolves to the settings of the old brainfuse section', () => {
    const s = loadExperiment(path.join(ROOT, 'experiments/brainfuse-interp.json')).settings as InterpSettings;
    expect(s.data).toEqual(DATA_DEFAULTS);
    expect(s.model).toEqual({ base: 16, depth: 3, groups: 4, act: 'gelu', down: 'avg' });
    expect(s.interp).toEqual({
      loss: 'l1',
      grad_weight: 0.1,
      gap: { start: 2, max: 8, every_epochs: 2 },
      axes: [0, 1, 2],
      min_foreground: 0.1,
      eval: { gaps: [2, 4, 8], axes: [0, 1, 2], per_axis: 16 },
    });
    expect(s.training).toMatchObject({ epochs: 10, steps_per_epoch: 30, batch_size: 8, lr: 0.002, log_every: 10, eval_every: 'epoch' });
    // Split keys in this order: the interpolator's weights carry JSON.stringify(split) and the study compares it.
    expect(JSON.stringify(s.data.split)).toBe('{"seed":0,"test":4,"val":2}');
  });

  it('fills in the old defaults, deduplicates axes and sorts the evaluation gaps', () => {
    const s = interpSettings(interp({ interp: { gap: { max: 6 }, axes: [2, 2, 0], eval: { gaps: [6, 2, 2] } } }));
    expect(s.data).toEqual(DATA_DEFAULTS);
    expect(s.model).toEqual({ base: 16, depth: 3, groups: 4, act: 'gelu', down: 'avg' });
    expect(s.training.steps_per_epoch).toBe(40);
    expect(s.interp).toEqual({
      loss: 'l1',
      grad_weight: 0.1,
      gap: { start: 2, max: 6, every_epochs: 2 },
      axes: [2, 0],
      min_foreground: 0.1,
      eval: { gaps: [2, 6], axes: [0, 1, 2], per_axis: 16 },
    });
    // Without eval.gaps: 2, 4 and the curriculum's largest gap.
    expect(interpSettings(interp({ interp: { gap: { max: 4 } } })).interp.eval.gaps).toEqual([2, 4]);
  });

  it('rejects unknown keys, wrong types, odd gaps and misfit grids, naming the file and the key', () => {
    expect(errorFor(interp({ interp: { gapp: 2 } }))).toMatch(
      /^unknown key \/interp\/gapp \(allowed: loss, grad_weight, gap, axes, min_foreground, eval\)$/,
    );
    expect(errorFor(interp({ model: { base: 16, width: 3 } }))).toMatch(/^unknown key \/model\/width/);
    expect(errorFor(interp({ data: { shape: '64' } }))).toBe('/data/shape must be integer');
    expect(errorFor(interp({ data: { shape: 4 } }))).toBe('/data/shape must be >= 8');
    expect(errorFor(interp({ interp: { loss: 'l3' } }))).toBe('/interp/loss must be one of "l1", "l2"');
    expect(errorFor(interp({ interp: { axes: [3] } }))).toBe('/interp/axes/0 must be one of 0, 1, 2');
    expect(errorFor(interp({ interp: { gap: { max: 7 } } }))).toBe('/interp/gap/max 7 must be even (the target is the middle slice)');
    expect(errorFor(interp({ interp: { gap: { start: 3 } } }))).toMatch(/^\/interp\/gap\/start 3 must be even/);
    expect(errorFor(interp({ interp: { gap: { start: 6, max: 4 } } }))).toBe('/interp/gap/max 4 must be >= start 6');
    expect(errorFor(interp({ data: { shape: 16 }, interp: { gap: { max: 16 } } }))).toBe(
      '/interp/gap/max 16 must be <= 14 (the grid side 16 minus 2)',
    );
    expect(errorFor(interp({ interp: { eval: { gaps: [2, 5] } } }))).toBe('/interp/eval/gaps/1 5 must be even');
    expect(errorFor(interp({ data: { shape: 36 } }))).toBe('/data/shape 36 must be a multiple of 2^model.depth = 8');
    expect(errorFor(interp({ training: { batch_size: 4, lr: 0.001, weight_decay: 0, warmup_epochs: 0 } }))).toMatch(
      /^set \/training\/epochs or \/training\/max_steps/,
    );
  });

  it('names where the settings of an old-style file went', () => {
    const old = {
      name: 'i',
      kind: 'brainfuse-interp',
      model: { preset: 'small' },
      data: { datasets: ['ixi'] },
      training: TRAINING,
      brainfuse: { shape: 64 },
    };
    expect(errorFor(old)).toMatch(
      /^\/brainfuse is no longer read by kind "brainfuse-interp": its settings moved to \/data, \/model, \/interp .*experiments\/brainfuse-interp\.json/,
    );
    expect(errorFor(interp({ model: { preset: 'small' } }))).toMatch(/^\/model\/preset is no longer read/);
    expect(errorFor(interp({ data: { datasets: ['ixi'] } }))).toMatch(/^\/data\/datasets is no longer read.*data_dir/);
  });

  it('resolves the data paths when the run is prepared: --data-dir, data_dir, $IXI_ROOT; the cache under the run folder', () => {
    const d = interpSettings(interp({ data: { data_dir: 'somewhere', cache_dir: 'cache' } })).data;
    expect(brainPaths(d, { outDir: '/runs/x' })).toEqual({
      dataDir: path.resolve('somewhere'),
      subjectsCsv: null,
      cacheDir: '/runs/x/cache',
    });
    expect(brainPaths(d, { outDir: '/runs/x', dataDir: '/data/ixi' }).dataDir).toBe('/data/ixi');
    const defaults = interpSettings(interp()).data;
    const saved = process.env.IXI_ROOT;
    try {
      process.env.IXI_ROOT = '/shared/brain';
      expect(brainPaths(defaults, { outDir: '/runs/x' })).toEqual({
        dataDir: '/shared/brain',
        subjectsCsv: null,
        cacheDir: defaultBrainCache(),
      });
    } finally {
      if (saved === undefined) delete process.env.IXI_ROOT;
      else process.env.IXI_ROOT = saved;
    }
  });
});

describe('brainage experiment files', () => {
  it('experiments/brainage.json resolves to the settings of the old brainfuse section', () => {
    const s = loadExperiment(path.join(ROOT, 'experiments/brainage.json')).settings as BrainAgeSettings;
    expect(s.data).toEqual({
      ...DATA_DEFAULTS,
      size: 32,
      modalities: ['T1'],
      bins: { min: 20, max: 90, width: 5 },
      label_sigma: 1,
      augment: true,
    });
    expect(s.model).toEqual({ width: 8, blocks: [1, 1, 1], groups: 4 });
    expect(s.study).toEqual({
      arms: ['NT', 'NT+BT', 'NT+BT+BrainFuse', 'NT+BT+RawBrainFuse', 'NT+BT+BrainFuse+ConsistencyReg', 'NT+BT+RawBrainFuse+ConsistencyReg'],
      seeds: 3,
    });
    expect(s.bt).toEqual({ steps_per_epoch: 6, dim: 64, lambda: 0.005, fused_per_real: 4, chain: [2, 4], max_generation: 2 });
    expect(s.fusion).toEqual({
      interp_run: 'runs/brainfuse-interp',
      per_subject: 4,
      axes: [2],
      transition: 7,
      k_range: [0.3, 0.7],
      threshold: 3,
      attempts: 4,
      seed: 0,
      filter_raw: false,
    });
    expect(s.consistency).toEqual({ weight: 1 });
    expect(s.training).toMatchObject({ epochs: 15, steps_per_epoch: 6, batch_size: 8, lr: 0.001, log_every: 6 });
  });

  it('fills in the old defaults: the thesis arms, bt steps from training, interp_run null only when asked', () => {
    const s = ageSettings(age({ training: { ...TRAINING, steps_per_epoch: 5 } }));
    expect(s.study).toEqual({
      arms: ['NT', 'NT+BT', 'NT+BT+BrainFuse', 'NT+BT+RawBrainFuse', 'NT+BT+BrainFuse+ConsistencyReg', 'NT+BT+RawBrainFuse+ConsistencyReg'],
      seeds: 3,
    });
    expect(s.bt.steps_per_epoch).toBe(5);
    expect(s.fusion.interp_run).toBe('runs/brainfuse-interp');
    expect(ageSettings(age()).training.steps_per_epoch).toBe(6);
    expect(ageSettings(age({ fusion: { interp_run: null } })).fusion.interp_run).toBeNull();
  });

  it('defaults: 64³ input, T1 only, 4 fused volumes per real one for Barlow Twins, RawBrainFuse unfiltered', () => {
    const s = ageSettings(age());
    expect([s.data.shape, s.data.size, s.data.modalities]).toEqual([64, 64, ['T1']]);
    expect(s.bt).toMatchObject({ fused_per_real: 4, chain: [2, 4], max_generation: 2 });
    expect(s.fusion.filter_raw).toBe(false);
    // A smaller grid is the input size unless data.size says otherwise; modalities are upper-cased.
    expect(ageSettings(age({ data: { shape: 32 } })).data.size).toBe(32);
    const thesis = ageSettings(age({ data: { size: 32, modalities: ['T1', 't2', 'PD'] }, fusion: { filter_raw: true } }));
    expect([thesis.data.size, thesis.data.modalities, thesis.fusion.filter_raw]).toEqual([32, ['T1', 'T2', 'PD'], true]);
  });

  it('checks the arm grammar, the grid, the bins and k_range, naming the file and the key', () => {
    expect(errorFor(age({ study: { arms: ['NT', 'BT+NT'] } }))).toMatch(/^\/study\/arms\/1 arm "BT\+NT" must be NT followed by/);
    expect(errorFor(age({ study: { arms: ['NT+BrainFuse+RawBrainFuse'] } }))).toMatch(/^\/study\/arms\/0 arm/);
    expect(errorFor(age({ study: { arms: ['NT', 'NT'] } }))).toBe('/study/arms lists an arm twice');
    expect(errorFor(age({ data: { shape: 64, size: 24 } }))).toBe('/data/size 24 must divide the grid side data.shape 64');
    expect(errorFor(age({ data: { shape: 48, size: 12 } }))).toBe('/data/size 12 must be a multiple of 8 (2 per stage of model.blocks)');
    expect(errorFor(age({ data: { modalities: ['T1', 't1'] } }))).toBe('/data/modalities lists a modality twice');
    expect(errorFor(age({ data: { modalities: [] } }))).toMatch(/^\/data\/modalities /);
    expect(errorFor(age({ data: { modalities: ['T1.nii'] } }))).toMatch(/^\/data\/modalities\/0 /);
    expect(errorFor(age({ bt: { chain: [4, 2] } }))).toBe('/bt/chain [4, 2] must be [fewest, most] with fewest <= most');
    expect(errorFor(age({ data: { shape: 16 }, bt: { chain: [2, 3] }, fusion: { transition: 5 } }))).toBe(
      '/bt/chain 3 brains with 5 transition slices each do not fit in 16 slices',
    );
    // ...unless no arm pre-trains, or nothing is fused for it.
    expect(
      ageSettings(age({ data: { shape: 16 }, bt: { chain: [2, 3] }, fusion: { transition: 5 }, study: { arms: ['NT'] } })).bt.chain,
    ).toEqual([2, 3]);
    expect(
      ageSettings(age({ data: { shape: 16 }, bt: { chain: [2, 3], fused_per_real: 0 }, fusion: { transition: 5 } })).bt.fused_per_real,
    ).toBe(0);
    expect(errorFor(age({ data: { bins: { min: 50, max: 40 } } }))).toMatch(
      /^\/data\/bins age bins \{min: 50, max: 40, width: 5\} need min < max/,
    );
    expect(errorFor(age({ fusion: { k_range: [0.7, 0.3] } }))).toBe('/fusion/k_range must be [low, high] with 0 <= low < high <= 1');
    expect(errorFor(age({ fusion: { k_range: [0.2, 1.5] } }))).toBe('/fusion/k_range/1 must be <= 1');
    expect(errorFor(age({ fusion: { interp_run: 3 } }))).toBe(
      '/fusion/interp_run must be a brainfuse-interp run folder or weights file, or null (linear blending)',
    );
    expect(errorFor(age({ consistency_weight: 1 }))).toMatch(/^unknown key \/consistency_weight/);
    expect(errorFor(age({ study: { seeds: 0 } }))).toBe('/study/seeds must be >= 1');
  });

  it('names where the settings of an old-style file went', () => {
    const old = {
      name: 'a',
      kind: 'brainage',
      model: { preset: 'small' },
      data: { datasets: ['ixi'], augment: false },
      training: TRAINING,
      brainfuse: { arms: ['NT'] },
    };
    expect(errorFor(old)).toMatch(
      /^\/brainfuse is no longer read by kind "brainage": its settings moved to \/data, \/model, \/study, \/bt, \/fusion, \/consistency .*experiments\/brainage\.json/,
    );
    expect(errorFor(age({ model: { preset: 'small' } }))).toMatch(/^\/model\/preset is no longer read by kind "brainage"/);
    expect(errorFor(age({ data: { downsample: 2 } }))).toMatch(
      /^\/data\/downsample is no longer read by kind "brainage": replaced by \/data\/size/,
    );
  });
});
