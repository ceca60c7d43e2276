// The toy CIFAR fixture of the Chapter 5 tests: CIFAR-10 in the official binary layout at toy size, and a tiny
// Wide ResNet experiment on it that `mf run` trains in seconds on lavapipe.
import fs from 'node:fs';
import path from 'node:path';
import { cifarDir, writeCifarBinary } from '../../src/data/cifar.ts';
import { Rng } from '../../src/util/rng.ts';

/** One toy image's 3,072 bytes, channel-first as CIFAR stores them: class y brightens channel y mod 3 over noise. */
function toyImage(y: number, rng: Rng, out: Uint8Array): void {
  for (let e = 0; e < 3072; e++) out[e] = Math.min(255, Math.floor(e / 1024) === y % 3 ? 150 + y * 10 : rng.int(100));
}

/** A toy image of class `y`, channel-first (3×32×32), from its own seed: what a test feeds `mf predict`. */
export function toyCifarImage(y: number, seed = 5): Uint8Array {
  const out = new Uint8Array(3072);
  toyImage(y, new Rng(seed), out);
  return out;
}

/**
 * CIFAR-10 under `<root>/cifar-10-batches-bin/`: five training batches and a test batch of `perBatch` records
 * each (classes in turn), each image a noisy class-coloured field, so a tiny network learns something in an epoch.
 */
export function writeToyCifar10(root: string, perBatch = 20): string {
  const files = cifarDir(root, 'cifar10');
  fs.mkdirSync(files, { recursive: true });
  const rng = new Rng(11);
  for (const name of [1, 2, 3, 4, 5].map((b) => `data_batch_${b}.bin`).concat('test_batch.bin')) {
    const labels = Int32Array.from({ length: perBatch }, (_, i) => i % 10);
    const images = new Uint8Array(perBatch * 3072);
    labels.forEach((y, i) => toyImage(y, rng, images.subarray(i * 3072, (i + 1) * 3072)));
    writeCifarBinary(path.join(files, name), 'cifar10', images, labels);
  }
  return files;
}

/**
 * A WRN-10-0.5 experiment at 8 px on CIFAR-10 from `dataRoot` (4 training images a class, batch 10, constant lr),
 * written to `<dir>/<name>.json`; `over` replaces top-level sections (e.g. `csa`), `training` adds to training.
 */
export function toyCifarExperiment(
  dir: string,
  dataRoot: string,
  opts: { name?: string; over?: Record<string, unknown>; training?: Record<string, unknown> } = {},
): string {
  const name = opts.name ?? 'cifar-toy';
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(
    file,
    JSON.stringify({
      name,
      kind: 'supervised',
      model: { preset: 'wrn', depth: 10, widen_factor: 0.5, image_size_2d: 8 },
      data: { datasets: ['cifar10'], samples_per_class: 4, augment: 'none', root: dataRoot },
      training: {
        epochs: 1,
        batch_size: 10,
        lr: 0.003,
        weight_decay: 0,
        warmup_epochs: 0,
        schedule: 'constant',
        seed: 2,
        log_every: 1,
        ...opts.training,
      },
      ...opts.over,
    }),
  );
  return file;
}
