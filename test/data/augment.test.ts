import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import {
  augmentSample, defaultAugment, flip, normalizeU8, RAND_AUGMENT_OPS, randAugment, rotate2d, rotate3d, u8ToUnit,
  unitToSigned, validateAugment,
} from '../../src/data/augment.ts';
import { Rng } from '../../src/util/rng.ts';

function randomUnit(n: number, seed: number): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: n }, () => r.next());
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const s2 = [3, 28, 28];
const s3 = [1, 16, 15, 14];
const n2 = 3 * 28 * 28;
const n3 = 16 * 15 * 14;

describe('augmentation', () => {
  it('same seed, same output; other seed, other output (2D and 3D)', () => {
    for (const [shape, n, cfg] of [[s2, n2, defaultAugment(2)], [s3, n3, defaultAugment(3)]] as const) {
      const x = randomUnit(n, 1);
      const a = augmentSample(Float32Array.from(x), shape, cfg, new Rng(5));
      const b = augmentSample(Float32Array.from(x), shape, cfg, new Rng(5));
      const c = augmentSample(Float32Array.from(x), shape, cfg, new Rng(6));
      expect(a.length).toBe(n);
      expect(b).toEqual(a);
      expect(c).not.toEqual(a);
      expect(a.every((v) => Number.isFinite(v) && v >= 0 && v <= 1)).toBe(true);
    }
  });

  it('flips are exact involutions on every axis, odd and even sizes', () => {
    for (const shape of [[1, 5, 4], [3, 28, 27], [1, 6, 5, 7], [2, 3, 4, 5]]) {
      const n = shape.reduce((a, b) => a * b, 1);
      const x = randomUnit(n, 2);
      for (let axis = 0; axis < shape.length - 1; axis++) {
        const y = flip(Float32Array.from(x), shape, axis);
        if (shape[axis + 1]! > 1) expect(y).not.toEqual(x);
        expect(flip(y, shape, axis)).toEqual(x);
      }
    }
  });

  it('flips reverse the intended axis', () => {
    // 1×2×3: [[0,1,2],[3,4,5]]
    const x = new Float32Array([0, 1, 2, 3, 4, 5]);
    expect(Array.from(flip(Float32Array.from(x), [1, 2, 3], 0))).toEqual([3, 4, 5, 0, 1, 2]);
    expect(Array.from(flip(Float32Array.from(x), [1, 2, 3], 1))).toEqual([2, 1, 0, 5, 4, 3]);
    // channels are never mixed
    const c2 = new Float32Array([1, 2, 10, 20]);
    expect(Array.from(flip(c2, [2, 1, 2], 1))).toEqual([2, 1, 20, 10]);
  });

  it('rotations: 0° is the identity, 90° is an exact quarter turn, 3D matches 2D per slice', () => {
    const x = randomUnit(n2, 3);
    expect(rotate2d(x, s2, 0)).toEqual(x);
    const v = randomUnit(n3, 4);
    expect(rotate3d(v, s3, 0, 0)).toEqual(v);
    // 90°: out(y, x) = in(x, W-1-y) up to float error in cos(90°).
    const sq = randomUnit(1 * 9 * 9, 5);
    const r = rotate2d(sq, [1, 9, 9], 90);
    const ref = new Float32Array(81);
    for (let y = 0; y < 9; y++) for (let xx = 0; xx < 9; xx++) ref[y * 9 + xx] = sq[xx * 9 + (8 - y)]!;
    expect(maxDiff(r, ref)).toBeLessThan(1e-5);
    // About the D axis = the 2D rotation of each H-W slice; about H = the 2D rotation of each D-W slice.
    const cube = [1, 9, 9, 9];
    const vol = randomUnit(729, 6);
    const aboutD = rotate3d(vol, cube, 12, 0);
    const aboutH = rotate3d(vol, cube, 0, 12);
    for (let z = 0; z < 9; z++) {
      const slice = rotate2d(vol.slice(z * 81, (z + 1) * 81), [1, 9, 9], 12);
      expect(maxDiff(aboutD.subarray(z * 81, (z + 1) * 81), slice)).toBeLessThan(1e-5);
    }
    for (let y = 0; y < 9; y++) {
      const dw = new Float32Array(81);
      for (let z = 0; z < 9; z++) for (let xx = 0; xx < 9; xx++) dw[z * 9 + xx] = vol[z * 81 + y * 9 + xx]!;
      const rot = rotate2d(dw, [1, 9, 9], 12);
      const got = new Float32Array(81);
      for (let z = 0; z < 9; z++) for (let xx = 0; xx < 9; xx++) got[z * 9 + xx] = aboutH[z * 81 + y * 9 + xx]!;
      expect(maxDiff(got, rot)).toBeLessThan(1e-5);
    }
  });

  it('every RandAugment op keeps the shape and the [0, 1] range and is deterministic', () => {
    expect(Object.keys(RAND_AUGMENT_OPS).sort()).toEqual([
      'autocontrast', 'brightness', 'contrast', 'equalize', 'identity', 'posterize', 'rotate', 'sharpness',
      'shearX', 'shearY', 'solarize', 'translateX', 'translateY',
    ]);
    for (const shape of [[1, 28, 28], [3, 28, 28]]) {
      const n = shape.reduce((a, b) => a * b, 1);
      for (const [name, op] of Object.entries(RAND_AUGMENT_OPS)) {
        for (const sign of [1, -1]) {
          const x = randomUnit(n, 7);
          const a = op(Float32Array.from(x), shape, 0.8, sign);
          const b = op(Float32Array.from(x), shape, 0.8, sign);
          expect(a.length, name).toBe(n);
          expect(b, name).toEqual(a);
          expect(a.every((v) => v >= 0 && v <= 1), name).toBe(true);
          if (name !== 'identity') expect(a, name).not.toEqual(x);
        }
      }
    }
    const y = randAugment(randomUnit(784, 8), [1, 28, 28], 2, 8, new Rng(1));
    expect(y.length).toBe(784);
  });

  it('normalises uint8 to [-1, 1]', () => {
    const u = new Uint8Array([0, 255, 51, 128]);
    const out = normalizeU8(u);
    expect(out[0]).toBe(-1);
    expect(out[1]).toBe(1);
    expect(out[2]).toBeCloseTo(-0.6, 6);
    expect(out[3]).toBeCloseTo(128 / 127.5 - 1, 6);
    const viaUnit = unitToSigned(u8ToUnit(u));
    for (let i = 0; i < 4; i++) expect(viaUnit[i]).toBeCloseTo(out[i]!, 6);
  });

  it('validates its config', () => {
    expect(() => validateAugment({ ...defaultAugment(2), rotate: -1 }, 2)).toThrow(ConfigError);
    expect(() => validateAugment({ ...defaultAugment(2), randAugment: { n: 2, m: 11 } }, 2)).toThrow(ConfigError);
    expect(() => validateAugment(defaultAugment(2), 3)).toThrow(/2D data only/);
    expect(() => validateAugment({ ...defaultAugment(3), intensity: { scale: 1.5, shift: 0 } }, 3)).toThrow(ConfigError);
    validateAugment(defaultAugment(2), 2);
    validateAugment(defaultAugment(3), 3);
  });
});
