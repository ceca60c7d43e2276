// RandAugment against outputs recorded from torchvision itself (fixtures/torchvision-randaugment.py, which runs
// torchvision's own _apply_op on PIL images, the type MedMNIST's datasets hand to their transforms). Geometric and
// 8-bit level ops match exactly; the enhance ops blend in float where PIL truncates to 8 bits after each step
// (and rounds Contrast's mean gray and Color's luma to a level), which keeps them within 1.5 levels.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RA_OPS, RAND_AUGMENT_OPS, type RaOp, raMagnitude } from '../../src/data/augment.ts';

interface Fixture {
  source: string;
  images: Record<string, { shape: [number, number, number]; levels: number[] }>;
  space: Record<string, Record<string, [number[] | number, boolean]>>;
  cases: { image: string; op: string; m: number; magnitude: number; out: number[] }[];
}
const fx = JSON.parse(readFileSync(new URL('./fixtures/torchvision-randaugment.json', import.meta.url), 'utf8')) as Fixture;
const ours = (tv: string): RaOp => {
  const op = RA_OPS.find((o) => o.toLowerCase() === tv.toLowerCase());
  if (!op) throw new Error(`no op for torchvision's ${tv}`);
  return op;
};

/** Largest difference allowed, in 8-bit levels, per op. */
const TOLERANCE: Partial<Record<RaOp, number>> = { brightness: 1, autocontrast: 1, contrast: 1.5, color: 1.5, sharpness: 1.5 };

describe(`RandAugment matches torchvision (${fx.source})`, () => {
  it("the magnitude table, op by op and bin by bin, in torchvision's op order", () => {
    for (const [hw, space] of Object.entries(fx.space)) {
      const [H, W] = hw.split('x').map(Number) as [number, number];
      expect(Object.keys(space).map(ours)).toEqual([...RA_OPS]);
      for (const [tv, [mags, signed]] of Object.entries(space)) {
        for (let m = 0; m < 31; m++) {
          const want = Array.isArray(mags) ? mags[m]! : mags;
          const got = raMagnitude(ours(tv), m, 31, H, W);
          expect(got.signed, `${tv} ${hw}`).toBe(signed);
          expect(got.magnitude, `${tv} ${hw} m=${m}`).toBeCloseTo(want, 4); // torch's linspace is float32
        }
      }
    }
  });

  it('every op at M = 8 and 30, both signs, on grayscale and RGB images', () => {
    expect(fx.cases.length).toBeGreaterThan(90);
    const seen = new Set<string>();
    for (const c of fx.cases) {
      const img = fx.images[c.image]!;
      const op = ours(c.op);
      seen.add(op);
      const x = Float32Array.from(img.levels, (v) => v / 255);
      const y = RAND_AUGMENT_OPS[op](x, img.shape, c.magnitude);
      const tol = TOLERANCE[op] ?? 0;
      let worst = 0;
      for (let i = 0; i < y.length; i++) worst = Math.max(worst, Math.abs(y[i]! * 255 - c.out[i]!));
      expect(worst, `${c.op} m=${c.m} magnitude ${c.magnitude} on ${c.image}`).toBeLessThanOrEqual(tol + 1e-3);
    }
    expect([...seen].sort()).toEqual([...RA_OPS].sort());
  });
});
