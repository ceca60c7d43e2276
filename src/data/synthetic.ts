// Synthetic data sets in the official MedMNIST npz layout, so every code path (loading, loader,
// training, evaluation) can be exercised without the real files. Each class is a shape with a
// random position, scale, brightness and noise: easy for a small model to learn, not trivial.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../errors.ts';
import { hashSeed, Rng } from '../util/rng.ts';
import type { NpyArray } from './npz.ts';
import { writeNpz } from './npz.ts';
import { getDataset, SPLITS, type DatasetInfo, type Split } from './registry.ts';

export const SYNTHETIC_DEFAULT_SEED = 20240613;

export interface SyntheticOptions {
  /** Generator seed; the same seed and counts give byte-identical files. */
  seed?: number;
  /** Samples per split; defaults to the registry's (512/128/128 for 2D, 256/64/64 for 3D). */
  counts?: Partial<Record<Split, number>>;
  /** Deflate the npz (smaller, slower to write and read). */
  compress?: boolean;
}

const SIDE = 28;

function syntheticInfo(key: string): DatasetInfo {
  const ds = getDataset(key);
  if (!ds.synthetic) throw new ConfigError(`'${key}' is not a synthetic dataset`, 'use synthetic2d or synthetic3d');
  return ds;
}

/** Background level, foreground level and noise for one sample; contrast varies so intensity alone is not the label. */
function look(rng: Rng): { bg: number; fg: number; sigma: number } {
  return { bg: rng.uniform(0, 50), fg: rng.uniform(130, 255), sigma: rng.uniform(4, 16) };
}

const toU8 = (v: number): number => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));

/** One 28×28 image of class `cls` (0 disc, 1 square, 2 cross, 3 ring) into out[off..off+784). */
function draw2d(cls: number, rng: Rng, out: Uint8Array, off: number): void {
  const r = rng.uniform(5, 9.5);
  const m = r + 1.5;
  const cx = rng.uniform(m, SIDE - 1 - m);
  const cy = rng.uniform(m, SIDE - 1 - m);
  const { bg, fg, sigma } = look(rng);
  const bar = Math.max(1.3, r * 0.32);
  const ringIn = r - Math.max(2, r * 0.38);
  const half = r * 0.82; // a square of about the disc's area
  for (let y = 0; y < SIDE; y++) {
    for (let x = 0; x < SIDE; x++) {
      const dx = x - cx;
      const dy = y - cy;
      const d = Math.hypot(dx, dy);
      let inside: boolean;
      switch (cls) {
        case 0:
          inside = d <= r;
          break;
        case 1:
          inside = Math.abs(dx) <= half && Math.abs(dy) <= half;
          break;
        case 2:
          inside = (Math.abs(dx) <= bar && Math.abs(dy) <= r) || (Math.abs(dy) <= bar && Math.abs(dx) <= r);
          break;
        default:
          inside = d <= r && d >= ringIn;
      }
      out[off + y * SIDE + x] = toU8((inside ? fg : bg) + sigma * rng.normal());
    }
  }
}

/** One 28³ volume of class `cls` (0 solid ball, 1 hollow shell, 2 two small blobs). */
function draw3d(cls: number, rng: Rng, out: Uint8Array, off: number): void {
  const { bg, fg, sigma } = look(rng);
  const balls: { c: [number, number, number]; r: number }[] = [];
  let shellIn = -1;
  if (cls === 2) {
    // Two blobs far enough apart that they never merge into one ball.
    const r = rng.uniform(3, 4.5);
    const m = r + 1.5;
    const a: [number, number, number] = [rng.uniform(m, SIDE - 1 - m), rng.uniform(m, SIDE - 1 - m), rng.uniform(m, SIDE - 1 - m)];
    let b: [number, number, number];
    do {
      b = [rng.uniform(m, SIDE - 1 - m), rng.uniform(m, SIDE - 1 - m), rng.uniform(m, SIDE - 1 - m)];
    } while (Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]) < 2 * r + 4);
    balls.push({ c: a, r }, { c: b, r });
  } else {
    const r = rng.uniform(6, 10);
    const m = r + 1.5;
    balls.push({ c: [rng.uniform(m, SIDE - 1 - m), rng.uniform(m, SIDE - 1 - m), rng.uniform(m, SIDE - 1 - m)], r });
    if (cls === 1) shellIn = r - rng.uniform(2, 3);
  }
  let i = off;
  for (let z = 0; z < SIDE; z++) {
    for (let y = 0; y < SIDE; y++) {
      for (let x = 0; x < SIDE; x++) {
        let inside = false;
        for (const bl of balls) {
          const d2 = (z - bl.c[0]) ** 2 + (y - bl.c[1]) ** 2 + (x - bl.c[2]) ** 2;
          if (d2 <= bl.r * bl.r && (shellIn < 0 || d2 >= shellIn * shellIn)) inside = true;
        }
        out[i++] = toU8((inside ? fg : bg) + sigma * rng.normal());
      }
    }
  }
}

/** The arrays of a synthetic npz: `<split>_images` (N×28×28 or N×28×28×28, uint8) and `<split>_labels` (N×1). */
export function generateSynthetic(key: string, opts: SyntheticOptions = {}): Map<string, NpyArray> {
  const ds = syntheticInfo(key);
  const seed = opts.seed ?? SYNTHETIC_DEFAULT_SEED;
  const K = ds.labels.length;
  const per = ds.dim === 2 ? SIDE * SIDE : SIDE * SIDE * SIDE;
  const out = new Map<string, NpyArray>();
  for (const split of SPLITS) {
    const n = opts.counts?.[split] ?? ds.splits[split];
    if (!Number.isInteger(n) || n < 1) throw new ConfigError(`synthetic ${split} count ${n} is invalid`, 'use a positive integer');
    // Balanced classes in a seeded random order.
    const labels = new Uint8Array(n);
    for (let i = 0; i < n; i++) labels[i] = i % K;
    new Rng(hashSeed(seed, key, split, 'labels')).shuffle(labels);
    const images = new Uint8Array(n * per);
    for (let i = 0; i < n; i++) {
      // A stream per sample: changing one count does not change the other samples.
      const rng = new Rng(hashSeed(seed, key, split, i));
      if (ds.dim === 2) draw2d(labels[i]!, rng, images, i * per);
      else draw3d(labels[i]!, rng, images, i * per);
    }
    const shape = ds.dim === 2 ? [n, SIDE, SIDE] : [n, SIDE, SIDE, SIDE];
    out.set(`${split}_images`, { dtype: '|u1', shape, data: images });
    out.set(`${split}_labels`, { dtype: '|u1', shape: [n, 1], data: labels });
  }
  return out;
}

/** Writes the synthetic npz for `key` (atomically) unless it already exists; returns its path. */
export function ensureSynthetic(root: string, key: string, opts: SyntheticOptions = {}): string {
  const ds = syntheticInfo(key);
  const path = join(root, ds.files[0]!.file);
  if (existsSync(path)) return path;
  mkdirSync(root, { recursive: true });
  writeNpz(path, generateSynthetic(key, opts), { compress: opts.compress ?? false });
  return path;
}
