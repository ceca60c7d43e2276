import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { FileFormatError } from '../../src/errors.ts';
import { crc32, decodeNifti, encodeNifti, readNifti, writeNifti, type Vec3 } from '../../src/data/nifti.ts';
import { Rng } from '../../src/util/rng.ts';
import { handNifti, handPayload, SHARED_SKIP, sharedData, tempDir, type DtypeName } from './helpers.ts';

const dir = tempDir();

/** Expects `fn` to throw a one-line FileFormatError that names `file`. */
function expectFormatError(fn: () => unknown, file: string, pattern?: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'should throw').toBeInstanceOf(FileFormatError);
  const msg = (err as Error).message;
  expect(msg).toContain(file);
  expect(msg).not.toContain('\n');
  if (pattern) expect(msg).toMatch(pattern);
}

// An oblique, left-handed affine (like IXI's PSR storage): exercises qform's qfac = -1.
const c = Math.cos(0.1);
const s = Math.sin(0.1);
// Columns: axis 0 → posterior, axis 1 → superior (both tilted 0.1 rad about x), axis 2 → right.
const OBLIQUE = [0, 0, 1.2, -84, -0.9375 * c, -0.9375 * s, 0, 138, -0.9375 * s, 0.9375 * c, 0, -119, 0, 0, 0, 1];

function sample(): { shape: Vec3; data: Float32Array } {
  const shape: Vec3 = [5, 4, 3];
  const data = new Float32Array(60).map((_, i) => Math.sin(i) * 100 + i / 7);
  return { shape, data };
}

describe('NIfTI round trip', () => {
  for (const name of ['rt.nii', 'rt.nii.gz']) {
    it(`writeNifti → readNifti ${name}: values, shape, spacing and affine survive`, () => {
      const vol = sample();
      const file = join(dir, name);
      writeNifti(file, vol, { spacing: [0.9375, 0.9375, 1.2], affine: OBLIQUE });
      const bytes = readFileSync(file);
      expect(bytes[0] === 0x1f && bytes[1] === 0x8b).toBe(name.endsWith('.gz'));
      const r = readNifti(file);
      expect(r.shape).toEqual(vol.shape);
      expect(r.datatype).toBe('float32');
      expect(r.data).toEqual(vol.data); // float32 is stored as is: bit for bit
      expect(r.affineSource).toBe('sform');
      r.affine.forEach((v, i) => expect(v).toBeCloseTo(OBLIQUE[i]!, 5));
      // pixdim holds the affine's column lengths
      expect(r.spacing[0]).toBeCloseTo(0.9375, 5);
      expect(r.spacing[1]).toBeCloseTo(0.9375, 5);
      expect(r.spacing[2]).toBeCloseTo(1.2, 5);
      expect(r.notes).toEqual([]);
    });
  }

  it('the written qform encodes the same affine (viewers that prefer qform agree)', () => {
    const bytes = encodeNifti(sample(), { affine: OBLIQUE });
    new DataView(bytes.buffer).setInt16(254, 0, true); // sform_code 0: the reader must fall back to the qform
    const r = decodeNifti(bytes, 'q.nii');
    expect(r.affineSource).toBe('qform');
    r.affine.forEach((v, i) => expect(v).toBeCloseTo(OBLIQUE[i]!, 4));
  });

  it('header fields a viewer relies on: sizeof_hdr, vox_offset 352, magic n+1, float32, units mm', () => {
    const b = encodeNifti(sample());
    const dv = new DataView(b.buffer);
    expect(dv.getInt32(0, true)).toBe(348);
    expect(dv.getFloat32(108, true)).toBe(352);
    expect(String.fromCharCode(...b.subarray(344, 348))).toBe('n+1\0');
    expect(dv.getInt16(70, true)).toBe(16);
    expect(b[123]).toBe(2);
    expect(b.length).toBe(352 + 60 * 4);
  });

  for (const le of [true, false]) {
    for (const dtype of ['uint8', 'int8', 'int16', 'uint16', 'int32', 'uint32', 'float32', 'float64'] as DtypeName[]) {
      it(`hand-built ${le ? 'little' : 'big'}-endian ${dtype} with scl_slope/scl_inter`, () => {
        const signed = !dtype.startsWith('u');
        const values = Array.from({ length: 24 }, (_, i) => (signed ? i - 10 : i * 3) + (dtype.startsWith('float') ? 0.25 : 0));
        const bytes = handNifti({ le, dtype, dims: [4, 3, 2], pixdim: [1, 2, 3, 4], slope: 2, inter: -5, values });
        const r = decodeNifti(bytes, `hand-${dtype}.nii`);
        expect(r.datatype).toBe(dtype);
        expect(r.shape).toEqual([4, 3, 2]);
        expect(r.spacing).toEqual([2, 3, 4]);
        expect(Array.from(r.data)).toEqual(values.map((v) => v * 2 - 5));
        expect(r.affineSource).toBe('pixdim');
        expect(r.affine).toEqual([2, 0, 0, 0, 0, 3, 0, 0, 0, 0, 4, 0, 0, 0, 0, 1]);
      });
    }
  }

  it('scl_slope 0 means unscaled (scl_inter is then ignored too)', () => {
    const r = decodeNifti(handNifti({ dims: [2, 2, 1], slope: 0, inter: 100, values: [1, 2, 3, 4] }), 's0.nii');
    expect(Array.from(r.data)).toEqual([1, 2, 3, 4]);
  });

  it('big-endian qform and sform are read in the right byte order', () => {
    const quat: [number, number, number] = [0.1, -0.2, 0.3];
    const a = Math.sqrt(1 - 0.01 - 0.04 - 0.09);
    const q = handNifti({
      le: false,
      dims: [2, 2, 2],
      pixdim: [-1, 2, 2, 3],
      qformCode: 1,
      quatern: quat,
      qoffset: [10, 20, 30],
      values: [0, 1, 2, 3, 4, 5, 6, 7],
    });
    const r = decodeNifti(q, 'be-q.nii');
    expect(r.affineSource).toBe('qform');
    const [b, cq, d] = quat;
    // first column: R[:,0]·dx, third column negated by qfac = -1
    expect(r.affine[0]).toBeCloseTo((a * a + b * b - cq * cq - d * d) * 2, 5);
    expect(r.affine[4 + 0]).toBeCloseTo(2 * (b * cq + a * d) * 2, 5);
    expect(r.affine[2]).toBeCloseTo(-2 * (b * d + a * cq) * 3, 5);
    expect([r.affine[3], r.affine[7], r.affine[11]]).toEqual([10, 20, 30]);
    const srow = [1, 0, 0, 5, 0, 2, 0, 6, 0, 0, 3, 7];
    const sf = decodeNifti(
      handNifti({ le: false, dims: [2, 2, 2], qformCode: 1, quatern: quat, sformCode: 2, srow, values: [0, 1, 2, 3, 4, 5, 6, 7] }),
      'be-s.nii',
    );
    expect(sf.affineSource).toBe('sform');
    expect(sf.affine).toEqual([...srow, 0, 0, 0, 1]);
  });

  it('4D: the first volume is read and a note says so; 2D gets unit dims', () => {
    const values = Array.from({ length: 2 * 2 * 2 * 3 }, (_, i) => i);
    const r = decodeNifti(handNifti({ dims: [2, 2, 2, 3], values }), 'fmri.nii');
    expect(r.shape).toEqual([2, 2, 2]);
    expect(Array.from(r.data)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(r.notes.join(' ')).toMatch(/fmri\.nii is 4D with 3 volumes; only the first/);
    const flat = decodeNifti(handNifti({ dims: [3, 2], pixdim: [1, 1, 1, 0], values: [1, 2, 3, 4, 5, 6] }), 'flat.nii');
    expect(flat.shape).toEqual([3, 2, 1]);
    expect(flat.spacing).toEqual([1, 1, 1]);
  });

  it('a two-file .hdr/.img pair (magic ni1), and vox_offset past extensions', () => {
    writeFileSync(join(dir, 'pair.hdr'), handNifti({ dims: [2, 2, 1], split: true, values: [] }));
    writeFileSync(join(dir, 'pair.img'), handPayload('int16', [7, 8, 9, 10]));
    expect(Array.from(readNifti(join(dir, 'pair.hdr')).data)).toEqual([7, 8, 9, 10]);
    const ext = decodeNifti(handNifti({ dims: [2, 1, 1], voxOffset: 480, values: [3, 4] }), 'ext.nii');
    expect(Array.from(ext.data)).toEqual([3, 4]);
  });

  it('gzip is detected by its magic, not the file name', () => {
    const file = join(dir, 'named-plain.nii');
    writeFileSync(file, gzipSync(handNifti({ dims: [2, 1, 1], values: [5, 6] })));
    expect(Array.from(readNifti(file).data)).toEqual([5, 6]);
  });

  it('crc32 matches the standard check value', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
  });
});

describe('NIfTI errors: one FileFormatError line naming the file', () => {
  const good = () => handNifti({ dims: [4, 3, 2], slope: 1, values: Array.from({ length: 24 }, (_, i) => i) });
  const put = (name: string, bytes: Uint8Array) => {
    const f = join(dir, name);
    writeFileSync(f, bytes);
    return f;
  };
  const mutate = (fn: (dv: DataView, b: Uint8Array) => void) => {
    const b = good();
    fn(new DataView(b.buffer), b);
    return b;
  };

  it('missing file', () => expectFormatError(() => readNifti(join(dir, 'nope.nii')), 'nope.nii', /no such file/));
  it('truncated header', () => {
    const f = put('short-header.nii', good().subarray(0, 200));
    expectFormatError(() => readNifti(f), f, /truncated NIfTI header: 200 of 348/);
  });
  it('truncated data', () => {
    const f = put('short-data.nii', good().subarray(0, 352 + 47));
    expectFormatError(() => readNifti(f), f, /truncated image data/);
  });
  it('truncated .nii.gz', () => {
    const gz = gzipSync(good());
    const f = put('short.nii.gz', gz.subarray(0, gz.length - 20));
    expectFormatError(() => readNifti(f), f, /gzip/);
  });
  it('bad magic', () => {
    const f = put(
      'bad-magic.nii',
      mutate((_, b) => b.set([0x6e, 0x2d, 0x31, 0], 344)),
    );
    expectFormatError(() => readNifti(f), f, /bad NIfTI magic/);
  });
  it('bad sizeof_hdr (not NIfTI-1 in either byte order), and NIfTI-2', () => {
    const f = put(
      'bad-size.nii',
      mutate((dv) => dv.setInt32(0, 349, true)),
    );
    expectFormatError(() => readNifti(f), f, /sizeof_hdr/);
    const f2 = put(
      'nifti2.nii',
      mutate((dv) => dv.setInt32(0, 540, true)),
    );
    expectFormatError(() => readNifti(f2), f2, /NIfTI-2/);
  });
  it('bad gzip: garbage after the gzip magic', () => {
    const f = put('garbage.nii.gz', new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]));
    expectFormatError(() => readNifti(f), f, /corrupt gzip/);
  });
  it('bad gzip: one flipped bit in the compressed stream is caught by the CRC', () => {
    const gz = gzipSync(handNifti({ dims: [16, 16, 16], dtype: 'float32', values: Array.from({ length: 4096 }, (_, i) => Math.sin(i)) }), {
      level: 0,
    });
    gz[gz.length - 100]! ^= 0x04; // stored block: the stream still parses, only the CRC can tell
    const f = put('flipped.nii.gz', gz);
    expectFormatError(() => readNifti(f), f, /CRC-32/);
  });
  it('zero and negative dims, bad dim[0], 5D', () => {
    expectFormatError(
      () =>
        decodeNifti(
          mutate((dv) => dv.setInt16(44, 0, true)),
          'zero.nii',
        ),
      'zero.nii',
      /dim\[2\] = 0 is not positive/,
    );
    expectFormatError(
      () =>
        decodeNifti(
          mutate((dv) => dv.setInt16(42, -4, true)),
          'neg.nii',
        ),
      'neg.nii',
      /not positive/,
    );
    expectFormatError(
      () =>
        decodeNifti(
          mutate((dv) => dv.setInt16(40, 9, true)),
          'd0.nii',
        ),
      'd0.nii',
      /dim\[0\]/,
    );
    expectFormatError(() => decodeNifti(handNifti({ dims: [2, 1, 1, 1, 2], values: [1, 2, 3, 4] }), '5d.nii'), '5d.nii', /not supported/);
  });
  it('unsupported datatype and bitpix mismatch', () => {
    expectFormatError(
      () =>
        decodeNifti(
          mutate((dv) => dv.setInt16(70, 128, true)),
          'rgb.nii',
        ),
      'rgb.nii',
      /unsupported datatype 128 \(rgb24\)/,
    );
    expectFormatError(
      () =>
        decodeNifti(
          mutate((dv) => dv.setInt16(70, 999, true)),
          'dt.nii',
        ),
      'dt.nii',
      /unsupported datatype 999/,
    );
    expectFormatError(
      () =>
        decodeNifti(
          mutate((dv) => dv.setInt16(72, 8, true)),
          'bitpix.nii',
        ),
      'bitpix.nii',
      /bitpix/,
    );
  });
  it('vox_offset inside the header or fractional; NaN sform; zero voxel size', () => {
    expectFormatError(
      () =>
        decodeNifti(
          mutate((dv) => dv.setFloat32(108, 100, true)),
          'vo.nii',
        ),
      'vo.nii',
      /vox_offset/,
    );
    expectFormatError(
      () =>
        decodeNifti(
          mutate((dv) => dv.setFloat32(108, 352.5, true)),
          'vo2.nii',
        ),
      'vo2.nii',
      /vox_offset/,
    );
    expectFormatError(
      () =>
        decodeNifti(
          mutate((dv) => (dv.setInt16(254, 1, true), dv.setFloat32(284, NaN, true))),
          'nan.nii',
        ),
      'nan.nii',
      /sform/,
    );
    expectFormatError(
      () =>
        decodeNifti(
          mutate((dv) => dv.setFloat32(80, 0, true)),
          'pix.nii',
        ),
      'pix.nii',
      /pixdim\[1\]/,
    );
  });
  it('a .hdr whose .img is missing', () => {
    const f = put('lonely.hdr', handNifti({ dims: [2, 2, 1], split: true, values: [] }));
    expectFormatError(() => readNifti(f), f, /\.img/);
  });
});

describe('NIfTI fuzz', () => {
  // Random damage to small valid files must end as a FileFormatError naming the file, or as a volume
  // that is internally consistent: never another exception, a hang, or an inconsistent result.
  const base = handNifti({
    dims: [4, 3, 2],
    pixdim: [1, 1, 2, 3],
    slope: 1.5,
    inter: 2,
    qformCode: 1,
    quatern: [0.1, 0.2, 0.3],
    values: Array.from({ length: 24 }, (_, i) => i * 11 - 50),
  });
  const bases = [
    { name: 'fuzz.nii', bytes: base },
    { name: 'fuzz.nii.gz', bytes: gzipSync(base) },
    {
      name: 'fuzz-be.nii',
      bytes: handNifti({
        le: false,
        dtype: 'float64',
        dims: [3, 3, 3],
        sformCode: 1,
        srow: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0],
        values: Array.from({ length: 27 }, (_, i) => i / 3),
      }),
    },
  ];

  it('600 random mutations and truncations: only FileFormatError or a consistent volume', () => {
    const rng = new Rng(20240501);
    let errors = 0;
    let ok = 0;
    for (let t = 0; t < 600; t++) {
      const { name, bytes } = bases[t % bases.length]!;
      let b = bytes.slice();
      const kind = rng.int(5);
      if (kind === 0)
        b = b.subarray(0, rng.int(b.length)); // truncate
      else if (kind === 1) {
        for (let m = 1 + rng.int(4); m > 0; m--) b[rng.int(b.length)] = rng.int(256); // random bytes anywhere
      } else if (kind === 2) {
        // header fields: dims, datatype, pixdim, vox_offset, scaling, codes, quaternion, magic
        const fields = [0, 40, 42, 44, 46, 48, 70, 72, 76, 80, 108, 112, 116, 252, 254, 256, 280, 344, 346];
        if (name.endsWith('.gz')) b[10 + rng.int(b.length - 10)] ^= 1 << rng.int(8);
        else b[fields[rng.int(fields.length)]! + rng.int(2)] = rng.int(256);
      } else if (kind === 3) {
        const nb = new Uint8Array(b.length + 1 + rng.int(64)); // extra trailing bytes are fine
        nb.set(b);
        b = nb;
      } else b[rng.int(Math.min(b.length, 348))] ^= 1 << rng.int(8); // single bit flip in the header
      try {
        const r = decodeNifti(b, name);
        ok++;
        expect(r.shape.every((d) => Number.isInteger(d) && d >= 1)).toBe(true);
        expect(r.data.length).toBe(r.shape[0] * r.shape[1] * r.shape[2]);
        expect(r.spacing.every((x) => Number.isFinite(x) && x > 0)).toBe(true);
        expect(r.affine.length).toBe(16);
        expect(r.affine.every(Number.isFinite)).toBe(true);
      } catch (e) {
        errors++;
        if (!(e instanceof FileFormatError)) throw new Error(`mutation ${t} (${kind}) of ${name} threw ${String(e)}`);
        expect(e.message).toContain(name);
        expect(e.message).not.toContain('\n');
      }
    }
    expect(errors).toBeGreaterThan(50);
    expect(ok).toBeGreaterThan(50);
  });
});

describe(`real IXI volumes${SHARED_SKIP}`, () => {
  const root = sharedData ?? '';
  it.skipIf(!sharedData)('IXI533 whole-head T1: 256×256×150 int16, 0.9375×0.9375×1.2 mm, max 114, 43.7% nonzero, PSR', () => {
    const r = readNifti(join(root, 'brain/ixi_t1/IXI533-Guys-1066-T1.nii.gz'));
    expect(r.shape).toEqual([256, 256, 150]);
    expect(r.datatype).toBe('int16');
    expect(r.spacing[0]).toBeCloseTo(0.9375, 4);
    expect(r.spacing[2]).toBeCloseTo(1.2, 4);
    let max = -Infinity;
    let nz = 0;
    for (const v of r.data) (max = Math.max(max, v)), (nz += v !== 0 ? 1 : 0);
    expect(max).toBe(114);
    expect(nz / r.data.length).toBeCloseTo(0.437, 3);
    // PSR: axis 0 runs posterior (−y), axis 1 superior (+z), axis 2 right (+x)
    expect(r.affine[4]!).toBeLessThan(-0.9);
    expect(r.affine[9]!).toBeGreaterThan(0.9);
    expect(r.affine[2]!).toBeGreaterThan(1.1);
  });
  it.skipIf(!sharedData)('skull-stripped float32 (sform) and N4 (qform only) volumes', () => {
    const a = readNifti(join(root, 'brain/ixi_t1_skullstripped/IXI057-HH-1342-T1.nii.gz'));
    expect([a.shape, a.datatype, a.affineSource]).toEqual([[256, 256, 150], 'float32', 'sform']);
    const b = readNifti(join(root, 'brain/ixi_t1_skullstripped_n4/IXI237-Guys-1049-T1.nii.gz'));
    expect([b.shape, b.datatype, b.affineSource]).toEqual([[256, 256, 150], 'float32', 'qform']);
    let max = -Infinity;
    for (const v of b.data) max = Math.max(max, v);
    expect(max).toBeCloseTo(1081, -1);
  });
  it.skipIf(!sharedData)('templates: MNI152 int16 182×218×182, ch2 uint8 181×217×181', () => {
    const m = readNifti(join(root, 'brain/templates/MNI152_T1_1mm_brain.nii.gz'));
    expect([m.shape, m.datatype]).toEqual([[182, 218, 182], 'int16']);
    const c2 = readNifti(join(root, 'brain/templates/ch2.nii.gz'));
    expect([c2.shape, c2.datatype]).toEqual([[181, 217, 181], 'uint8']);
  });
});
