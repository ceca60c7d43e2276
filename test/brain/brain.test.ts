import { copyFileSync, existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ageBins, smoothBinLabels } from '../../src/data/age_bins.ts';
import {
  cachePath,
  foregroundBox,
  nonzeroPercentiles,
  orientationCode,
  preprocessBrain,
  preprocessVolume,
  reorientToRas,
} from '../../src/data/brain.ts';
import { findIxiVolumes, ixiId, loadIxiSubjects, matchSubjects, subjectSplit } from '../../src/data/ixi.ts';
import { writeNifti, type Vec3, type Volume } from '../../src/data/nifti.ts';
import { ConfigError, FileFormatError } from '../../src/errors.ts';
import { blobVolume, SHARED_SKIP, sharedData, tempDir } from './helpers.ts';

const dir = tempDir();

const apply = (A: readonly number[], p: readonly number[]) =>
  [0, 1, 2].map((r) => A[4 * r]! * p[0]! + A[4 * r + 1]! * p[1]! + A[4 * r + 2]! * p[2]! + A[4 * r + 3]!);

/** A PSR volume like IXI's: axis 0 → posterior, axis 1 → superior, axis 2 → right. */
function psrVolume(): Volume {
  const shape: Vec3 = [6, 5, 4];
  const data = new Float32Array(120).map((_, i) => i + 1);
  const affine = [0, 0, 1.2, -2, -0.9, 0, 0, 3, 0, 0.8, 0, -4, 0, 0, 0, 1];
  return { shape, data, spacing: [0.9, 0.8, 1.2], affine };
}

describe('reorientation to RAS', () => {
  it('names orientations: PSR for IXI-style storage, LAS for FSL MNI, RAS after reorienting', () => {
    expect(orientationCode(psrVolume().affine)).toBe('PSR');
    expect(orientationCode([-1, 0, 0, 90, 0, 1, 0, -126, 0, 0, 1, -72, 0, 0, 0, 1])).toBe('LAS');
    expect(orientationCode(reorientToRas(psrVolume()).affine)).toBe('RAS');
  });

  it('permutes and flips exactly: every voxel keeps its world position and value', () => {
    const v = psrVolume();
    const r = reorientToRas(v);
    expect(r.shape).toEqual([4, 6, 5]);
    expect(r.spacing).toEqual([1.2, 0.9, 0.8]);
    // The RAS affine has positive diagonal and no off-diagonal terms here.
    expect([r.affine[0], r.affine[5], r.affine[10]]).toEqual([1.2, 0.9, 0.8]);
    const [X, Y] = r.shape;
    const where = new Map<number, number[]>();
    for (let z = 0; z < r.shape[2]; z++)
      for (let y = 0; y < Y; y++) for (let x = 0; x < X; x++) where.set(r.data[x + X * (y + Y * z)]!, apply(r.affine, [x, y, z]));
    for (let k = 0; k < 4; k++) {
      for (let j = 0; j < 5; j++) {
        for (let i = 0; i < 6; i++) {
          const val = v.data[i + 6 * (j + 5 * k)]!;
          const w = where.get(val)!;
          apply(v.affine, [i, j, k]).forEach((c, a) => expect(w[a]).toBeCloseTo(c, 5));
        }
      }
    }
  });

  it('an already-RAS volume is unchanged', () => {
    const v: Volume = {
      shape: [3, 2, 2],
      data: new Float32Array(12).map((_, i) => i),
      spacing: [1, 1, 1],
      affine: [1, 0, 0, 5, 0, 1, 0, 6, 0, 0, 1, 7, 0, 0, 0, 1],
    };
    const r = reorientToRas(v);
    expect(r.data).toEqual(v.data);
    expect(r.affine).toEqual(v.affine);
  });
});

describe('intensity and resampling', () => {
  it('percentiles ignore zeros and interpolate like numpy', () => {
    const d = new Float32Array(2000);
    for (let i = 0; i < 1000; i++) d[2 * i] = i + 1;
    const [p0, p50, p100] = nonzeroPercentiles(d, [0, 50, 100]);
    expect([p0, p50, p100]).toEqual([1, 500.5, 1000]);
  });

  it('preprocessVolume: requested shape, values in [0, 1], brain centred in the grid', () => {
    const shape: Vec3 = [60, 50, 40];
    const data = blobVolume(shape, [20, 30, 15], [12, 10, 8]); // off-centre on purpose
    data[5] = 1e6; // one hot voxel: the 99.5th percentile clip must absorb it
    const out = preprocessVolume(
      { shape, data, spacing: [1, 1, 1], affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1] },
      { shape: [32, 32, 32], spacingMm: 1 },
    );
    expect(out.shape).toEqual([32, 32, 32]);
    let lo = Infinity;
    let hi = -Infinity;
    let m = 0;
    const com = [0, 0, 0];
    for (let z = 0, i = 0; z < 32; z++) {
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++, i++) {
          const v = out.data[i]!;
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
          m += v;
          com[0] += v * x;
          com[1] += v * y;
          com[2] += v * z;
        }
      }
    }
    expect(lo).toBe(0);
    expect(hi).toBeLessThanOrEqual(1);
    expect(hi).toBeGreaterThan(0.9);
    com.forEach((c) => expect(c / m).toBeCloseTo(15.5, 0));
    // The output affine still maps to world: the blob centre (20, 30, 15) sits at the grid centre.
    apply(out.affine, [15.5, 15.5, 15.5]).forEach((w, a) => expect(w).toBeCloseTo([20, 30, 15][a]!, 4));
  });

  it("spacingMm 'fit' fills the grid with the foreground box; the default keeps physical size", () => {
    const shape: Vec3 = [80, 80, 80];
    const vol: Volume = {
      shape,
      data: blobVolume(shape, [40, 40, 40], [30, 20, 10]),
      spacing: [1, 1, 1],
      affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],
    };
    const fit = preprocessVolume(vol, { shape: [16, 16, 16], spacingMm: 'fit' });
    const box = foregroundBox(fit, 0)!;
    expect(box.max[0] - box.min[0]).toBeGreaterThanOrEqual(14);
    const dflt = preprocessVolume(vol, { shape: [16, 16, 16] });
    expect(dflt.spacing).toEqual([12, 12, 12]); // 192 mm / 16
  });

  it('bad options are ConfigErrors', () => {
    const vol = psrVolume();
    expect(() => preprocessVolume(vol, { shape: [0, 4, 4] })).toThrow(ConfigError);
    expect(() => preprocessVolume(vol, { clipPercentiles: [50, 10] })).toThrow(ConfigError);
    expect(() => preprocessVolume(vol, { spacingMm: -1 })).toThrow(ConfigError);
  });
});

describe('preprocessBrain cache', () => {
  const shape: Vec3 = [40, 48, 36];
  const src = join(dir, 'IXI999-Test-0000-T1.nii.gz');
  writeNifti(
    src,
    { shape, data: blobVolume(shape, [20, 24, 18], [15, 18, 12]) },
    { affine: [0, 0, 1.2, 0, -1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1] },
  );
  const cacheDir = join(dir, 'cache');

  it('the second call reads the cache and gets the same voxels; other options or a touched file miss it', () => {
    const opts = { shape: [24, 24, 24] as Vec3, cacheDir };
    const a = preprocessBrain(src, opts);
    expect(a.cached).toBe(false);
    expect(a.sourceOrientation).toBe('PSR');
    expect(existsSync(cachePath(src, opts, cacheDir))).toBe(true);
    const b = preprocessBrain(src, opts);
    expect(b.cached).toBe(true);
    expect(b.sourceOrientation).toBe('PSR');
    expect(b.data).toEqual(a.data);
    expect(b.shape).toEqual([24, 24, 24]);
    b.affine.forEach((v, i) => expect(v).toBeCloseTo(a.affine[i]!, 5));
    expect(preprocessBrain(src, { ...opts, shape: [16, 16, 16] }).cached).toBe(false);
    expect(preprocessBrain(src, { ...opts, clipPercentiles: [1, 99] }).cached).toBe(false);
    utimesSync(src, new Date(), new Date(Date.now() + 5000));
    expect(preprocessBrain(src, opts).cached).toBe(false);
    expect(preprocessBrain(src, opts).cached).toBe(true);
  });

  it('a damaged cache entry is recomputed, not an error', () => {
    const opts = { shape: [20, 20, 20] as Vec3, cacheDir };
    const a = preprocessBrain(src, opts);
    writeFileSync(cachePath(src, opts, cacheDir), new Uint8Array([1, 2, 3]));
    const b = preprocessBrain(src, opts);
    expect(b.cached).toBe(false);
    expect(b.data).toEqual(a.data);
    expect(preprocessBrain(src, opts).cached).toBe(true);
  });

  it('a missing source is a FileFormatError naming it', () => {
    expect(() => preprocessBrain(join(dir, 'missing.nii.gz'), { cacheDir })).toThrow(/missing\.nii\.gz/);
  });
});

describe(`real IXI preprocessing and subjects${SHARED_SKIP}`, () => {
  const root = sharedData ?? '';

  it.skipIf(!sharedData)('IXI057 → 64³ RAS in [0, 1], then a cache hit', () => {
    const file = join(root, 'brain/ixi_t1_skullstripped/IXI057-HH-1342-T1.nii.gz');
    const cacheDir = join(dir, 'real-cache');
    let t = performance.now();
    const a = preprocessBrain(file, { shape: [64, 64, 64], cacheDir });
    const first = performance.now() - t;
    t = performance.now();
    const b = preprocessBrain(file, { shape: [64, 64, 64], cacheDir });
    const second = performance.now() - t;
    console.log(`preprocess IXI057 → 64³: first ${first.toFixed(0)} ms, cached ${second.toFixed(0)} ms`);
    expect(a.shape).toEqual([64, 64, 64]);
    expect(orientationCode(a.affine)).toBe('RAS');
    expect(a.sourceOrientation).toBe('PSR');
    let lo = Infinity;
    let hi = -Infinity;
    let fg = 0;
    for (const v of a.data) (lo = Math.min(lo, v)), (hi = Math.max(hi, v)), (fg += v > 0 ? 1 : 0);
    expect(lo).toBe(0);
    expect(hi).toBeLessThanOrEqual(1);
    expect(hi).toBeGreaterThan(0.9);
    expect(fg / a.data.length).toBeGreaterThan(0.05);
    expect(b.cached).toBe(true);
    expect(b.data).toEqual(a.data);
    expect(second).toBeLessThan(first);
  });

  it.skipIf(!sharedData)('ixi_subjects.csv: 16 subjects aged 28–78 with existing files, all found by id', () => {
    const subjects = loadIxiSubjects(join(root, 'brain/ixi_subjects.csv'));
    expect(subjects).toHaveLength(16);
    const ages = subjects.map((s) => s.age);
    expect(Math.min(...ages)).toBeCloseTo(28.16, 1);
    expect(Math.max(...ages)).toBeCloseTo(78.2, 1);
    const s057 = subjects.find((s) => s.id === 'IXI057')!;
    expect([s057.sex, s057.file && existsSync(s057.file)]).toEqual(['F', true]);
    expect(subjects.filter((s) => s.sex === 'M')).toHaveLength(4);
    const vols = findIxiVolumes(join(root, 'brain'));
    expect(vols.size).toBe(16);
    const { matched, missing } = matchSubjects(subjects, vols);
    expect(missing).toEqual([]);
    for (const m of matched) expect(m.file).toBe(vols.get(m.id));
  });
});

describe('IXI subjects', () => {
  it('ids are normalised to IXI + 3 digits', () => {
    expect(['57', 'IXI57', 'IXI057-HH-1342-T1.nii.gz', '  12 ', '57.0'].map(ixiId)).toEqual([
      'IXI057',
      'IXI057',
      'IXI057',
      'IXI012',
      'IXI057',
    ]);
    expect(ixiId('abc')).toBeNull();
  });

  it('reads the official sheet layout: quotes, SEX_ID codes, empty ages skipped, agreeing repeats merged', () => {
    const f = join(dir, 'IXI.csv');
    writeFileSync(f, '\uFEFFIXI_ID,"SEX_ID",HEIGHT,AGE\r\n2,2,164,35.8\r\n12,1,"1,80",38.78\r\n13,1,,\r\n12,1,180,38.78\r\n');
    const s = loadIxiSubjects(f);
    expect(s).toEqual([
      { id: 'IXI002', age: 35.8, sex: 'F' },
      { id: 'IXI012', age: 38.78, sex: 'M' },
    ]);
  });

  it('malformed CSVs are FileFormatErrors naming the file and line', () => {
    const bad = (name: string, text: string, re: RegExp) => {
      const f = join(dir, name);
      writeFileSync(f, text);
      expect(() => loadIxiSubjects(f)).toThrow(FileFormatError);
      expect(() => loadIxiSubjects(f)).toThrow(re);
    };
    bad('noage.csv', 'ixi_id,sex\n2,F\n', /noage\.csv: needs an id column/);
    bad('badage.csv', 'ixi_id,age\n2,old\n', /badage\.csv:2: age 'old'/);
    bad('conflict.csv', 'ixi_id,age\n2,30\n2,31\n', /conflict\.csv:3: IXI002 appears twice/);
    bad('badid.csv', 'ixi_id,age\nfoo,30\n', /badid\.csv:2/);
  });

  it('findIxiVolumes refuses two volumes of one subject', () => {
    const d = join(dir, 'dup');
    mkdirSync(join(d, 'a'), { recursive: true });
    mkdirSync(join(d, 'b'), { recursive: true });
    writeFileSync(join(d, 'a', 'IXI002-Guys-0828-T1.nii.gz'), '');
    writeFileSync(join(d, 'b', 'IXI002-Guys-0828-T1.nii.gz'), '');
    writeFileSync(join(d, 'notes.txt'), '');
    expect(() => findIxiVolumes(d)).toThrow(/IXI002 has two volumes/);
    const one = join(dir, 'one');
    mkdirSync(one);
    copyFileSync(join(d, 'a', 'IXI002-Guys-0828-T1.nii.gz'), join(one, 'IXI002-Guys-0828-T1.nii.gz'));
    expect([...findIxiVolumes(one).keys()]).toEqual(['IXI002']);
    expect(readdirSync(one)).toHaveLength(1);
  });
});

describe('age bins and label smoothing', () => {
  it('default: 5-year bins from 20 to 90 (14), out-of-range ages clamp to the end bins', () => {
    const b = ageBins();
    expect(b.count).toBe(14);
    expect(b.edges[0]).toBe(20);
    expect(b.edges[14]).toBe(90);
    expect([20, 24.99, 25, 28.2, 78.2, 89.9, 90, 10, 100].map((a) => b.index(a))).toEqual([0, 0, 1, 1, 11, 13, 13, 0, 13]);
    expect(b.centre(1)).toBe(27.5);
    expect(() => b.index(Number.NaN)).toThrow(ConfigError);
  });

  it('explicit edges and a width that does not divide the range', () => {
    const e = ageBins([0, 40, 60, 100]);
    expect([39, 40, 59.9, 99].map((a) => e.index(a))).toEqual([0, 1, 1, 2]);
    expect(ageBins({ min: 20, max: 88, width: 5 }).edges.at(-1)).toBe(88);
    expect(() => ageBins([1, 1])).toThrow(ConfigError);
    expect(() => ageBins({ min: 5, max: 1, width: 1 })).toThrow(ConfigError);
  });

  it('smoothBinLabels: sums to 1, peaks at the bin, symmetric; sigma 0 is one-hot', () => {
    const l = smoothBinLabels(5, 14, 1);
    expect(l.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    expect(l.indexOf(Math.max(...l))).toBe(5);
    expect(l[4]).toBeCloseTo(l[6]!, 7);
    expect(l[4]! / l[5]!).toBeCloseTo(Math.exp(-0.5), 5);
    expect(Array.from(smoothBinLabels(0, 3, 0))).toEqual([1, 0, 0]);
    expect(() => smoothBinLabels(3, 3)).toThrow(ConfigError);
  });
});

describe('subject split', () => {
  const subjects = Array.from({ length: 30 }, (_, i) => ({ id: `IXI${String(i * 7).padStart(3, '0')}`, age: 20 + i * 2 }));
  // A subject with two scans: both must land in one split.
  const withRepeat = [...subjects, { id: 'IXI014', age: 24 }];

  it('no subject in two splits, every subject in one, sizes as asked', () => {
    const s = subjectSplit(withRepeat, { seed: 1, test: 5, val: 4 });
    const ids = (xs: { id: string }[]) => new Set(xs.map((x) => x.id));
    const [tr, va, te] = [ids(s.train), ids(s.val), ids(s.test)];
    for (const id of te) expect(tr.has(id) || va.has(id)).toBe(false);
    for (const id of va) expect(tr.has(id)).toBe(false);
    expect(te.size).toBe(5);
    expect(va.size).toBe(4);
    expect(tr.size).toBe(21);
    expect(s.train.length + s.val.length + s.test.length).toBe(31);
  });

  it('deterministic per seed, independent of input order, different across seeds', () => {
    const a = subjectSplit(subjects, { seed: 7, test: 5, val: 5 });
    const b = subjectSplit([...subjects].reverse(), { seed: 7, test: 5, val: 5 });
    const key = (x: { test: { id: string }[] }) =>
      x.test
        .map((s) => s.id)
        .sort()
        .join();
    expect(key(b)).toBe(key(a));
    expect(key(subjectSplit(subjects, { seed: 8, test: 5, val: 5 }))).not.toBe(key(a));
  });

  it('asking for too many held-out subjects is a ConfigError', () => {
    expect(() => subjectSplit(subjects, { seed: 1, test: 20, val: 10 })).toThrow(ConfigError);
  });
});
