import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import {
  type AugmentConfig,
  augmentPolicy,
  augmentSample,
  flip,
  isNoAugment,
  normalizeU8,
  padCrop,
  rotate2d,
  rotate3d,
  thesisCrop,
  u8ToUnit,
  unitToSigned,
  validateAugment,
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
const OFF: AugmentConfig = { crop: 0, flips: false, rotate: 0, randaugment: null, intensity: null };

describe('augmentation policies', () => {
  it('"flips-rotations": flips, ±10°, pad-and-crop round(size/7) on 2D; flips and ±10° about two axes on 3D; nothing else', () => {
    expect(augmentPolicy('flips-rotations', 2, 28)).toEqual({ crop: 4, flips: true, rotate: 10, randaugment: null, intensity: null });
    expect(augmentPolicy('flips-rotations', 3, 28)).toEqual({ crop: 0, flips: true, rotate: 10, randaugment: null, intensity: null });
    expect(augmentPolicy('flips-rotations', 3, 64)).toEqual(augmentPolicy('flips-rotations', 3, 28));
    expect([28, 64, 128, 224].map(thesisCrop)).toEqual([4, 9, 18, 32]);
    expect(augmentPolicy('flips-rotations', 2, 224)?.crop).toBe(32);
  });

  it('"thesis" adds RandAugment N=2, M=8 of 31 bins on 2D only; "none" is null', () => {
    expect(augmentPolicy('thesis', 2, 28)).toEqual({
      crop: 4,
      flips: true,
      rotate: 10,
      randaugment: { n: 2, m: 8, bins: 31 },
      intensity: null,
    });
    expect(augmentPolicy('thesis', 3, 28)).toEqual(augmentPolicy('flips-rotations', 3, 28));
    expect(augmentPolicy('none', 2, 28)).toBeNull();
    // "ssl": the views of thesis 4.7.6, flips, rotations and intensity on both dimensionalities.
    for (const d of [2, 3] as const) {
      expect(augmentPolicy('ssl', d, 28)).toEqual({
        crop: 0,
        flips: true,
        rotate: 10,
        randaugment: null,
        intensity: { scale: 0.1, shift: 0.1 },
      });
    }
    expect(augmentPolicy('none', 3, 28)).toBeNull();
    for (const p of ['flips-rotations', 'thesis'] as const) for (const d of [2, 3] as const) validateAugment(augmentPolicy(p, d, 28)!, d);
    expect(isNoAugment(OFF)).toBe(true);
    expect(isNoAugment({ ...OFF, randaugment: { n: 0, m: 8, bins: 31 } })).toBe(true);
    expect(isNoAugment({ ...OFF, crop: 1 })).toBe(false);
    expect(isNoAugment(augmentPolicy('flips-rotations', 3, 28)!)).toBe(false);
  });

  it('validates its config', () => {
    const t2 = augmentPolicy('thesis', 2, 28)!;
    expect(() => validateAugment({ ...t2, rotate: -1 }, 2)).toThrow(ConfigError);
    expect(() => validateAugment({ ...t2, crop: 1.5 }, 2)).toThrow(/crop/);
    expect(() => validateAugment({ ...t2, randaugment: { n: 2, m: 31, bins: 31 } }, 2)).toThrow(/0\.\.30/);
    expect(() => validateAugment({ ...t2, randaugment: { n: 2, m: 8.5, bins: 31 } }, 2)).toThrow(ConfigError);
    expect(() => validateAugment(t2, 3)).toThrow(/2D data only/);
    expect(() => validateAugment({ ...OFF, intensity: { scale: 1.5, shift: 0 } }, 3)).toThrow(ConfigError);
  });
});

describe('augmentSample', () => {
  const policies: [string, readonly number[], number, AugmentConfig][] = [
    ['2D flips-rotations', s2, n2, augmentPolicy('flips-rotations', 2, 28)!],
    ['2D thesis', s2, n2, augmentPolicy('thesis', 2, 28)!],
    ['3D thesis', s3, n3, augmentPolicy('thesis', 3, 16)!],
    [
      '3D custom with crop and intensity',
      s3,
      n3,
      { crop: 2, flips: true, rotate: 10, randaugment: null, intensity: { scale: 0.1, shift: 0.1 } },
    ],
  ];
  for (const [name, shape, n, cfg] of policies) {
    it(`a fixed Rng state gives the same output; another state another one (${name})`, () => {
      const x = randomUnit(n, 1);
      for (let s = 0; s < 5; s++) {
        const state = new Rng(s).state();
        const a = augmentSample(Float32Array.from(x), shape, cfg, Rng.fromState(state));
        const b = augmentSample(Float32Array.from(x), shape, cfg, Rng.fromState(state));
        const c = augmentSample(Float32Array.from(x), shape, cfg, Rng.fromState((state ^ 1) >>> 0));
        expect(a.length).toBe(n);
        expect(b).toEqual(a);
        expect(c).not.toEqual(a);
        expect(a.every((v) => Number.isFinite(v) && v >= 0 && v <= 1)).toBe(true);
      }
    });
  }

  it('draws in the documented order: crop offsets, flips, rotation', () => {
    const shape = [1, 9, 9];
    const x = randomUnit(81, 2);
    for (let s = 0; s < 10; s++) {
      const cfg: AugmentConfig = { ...OFF, crop: 2, flips: true, rotate: 7 };
      const got = augmentSample(Float32Array.from(x), shape, cfg, new Rng(s));
      const r = new Rng(s);
      let want = padCrop(Float32Array.from(x), shape, 2, [r.int(5), r.int(5)]);
      if (r.bool()) flip(want, shape, 0);
      if (r.bool()) flip(want, shape, 1);
      want = rotate2d(want, shape, r.uniform(-7, 7));
      expect(got).toEqual(want);
    }
  });

  it('"horizontal" flips: one draw, and the sample is itself or mirrored along W (never H or D), both seen', () => {
    for (const shape of [
      [2, 5, 6],
      [1, 3, 4, 5],
    ]) {
      const n = shape.reduce((a, b) => a * b, 1);
      const x = randomUnit(n, 7);
      const mirrored = flip(Float32Array.from(x), shape, shape.length - 2);
      const seen = new Set<string>();
      for (let s = 0; s < 16; s++) {
        const got = augmentSample(Float32Array.from(x), shape, { ...OFF, flips: 'horizontal' }, new Rng(s));
        const r = new Rng(s);
        expect(got).toEqual(r.bool() ? mirrored : x);
        seen.add(got[0] === x[0] ? 'same' : 'mirrored');
      }
      expect([...seen].sort()).toEqual(['mirrored', 'same']);
    }
  });

  it('with every op off it is the identity', () => {
    const x = randomUnit(n2, 3);
    expect(augmentSample(Float32Array.from(x), s2, OFF, new Rng(1))).toEqual(x);
  });

  it('the thesis policy adds no intensity change: crop only moves pixels, flips only permute them', () => {
    const x = randomUnit(n2, 4);
    const cfg = { ...augmentPolicy('flips-rotations', 2, 28)!, rotate: 0 };
    const y = augmentSample(Float32Array.from(x), s2, cfg, new Rng(9));
    const have = new Set(x);
    expect(y.every((v) => v === 0 || have.has(v))).toBe(true);
  });
});

describe('geometry', () => {
  it('flips are exact involutions on every axis, odd and even sizes', () => {
    for (const shape of [
      [1, 5, 4],
      [3, 28, 27],
      [1, 6, 5, 7],
      [2, 3, 4, 5],
    ]) {
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
    // 3D 1×2×1×2: axis 0 is D
    expect(Array.from(flip(new Float32Array([1, 2, 3, 4]), [1, 2, 1, 2], 0))).toEqual([3, 4, 1, 2]);
  });

  it('pad-and-crop at a forced offset', () => {
    // 1×3×3 [[1,2,3],[4,5,6],[7,8,9]], pad 1: offset (0, 2) reads in[y − 1][x + 1]
    const x = Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9);
    expect(Array.from(padCrop(x, [1, 3, 3], 1, [0, 2]))).toEqual([0, 0, 0, 2, 3, 0, 5, 6, 0]);
    expect(Array.from(padCrop(x, [1, 3, 3], 1, [2, 0]))).toEqual([0, 4, 5, 0, 7, 8, 0, 0, 0]);
    expect(padCrop(x, [1, 3, 3], 1, [1, 1])).toEqual(x);
    expect(Array.from(padCrop(x, [1, 3, 3], 4, [0, 0]))).toEqual(Array(9).fill(0));
    // two channels move together
    expect(Array.from(padCrop(Float32Array.of(1, 2, 3, 4), [2, 1, 2], 1, [1, 0]))).toEqual([0, 1, 0, 3]);
    // 3D 1×2×2×2, pad 1, offset (2, 1, 0): in[z + 1][y][x − 1]
    const v = Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8);
    expect(Array.from(padCrop(v, [1, 2, 2, 2], 1, [2, 1, 0]))).toEqual([0, 5, 0, 7, 0, 0, 0, 0]);
    expect(() => padCrop(x, [1, 3, 3], 1, [3, 0])).toThrow(RangeError);
  });

  it('rotations: 0° is the identity, 90° is an exact quarter turn, 3D matches 2D per slice', () => {
    const x = randomUnit(n2, 3);
    expect(rotate2d(x, s2, 0)).toEqual(x);
    expect(rotate2d(x, s2, 0, 'nearest')).toEqual(x);
    const v = randomUnit(n3, 4);
    expect(rotate3d(v, s3, 0, 0)).toEqual(v);
    // 90°: out(y, x) = in(x, W-1-y) up to float error in cos(90°); exactly so with nearest, odd or even size.
    for (const side of [9, 8]) {
      const sq = randomUnit(side * side, 5);
      const ref = new Float32Array(side * side);
      for (let y = 0; y < side; y++) for (let xx = 0; xx < side; xx++) ref[y * side + xx] = sq[xx * side + (side - 1 - y)]!;
      expect(maxDiff(rotate2d(sq, [1, side, side], 90), ref)).toBeLessThan(1e-5);
      expect(rotate2d(sq, [1, side, side], 90, 'nearest')).toEqual(ref);
      // 180° = both flips
      const both = flip(flip(Float32Array.from(sq), [1, side, side], 0), [1, side, side], 1);
      expect(rotate2d(sq, [1, side, side], 180, 'nearest')).toEqual(both);
    }
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

  it('bilinear rotation by a small angle interpolates between neighbours', () => {
    // 3×3 with a bright centre, rotated by 10°: the centre stays, a corner gets nothing, and the top middle reads the
    // source at (1 + sin, 1 − cos), whose bilinear weight on the centre pixel is (1 − sin)·(1 − cos).
    const x = Float32Array.of(0, 0, 0, 0, 1, 0, 0, 0, 0);
    const y = rotate2d(x, [1, 3, 3], 10);
    expect(y[4]).toBeCloseTo(1, 6); // the centre maps onto itself
    const s = Math.sin(Math.PI / 18);
    const c = Math.cos(Math.PI / 18);
    expect(y[1]).toBeCloseTo((1 - s) * (1 - c), 6);
    expect(y[0]).toBeCloseTo(0, 6);
  });
});

describe('normalisation', () => {
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
});
