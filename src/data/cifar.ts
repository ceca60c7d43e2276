// CIFAR-10 and CIFAR-100 for the thesis's Tables 5.1 and 5.2 (section 5.4: Cascading Sum Augmentation on Wide
// ResNets at 100 and 500 training images per class). The user supplies the official binary version (Krizhevsky
// 2009, https://www.cs.toronto.edu/~kriz/cifar.html): cifar-10-binary.tar.gz extracted in the data root gives
// `cifar-10-batches-bin/` (data_batch_1..5.bin, test_batch.bin: records of 1 label byte + 3,072 pixel bytes, the
// red, green and blue 32×32 planes in row-major order), cifar-100-binary.tar.gz gives `cifar-100-binary/`
// (train.bin, test.bin: a coarse and a fine label byte, then the same 3,072 bytes; the fine label is the class).
// No MD5 of the extracted files could be confirmed from a public source (only the tarballs' circulate), so each
// file is checked by its structure instead: a whole number of records, labels in range, the five CIFAR-10 training
// batches of one size, and the official counts (a smaller file of whole records, e.g. a test fixture or a subset,
// is read with a warning).
//
// Validation is carved from the training set, balanced over the classes and always with the same seed, so every
// run and row of the tables selects its checkpoint on the same images: 5,000 images (10%: 500 a class for
// CIFAR-10, 50 for CIFAR-100), the size of the usual 45k/5k split. `data.samples_per_class` then draws the
// sample-scarce training set from the other 45,000: exactly N images of each class, seeded by the run's seed.
// Without the files a generated CIFAR-like set (32×32 RGB, seeded) stands in and the run says so.
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, FileFormatError } from '../errors.ts';
import { hashSeed, Rng } from '../util/rng.ts';
import type { LoadedSplit } from './dataset.ts';
import { type DataSource, filesSource, standInSource } from './provenance.ts';
import { BODY_PARTS, type DatasetInfo, MODALITIES, type Split } from './registry.ts';

export const CIFAR_SIDE = 32;
const PIXELS = 3 * CIFAR_SIDE * CIFAR_SIDE;
/** Validation images carved from the training set (10% of the official 50,000). */
export const CIFAR_VAL = 5000;
/** The validation split's fixed seed: the same images for every run. */
const VAL_SEED = 'cifar-validation';

const CIFAR10_LABELS = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
// fine_label_names.txt of cifar-100-binary, in label order.
const CIFAR100_LABELS = (
  'apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can castle ' +
  'caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin elephant flatfish ' +
  'forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle ' +
  'mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine ' +
  'possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar ' +
  'sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip turtle wardrobe whale ' +
  'willow_tree wolf woman worm'
).split(' ');

interface CifarLayout {
  /** The folder the official tarball extracts to, under the data root. */
  folder: string;
  tarball: string;
  train: string[];
  test: string;
  /** Label bytes before the pixels: CIFAR-10 one, CIFAR-100 two (coarse, fine). */
  labelBytes: 1 | 2;
  /** Records of each official training file and of the test file. */
  trainRecords: number;
  testRecords: number;
}

const LAYOUTS: Record<'cifar10' | 'cifar100', CifarLayout> = {
  cifar10: {
    folder: 'cifar-10-batches-bin',
    tarball: 'cifar-10-binary.tar.gz',
    train: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`),
    test: 'test_batch.bin',
    labelBytes: 1,
    trainRecords: 10_000,
    testRecords: 10_000,
  },
  cifar100: {
    folder: 'cifar-100-binary',
    tarball: 'cifar-100-binary.tar.gz',
    train: ['train.bin'],
    test: 'test.bin',
    labelBytes: 2,
    trainRecords: 50_000,
    testRecords: 10_000,
  },
};

export type CifarKey = keyof typeof LAYOUTS;

function info(key: CifarKey): DatasetInfo {
  const labels = key === 'cifar10' ? CIFAR10_LABELS : CIFAR100_LABELS;
  return {
    key,
    name: key === 'cifar10' ? 'CIFAR-10' : 'CIFAR-100',
    dim: 2,
    modality: 'synthetic',
    bodyPart: 'synthetic',
    task: 'multi-class',
    labels,
    channels: 3,
    splits: { train: 50_000 - CIFAR_VAL, val: CIFAR_VAL, test: 10_000 },
    files: [],
    latent: { dim: 0, modality: MODALITIES.indexOf('synthetic'), bodyPart: BODY_PARTS.indexOf('synthetic') },
    license: 'CIFAR-10/100: A. Krizhevsky, Learning Multiple Layers of Features from Tiny Images (2009)',
    synthetic: false,
  };
}

/** CIFAR-10 and CIFAR-100 as the trainer sees a data set (no official download here: the user supplies the files). */
export const CIFAR: Readonly<Record<CifarKey, DatasetInfo>> = { cifar10: info('cifar10'), cifar100: info('cifar100') };

export const isCifar = (key: string): key is CifarKey => key.toLowerCase() in LAYOUTS;
export const cifarInfo = (key: string): DatasetInfo => CIFAR[key.toLowerCase() as CifarKey];

/** The folder a data set's binary files are read from. */
export const cifarDir = (root: string, key: CifarKey): string => path.join(root, LAYOUTS[key].folder);

/** How to get the files: named in every error about them. */
function fetchHint(root: string, key: CifarKey): string {
  const l = LAYOUTS[key];
  return `download https://www.cs.toronto.edu/~kriz/${l.tarball} (the binary version) and extract it in ${root} (tar xzf ${l.tarball} -C ${root}), which gives ${path.join(root, l.folder)}/`;
}

/** The records of one binary file: their images (3×32×32, channel-first as stored) and class labels. */
export interface CifarRecords {
  file: string;
  n: number;
  images: Uint8Array;
  labels: Int32Array;
}

/**
 * Reads one official binary file: a whole number of records of `labelBytes` label bytes and 3,072 pixel bytes,
 * every label in range (CIFAR-100: coarse < 20, fine < 100; the fine label is kept). Anything else is one
 * FileFormatError line naming the file and how to get it again.
 */
export function readCifarBinary(file: string, key: CifarKey, root = path.dirname(path.dirname(file))): CifarRecords {
  const l = LAYOUTS[key];
  const fix = fetchHint(root, key);
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new FileFormatError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, fix);
  }
  const record = l.labelBytes + PIXELS;
  if (buf.length === 0 || buf.length % record !== 0) {
    throw new FileFormatError(
      `${file}: ${buf.length.toLocaleString('en-US')} bytes is not a whole number of ${record}-byte records (truncated or not the binary version)`,
      fix,
    );
  }
  const n = buf.length / record;
  const images = new Uint8Array(n * PIXELS);
  const labels = new Int32Array(n);
  const classes = key === 'cifar10' ? 10 : 100;
  for (let i = 0; i < n; i++) {
    const at = i * record;
    if (l.labelBytes === 2 && buf[at]! >= 20)
      throw new FileFormatError(`${file}: record ${i} has coarse label ${buf[at]}, expected 0..19 (corrupt file)`, fix);
    const y = buf[at + l.labelBytes - 1]!;
    if (y >= classes) throw new FileFormatError(`${file}: record ${i} has label ${y}, expected 0..${classes - 1} (corrupt file)`, fix);
    labels[i] = y;
    images.set(buf.subarray(at + l.labelBytes, at + record), i * PIXELS);
  }
  return { file, n, images, labels };
}

/** Writes records in the official binary layout (tests, and converting other sets); CIFAR-100 gets coarse label 0. */
export function writeCifarBinary(file: string, key: CifarKey, images: Uint8Array, labels: ArrayLike<number>): void {
  const l = LAYOUTS[key];
  const record = l.labelBytes + PIXELS;
  const out = Buffer.alloc(labels.length * record);
  for (let i = 0; i < labels.length; i++) {
    out[i * record + l.labelBytes - 1] = labels[i]!;
    out.set(images.subarray(i * PIXELS, (i + 1) * PIXELS), i * record + l.labelBytes);
  }
  fs.writeFileSync(file, out);
}

/** Indices of each class, in order. */
function byClass(labels: Int32Array, indices: ArrayLike<number>, classes: number): number[][] {
  const out = Array.from({ length: classes }, () => [] as number[]);
  for (let i = 0; i < indices.length; i++) out[labels[indices[i]!]!]!.push(indices[i]!);
  return out;
}

/**
 * Exactly `perClass` indices of each of `classes` classes among `indices` (all of them when null), drawn with a
 * generator seeded by `seed`, and the indices left over; both ascending. A class with fewer images is a ConfigError.
 */
export function balancedSubset(
  labels: Int32Array,
  classes: number,
  perClass: number,
  seed: number | string,
  indices: ArrayLike<number> | null = null,
  what = 'subset',
): { picked: Int32Array; rest: Int32Array } {
  const from = indices ?? Int32Array.from({ length: labels.length }, (_, i) => i);
  const groups = byClass(labels, from, classes);
  const picked: number[] = [];
  const rest: number[] = [];
  groups.forEach((g, c) => {
    if (g.length < perClass) {
      throw new ConfigError(`${what}: class ${c} has ${g.length} images, ${perClass} asked for`, 'ask for fewer images per class');
    }
    // One stream per class, so a class's draw does not depend on the sizes of the others.
    const order = new Rng(hashSeed(seed, what, c)).shuffle(Int32Array.from(g));
    picked.push(...order.subarray(0, perClass));
    rest.push(...order.subarray(perClass));
  });
  const asc = (a: number[]) => Int32Array.from(a).sort();
  return { picked: asc(picked), rest: asc(rest) };
}

/** Images [n, C, side, side] averaged over factor×factor blocks: CIFAR at a smaller side (toy runs). */
export function downsample(images: Uint8Array, n: number, channels: number, side: number, factor: number): Uint8Array {
  if (factor === 1) return images;
  const out = side / factor;
  const res = new Uint8Array(n * channels * out * out);
  for (let p = 0; p < n * channels; p++) {
    const src = p * side * side;
    for (let y = 0; y < out; y++) {
      for (let x = 0; x < out; x++) {
        let s = 0;
        for (let dy = 0; dy < factor; dy++)
          for (let dx = 0; dx < factor; dx++) s += images[src + (y * factor + dy) * side + x * factor + dx]!;
        res[p * out * out + y * out + x] = Math.round(s / (factor * factor));
      }
    }
  }
  return res;
}

export interface CifarOptions {
  /** Training images per class (the sample-scarce regime); null: every image left after validation. */
  samplesPerClass?: number | null;
  /** Seed of the samples-per-class draw (the run's seed) and of the generated stand-in. */
  seed?: number;
  /** Side the model reads: 32, or 16 / 8 (2×2 / 4×4 block averages, for toy runs). */
  side?: number;
  /** Hears the one-line notices (a generated stand-in, files smaller than the official ones). */
  say?: (line: string) => void;
}

export interface CifarSplits {
  train: LoadedSplit;
  val: LoadedSplit;
  test: LoadedSplit;
  /** False when the generated set stood in for missing files. */
  real: boolean;
}

function checkSide(side: number): number {
  if (![32, 16, 8].includes(side))
    throw new ConfigError(`CIFAR: image side ${side}: the images are 32 px; use 32, or 16 or 8 (block averages)`);
  return CIFAR_SIDE / side;
}

/** One split from chosen records, at the model's side. */
function split(
  ds: DatasetInfo,
  which: Split,
  file: string,
  images: Uint8Array,
  labels: Int32Array,
  side: number,
  source: DataSource,
): LoadedSplit {
  const n = labels.length;
  return {
    ds,
    split: which,
    size: side,
    file,
    n,
    images: downsample(images, n, 3, CIFAR_SIDE, CIFAR_SIDE / side),
    labels,
    numLabels: 1,
    shape: [3, side, side],
    source,
  };
}

function take(r: CifarRecords, idx: Int32Array): { images: Uint8Array; labels: Int32Array } {
  const images = new Uint8Array(idx.length * PIXELS);
  idx.forEach((i, j) => images.set(r.images.subarray(i * PIXELS, (i + 1) * PIXELS), j * PIXELS));
  return { images, labels: Int32Array.from(idx, (i) => r.labels[i]!) };
}

/**
 * CIFAR-10 or CIFAR-100 from `<root>/cifar-10-batches-bin/` or `<root>/cifar-100-binary/`: validation carved from
 * the training files (balanced, fixed seed), training the rest or `samplesPerClass` of each class of it, test the
 * official test file. The generated stand-in when none of the files is there; some but not all is a ConfigError.
 */
export function loadCifar(root: string, keyIn: string, opts: CifarOptions = {}): CifarSplits {
  const key = keyIn.toLowerCase() as CifarKey;
  const l = LAYOUTS[key];
  const ds = CIFAR[key];
  const side = opts.side ?? CIFAR_SIDE;
  checkSide(side);
  const classes = ds.labels.length;
  const dir = cifarDir(root, key);
  const names = [...l.train, l.test];
  const present = names.filter((f) => fs.existsSync(path.join(dir, f)));
  if (present.length === 0) return { ...syntheticCifar(key, opts.seed ?? 0, side, opts.samplesPerClass ?? null), real: false };
  if (present.length < names.length) {
    throw new ConfigError(`${dir}: ${ds.name} is missing ${names.filter((f) => !present.includes(f)).join(', ')}`, fetchHint(root, key));
  }
  const say = opts.say ?? (() => {});
  const parts = l.train.map((f) => readCifarBinary(path.join(dir, f), key, root));
  const unequal = parts.find((p) => p.n !== parts[0]!.n);
  if (unequal) {
    throw new FileFormatError(
      `${unequal.file}: ${unequal.n.toLocaleString('en-US')} records, ${parts[0]!.file} has ${parts[0]!.n.toLocaleString('en-US')}: the training batches differ in size (truncated file?)`,
      fetchHint(root, key),
    );
  }
  const test = readCifarBinary(path.join(dir, l.test), key, root);
  for (const [r, official] of [...parts.map((p) => [p, l.trainRecords] as const), [test, l.testRecords] as const]) {
    if (r.n > official) throw new FileFormatError(`${r.file}: ${r.n} records, the official file has ${official}`, fetchHint(root, key));
    if (r.n < official)
      say(`${ds.key}: ${r.file} holds ${r.n.toLocaleString('en-US')} records, not the official ${official.toLocaleString('en-US')}`);
  }
  const all: CifarRecords = {
    file: dir,
    n: parts.reduce((a, p) => a + p.n, 0),
    images: Buffer.concat(parts.map((p) => p.images)),
    labels: Int32Array.from(parts.flatMap((p) => Array.from(p.labels))),
  };
  // 10% of the training files, as many of each class; never more than the official 5,000.
  const valPerClass = Math.floor(Math.min(CIFAR_VAL, all.n / 10) / classes);
  if (valPerClass < 1) throw new FileFormatError(`${dir}: ${all.n} training records are too few to carve a validation split`);
  const { picked: valIdx, rest } = balancedSubset(all.labels, classes, valPerClass, VAL_SEED, null, `${ds.key} validation`);
  const spc = opts.samplesPerClass ?? null;
  const trainIdx =
    spc === null ? rest : balancedSubset(all.labels, classes, spc, opts.seed ?? 0, rest, `${ds.key} data.samples_per_class`).picked;
  const tr = take(all, trainIdx);
  const va = take(all, valIdx);
  const trainFile = path.join(dir, l.train.length > 1 ? 'data_batch_*.bin' : l.train[0]!);
  const trainFiles = filesSource(parts.map((p) => p.file));
  return {
    train: split(ds, 'train', trainFile, tr.images, tr.labels, side, trainFiles),
    val: split(ds, 'val', trainFile, va.images, va.labels, side, trainFiles),
    test: split(ds, 'test', test.file, test.images, test.labels, side, filesSource([test.file])),
    real: true,
  };
}

/**
 * One generated image of class c: a colour pair and a stripe orientation and frequency that depend on the class,
 * at a random phase, contrast and position of a bright blob, with pixel noise, so a classifier has something to learn.
 */
function drawImage(c: number, classes: number, rng: Rng, out: Uint8Array): void {
  const cls = new Rng(hashSeed('cifar-like-class', classes, c));
  const base = [0, 1, 2].map(() => cls.uniform(40, 200));
  const tint = [0, 1, 2].map(() => cls.uniform(-60, 60));
  const angle = cls.uniform(0, Math.PI);
  const freq = cls.uniform(0.25, 0.9);
  const phase = rng.uniform(0, 2 * Math.PI);
  const contrast = rng.uniform(0.6, 1);
  const [bx, by] = [rng.uniform(6, 26), rng.uniform(6, 26)];
  const [ca, sa] = [Math.cos(angle), Math.sin(angle)];
  const P = CIFAR_SIDE * CIFAR_SIDE;
  for (let y = 0; y < CIFAR_SIDE; y++) {
    for (let x = 0; x < CIFAR_SIDE; x++) {
      const stripe = Math.sin(freq * (x * ca + y * sa) + phase) * contrast;
      const blob = Math.exp(-((x - bx) ** 2 + (y - by) ** 2) / 30) * 50;
      for (let ch = 0; ch < 3; ch++) {
        const v = base[ch]! + tint[ch]! * stripe + blob + rng.uniform(-20, 20);
        out[ch * P + y * CIFAR_SIDE + x] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
  }
}

/**
 * The generated stand-in for a missing data set: 32×32 RGB images of its classes, balanced, from `seed`; per
 * class `samplesPerClass` training images (200 when null) and, for validation and test, 500 images in all.
 */
export function syntheticCifar(
  keyIn: string,
  seed: number,
  side = CIFAR_SIDE,
  samplesPerClass: number | null = null,
): Omit<CifarSplits, 'real'> {
  const ds = cifarInfo(keyIn);
  checkSide(side);
  const classes = ds.labels.length;
  const perClass: Record<Split, number> = {
    train: samplesPerClass ?? 200,
    val: Math.max(1, Math.floor(500 / classes)),
    test: Math.max(1, Math.floor(500 / classes)),
  };
  const make = (which: Split): LoadedSplit => {
    const n = perClass[which] * classes;
    const rng = new Rng(`cifar-like-${ds.key}-${seed}-${which}`);
    const images = new Uint8Array(n * PIXELS);
    const labels = rng.shuffle(Int32Array.from({ length: n }, (_, i) => i % classes));
    for (let i = 0; i < n; i++) drawImage(labels[i]!, classes, rng, images.subarray(i * PIXELS, (i + 1) * PIXELS));
    return split(ds, which, `generated CIFAR-like images (seed ${seed})`, images, labels, side, standInSource());
  };
  return { train: make('train'), val: make('val'), test: make('test') };
}
