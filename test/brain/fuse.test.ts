import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import {
  fusedAge,
  fuseVolumes,
  getSlice,
  linearInterpolate,
  midSliceMontagePng,
  plausible,
  transitionSmoothness,
  type FusableVolume,
} from '../../src/data/fuse.ts';
import { crc32, type Vec3 } from '../../src/data/nifti.ts';
import { ConfigError, ShapeError } from '../../src/errors.ts';
import { blobVolume, tempDir } from './helpers.ts';

const dir = tempDir();
const shape: Vec3 = [20, 24, 18];
const A: FusableVolume = { shape, data: blobVolume(shape, [10, 12, 9], [8, 10, 7], 500) };
const B: FusableVolume = { shape, data: blobVolume(shape, [9, 11, 8], [6, 7, 5], 900) };

describe('fuseVolumes', () => {
  for (const axis of [0, 1, 2] as const) {
    for (const mode of ['raw', 'interp'] as const) {
      it(`axis ${axis}, ${mode}: A's first k slices and B's kept slices are copied bit for bit`, () => {
        const n = shape[axis];
        const k = 6;
        const transition = 4;
        const f = fuseVolumes(A, B, { axis, k, transition, mode });
        expect(f.shape).toEqual(shape);
        expect(f.data.length).toBe(A.data.length);
        expect(f.generation).toBe(1);
        for (let s = 0; s < k; s++) expect(getSlice(f, axis, s)).toEqual(getSlice(A, axis, s));
        const firstB = mode === 'raw' ? k : k + transition;
        for (let s = firstB; s < n; s++) expect(getSlice(f, axis, s)).toEqual(getSlice(B, axis, s));
        if (mode === 'interp') {
          // transition slices are the linear blend of A[k-1] and B[k+transition]
          const want = linearInterpolate(getSlice(A, axis, k - 1), getSlice(B, axis, k + transition), transition);
          want.forEach((w, i) => expect(getSlice(f, axis, k + i)).toEqual(w));
          expect(f.fractionA).toBeCloseTo((k + 2) / n, 10);
        } else expect(f.fractionA).toBeCloseTo(k / n, 10);
      });
    }
  }

  it('raw and interp differ only in the transition slices', () => {
    const raw = fuseVolumes(A, B, { axis: 2, k: 5, transition: 3, mode: 'raw' });
    const itp = fuseVolumes(A, B, { axis: 2, k: 5, transition: 3, mode: 'interp' });
    for (let s = 0; s < shape[2]; s++) {
      const same = getSlice(raw, 2, s).every((v, i) => v === getSlice(itp, 2, s)[i]);
      expect(same, `slice ${s}`).toBe(s < 5 || s >= 8);
    }
  });

  it('the interpolation callback gets A[k-1], B[k+transition] and the count; its slices are used', () => {
    const calls: [Float32Array, Float32Array, number][] = [];
    const f = fuseVolumes(A, B, {
      axis: 1,
      k: 7,
      transition: 2,
      mode: 'interp',
      interpolate: (before, after, count) => {
        calls.push([before, after, count]);
        return Array.from({ length: count }, (_, i) => new Float32Array(before.length).fill(i + 0.5));
      },
    });
    expect(calls).toHaveLength(1);
    expect(calls[0]![0]).toEqual(getSlice(A, 1, 6));
    expect(calls[0]![1]).toEqual(getSlice(B, 1, 9));
    expect(calls[0]![2]).toBe(2);
    expect(getSlice(f, 1, 7).every((v) => v === 0.5)).toBe(true);
    expect(getSlice(f, 1, 8).every((v) => v === 1.5)).toBe(true);
    expect(() => fuseVolumes(A, B, { axis: 1, k: 7, transition: 2, mode: 'interp', interpolate: () => [new Float32Array(3)] })).toThrow(
      ShapeError,
    );
  });

  it('refuses mismatched shapes, bad seams, and re-fusing past the generation limit', () => {
    const small: FusableVolume = { shape: [20, 24, 17], data: new Float32Array(20 * 24 * 17) };
    expect(() => fuseVolumes(A, small, { axis: 0, k: 3, transition: 1, mode: 'raw' })).toThrow(ShapeError);
    expect(() => fuseVolumes(A, B, { axis: 2, k: 0, transition: 1, mode: 'interp' })).toThrow(ConfigError);
    expect(() => fuseVolumes(A, B, { axis: 2, k: 10, transition: 8, mode: 'interp' })).toThrow(ConfigError); // no B slice left
    const f = fuseVolumes(A, B, { axis: 2, k: 5, transition: 2, mode: 'interp' });
    expect(() => fuseVolumes(f, A, { axis: 0, k: 5, transition: 2, mode: 'interp' })).toThrow(/generation-1/);
    const g = fuseVolumes(f, A, { axis: 0, k: 5, transition: 2, mode: 'interp', maxGeneration: 1 });
    expect(g.generation).toBe(2);
  });

  it('fusedAge weights each age by its share', () => {
    expect(fusedAge(30, 70, 0.25)).toBe(60);
    expect(fusedAge(30, 70, 1)).toBe(30);
    expect(() => fusedAge(30, 70, 1.5)).toThrow(ConfigError);
  });
});

describe('seam plausibility', () => {
  it('an intact volume scores about 1; raw concatenation scores high; interpolation lowers it', () => {
    const axis = 2;
    const k = 8;
    const t = 3;
    const natural = transitionSmoothness(A, axis, k, 0);
    const raw = fuseVolumes(A, B, { axis, k, transition: t, mode: 'raw' });
    const itp = fuseVolumes(A, B, { axis, k, transition: t, mode: 'interp' });
    const sRaw = transitionSmoothness(raw, axis, k, 0);
    const sItp = transitionSmoothness(itp, axis, k, t);
    expect(natural).toBeLessThan(2);
    expect(sRaw).toBeGreaterThan(3);
    expect(sItp).toBeLessThan(sRaw);
    expect(plausible(raw, axis, k, 0)).toBe(false);
    expect(plausible(A, axis, k, 0)).toBe(true);
    expect(plausible(itp, axis, k, t, sItp + 1e-9)).toBe(true);
  });
});

describe('midSliceMontagePng', () => {
  it('writes a PNG: signature, IHDR of the right size, valid CRCs, pixels that inflate to width×height', () => {
    const file = join(dir, 'montage.png');
    const other: FusableVolume = { shape: [16, 30, 10], data: blobVolume([16, 30, 10], [8, 15, 5], [6, 12, 4]) };
    const { width, height } = midSliceMontagePng([A, B, other], file, { scale: 2 });
    // Cells fit the largest panel: widths are y (sagittal) or x, heights z or y (axial); other's y = 30 wins both.
    const cell = 30;
    expect(width).toBe(3 * cell * 2);
    expect(height).toBe(3 * cell * 2);
    const b = readFileSync(file);
    expect([...b.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const dv = new DataView(b.buffer, b.byteOffset, b.length);
    expect(dv.getUint32(8)).toBe(13);
    expect(String.fromCharCode(...b.subarray(12, 16))).toBe('IHDR');
    expect(dv.getUint32(16)).toBe(width);
    expect(dv.getUint32(20)).toBe(height);
    expect([b[24], b[25]]).toEqual([8, 0]); // 8-bit grayscale
    // walk the chunks: each CRC matches, IDAT inflates to (1 + width) × height bytes
    let o = 8;
    const idat: Uint8Array[] = [];
    const types: string[] = [];
    while (o < b.length) {
      const len = dv.getUint32(o);
      const type = String.fromCharCode(...b.subarray(o + 4, o + 8));
      types.push(type);
      expect(dv.getUint32(o + 8 + len), `${type} CRC`).toBe(crc32(b.subarray(o + 4, o + 8 + len)));
      if (type === 'IDAT') idat.push(b.subarray(o + 8, o + 8 + len));
      o += 12 + len;
    }
    expect(types).toEqual(['IHDR', 'IDAT', 'IEND']);
    const raw = inflateSync(idat[0]!.subarray(2, idat[0]!.length - 4));
    expect(raw.length).toBe((1 + width) * height);
    expect(raw.some((v, i) => i % (width + 1) !== 0 && v === 255)).toBe(true);
  });
});
