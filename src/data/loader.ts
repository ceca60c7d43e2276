// Mini-batches over a loaded split. Everything random is a pure function of (seed, epoch) for
// the order and (seed, epoch, sample index) for augmentation, never of how many batches came
// before, so `seek(epoch, batch)` after a restart reproduces exactly the batches an uninterrupted
// run would have seen, in O(1). The next batch is assembled in a setImmediate callback while the
// caller awaits GPU work for the current one.
import { ConfigError } from '../errors.ts';
import { hashSeed, Rng } from '../util/rng.ts';
import { augmentSample, normalizeU8, u8ToUnit, unitToSigned, validateAugment, type AugmentConfig } from './augment.ts';
import type { LoadedSplit } from './dataset.ts';

export interface BatchLoaderOptions {
  batchSize: number;
  /** Seed for the order and the augmentations; the run's seed. */
  seed: number;
  /** Reshuffle every epoch (default true); false keeps file order, for evaluation. */
  shuffle?: boolean;
  /** Drop the last, smaller batch of each epoch (default false). */
  dropLast?: boolean;
  /** Augmentation for training; null or absent for none. */
  augment?: AugmentConfig | null;
  /** Assemble the next batch ahead of time (default true). */
  prefetch?: boolean;
  /**
   * Seed for the augmentations alone (default: `seed`). Two loaders with the same `seed` and different
   * `augmentSeed` yield the same samples in the same order, augmented differently: SSL's two views.
   */
  augmentSeed?: number | string;
}

export interface Batch {
  /** B×C×H×W or B×C×D×H×W, values in [-1, 1]. */
  x: Float32Array;
  /** B×numLabels. */
  labels: Int32Array;
  /** Index of each sample in the split. */
  indices: Int32Array;
  /** B (smaller than batchSize for the last batch unless dropLast). */
  size: number;
  /** Shape of x: [B, ...sample shape]. */
  shape: number[];
  epoch: number;
  batchIndex: number;
  /** True for the epoch's final batch. */
  last: boolean;
}

export interface LoaderPosition {
  epoch: number;
  batchIndex: number;
}

export class BatchLoader {
  readonly batchSize: number;
  readonly batchesPerEpoch: number;
  private readonly seed: number;
  private readonly augmentSeed: number | string;
  private readonly shuffle: boolean;
  private readonly augment: AugmentConfig | null;
  private readonly prefetch: boolean;
  private readonly sampleLen: number;
  private pos: LoaderPosition = { epoch: 0, batchIndex: 0 };
  private pending: { at: LoaderPosition; batch: Promise<Batch> } | null = null;
  private orderCache: { epoch: number; order: Int32Array } | null = null;

  constructor(
    readonly data: LoadedSplit,
    opts: BatchLoaderOptions,
  ) {
    const { batchSize } = opts;
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new ConfigError(`batch size ${batchSize} is invalid`, 'use a positive integer');
    this.batchSize = batchSize;
    this.seed = opts.seed;
    this.augmentSeed = opts.augmentSeed ?? opts.seed;
    this.shuffle = opts.shuffle ?? true;
    this.augment = opts.augment ?? null;
    this.prefetch = opts.prefetch ?? true;
    if (this.augment) validateAugment(this.augment, data.ds.dim);
    this.sampleLen = data.shape.reduce((a, b) => a * b, 1);
    this.batchesPerEpoch = opts.dropLast ? Math.floor(data.n / batchSize) : Math.ceil(data.n / batchSize);
    if (this.batchesPerEpoch === 0) {
      throw new ConfigError(
        `batch size ${batchSize} is larger than the ${data.n} samples of ${data.ds.key}/${data.split} with dropLast`,
        'use a smaller batch size or dropLast: false',
      );
    }
  }

  /** The batch `next()` will return. */
  position(): LoaderPosition {
    return { ...this.pos };
  }

  /** Continue from (epoch, batchIndex): the next batch is exactly that one, as in an uninterrupted run. */
  seek(epoch: number, batchIndex: number): void {
    if (!Number.isInteger(epoch) || epoch < 0 || !Number.isInteger(batchIndex) || batchIndex < 0 || batchIndex > this.batchesPerEpoch) {
      throw new ConfigError(
        `cannot seek to epoch ${epoch}, batch ${batchIndex}`,
        `an epoch has ${this.batchesPerEpoch} batches; the checkpoint may not match this data or batch size`,
      );
    }
    this.pos = batchIndex === this.batchesPerEpoch ? { epoch: epoch + 1, batchIndex: 0 } : { epoch, batchIndex };
    this.pending = null; // a prefetched batch for the old position is dropped
  }

  /** The sample order of an epoch: a seeded permutation, or 0..n-1 without shuffling. */
  order(epoch: number): Int32Array {
    if (this.orderCache?.epoch === epoch) return this.orderCache.order;
    const order = new Int32Array(this.data.n);
    for (let i = 0; i < order.length; i++) order[i] = i;
    if (this.shuffle) new Rng(hashSeed(this.seed, 'order', epoch)).shuffle(order);
    this.orderCache = { epoch, order };
    return order;
  }

  /** Assembles one batch synchronously; a pure function of (epoch, batchIndex) and the options. */
  batchAt(epoch: number, batchIndex: number): Batch {
    const order = this.order(epoch);
    const start = batchIndex * this.batchSize;
    const B = Math.min(this.batchSize, this.data.n - start);
    const L = this.sampleLen;
    const nl = this.data.numLabels;
    const x = new Float32Array(B * L);
    const labels = new Int32Array(B * nl);
    const indices = order.slice(start, start + B);
    const scratch = this.augment ? new Float32Array(L) : null;
    for (let j = 0; j < B; j++) {
      const idx = indices[j]!;
      const src = this.data.images.subarray(idx * L, (idx + 1) * L);
      if (scratch && this.augment) {
        const rng = new Rng(hashSeed(this.augmentSeed, 'augment', epoch, idx));
        const y = augmentSample(u8ToUnit(src, scratch), this.data.shape, this.augment, rng);
        x.set(unitToSigned(y), j * L);
      } else {
        normalizeU8(src, x.subarray(j * L, (j + 1) * L));
      }
      labels.set(this.data.labels.subarray(idx * nl, (idx + 1) * nl), j * nl);
    }
    return {
      x,
      labels,
      indices,
      size: B,
      shape: [B, ...this.data.shape],
      epoch,
      batchIndex,
      last: batchIndex === this.batchesPerEpoch - 1,
    };
  }

  /** The next batch; crosses into the next epoch after the last one. */
  next(): Promise<Batch> {
    const at = this.pos;
    const p = this.pending && same(this.pending.at, at) ? this.pending.batch : this.later(at);
    this.pending = null;
    this.pos =
      at.batchIndex + 1 >= this.batchesPerEpoch
        ? { epoch: at.epoch + 1, batchIndex: 0 }
        : { epoch: at.epoch, batchIndex: at.batchIndex + 1 };
    if (this.prefetch) this.pending = { at: this.pos, batch: this.later(this.pos) };
    return p;
  }

  /** The remaining batches of the current epoch, then stops (the position is then the next epoch's start). */
  async *epoch(): AsyncGenerator<Batch> {
    const e = this.pos.epoch;
    while (this.pos.epoch === e) yield await this.next();
  }

  private later(at: LoaderPosition): Promise<Batch> {
    const p = new Promise<Batch>((resolve, reject) => {
      setImmediate(() => {
        try {
          resolve(this.batchAt(at.epoch, at.batchIndex));
        } catch (e) {
          reject(e);
        }
      });
    });
    // A prefetch dropped by seek() must not surface as an unhandled rejection; awaiting it still throws.
    p.catch(() => {});
    return p;
  }
}

const same = (a: LoaderPosition, b: LoaderPosition): boolean => a.epoch === b.epoch && a.batchIndex === b.batchIndex;
