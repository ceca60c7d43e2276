// Where a run's data came from (src/data/provenance.ts), for every kind of data set the trainer loads: a MedMNIST
// npz, a synthetic set's generated npz, MNIST's IDX files or its generated digits, CIFAR's binary files or its
// generated images; the record a seed summary keeps; `mf table` keeping a MedMNIST result on generated data out of
// its cells and listing it; and the data set lookup of mf eval / predict / serve, with the CIFAR label names.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildTable, renderMarkdown } from '../../src/cli/table.ts';
import { CIFAR, loadCifar, writeCifarBinary, cifarDir } from '../../src/data/cifar.ts';
import { loadSplit } from '../../src/data/dataset.ts';
import { datasetInfo } from '../../src/data/lookup.ts';
import { loadMnist, mnistDir, writeIdx } from '../../src/data/mnist.ts';
import { type NpyArray, writeNpz } from '../../src/data/npz.ts';
import { isStandIn, mergeSources, splitSource, taskSource } from '../../src/data/provenance.ts';
import { getDataset } from '../../src/data/registry.ts';
import { ConfigError } from '../../src/errors.ts';
import { summariseSeeds } from '../../src/train/seeds.ts';
import { tempDir } from './helpers.ts';

const size = (f: string) => fs.statSync(f).size;

describe('the data source of each kind of data set', () => {
  it('MedMNIST: its npz and size; a synthetic set: "synthetic" and its generated npz', () => {
    const root = tempDir();
    // BreastMNIST at the official counts (546 / 78 / 156), 28 px.
    const u8 = (shape: number[]): NpyArray => ({ dtype: '|u1', shape, data: new Uint8Array(shape.reduce((a, b) => a * b, 1)) });
    const arrays: Record<string, NpyArray> = {};
    for (const [s, n] of [
      ['train', 546],
      ['val', 78],
      ['test', 156],
    ] as const) {
      arrays[`${s}_images`] = u8([n, 28, 28]);
      arrays[`${s}_labels`] = u8([n, 1]);
    }
    const file = path.join(root, 'breastmnist.npz');
    writeNpz(file, arrays);
    const load = (key: string, split: 'train' | 'val' | 'test') => loadSplit(key, split, { root });
    const breast = { train: load('breastmnist', 'train'), val: load('breastmnist', 'val'), test: load('breastmnist', 'test') };
    expect(taskSource(breast)).toEqual({ origin: 'files', files: [{ path: file, bytes: size(file) }] });
    const synth = { train: load('synthetic2d', 'train'), val: load('synthetic2d', 'val'), test: load('synthetic2d', 'test') };
    expect(taskSource(synth)).toEqual({ origin: 'synthetic', files: [{ path: synth.train.file, bytes: size(synth.train.file) }] });
    expect(isStandIn(taskSource(synth))).toBe(false);
  });

  it('MNIST: the four IDX files and their sizes; without them, the generated digits as a stand-in', () => {
    const root = tempDir();
    expect(taskSource(loadMnist(root))).toEqual({ origin: 'generated stand-in', files: [] });
    const dir = mnistDir(root);
    fs.mkdirSync(dir, { recursive: true });
    const names = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'];
    writeIdx(path.join(dir, names[0]!), [12, 28, 28], new Uint8Array(12 * 784));
    writeIdx(
      path.join(dir, names[1]!),
      [12],
      Uint8Array.from({ length: 12 }, (_, i) => i % 10),
    );
    writeIdx(path.join(dir, names[2]!), [4, 28, 28], new Uint8Array(4 * 784));
    writeIdx(path.join(dir, names[3]!), [4], Uint8Array.from([0, 1, 2, 3]));
    const m = loadMnist(root);
    // Training and validation both from the training files, test from t10k.
    expect(splitSource(m.val)).toEqual(splitSource(m.train));
    expect(taskSource(m)).toEqual({
      origin: 'files',
      files: names.map((n) => ({ path: path.join(dir, n), bytes: size(path.join(dir, n)) })),
    });
  });

  it('CIFAR: the training batches and the test batch; without them, the generated CIFAR-like stand-in', () => {
    const root = tempDir();
    expect(taskSource(loadCifar(root, 'cifar10', { side: 8 }))).toEqual({ origin: 'generated stand-in', files: [] });
    const dir = cifarDir(root, 'cifar100');
    fs.mkdirSync(dir, { recursive: true });
    const labels = Array.from({ length: 1000 }, (_, i) => i % 100);
    for (const f of ['train.bin', 'test.bin']) writeCifarBinary(path.join(dir, f), 'cifar100', new Uint8Array(1000 * 3072), labels);
    const c = loadCifar(root, 'cifar100', { side: 8 });
    expect(c.real).toBe(true);
    expect(taskSource(c)).toEqual({
      origin: 'files',
      files: ['train.bin', 'test.bin'].map((f) => ({ path: path.join(dir, f), bytes: 1000 * 3074 })),
    });
  });

  it('a stand-in in any split or seed makes the whole record a stand-in', () => {
    const files = { origin: 'files' as const, files: [{ path: '/a', bytes: 1 }] };
    expect(mergeSources([files, { origin: 'generated stand-in', files: [] }])).toEqual({ origin: 'generated stand-in', files: [] });
    expect(
      mergeSources([
        files,
        {
          origin: 'files',
          files: [
            { path: '/b', bytes: 2 },
            { path: '/a', bytes: 1 },
          ],
        },
      ]).files,
    ).toEqual([
      { path: '/a', bytes: 1 },
      { path: '/b', bytes: 2 },
    ]);
    // A seed summary (mf run --seeds) carries it.
    const dir = tempDir();
    const result = (source: unknown) => ({
      test: { auc: 0.7, acc: 0.5 },
      val: { auc: 0.7, acc: 0.5 },
      best_epoch: 1,
      steps: 10,
      wall_s: 1,
      samples_per_s: 1,
      ...(source ? { data_source: source } : {}),
    });
    for (const [seed, source] of [
      [0, files],
      [1, { origin: 'generated stand-in', files: [] }],
    ] as const) {
      fs.mkdirSync(path.join(dir, `seed-${seed}`));
      fs.writeFileSync(path.join(dir, `seed-${seed}`, 'metrics.json'), JSON.stringify({ cifar10: result(source) }));
    }
    const summary = summariseSeeds(dir, [0, 1]) as Record<string, { data_source?: unknown }>;
    expect(summary.cifar10!.data_source).toEqual({ origin: 'generated stand-in', files: [] });
    // Runs from before the record: none in the summary either.
    fs.writeFileSync(path.join(dir, 'seed-1', 'metrics.json'), JSON.stringify({ cifar10: result(null) }));
    fs.writeFileSync(path.join(dir, 'seed-0', 'metrics.json'), JSON.stringify({ cifar10: result(null) }));
    expect('data_source' in (summariseSeeds(dir, [0, 1]) as Record<string, object>).cifar10!).toBe(false);
  });
});

describe('mf table and results on generated data', () => {
  it('a run on a stand-in fills no cell of a thesis table, even when newest; it is listed below as generated data', () => {
    const runs = tempDir();
    const write = (folder: string, acc: number, source: unknown, mtime: number) => {
      const out = path.join(runs, folder);
      fs.mkdirSync(out);
      fs.writeFileSync(
        path.join(out, 'config.json'),
        JSON.stringify({ name: folder, kind: 'supervised', model: { preset: 'small' }, data: { datasets: ['breastmnist'] } }),
      );
      const metrics = {
        breastmnist: {
          test: { auc: 0.8, acc },
          val: { auc: 0.8, acc },
          best_epoch: 1,
          steps: 10,
          wall_s: 1,
          samples_per_s: 1,
          ...(source ? { data_source: source } : {}),
        },
      };
      fs.writeFileSync(path.join(out, 'metrics.json'), JSON.stringify(metrics));
      fs.utimesSync(path.join(out, 'metrics.json'), mtime, mtime);
    };
    write('real', 0.8, { origin: 'files', files: [{ path: '/data/breastmnist.npz', bytes: 1 }] }, 1_700_000_000);
    write('generated', 0.9, { origin: 'generated stand-in', files: [] }, 1_700_000_100);
    // A run from before data_source was recorded still fills cells (nothing says otherwise), but not over a newer one.
    write('older-unrecorded', 0.7, null, 1_600_000_000);
    const view = buildTable('4.2', runs);
    if (view.regime === 'deltas') throw new Error('4.2 is a value table');
    const row = view.rows.find((r) => r.key === 'breastmnist')!;
    expect(row.ours === 'missing' ? null : path.basename(row.ours.run.dir)).toBe('real');
    expect(view.generated.map((g) => [g.key, path.basename(g.run.dir), g.acc])).toEqual([['breastmnist', 'generated', 90]]);
    const md = renderMarkdown(view);
    expect(md).toMatch(
      /Runs on generated data .*fill no cell\):\n\n- breastmnist \(supervised\): ACC 90\.0, AUC 0\.800, generated data: .*generated/,
    );
    expect(
      md
        .split('Runs used:')[1]!
        .split('\n')
        .filter((l) => l.startsWith('- BreastMNIST')),
    ).toEqual([expect.stringContaining(path.join(runs, 'real'))]);
    // Only the stand-in: the cell is missing.
    fs.rmSync(path.join(runs, 'real'), { recursive: true });
    fs.rmSync(path.join(runs, 'older-unrecorded'), { recursive: true });
    const alone = buildTable('4.2', runs);
    expect(alone.rows.find((r) => r.key === 'breastmnist')!.ours).toBe('missing');
    expect(alone.generated).toHaveLength(1);
  });
});

describe('the data set lookup of mf eval, mf predict and mf serve', () => {
  it('knows MedMNIST, the synthetic sets, MNIST and CIFAR; an unknown key is one line listing them all', () => {
    expect(datasetInfo('BreastMNIST')).toBe(getDataset('breastmnist'));
    expect(datasetInfo('synthetic2d').synthetic).toBe(true);
    expect(datasetInfo('mnist').labels).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    expect(datasetInfo('CIFAR10')).toBe(CIFAR.cifar10);
    expect(() => datasetInfo('imagenet')).toThrow(ConfigError);
    expect(() => datasetInfo('imagenet')).toThrow(/unknown dataset 'imagenet'/);
  });

  it("CIFAR's label names: batches.meta.txt's 10 and fine_label_names' 100 (alphabetical in the official archive)", () => {
    expect(CIFAR.cifar10.labels).toEqual(['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']);
    const fine = CIFAR.cifar100.labels;
    expect(fine).toHaveLength(100);
    expect(new Set(fine).size).toBe(100);
    // The official list is in alphabetical order: label i is the i-th name.
    expect([...fine].sort()).toEqual([...fine]);
    expect([fine[0], fine[1], fine[19], fine[30], fine[58], fine[99]]).toEqual([
      'apple',
      'aquarium_fish',
      'cattle',
      'dolphin',
      'pickup_truck',
      'worm',
    ]);
  });
});
