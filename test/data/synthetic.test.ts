import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import { loadSplit } from '../../src/data/dataset.ts';
import { ensureSynthetic, generateSynthetic } from '../../src/data/synthetic.ts';
import { tempDir } from './helpers.ts';

const small = { train: 40, val: 12, test: 12 };

describe('synthetic data', () => {
  it('is deterministic from the seed and differs across seeds', () => {
    const a = generateSynthetic('synthetic2d', { seed: 1, counts: small });
    const b = generateSynthetic('synthetic2d', { seed: 1, counts: small });
    const c = generateSynthetic('synthetic2d', { seed: 2, counts: small });
    for (const k of a.keys()) expect(b.get(k)!.data, k).toEqual(a.get(k)!.data);
    expect(c.get('train_images')!.data).not.toEqual(a.get('train_images')!.data);
    // Changing one split's count leaves the other splits alone.
    const d = generateSynthetic('synthetic2d', { seed: 1, counts: { ...small, train: 41 } });
    expect(d.get('val_images')!.data).toEqual(a.get('val_images')!.data);
  });

  it('has the official layout and balanced classes', () => {
    const m2 = generateSynthetic('synthetic2d');
    expect(m2.get('train_images')!.shape).toEqual([512, 28, 28]);
    expect(m2.get('val_labels')!.shape).toEqual([128, 1]);
    expect(m2.get('test_images')!.dtype).toBe('|u1');
    const counts = [0, 0, 0, 0];
    for (const v of m2.get('train_labels')!.data as Uint8Array) counts[v]!++;
    expect(counts).toEqual([128, 128, 128, 128]);
    const m3 = generateSynthetic('synthetic3d', { counts: { train: 9, val: 3, test: 3 } });
    expect(m3.get('train_images')!.shape).toEqual([9, 28, 28, 28]);
    expect(new Set(m3.get('train_labels')!.data as Uint8Array)).toEqual(new Set([0, 1, 2]));
    expect(() => generateSynthetic('breastmnist')).toThrow(ConfigError);
    expect(() => generateSynthetic('synthetic2d', { counts: { train: 0 } })).toThrow(ConfigError);
  });

  it('ensureSynthetic writes once, atomically, byte-identically, and loadSplit reads it', () => {
    const root = join(tempDir(), 'nested', 'root');
    const p = ensureSynthetic(root, 'synthetic2d');
    const mtime = statSync(p).mtimeMs;
    expect(ensureSynthetic(root, 'synthetic2d')).toBe(p);
    expect(statSync(p).mtimeMs).toBe(mtime);
    expect(readdirSync(root)).toEqual(['synthetic2d.npz']); // no temp files left behind
    const other = tempDir();
    expect(readFileSync(ensureSynthetic(other, 'synthetic2d'))).toEqual(readFileSync(p));
    const s = loadSplit('synthetic2d', 'val', { root });
    expect(s.n).toBe(128);
    expect(s.shape).toEqual([1, 28, 28]);
    const s3 = loadSplit('synthetic3d', 'test', { root }); // generated on first use
    expect(s3.shape).toEqual([1, 28, 28, 28]);
    expect(s3.n).toBe(64);
  });

  // The classes must be learnable: a hand-written rule (denoise, threshold, measure the blob)
  // separates them almost perfectly, so a small model has a clean signal to find.
  it('2D classes are separable by shape', () => {
    const m = generateSynthetic('synthetic2d', { seed: 7, counts: { train: 200, val: 1, test: 1 } });
    const imgs = m.get('train_images')!.data as Uint8Array;
    const labels = m.get('train_labels')!.data as Uint8Array;
    let correct = 0;
    for (let i = 0; i < 200; i++) {
      const mask = threshold(boxBlur2d(imgs.subarray(i * 784, (i + 1) * 784)));
      let [x0, x1, y0, y1, area] = [28, -1, 28, -1, 0];
      for (let y = 0; y < 28; y++)
        for (let x = 0; x < 28; x++)
          if (mask[y * 28 + x]) {
            area++;
            x0 = Math.min(x0, x);
            x1 = Math.max(x1, x);
            y0 = Math.min(y0, y);
            y1 = Math.max(y1, y);
          }
      const fill = area / ((x1 - x0 + 1) * (y1 - y0 + 1));
      const centre = mask[Math.round((y0 + y1) / 2) * 28 + Math.round((x0 + x1) / 2)];
      const guess = !centre ? 3 : fill > 0.9 ? 1 : fill > 0.68 ? 0 : 2;
      if (guess === labels[i]) correct++;
    }
    expect(correct / 200).toBeGreaterThan(0.95);
  });

  it('3D classes are separable by shape', () => {
    const m = generateSynthetic('synthetic3d', { seed: 7, counts: { train: 60, val: 1, test: 1 } });
    const imgs = m.get('train_images')!.data as Uint8Array;
    const labels = m.get('train_labels')!.data as Uint8Array;
    let correct = 0;
    const V = 28 ** 3;
    for (let i = 0; i < 60; i++) {
      const mask = threshold(boxBlur3d(imgs.subarray(i * V, (i + 1) * V)));
      const comps = components3d(mask);
      let guess: number;
      if (comps.length >= 2) guess = 2;
      else {
        // A shell's centre of mass is empty, a ball's is full.
        let [sz, sy, sx, n] = [0, 0, 0, 0];
        for (let v = 0; v < V; v++)
          if (mask[v]) {
            sz += Math.floor(v / 784);
            sy += Math.floor(v / 28) % 28;
            sx += v % 28;
            n++;
          }
        guess = mask[Math.round(sz / n) * 784 + Math.round(sy / n) * 28 + Math.round(sx / n)] ? 0 : 1;
      }
      if (guess === labels[i]) correct++;
    }
    expect(correct / 60).toBeGreaterThan(0.95);
  });
});

function boxBlur2d(a: Uint8Array): Float32Array {
  const out = new Float32Array(784);
  for (let y = 0; y < 28; y++)
    for (let x = 0; x < 28; x++) {
      let s = 0,
        n = 0;
      for (let dy = -1; dy <= 1; dy++)
        for (let dx = -1; dx <= 1; dx++) {
          const yy = y + dy,
            xx = x + dx;
          if (yy >= 0 && yy < 28 && xx >= 0 && xx < 28) {
            s += a[yy * 28 + xx]!;
            n++;
          }
        }
      out[y * 28 + x] = s / n;
    }
  return out;
}

function boxBlur3d(a: Uint8Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let z = 0; z < 28; z++)
    for (let y = 0; y < 28; y++)
      for (let x = 0; x < 28; x++) {
        let s = 0,
          n = 0;
        for (let dz = -1; dz <= 1; dz++)
          for (let dy = -1; dy <= 1; dy++)
            for (let dx = -1; dx <= 1; dx++) {
              const zz = z + dz,
                yy = y + dy,
                xx = x + dx;
              if (zz >= 0 && zz < 28 && yy >= 0 && yy < 28 && xx >= 0 && xx < 28) {
                s += a[zz * 784 + yy * 28 + xx]!;
                n++;
              }
            }
        out[z * 784 + y * 28 + x] = s / n;
      }
  return out;
}

/** Foreground = above the midpoint between the median (background) and the 99.5th percentile (foreground). */
function threshold(a: Float32Array): Uint8Array {
  const sorted = Float32Array.from(a).sort();
  const t = (sorted[Math.floor(a.length / 2)]! + sorted[Math.floor(a.length * 0.995)]!) / 2;
  return a.map((v) => (v > t ? 1 : 0)) as unknown as Uint8Array;
}

function components3d(mask: Uint8Array): number[] {
  const seen = new Uint8Array(mask.length);
  const sizes: number[] = [];
  for (let s = 0; s < mask.length; s++) {
    if (!mask[s] || seen[s]) continue;
    let n = 0;
    const stack = [s];
    seen[s] = 1;
    while (stack.length) {
      const v = stack.pop()!;
      n++;
      const z = Math.floor(v / 784),
        y = Math.floor(v / 28) % 28,
        x = v % 28;
      for (const [dz, dy, dx] of [
        [1, 0, 0],
        [-1, 0, 0],
        [0, 1, 0],
        [0, -1, 0],
        [0, 0, 1],
        [0, 0, -1],
      ] as const) {
        const zz = z + dz,
          yy = y + dy,
          xx = x + dx;
        if (zz < 0 || zz >= 28 || yy < 0 || yy >= 28 || xx < 0 || xx >= 28) continue;
        const w = zz * 784 + yy * 28 + xx;
        if (mask[w] && !seen[w]) {
          seen[w] = 1;
          stack.push(w);
        }
      }
    }
    if (n >= 8) sizes.push(n); // ignore specks of noise
  }
  return sizes;
}
