// The CIFAR binary reader (src/data/cifar.ts): records read back exactly as written in the official layout, for
// CIFAR-10 (one label byte) and CIFAR-100 (coarse + fine, the fine kept); truncated, corrupt, oversized, uneven and
// partial file sets refused in one line naming the file and where to get the tarball; the validation split carved
// balanced and the same for every seed; data.samples_per_class balanced, deterministic per seed and different
// across seeds; the 8 px block averages; and the generated stand-in when no file is there.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { balancedSubset, CIFAR_SIDE, cifarDir, downsample, loadCifar, readCifarBinary, writeCifarBinary } from '../../src/data/cifar.ts';
import { ConfigError, FileFormatError } from '../../src/errors.ts';
import { Rng } from '../../src/util/rng.ts';
import { tmpDir } from '../run/helpers.ts';

const PIXELS = 3 * CIFAR_SIDE * CIFAR_SIDE;

/** n records whose first pixel bytes spell out their index (so each image is unique and traceable), labels i mod c. */
function records(n: number, classes: number, offset = 0): { images: Uint8Array; labels: Int32Array } {
  const images = new Uint8Array(n * PIXELS);
  const rng = new Rng(offset + 7);
  for (let i = 0; i < n; i++) {
    const id = i + offset;
    const img = images.subarray(i * PIXELS, (i + 1) * PIXELS);
    for (let e = 0; e < PIXELS; e++) img[e] = rng.int(256);
    img[0] = id & 255;
    img[1] = id >> 8;
  }
  return { images, labels: Int32Array.from({ length: n }, (_, i) => (i * 7 + offset) % classes) };
}
const idOf = (images: Uint8Array, i: number, side = CIFAR_SIDE) => {
  const P = 3 * side * side;
  return images[i * P]! + 256 * images[i * P + 1]!;
};

/** The six CIFAR-10 files in the official layout, `per` records each; returns the data root. */
function cifar10Files(per: number, testN = per): string {
  const root = tmpDir('cifar10');
  const dir = cifarDir(root, 'cifar10');
  fs.mkdirSync(dir);
  for (let b = 1; b <= 5; b++) {
    const r = records(per, 10, (b - 1) * per);
    writeCifarBinary(path.join(dir, `data_batch_${b}.bin`), 'cifar10', r.images, r.labels);
  }
  const t = records(testN, 10, 50_000);
  writeCifarBinary(path.join(dir, 'test_batch.bin'), 'cifar10', t.images, t.labels);
  return root;
}

describe('the binary records', () => {
  it('CIFAR-10: 1 label byte + 3,072 pixel bytes a record, read back exactly', () => {
    const root = cifar10Files(30);
    const file = path.join(cifarDir(root, 'cifar10'), 'data_batch_2.bin');
    expect(fs.statSync(file).size).toBe(30 * 3073);
    const r = readCifarBinary(file, 'cifar10');
    const want = records(30, 10, 30);
    expect(r.n).toBe(30);
    expect(Buffer.compare(Buffer.from(r.images), Buffer.from(want.images))).toBe(0);
    expect(Array.from(r.labels)).toEqual(Array.from(want.labels));
    // The layout by hand: record 3's label byte at 3·3073, its red plane's first byte right after it.
    const raw = fs.readFileSync(file);
    expect(raw[3 * 3073]).toBe(want.labels[3]);
    expect(raw[3 * 3073 + 1]).toBe(want.images[3 * PIXELS]);
  });

  it('CIFAR-100: coarse and fine label bytes, the fine label kept; a coarse label over 19 is corrupt', () => {
    const dir = tmpDir('cifar100-rec');
    const file = path.join(dir, 'train.bin');
    const r = records(12, 100);
    const raw = Buffer.alloc(12 * 3074);
    for (let i = 0; i < 12; i++) {
      raw[i * 3074] = i % 20;
      raw[i * 3074 + 1] = r.labels[i]!;
      raw.set(r.images.subarray(i * PIXELS, (i + 1) * PIXELS), i * 3074 + 2);
    }
    fs.writeFileSync(file, raw);
    const back = readCifarBinary(file, 'cifar100');
    expect(Array.from(back.labels)).toEqual(Array.from(r.labels));
    expect(Buffer.compare(Buffer.from(back.images), Buffer.from(r.images))).toBe(0);
    raw[5 * 3074] = 20;
    fs.writeFileSync(file, raw);
    expect(() => readCifarBinary(file, 'cifar100')).toThrow(/train\.bin: record 5 has coarse label 20, expected 0\.\.19/);
  });

  it('a truncated file or an out-of-range label is one FileFormatError naming the file and where to get the tarball', () => {
    const root = cifar10Files(10);
    const file = path.join(cifarDir(root, 'cifar10'), 'data_batch_1.bin');
    const raw = fs.readFileSync(file);
    fs.writeFileSync(file, raw.subarray(0, raw.length - 100));
    const err = (() => {
      try {
        readCifarBinary(file, 'cifar10');
      } catch (e) {
        return e as Error;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(FileFormatError);
    expect(err!.message).not.toContain('\n');
    expect(err!.message).toContain(`${file}: 30,630 bytes is not a whole number of 3073-byte records`);
    expect(err!.message).toContain('https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz');
    expect(err!.message).toContain(`tar xzf cifar-10-binary.tar.gz -C ${root}`);
    raw[2 * 3073] = 10;
    fs.writeFileSync(file, raw);
    expect(() => readCifarBinary(file, 'cifar10')).toThrow(/data_batch_1\.bin: record 2 has label 10, expected 0\.\.9 \(corrupt file\)/);
    fs.writeFileSync(file, Buffer.alloc(0));
    expect(() => readCifarBinary(file, 'cifar10')).toThrow(FileFormatError);
  });

  it('refuses a partial file set, training batches of different sizes, and a file larger than the official one', () => {
    const root = cifar10Files(20);
    const dir = cifarDir(root, 'cifar10');
    fs.rmSync(path.join(dir, 'data_batch_4.bin'));
    expect(() => loadCifar(root, 'cifar10')).toThrow(ConfigError);
    expect(() => loadCifar(root, 'cifar10')).toThrow(/CIFAR-10 is missing data_batch_4\.bin/);
    const r = records(19, 10);
    writeCifarBinary(path.join(dir, 'data_batch_4.bin'), 'cifar10', r.images, r.labels);
    expect(() => loadCifar(root, 'cifar10')).toThrow(
      /data_batch_4\.bin: 19 records, .*data_batch_1\.bin has 20: the training batches differ/,
    );
    fs.writeFileSync(path.join(dir, 'test_batch.bin'), Buffer.alloc(10_001 * 3073));
    fs.rmSync(path.join(dir, 'data_batch_4.bin'));
    const r20 = records(20, 10, 60);
    writeCifarBinary(path.join(dir, 'data_batch_4.bin'), 'cifar10', r20.images, r20.labels);
    expect(() => loadCifar(root, 'cifar10')).toThrow(/test_batch\.bin: 10001 records, the official file has 10000/);
  });
});

describe('splits and sample-scarce subsets', () => {
  it('samples_per_class: each class exactly N, the same indices for a seed, others for another seed', () => {
    const labels = Int32Array.from({ length: 600 }, (_, i) => (i * 13) % 10);
    const a = balancedSubset(labels, 10, 17, 4);
    const again = balancedSubset(labels, 10, 17, 4);
    const other = balancedSubset(labels, 10, 17, 5);
    expect(Array.from(a.picked)).toEqual(Array.from(again.picked));
    expect(Array.from(a.picked)).not.toEqual(Array.from(other.picked));
    for (const s of [a, other]) {
      const counts = new Array(10).fill(0);
      for (const i of s.picked) counts[labels[i]!]++;
      expect(counts).toEqual(new Array(10).fill(17));
      // picked and rest partition the indices.
      expect(new Set([...s.picked, ...s.rest]).size).toBe(600);
      expect(s.picked.length + s.rest.length).toBe(600);
    }
    expect(() => balancedSubset(labels, 10, 61, 0, null, 'x')).toThrow(/x: class 0 has 60 images, 61 asked for/);
  });

  it('loads the official layout: validation 10% balanced with one fixed seed, N a class from the rest, the test file whole', () => {
    const root = cifar10Files(40, 30);
    const load = (seed: number) => loadCifar(root, 'cifar10', { samplesPerClass: 6, seed });
    const s1 = load(1);
    const s1b = load(1);
    const s2 = load(2);
    expect(s1.real).toBe(true);
    // 200 training records: 20 for validation (2 a class), 6 a class of the other 180 for training.
    expect([s1.train.n, s1.val.n, s1.test.n]).toEqual([60, 20, 30]);
    expect(s1.train.shape).toEqual([3, 32, 32]);
    const ids = (sp: { images: Uint8Array; n: number }) => Array.from({ length: sp.n }, (_, i) => idOf(sp.images, i));
    const perClass = (y: Int32Array) => Array.from({ length: 10 }, (_, c) => y.filter((v) => v === c).length);
    expect(perClass(s1.val.labels)).toEqual(new Array(10).fill(2));
    expect(perClass(s1.train.labels)).toEqual(new Array(10).fill(6));
    // Validation never depends on the run's seed, and never overlaps training.
    expect(ids(s2.val)).toEqual(ids(s1.val));
    expect(ids(s1.train).filter((i) => ids(s1.val).includes(i))).toEqual([]);
    expect(ids(s1b.train)).toEqual(ids(s1.train));
    expect(ids(s2.train)).not.toEqual(ids(s1.train));
    // Each image comes with its own label: record id's label as written (id mod 40 within its batch).
    s1.train.labels.forEach((y, i) => {
      const id = idOf(s1.train.images, i);
      expect(y).toBe(((id % 40) * 7 + Math.floor(id / 40) * 40) % 10);
    });
    expect(ids(s1.test)).toEqual(Array.from({ length: 30 }, (_, i) => 50_000 + i));
    // Without samples_per_class: all 180 left after validation.
    expect(loadCifar(root, 'cifar10').train.n).toBe(180);
    // Smaller files than the official ones are said, not refused.
    const said: string[] = [];
    loadCifar(root, 'cifar10', { say: (l) => said.push(l) });
    expect(said.some((l) => /data_batch_1\.bin holds 40 records, not the official 10,000/.test(l))).toBe(true);
    expect(() => loadCifar(root, 'cifar10', { samplesPerClass: 19 })).toThrow(/class \d has 18 images, 19 asked for/);
  });

  it('reads at 8 px as 4×4 block averages of each channel', () => {
    const root = cifar10Files(20);
    const full = loadCifar(root, 'cifar10', { samplesPerClass: 2, seed: 3 });
    const small = loadCifar(root, 'cifar10', { samplesPerClass: 2, seed: 3, side: 8 });
    expect(small.train.shape).toEqual([3, 8, 8]);
    expect(small.train.images.length).toBe(small.train.n * 192);
    expect(Array.from(small.train.labels)).toEqual(Array.from(full.train.labels));
    const ref = downsample(full.train.images, full.train.n, 3, 32, 4);
    expect(Buffer.compare(Buffer.from(small.train.images), Buffer.from(ref))).toBe(0);
    // One pixel by hand: sample 1, green channel, block (2, 5).
    let s = 0;
    for (let dy = 0; dy < 4; dy++) for (let dx = 0; dx < 4; dx++) s += full.train.images[PIXELS + 1024 + (8 + dy) * 32 + 20 + dx]!;
    expect(small.train.images[192 + 64 + 2 * 8 + 5]).toBe(Math.round(s / 16));
    expect(() => loadCifar(root, 'cifar10', { side: 28 })).toThrow(/image side 28/);
  });

  it('without files: the generated CIFAR-like set, 32×32 RGB, balanced, the same for a seed', () => {
    const root = tmpDir('cifar-none');
    const a = loadCifar(root, 'cifar10', { samplesPerClass: 5, seed: 2 });
    expect(a.real).toBe(false);
    expect([a.train.n, a.val.n, a.test.n]).toEqual([50, 500, 500]);
    expect(a.train.shape).toEqual([3, 32, 32]);
    expect(Array.from({ length: 10 }, (_, c) => a.train.labels.filter((y) => y === c).length)).toEqual(new Array(10).fill(5));
    expect(a.train.file).toMatch(/generated/);
    const b = loadCifar(root, 'cifar10', { samplesPerClass: 5, seed: 2 });
    expect(Buffer.compare(Buffer.from(a.train.images), Buffer.from(b.train.images))).toBe(0);
    const c100 = loadCifar(root, 'cifar100', { samplesPerClass: 2 });
    expect(c100.train.n).toBe(200);
    expect(Math.max(...c100.train.labels)).toBe(99);
    expect(c100.train.ds.labels).toHaveLength(100);
    expect(c100.train.ds.labels[99]).toBe('worm');
  });
});
