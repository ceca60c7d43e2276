// RandAugment against hand-computed outputs: each op on a tiny image at a given magnitude and sign, the magnitude
// table at torchvision's 31 bins, and the draws (uniform over the 14 ops, signs only for signed ops, determinism).
import { describe, expect, it } from 'vitest';
import { RA_OPS, RAND_AUGMENT_OPS, type RaOp, raMagnitude, randAugment } from '../../src/data/augment.ts';
import { Rng } from '../../src/util/rng.ts';

/** A 1×H×W image from rows of 8-bit levels. */
const img = (rows: number[][]): Float32Array => Float32Array.from(rows.flat(), (v) => v / 255);
/** The levels of a 1×H×W result, as rows. */
const levels = (x: Float32Array, W: number): number[][] => {
  const out: number[][] = [];
  for (let i = 0; i < x.length; i += W) out.push(Array.from(x.subarray(i, i + W), (v) => Math.round(v * 255)));
  return out;
};
const close = (got: Float32Array, want: number[], digits = 6): void => {
  expect(got.length).toBe(want.length);
  want.forEach((w, i) => expect(got[i], `element ${i}`).toBeCloseTo(w, digits));
};
const op = (name: RaOp, x: Float32Array, shape: number[], mag: number): Float32Array =>
  RAND_AUGMENT_OPS[name](Float32Array.from(x), shape, mag);

// 1×4×4, levels 10·(row·4 + col + 1)
const A = img([
  [10, 20, 30, 40],
  [50, 60, 70, 80],
  [90, 100, 110, 120],
  [130, 140, 150, 160],
]);
const S4 = [1, 4, 4];

describe('RandAugment magnitudes (torchvision _augmentation_space, 31 bins)', () => {
  const mag = (o: RaOp, m: number, size = 28) => raMagnitude(o, m, 31, size, size);

  it('M = 8: shear 0.08, translate 8/30·150/331·size, rotate 8°, enhance 0.24, posterize 7 bits, solarize 187', () => {
    expect(mag('shearX', 8)).toEqual({ magnitude: expect.closeTo(0.08, 12), signed: true });
    expect(mag('shearY', 8).magnitude).toBeCloseTo(0.08, 12);
    expect(mag('translateX', 8)).toEqual({ magnitude: expect.closeTo((8 / 30) * (150 / 331) * 28, 12), signed: true });
    expect(mag('translateX', 8).magnitude).toBeCloseTo(3.3837, 4); // 3 px once truncated
    expect(mag('translateY', 8, 64).magnitude).toBeCloseTo((8 / 30) * (150 / 331) * 64, 12);
    expect(mag('rotate', 8)).toEqual({ magnitude: expect.closeTo(8, 12), signed: true });
    for (const o of ['brightness', 'color', 'contrast', 'sharpness'] as const)
      expect(mag(o, 8)).toEqual({ magnitude: expect.closeTo(0.24, 12), signed: true });
    expect(mag('posterize', 8)).toEqual({ magnitude: 7, signed: false });
    expect(mag('solarize', 8)).toEqual({ magnitude: expect.closeTo(187, 9), signed: false });
    for (const o of ['identity', 'autocontrast', 'equalize'] as const) expect(mag(o, 8)).toEqual({ magnitude: 0, signed: false });
  });

  it("the ends and torchvision's default M = 9", () => {
    expect([mag('shearX', 0).magnitude, mag('rotate', 0).magnitude, mag('posterize', 0).magnitude, mag('solarize', 0).magnitude]).toEqual([
      0, 0, 8, 255,
    ]);
    expect(mag('shearX', 30).magnitude).toBeCloseTo(0.3, 12);
    expect(mag('translateX', 30).magnitude).toBeCloseTo((150 / 331) * 28, 12);
    expect(mag('rotate', 30).magnitude).toBeCloseTo(30, 12);
    expect(mag('brightness', 30).magnitude).toBeCloseTo(0.9, 12);
    expect([mag('posterize', 30).magnitude, mag('solarize', 30).magnitude]).toEqual([4, 0]);
    expect(mag('rotate', 9).magnitude).toBeCloseTo(9, 12);
    expect(mag('contrast', 9).magnitude).toBeCloseTo(0.27, 12);
    expect(mag('solarize', 9).magnitude).toBeCloseTo(178.5, 9);
    // torchvision's 8 − round(arange(31)/7.5)
    const bits = Array.from({ length: 31 }, (_, m) => mag('posterize', m).magnitude);
    expect(bits).toEqual([...Array(4).fill(8), ...Array(8).fill(7), ...Array(7).fill(6), ...Array(8).fill(5), ...Array(4).fill(4)]);
    // translate uses W for X and H for Y
    expect(raMagnitude('translateX', 30, 31, 10, 20).magnitude).toBeCloseTo((150 / 331) * 20, 12);
    expect(raMagnitude('translateY', 30, 31, 10, 20).magnitude).toBeCloseTo((150 / 331) * 10, 12);
  });
});

describe('RandAugment ops on hand-computed inputs', () => {
  it('identity', () => {
    expect(op('identity', A, S4, 0)).toEqual(A);
  });

  it('shearX ±0.3 about the top-left corner, nearest, zero fill', () => {
    // out(x, y) = in(round(x + s·(y + ½)), y): offsets 0.15, 0.45, 0.75, 1.05 by row.
    expect(levels(op('shearX', A, S4, 0.3), 4)).toEqual([
      [10, 20, 30, 40],
      [50, 60, 70, 80],
      [100, 110, 120, 0],
      [140, 150, 160, 0],
    ]);
    expect(levels(op('shearX', A, S4, -0.3), 4)).toEqual([
      [10, 20, 30, 40],
      [50, 60, 70, 80],
      [0, 90, 100, 110],
      [0, 130, 140, 150],
    ]);
    // M = 8's 0.08 moves nothing on a 4-pixel image (largest offset 0.28)
    expect(op('shearX', A, S4, 0.08)).toEqual(A);
  });

  it('shearY 0.3: columns 2 and 3 move up one row', () => {
    expect(levels(op('shearY', A, S4, 0.3), 4)).toEqual([
      [10, 20, 70, 80],
      [50, 60, 110, 120],
      [90, 100, 150, 160],
      [130, 140, 0, 0],
    ]);
  });

  it('translate by the magnitude truncated to whole pixels', () => {
    expect(levels(op('translateX', A, S4, 1.9), 4)).toEqual([
      [0, 10, 20, 30],
      [0, 50, 60, 70],
      [0, 90, 100, 110],
      [0, 130, 140, 150],
    ]);
    expect(levels(op('translateX', A, S4, -1.9), 4)).toEqual([
      [20, 30, 40, 0],
      [60, 70, 80, 0],
      [100, 110, 120, 0],
      [140, 150, 160, 0],
    ]);
    expect(levels(op('translateY', A, S4, 2.5), 4)).toEqual([
      [0, 0, 0, 0],
      [0, 0, 0, 0],
      [10, 20, 30, 40],
      [50, 60, 70, 80],
    ]);
    expect(op('translateY', A, S4, 0.99)).toEqual(A);
  });

  it('rotate: counter-clockwise about the centre, nearest', () => {
    // 90°: out(y, x) = in(x, W−1−y), exactly
    expect(levels(op('rotate', A, S4, 90), 4)).toEqual([
      [40, 80, 120, 160],
      [30, 70, 110, 150],
      [20, 60, 100, 140],
      [10, 50, 90, 130],
    ]);
    // 45° on 3×3 moves the ring one step counter-clockwise
    const B = img([
      [1, 2, 3],
      [4, 5, 6],
      [7, 8, 9],
    ]);
    expect(levels(op('rotate', B, [1, 3, 3], 45), 3)).toEqual([
      [2, 3, 6],
      [1, 5, 9],
      [4, 7, 8],
    ]);
    expect(levels(op('rotate', B, [1, 3, 3], -45), 3)).toEqual([
      [4, 1, 2],
      [7, 5, 3],
      [8, 9, 6],
    ]);
    expect(op('rotate', A, S4, 0)).toEqual(A);
  });

  it('brightness: factor 1 ± mag, clipped', () => {
    const x = Float32Array.of(0, 0.25, 0.5, 0.9);
    close(op('brightness', x, [1, 2, 2], 0.24), [0, 0.31, 0.62, 1]);
    close(op('brightness', x, [1, 2, 2], -0.24), [0, 0.19, 0.38, 0.684]);
  });

  it('contrast: blend with the mean gray level', () => {
    close(op('contrast', Float32Array.of(0, 0.2, 0.4, 0.6), [1, 2, 2], 0.5), [0, 0.15, 0.45, 0.75]);
    close(op('contrast', Float32Array.of(0, 0.2, 0.4, 0.6), [1, 2, 2], -0.5), [0.15, 0.25, 0.35, 0.45]);
    // RGB: the mean of the luma. Pixels (1, 0, 0) and (0, 0, 0): luma 0.299 and 0, mean 0.1495.
    const rgb = Float32Array.of(1, 0, 0, 0, 0, 0); // 3×1×2, channel-first
    close(op('contrast', rgb, [3, 1, 2], -0.5), [0.57475, 0.07475, 0.07475, 0.07475, 0.07475, 0.07475]);
  });

  it('color: blend with the luma on RGB, identity on grayscale', () => {
    // one red pixel: L = 0.299; factor 0.5 → R = 0.299 + 0.701/2, G = B = 0.299/2
    close(op('color', Float32Array.of(1, 0, 0), [3, 1, 1], -0.5), [0.6495, 0.1495, 0.1495]);
    // (0.2, 0.6, 0.4): L = 0.299·0.2 + 0.587·0.6 + 0.114·0.4 = 0.4576; factor 1.24 → 1.24·c − 0.24·L
    close(op('color', Float32Array.of(0.2, 0.6, 0.4), [3, 1, 1], 0.24), [
      0.2 * 1.24 - 0.24 * 0.4576,
      0.6 * 1.24 - 0.24 * 0.4576,
      0.4 * 1.24 - 0.24 * 0.4576,
    ]);
    const g = Float32Array.of(0.1, 0.9, 0.3, 0.5);
    expect(op('color', g, [1, 2, 2], 0.9)).toEqual(g);
  });

  it('sharpness: blend with the 3×3 SMOOTH filter on the interior, borders kept', () => {
    const x = Float32Array.of(0.2, 0.2, 0.2, 0.2, 0.5, 0.2, 0.2, 0.2, 0.2);
    const smooth = (4 * 0.5 + 8 * 0.2 + 0.5) / 13;
    close(op('sharpness', x, [1, 3, 3], 1), [0.2, 0.2, 0.2, 0.2, 2 * 0.5 - smooth, 0.2, 0.2, 0.2, 0.2]);
    close(op('sharpness', x, [1, 3, 3], -0.24), [0.2, 0.2, 0.2, 0.2, smooth + (0.5 - smooth) * 0.76, 0.2, 0.2, 0.2, 0.2]);
  });

  it('posterize keeps the top bits of each 8-bit level', () => {
    const x = img([[0, 1, 2, 3, 255, 128, 129, 200]]);
    expect(levels(op('posterize', x, [1, 1, 8], 7), 8)).toEqual([[0, 0, 2, 2, 254, 128, 128, 200]]);
    expect(levels(op('posterize', x, [1, 1, 8], 4), 8)).toEqual([[0, 0, 0, 0, 240, 128, 128, 192]]);
    expect(levels(op('posterize', x, [1, 1, 8], 8), 8)).toEqual(levels(x, 8));
  });

  it('solarize inverts levels at or above the threshold', () => {
    const x = img([[186, 187, 200, 0, 255]]);
    expect(levels(op('solarize', x, [1, 1, 5], 187), 5)).toEqual([[186, 68, 55, 0, 0]]);
    expect(levels(op('solarize', x, [1, 1, 5], 255), 5)).toEqual([[186, 187, 200, 0, 0]]);
    expect(levels(op('solarize', x, [1, 1, 5], 0), 5)).toEqual([[69, 68, 55, 255, 0]]);
  });

  it('autocontrast stretches each channel to [0, 1]; a constant channel stays', () => {
    close(op('autocontrast', Float32Array.of(0.2, 0.4, 0.6), [1, 1, 3], 0), [0, 0.5, 1]);
    close(op('autocontrast', Float32Array.of(0.2, 0.4, 0.6, 0.3, 0.3, 0.3), [2, 1, 3], 0), [0, 0.5, 1, 0.3, 0.3, 0.3]);
  });

  it("equalize: PIL's histogram equalisation", () => {
    // 400 pixels, 100 each at levels 10, 20, 30, 40: step ⌊300/255⌋ = 1, so level → pixels below it (max 255).
    const x = img([Array.from({ length: 400 }, (_, i) => 10 * (1 + (i % 4)))]);
    const y = levels(op('equalize', x, [1, 20, 20], 0), 400)[0]!;
    expect(y.slice(0, 8)).toEqual([0, 100, 200, 255, 0, 100, 200, 255]);
    // fewer than 256 pixels off the top level: step 0, unchanged
    expect(op('equalize', A, S4, 0)).toEqual(A);
  });
});

describe('randAugment draws', () => {
  /** Random 8-bit levels in 20..229, so that autocontrast has something to stretch. */
  const rand = (n: number, seed: number): Float32Array => {
    const r = new Rng(seed);
    return Float32Array.from({ length: n }, () => (20 + r.int(210)) / 255);
  };

  it("ops uniform over torchvision's 14, signs only on signed ops, magnitudes from the table", () => {
    expect(RA_OPS.length).toBe(14);
    const counts = new Map<RaOp, number>();
    const signs = new Map<RaOp, Set<number>>();
    const rng = new Rng(3);
    const x = rand(28 * 28, 1);
    const trials = 2800;
    for (let t = 0; t < trials / 2; t++) {
      randAugment(Float32Array.from(x), [1, 28, 28], { n: 2, m: 8, bins: 31 }, rng, (o, mag) => {
        counts.set(o, (counts.get(o) ?? 0) + 1);
        const { magnitude, signed } = raMagnitude(o, 8, 31, 28, 28);
        expect(Math.abs(mag), o).toBe(magnitude);
        if (!signed) expect(mag, o).toBe(magnitude);
        if (!signs.has(o)) signs.set(o, new Set());
        signs.get(o)!.add(Math.sign(mag));
      });
    }
    for (const o of RA_OPS) {
      expect(counts.get(o) ?? 0, o).toBeGreaterThan((trials / 14) * 0.75);
      expect(counts.get(o) ?? 0, o).toBeLessThan((trials / 14) * 1.25);
      if (raMagnitude(o, 8, 31, 28, 28).signed) expect([...signs.get(o)!].sort(), o).toEqual([-1, 1]);
    }
  });

  it('is the composition of the traced ops, and a function of the Rng state', () => {
    const x = rand(3 * 28 * 28, 2);
    const shape = [3, 28, 28];
    const cfg = { n: 2, m: 8, bins: 31 };
    for (let s = 0; s < 20; s++) {
      const state = new Rng(s).state();
      const seen: [RaOp, number][] = [];
      const a = randAugment(Float32Array.from(x), shape, cfg, Rng.fromState(state), (o, m) => seen.push([o, m]));
      const b = randAugment(Float32Array.from(x), shape, cfg, Rng.fromState(state));
      expect(b).toEqual(a);
      let c: Float32Array = Float32Array.from(x);
      for (const [o, m] of seen) c = RAND_AUGMENT_OPS[o](c, shape, m);
      expect(c).toEqual(a);
      expect(a.every((v) => v >= 0 && v <= 1)).toBe(true);
    }
    expect(randAugment(Float32Array.from(x), shape, { ...cfg, n: 0 }, new Rng(1))).toEqual(x);
  });

  it('every op at M = 8 keeps the shape and range and changes a random image (but color on grayscale)', () => {
    for (const shape of [
      [1, 28, 28],
      [3, 28, 28],
    ]) {
      const n = shape.reduce((a, b) => a * b, 1);
      const x = rand(n, 7);
      for (const o of RA_OPS) {
        const { magnitude, signed } = raMagnitude(o, 8, 31, 28, 28);
        for (const sign of signed ? [1, -1] : [1]) {
          const y = op(o, x, shape, sign * magnitude);
          expect(y.length, o).toBe(n);
          expect(
            y.every((v) => v >= 0 && v <= 1),
            o,
          ).toBe(true);
          if (o === 'identity' || (o === 'color' && shape[0] === 1)) expect(y, o).toEqual(x);
          else expect(y, o).not.toEqual(x);
        }
      }
    }
  });
});
