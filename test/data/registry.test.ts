import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import {
  BODY_PARTS,
  DATASETS,
  fileFor,
  getDataset,
  MEDMNIST,
  MODALITIES,
  numClasses,
  numLabelColumns,
  numOutputs,
  SYNTHETIC,
} from '../../src/data/registry.ts';

// v2.2.4+/v3 split sizes (MedMNIST info.py v3.0.2; shared/data/MANIFEST.md).
const SPLITS: Record<string, [number, number, number]> = {
  pathmnist: [89996, 10004, 7180],
  chestmnist: [78468, 11219, 22433],
  dermamnist: [7007, 1003, 2005],
  octmnist: [97477, 10832, 1000],
  pneumoniamnist: [4708, 524, 624],
  retinamnist: [1080, 120, 400],
  breastmnist: [546, 78, 156],
  bloodmnist: [11959, 1712, 3421],
  tissuemnist: [165466, 23640, 47280],
  organamnist: [34561, 6491, 17778],
  organcmnist: [12975, 2392, 8216],
  organsmnist: [13932, 2452, 8827],
  organmnist3d: [971, 161, 610],
  nodulemnist3d: [1158, 165, 310],
  adrenalmnist3d: [1188, 98, 298],
  fracturemnist3d: [1027, 103, 240],
  vesselmnist3d: [1335, 191, 382],
  synapsemnist3d: [1230, 177, 352],
};

describe('registry', () => {
  it('has the 18 MedMNIST v2 datasets with unique keys and names', () => {
    expect(MEDMNIST).toHaveLength(18);
    expect(new Set(MEDMNIST.map((d) => d.key)).size).toBe(18);
    expect(new Set(MEDMNIST.map((d) => d.name)).size).toBe(18);
    expect(MEDMNIST.filter((d) => d.dim === 2)).toHaveLength(12);
    expect(MEDMNIST.filter((d) => d.dim === 3)).toHaveLength(6);
    expect(new Set(DATASETS.map((d) => d.key)).size).toBe(DATASETS.length);
    expect(MEDMNIST.every((d) => !d.synthetic)).toBe(true);
    expect(SYNTHETIC.map((d) => d.key)).toEqual(['synthetic2d', 'synthetic3d']);
    expect(SYNTHETIC.every((d) => d.synthetic)).toBe(true);
  });

  it('has the v2.2.4+/v3 split sizes', () => {
    for (const d of MEDMNIST) expect([d.splits.train, d.splits.val, d.splits.test], d.key).toEqual(SPLITS[d.key]);
  });

  it('has valid latent ids', () => {
    for (const d of DATASETS) {
      expect(d.latent.dim, d.key).toBe(d.dim === 2 ? 0 : 1);
      expect(MODALITIES[d.latent.modality], d.key).toBe(d.modality);
      expect(BODY_PARTS[d.latent.bodyPart], d.key).toBe(d.bodyPart);
    }
    expect(getDataset('pathmnist')).toMatchObject({ dim: 2, modality: 'microscope', bodyPart: 'colon tissue' });
    expect(getDataset('organmnist3d')).toMatchObject({ dim: 3, modality: 'ct', bodyPart: 'abdomen' });
    // The thesis's grouping: one microscope latent for the four 2D microscopy sets.
    for (const k of ['pathmnist', 'dermamnist', 'bloodmnist', 'tissuemnist']) expect(getDataset(k).modality, k).toBe('microscope');
    // Every modality and body part except the synthetic one is used by a real dataset.
    for (const m of MODALITIES)
      if (m !== 'synthetic')
        expect(
          MEDMNIST.some((d) => d.modality === m),
          m,
        ).toBe(true);
    for (const b of BODY_PARTS)
      if (b !== 'synthetic')
        expect(
          MEDMNIST.some((d) => d.bodyPart === b),
          b,
        ).toBe(true);
  });

  it('has files, MD5s and Zenodo URLs for every size', () => {
    for (const d of MEDMNIST) {
      expect(
        d.files.map((f) => f.size),
        d.key,
      ).toEqual(d.dim === 2 ? [28, 64, 128, 224] : [28, 64]);
      for (const f of d.files) {
        expect(f.file).toBe(f.size === 28 ? `${d.key}.npz` : `${d.key}_${f.size}.npz`);
        expect(f.md5).toMatch(/^[0-9a-f]{32}$/);
        expect(f.url).toBe(`https://zenodo.org/records/10519652/files/${f.file}?download=1`);
      }
    }
    const md5s = MEDMNIST.flatMap((d) => d.files.map((f) => f.md5));
    expect(new Set(md5s).size).toBe(md5s.length);
    expect(fileFor(getDataset('breastmnist'), 28).md5).toBe('750601b1f35ba3300ea97c75c52ff8f6');
    expect(fileFor(getDataset('vesselmnist3d'), 28).md5).toBe('b41fd4f7e7e2feedddb201585ecafa1b');
  });

  it('knows tasks, labels, channels and output widths', () => {
    const chest = getDataset('chestmnist');
    expect(chest.task).toBe('multi-label');
    expect(chest.labels).toHaveLength(14);
    expect(numOutputs(chest)).toBe(14);
    expect(numLabelColumns(chest)).toBe(14);
    expect(numClasses(chest)).toBe(2);
    const retina = getDataset('retinamnist');
    expect(retina.task).toBe('ordinal');
    expect(numOutputs(retina)).toBe(5);
    expect(retina.channels).toBe(3);
    expect(numOutputs(getDataset('breastmnist'))).toBe(1);
    expect(getDataset('breastmnist').labels).toEqual(['malignant', 'normal, benign']);
    expect(numOutputs(getDataset('pathmnist'))).toBe(9);
    expect(numOutputs(getDataset('organamnist'))).toBe(11);
    expect(numOutputs(getDataset('fracturemnist3d'))).toBe(3);
    expect(MEDMNIST.filter((d) => d.channels === 3).map((d) => d.key)).toEqual(['pathmnist', 'dermamnist', 'retinamnist', 'bloodmnist']);
    for (const d of DATASETS) {
      expect(d.labels.length, d.key).toBeGreaterThanOrEqual(2);
      if (d.task === 'binary') expect(d.labels, d.key).toHaveLength(2);
    }
  });

  it('rejects unknown keys and sizes with the valid choices', () => {
    expect(getDataset('BreastMNIST').key).toBe('breastmnist');
    expect(() => getDataset('mnist')).toThrow(ConfigError);
    expect(() => getDataset('mnist')).toThrow(/unknown dataset 'mnist'.*breastmnist.*synapsemnist3d/);
    expect(() => fileFor(getDataset('organmnist3d'), 128)).toThrow(/valid sizes: 28, 64/);
  });
});
