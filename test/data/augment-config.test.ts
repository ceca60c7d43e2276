// `data.augment` in the experiment file: named policies, the old booleans, custom objects, and what the loaders get.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import { loadExperiment, validateExperiment } from '../../src/kinds/index.ts';
import { augmentFor } from '../../src/kinds/medformer/sampling.ts';
import type { MedformerSettings } from '../../src/kinds/medformer/schema.ts';

type Json = Record<string, unknown>;
const experiment = (augment: unknown, model: Json = { preset: 'small' }, size?: number): Json => ({
  name: 'aug',
  kind: 'supervised',
  model,
  data: { datasets: ['pathmnist'], ...(augment === undefined ? {} : { augment }), ...(size ? { size } : {}) },
  training: { batch_size: 8, lr: 1e-3, weight_decay: 1e-3, warmup_epochs: 1, epochs: 2 },
});
const settings = (augment: unknown, model?: Json, size?: number): MedformerSettings =>
  validateExperiment(experiment(augment, model, size), 'inline').settings as MedformerSettings;
const errorOf = (augment: unknown): string => {
  try {
    settings(augment);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('expected a ConfigError');
};

const FLIPS_ROTATIONS_2D = { crop: 4, flips: true, rotate: 10, randaugment: null, intensity: null };
const THESIS_2D = { ...FLIPS_ROTATIONS_2D, randaugment: { n: 2, m: 8, bins: 31 } };
const THESIS_3D = { crop: 0, flips: true, rotate: 10, randaugment: null, intensity: null };

describe('data.augment', () => {
  it('absent is "thesis"; true is "thesis" too; the resolved settings spell out the ops per dimensionality', () => {
    const thesis = { policy: 'thesis', '2d': THESIS_2D, '3d': THESIS_3D };
    expect(settings(undefined).data.augment).toEqual(thesis);
    expect(settings('thesis').data.augment).toEqual(thesis);
    expect(settings(true).data.augment).toEqual(thesis);
  });

  it('"flips-rotations" is "thesis" without RandAugment (3D is the same)', () => {
    expect(settings('flips-rotations').data.augment).toEqual({ policy: 'flips-rotations', '2d': FLIPS_ROTATIONS_2D, '3d': THESIS_3D });
  });

  it('the crop of the policies scales with the 2D size: round(size/7)', () => {
    const a = settings('flips-rotations', { preset: 'small', image_size_2d: 64 }, 64).data.augment;
    expect(a?.['2d'].crop).toBe(9);
  });

  it('false and "none" are no augmentation', () => {
    expect(settings(false).data.augment).toBeNull();
    expect(settings('none').data.augment).toBeNull();
  });

  it('an object is "custom": its switches, crop 0 unless given, RandAugment on 2D at torchvision\'s scale', () => {
    const old = { flips: true, rotate: 10, randaugment: { n: 2, m: 8 }, intensity: true };
    const jitter = { scale: 0.1, shift: 0.1 };
    expect(settings(old).data.augment).toEqual({
      policy: 'custom',
      '2d': { crop: 0, flips: true, rotate: 10, randaugment: { n: 2, m: 8, bins: 31 }, intensity: jitter },
      '3d': { crop: 0, flips: true, rotate: 10, randaugment: null, intensity: jitter },
    });
    const a = settings({ flips: false, rotate: 0, crop: 2, randaugment: { n: 0, m: 0 }, intensity: false }).data.augment;
    expect(a).toEqual({
      policy: 'custom',
      '2d': { crop: 2, flips: false, rotate: 0, randaugment: null, intensity: null },
      '3d': { crop: 2, flips: false, rotate: 0, randaugment: null, intensity: null },
    });
    expect(settings({ ...old, randaugment: { n: 2, m: 30 } }).data.augment?.['2d'].randaugment).toEqual({ n: 2, m: 30, bins: 31 });
  });

  it("refuses what is not a policy, and magnitudes off torchvision's 0..30 bins", () => {
    const msg =
      'inline: /data/augment must be "thesis", "flips-rotations", "ssl", "none", true (= "thesis"), false (= "none"), or an object {flips, rotate, crop, randaugment: {n, m}, intensity}';
    expect(errorOf('yes')).toBe(msg);
    expect(errorOf('RandAugment')).toBe(msg);
    const base = { flips: true, rotate: 10, randaugment: { n: 2, m: 8 }, intensity: false };
    expect(errorOf({ ...base, randaugment: { n: 2, m: 31 } })).toBe(msg);
    expect(errorOf({ ...base, randaugment: { n: 2, m: 8.5 } })).toBe(msg);
    expect(errorOf({ ...base, crop: -1 })).toBe(msg);
    expect(errorOf({ ...base, magnitude: 3 })).toBe(msg);
  });

  it("augmentFor hands each loader its dimensionality's part, or null when nothing would change", () => {
    const a = settings('thesis').data.augment;
    expect(augmentFor(a, 2)).toEqual(THESIS_2D);
    expect(augmentFor(a, 3)).toEqual(THESIS_3D);
    expect(augmentFor(null, 2)).toBeNull();
    const off = settings({ flips: false, rotate: 0, randaugment: { n: 0, m: 8 }, intensity: false }).data.augment;
    expect(off).not.toBeNull();
    expect(augmentFor(off, 2)).toBeNull();
    expect(augmentFor(off, 3)).toBeNull();
  });

  it('the shipped files validate: the quickstart stays unaugmented, `true` files get the thesis policy', () => {
    expect((loadExperiment('experiments/quickstart.json').settings as MedformerSettings).data.augment).toBeNull();
    expect((loadExperiment('experiments/mt-small.json').settings as MedformerSettings).data.augment?.policy).toBe('thesis');
  });
});
