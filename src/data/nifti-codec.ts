// NIfTI-1 images in memory, strictly: bytes in, a float32 volume out, and back. A brain volume that is cut short,
// mislabelled or corrupt must fail here with one FileFormatError line naming the file, never reach preprocessing as
// garbage. No Node module here: `mf` reads files through nifti.ts, the page of `mf serve` hands in dropped bytes.
//
// Read: single-file `.nii` (magic 'n+1'), gzip-compressed `.nii.gz` (detected by the gzip magic, not the
// name), and two-file `.hdr`/`.img` pairs (magic 'ni1'; nifti.ts finds the .img); either byte order (told apart by
// sizeof_hdr = 348); uint8/int8/int16/uint16/int32/uint32/float32/float64; scl_slope/scl_inter applied; up to 4
// dims (the first volume of a 4D series is taken and a note says so). Voxels come back as float32, x fastest
// (NIfTI order).
//
// Write: float32 little-endian single-file NIfTI-1, with both sform (the affine as given) and qform (its rotation
// as a quaternion, when it is a rotation) set so every viewer places it the same way. Units are taken to be mm, as
// nibabel does (xyzt_units is not applied).
// Over 400 lines because the NIfTI-1 header is one format read and written in one place; splitting reader
// and writer would separate the two halves of each field's layout.

import { FileFormatError } from '../errors.ts';
import { gunzipBounded } from '../util/inflate.ts';

export type NiftiDatatype = 'uint8' | 'int8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32' | 'float64';

export type Vec3 = [number, number, number];

/** A 3D scalar volume: x fastest, i.e. voxel (i, j, k) is data[i + X*(j + Y*k)]. */
export interface Volume {
  shape: Vec3;
  data: Float32Array;
  /** Voxel size in mm along each array axis. */
  spacing: Vec3;
  /** Row-major 4×4 voxel-to-world (mm) matrix: world = A · [i, j, k, 1]. */
  affine: number[];
}

export interface NiftiVolume extends Volume {
  /** The on-disk datatype before scaling and conversion to float32. */
  datatype: NiftiDatatype;
  file: string;
  /** Which affine was used: 'sform', 'qform', or 'pixdim' (neither code set: diagonal spacing). */
  affineSource: 'sform' | 'qform' | 'pixdim';
  /** Things worth telling the user that are not errors (e.g. only the first of 12 volumes was read). */
  notes: string[];
}

const HDR_SIZE = 348;
const VOX_OFFSET = 352; // header + the 4-byte extension flag, as every single-file writer uses

const DTYPES: Record<number, { name: NiftiDatatype; size: number }> = {
  2: { name: 'uint8', size: 1 },
  4: { name: 'int16', size: 2 },
  8: { name: 'int32', size: 4 },
  16: { name: 'float32', size: 4 },
  64: { name: 'float64', size: 8 },
  256: { name: 'int8', size: 1 },
  512: { name: 'uint16', size: 2 },
  768: { name: 'uint32', size: 4 },
};
// Codes that are valid NIfTI but not scalar numbers we can turn into intensities.
const KNOWN_UNSUPPORTED: Record<number, string> = {
  1: 'binary',
  32: 'complex64',
  128: 'rgb24',
  1024: 'int64',
  1280: 'uint64',
  1536: 'float128',
  1792: 'complex128',
  2048: 'complex256',
  2304: 'rgba32',
};

const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const HINT = 're-export it (e.g. nibabel/FSL/ITK) or copy an intact copy';

export function fail(file: string, what: string, hint = HINT): never {
  throw new FileFormatError(`${file}: ${what}`.replace(/\s+/g, ' '), hint);
}

// ---------------------------------------------------------------------------------------------
// gzip

export const isGzip = (b: Uint8Array): boolean => b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;

/** The most an image may inflate to: one typed array's worth. */
const MAX_IMAGE_BYTES = 2 ** 31 - 1;
/** A two-file pair's .hdr: the header, its extension flag and up to 1 MiB of extensions. */
const MAX_HDR_FILE_BYTES = VOX_OFFSET + 1024 * 1024;
const GZIP_HINT = 'the .gz file is corrupt or cut short; re-download it or re-compress with gzip';

/**
 * gunzip a NIfTI image (or a two-file pair's header) with a cap from its own header: the first 348 bytes out give
 * vox_offset and the voxel count, and not one piece more than that is inflated. A header that does not parse is
 * reported as soon as it is out. CRC-32 and length are checked against the gzip trailer (see gunzipBounded).
 */
export function gunzipNifti(bytes: Uint8Array, file: string): Uint8Array {
  return gunzipBounded(bytes, {
    max: MAX_IMAGE_BYTES,
    maxWhat: `${MAX_IMAGE_BYTES} bytes, more than one image can hold in memory`,
    limitFromHead: (head) => {
      if (head.length < HDR_SIZE) return undefined;
      const h = parseHeader(head, file);
      if (h.magic === 'ni1') return { max: MAX_HDR_FILE_BYTES, what: `the ${MAX_HDR_FILE_BYTES} bytes a .hdr file may hold` };
      const max = imageLayout(h, file).end;
      return { max, what: `the ${max} bytes its header describes (vox_offset + every voxel)` };
    },
    fail: (what) => fail(file, what.startsWith('corrupt') ? what.replace(/deflate/, 'gzip') : what, GZIP_HINT),
  });
}

// ---------------------------------------------------------------------------------------------
// Header

interface Header {
  le: boolean;
  magic: 'n+1' | 'ni1';
  dim: number[]; // dim[0..7]
  datatype: number;
  bitpix: number;
  pixdim: number[]; // pixdim[0..7]
  voxOffset: number;
  sclSlope: number;
  sclInter: number;
  qformCode: number;
  sformCode: number;
  quatern: [number, number, number];
  qoffset: Vec3;
  srow: number[]; // 12 values, rows x, y, z
}

function parseHeader(bytes: Uint8Array, file: string): Header {
  if (bytes.length < HDR_SIZE) fail(file, `truncated NIfTI header: ${bytes.length} of ${HDR_SIZE} bytes`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, HDR_SIZE);
  let le: boolean;
  if (dv.getInt32(0, true) === HDR_SIZE) le = true;
  else if (dv.getInt32(0, false) === HDR_SIZE) le = false;
  else if (dv.getInt32(0, true) === 540 || dv.getInt32(0, false) === 540)
    fail(file, 'this is NIfTI-2, only NIfTI-1 is supported', 'convert it with nibabel or `fslchfiletype NIFTI_GZ`');
  else fail(file, `not a NIfTI-1 file: sizeof_hdr is ${dv.getInt32(0, true)}, expected 348`);
  const m = String.fromCharCode(bytes[344]!, bytes[345]!, bytes[346]!, bytes[347]!);
  if (m !== 'n+1\0' && m !== 'ni1\0')
    fail(
      file,
      `bad NIfTI magic ${JSON.stringify(m)}, expected "n+1\\0" or "ni1\\0" (an ANALYZE 7.5 file has no orientation and is not supported)`,
    );
  const i16 = (o: number) => dv.getInt16(o, le);
  const f32 = (o: number) => dv.getFloat32(o, le);
  const dim = Array.from({ length: 8 }, (_, i) => i16(40 + 2 * i));
  const pixdim = Array.from({ length: 8 }, (_, i) => f32(76 + 4 * i));
  return {
    le,
    magic: m === 'n+1\0' ? 'n+1' : 'ni1',
    dim,
    datatype: i16(70),
    bitpix: i16(72),
    pixdim,
    voxOffset: f32(108),
    sclSlope: f32(112),
    sclInter: f32(116),
    qformCode: i16(252),
    sformCode: i16(254),
    quatern: [f32(256), f32(260), f32(264)],
    qoffset: [f32(268), f32(272), f32(276)],
    srow: Array.from({ length: 12 }, (_, i) => f32(280 + 4 * i)),
  };
}

/** Voxel-to-world from the quaternion form (NIfTI-1 "method 2"), as nifti1_io computes it. */
function qformAffine(b: number, c: number, d: number, spacing: Vec3, qfac: number, off: Vec3): number[] {
  let a = 1 - (b * b + c * c + d * d);
  if (a < 1e-7) {
    // b,c,d describe a 180° rotation that rounding pushed past unit length: renormalise, a = 0.
    const s = 1 / Math.sqrt(b * b + c * c + d * d);
    b *= s;
    c *= s;
    d *= s;
    a = 0;
  } else a = Math.sqrt(a);
  const R = [
    [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
    [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
    [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
  ];
  const s = [spacing[0], spacing[1], spacing[2] * qfac];
  const A: number[] = [];
  for (let r = 0; r < 3; r++) A.push(R[r]![0]! * s[0]!, R[r]![1]! * s[1]!, R[r]![2]! * s[2]!, off[r]!);
  A.push(0, 0, 0, 1);
  return A;
}

// ---------------------------------------------------------------------------------------------
// Reading

interface ImageLayout {
  shape: Vec3;
  /** Volumes in a 4D series (only the first is read). */
  nt: number;
  dt: { name: NiftiDatatype; size: number };
  /** vox_offset: where the voxels start. */
  off: number;
  /** Bytes of the first volume. */
  need: number;
  /** Where the voxels of every volume end: what an uncompressed single-file image holds. */
  end: number;
}

/** Dimensions, datatype and where the voxels lie, checked; used to bound a gzip stream before it is inflated. */
function imageLayout(h: Header, file: string): ImageLayout {
  const nd = h.dim[0]!;
  if (nd < 1 || nd > 7) fail(file, `dim[0] = ${nd} is not a number of dimensions in 1..7`);
  const dims = h.dim.slice(1, nd + 1);
  for (let i = 0; i < dims.length; i++) {
    if (dims[i]! < 1) fail(file, `dim[${i + 1}] = ${dims[i]} is not positive`);
  }
  if (dims.slice(4).some((d) => d > 1))
    fail(file, `a ${nd}D image (dims ${dims.join('×')}) is not supported, only up to 4D`, 'extract one 3D volume, e.g. with fslroi');
  const shape: Vec3 = [dims[0] ?? 1, dims[1] ?? 1, dims[2] ?? 1];
  const nt = dims[3] ?? 1;
  const dt = DTYPES[h.datatype];
  if (!dt) {
    const what = KNOWN_UNSUPPORTED[h.datatype];
    return fail(
      file,
      `unsupported datatype ${h.datatype}${what ? ` (${what})` : ''}`,
      'convert it to int16 or float32, e.g. `fslmaths in out -odt float`',
    );
  }
  if (h.bitpix !== dt.size * 8) fail(file, `bitpix ${h.bitpix} does not match datatype ${dt.name} (${dt.size * 8} bits)`);
  const off = h.voxOffset;
  if (!Number.isInteger(off) || off < 0 || (h.magic === 'n+1' && off < HDR_SIZE)) {
    fail(file, `vox_offset ${off} is not a valid byte offset${h.magic === 'n+1' ? ' past the 348-byte header' : ''}`);
  }
  const need = shape[0] * shape[1] * shape[2] * dt.size;
  if (need > MAX_IMAGE_BYTES) fail(file, `a ${shape.join('×')} ${dt.name} volume is ${need} bytes, more than one image can hold in memory`);
  return { shape, nt, dt, off, need, end: off + need * nt };
}

/** The 3×3 part of the sform is usable: finite and of full rank (a zero or rank-deficient matrix maps no volume). */
function sformUsable(srow: readonly number[]): boolean {
  if (!srow.every(Number.isFinite)) return false;
  const m = (r: number, c: number) => srow[4 * r + c]!;
  const det =
    m(0, 0) * (m(1, 1) * m(2, 2) - m(1, 2) * m(2, 1)) -
    m(0, 1) * (m(1, 0) * m(2, 2) - m(1, 2) * m(2, 0)) +
    m(0, 2) * (m(1, 0) * m(2, 1) - m(1, 1) * m(2, 0));
  const norms = [0, 1, 2].map((c) => Math.hypot(m(0, c), m(1, c), m(2, c)));
  // Relative to the column lengths, so the test does not depend on the voxel size in mm.
  return norms.every((x) => x > 0) && Math.abs(det) > 1e-6 * norms[0]! * norms[1]! * norms[2]!;
}

/**
 * Decodes a NIfTI-1 image held in memory (gzip or not). `imgBytes` is the separate .img payload of a
 * two-file ('ni1') pair; readNifti finds it. Exposed for tests that build or mutate files in memory.
 */
export function decodeNifti(bytesIn: Uint8Array, file: string, imgBytes?: Uint8Array): NiftiVolume {
  const bytes = isGzip(bytesIn) ? gunzipNifti(bytesIn, file) : bytesIn;
  const h = parseHeader(bytes, file);
  const notes: string[] = [];
  const { shape, nt, dt, off, need } = imageLayout(h, file);
  if (nt > 1) notes.push(`${file} is 4D with ${nt} volumes; only the first was read`);

  // Spacing: |pixdim| of each spatial axis; axes of length 1 (2D images) may carry 0 and get 1 mm.
  const spacing = [0, 1, 2].map((i) => {
    const p = Math.abs(h.pixdim[i + 1]!);
    if (Number.isFinite(p) && p > 0) return p;
    if (shape[i] === 1) return 1;
    return fail(file, `pixdim[${i + 1}] = ${h.pixdim[i + 1]} is not a valid voxel size`);
  }) as Vec3;

  let affine: number[];
  let affineSource: NiftiVolume['affineSource'];
  const sformOk = h.sformCode > 0 && sformUsable(h.srow);
  if (h.sformCode > 0 && !sformOk) {
    const why = h.srow.every(Number.isFinite) ? 'is zero or singular (rank < 3)' : 'holds non-finite numbers';
    if (h.qformCode <= 0) {
      fail(file, `sform (srow_x/y/z) ${why} and there is no qform to fall back to`, 'fix the header, e.g. with nibabel set_sform');
    }
    notes.push(`${file}: sform ${why}; the qform was used instead`);
  }
  if (sformOk) {
    affine = [...h.srow, 0, 0, 0, 1];
    affineSource = 'sform';
  } else if (h.qformCode > 0) {
    if (![...h.quatern, ...h.qoffset].every(Number.isFinite)) fail(file, 'qform (quatern/qoffset) holds non-finite numbers');
    affine = qformAffine(...h.quatern, spacing, h.pixdim[0]! < 0 ? -1 : 1, h.qoffset);
    affineSource = 'qform';
  } else {
    affine = [spacing[0], 0, 0, 0, 0, spacing[1], 0, 0, 0, 0, spacing[2], 0, 0, 0, 0, 1];
    affineSource = 'pixdim';
  }

  // The voxel payload: after the header in the same file ('n+1'), or in the .img file ('ni1').
  const src = h.magic === 'n+1' ? bytes : imgBytes;
  if (!src) fail(file, 'two-file NIfTI (magic "ni1"): its .img file was not given', 'keep the .hdr and .img side by side');
  if (src.length < off + need) {
    fail(
      file,
      `truncated image data: ${shape.join('×')} ${dt.name} needs ${need} bytes from offset ${off}, file has ${Math.max(0, src.length - off)}`,
    );
  }

  // scl_slope 0 (or garbage) means "not scaled", per the standard; the intercept then goes unused too.
  const scaled = Number.isFinite(h.sclSlope) && h.sclSlope !== 0;
  const slope = scaled ? h.sclSlope : 1;
  const inter = scaled && Number.isFinite(h.sclInter) ? h.sclInter : 0;
  const n = shape[0] * shape[1] * shape[2];
  const data = convert(src, off, n, dt, h.le);
  if (slope !== 1 || inter !== 0) for (let i = 0; i < n; i++) data[i] = data[i]! * slope + inter;
  // A NaN or ±Inf voxel would poison every mean and every loss downstream: refuse it here, where the file is known.
  for (let i = 0; i < n; i++) {
    if (Number.isFinite(data[i]!)) continue;
    const cause = slope !== 1 || inter !== 0 ? ` after scl_slope ${slope} and scl_inter ${inter}` : '';
    fail(file, `voxel ${i} is ${data[i]}${cause}`, 'fix the scaling (scl_slope/scl_inter) or the stored values');
  }
  return { shape, data, spacing, affine, datatype: dt.name, file, affineSource, notes };
}

/** Raw voxels to float32. Same-endian data goes through a typed-array view of an aligned copy (fast). */
function convert(src: Uint8Array, off: number, n: number, dt: { name: NiftiDatatype; size: number }, le: boolean): Float32Array {
  const { name: type, size } = dt;
  // An explicit copy: aligned for typed views, detached from the (maybe huge) file buffer. Not src.slice():
  // on a Node Buffer that is a view into a shared pool, and `.buffer` would start elsewhere.
  const raw = new Uint8Array(n * size);
  raw.set(src.subarray(off, off + n * size));
  if (type === 'float32' && le === HOST_LE) return new Float32Array(raw.buffer);
  const out = new Float32Array(n);
  if (le === HOST_LE) {
    const view =
      type === 'uint8'
        ? raw
        : type === 'int8'
          ? new Int8Array(raw.buffer)
          : type === 'int16'
            ? new Int16Array(raw.buffer)
            : type === 'uint16'
              ? new Uint16Array(raw.buffer)
              : type === 'int32'
                ? new Int32Array(raw.buffer)
                : type === 'uint32'
                  ? new Uint32Array(raw.buffer)
                  : new Float64Array(raw.buffer);
    for (let i = 0; i < n; i++) out[i] = view[i]!;
    return out;
  }
  const dv = new DataView(raw.buffer);
  const get: (o: number) => number =
    type === 'uint8'
      ? (o) => dv.getUint8(o)
      : type === 'int8'
        ? (o) => dv.getInt8(o)
        : type === 'int16'
          ? (o) => dv.getInt16(o, le)
          : type === 'uint16'
            ? (o) => dv.getUint16(o, le)
            : type === 'int32'
              ? (o) => dv.getInt32(o, le)
              : type === 'uint32'
                ? (o) => dv.getUint32(o, le)
                : type === 'float32'
                  ? (o) => dv.getFloat32(o, le)
                  : (o) => dv.getFloat64(o, le);
  for (let i = 0; i < n; i++) out[i] = get(i * size);
  return out;
}

/**
 * For a two-file pair's header (magic 'ni1', already gunzipped): the bytes its .img must hold (every volume, from
 * vox_offset); null for a single-file image, whose voxels follow the header.
 */
export function pairedImageEnd(head: Uint8Array, file: string): number | null {
  if (!(head.length >= HDR_SIZE && head[344] === 0x6e && head[345] === 0x69 && head[346] === 0x31)) return null;
  return imageLayout(parseHeader(head, file), file).end;
}

/** A two-file pair's .img bytes, gunzipped when they are gzip, bounded by the `end` its header `file` describes. */
export function unpackPairedImage(bytes: Uint8Array, imgFile: string, end: number, file: string): Uint8Array {
  if (!isGzip(bytes)) return bytes;
  return gunzipBounded(bytes, { max: end, maxWhat: `the ${end} bytes ${file} describes`, fail: (what) => fail(imgFile, what, GZIP_HINT) });
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface WriteOptions {
  spacing?: Vec3;
  /** Row-major 4×4; default: diagonal spacing, origin 0. */
  affine?: readonly number[];
  /** Up to 79 ASCII characters stored in the header's descrip field. */
  description?: string;
}

/** Quaternion (b, c, d), qfac for a rotation-times-scale 3×3 (row-major, 9 values); null if it is not one. */
function toQuaternion(M: readonly number[]): { b: number; c: number; d: number; qfac: number } | null {
  const col = (j: number) => [M[j]!, M[3 + j]!, M[6 + j]!];
  const cols = [col(0), col(1), col(2)];
  const spacing = cols.map((c) => Math.hypot(c[0]!, c[1]!, c[2]!)) as Vec3;
  if (spacing.some((s) => !(s > 0))) return null;
  const R = cols.map((c, j) => c.map((v) => v / spacing[j]!)); // R[j] is column j
  const det =
    R[0]![0]! * (R[1]![1]! * R[2]![2]! - R[2]![1]! * R[1]![2]!) -
    R[1]![0]! * (R[0]![1]! * R[2]![2]! - R[2]![1]! * R[0]![2]!) +
    R[2]![0]! * (R[0]![1]! * R[1]![2]! - R[1]![1]! * R[0]![2]!);
  const qfac = det < 0 ? -1 : 1;
  if (qfac < 0) R[2] = R[2]!.map((v) => -v); // a reflection is stored as qfac = -1 on the third axis
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      const dot = R[i]![0]! * R[j]![0]! + R[i]![1]! * R[j]![1]! + R[i]![2]! * R[j]![2]!;
      if (Math.abs(dot - (i === j ? 1 : 0)) > 1e-4) return null; // sheared: only sform can hold it
    }
  }
  const r = (row: number, c: number) => R[c - 1]![row - 1]!; // 1-based r(row, col) as in nifti1_io
  let a = 1 + r(1, 1) + r(2, 2) + r(3, 3);
  let b: number, c: number, d: number;
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a);
    b = (0.25 * (r(3, 2) - r(2, 3))) / a;
    c = (0.25 * (r(1, 3) - r(3, 1))) / a;
    d = (0.25 * (r(2, 1) - r(1, 2))) / a;
  } else {
    const xd = 1 + r(1, 1) - (r(2, 2) + r(3, 3));
    const yd = 1 + r(2, 2) - (r(1, 1) + r(3, 3));
    const zd = 1 + r(3, 3) - (r(1, 1) + r(2, 2));
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd);
      c = (0.25 * (r(1, 2) + r(2, 1))) / b;
      d = (0.25 * (r(1, 3) + r(3, 1))) / b;
      a = (0.25 * (r(3, 2) - r(2, 3))) / b;
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd);
      b = (0.25 * (r(1, 2) + r(2, 1))) / c;
      d = (0.25 * (r(2, 3) + r(3, 2))) / c;
      a = (0.25 * (r(1, 3) - r(3, 1))) / c;
    } else {
      d = 0.5 * Math.sqrt(zd);
      b = (0.25 * (r(1, 3) + r(3, 1))) / d;
      c = (0.25 * (r(2, 3) + r(3, 2))) / d;
      a = (0.25 * (r(2, 1) - r(1, 2))) / d;
    }
    if (a < 0) {
      b = -b;
      c = -c;
      d = -d;
    }
  }
  return { b, c, d, qfac };
}

/** A float32 little-endian single-file NIfTI-1 image (uncompressed bytes). */
export function encodeNifti(vol: { shape: readonly number[]; data: Float32Array }, opts: WriteOptions = {}): Uint8Array {
  const [X, Y, Z] = vol.shape;
  if (vol.shape.length !== 3 || ![X, Y, Z].every((d) => Number.isInteger(d) && d! >= 1 && d! <= 32767)) {
    throw new FileFormatError(`cannot write a NIfTI volume of shape [${vol.shape.join(', ')}]`, 'give 3 dims of 1..32767');
  }
  const n = X! * Y! * Z!;
  if (vol.data.length !== n) throw new FileFormatError(`cannot write NIfTI: ${vol.data.length} values for shape ${X}×${Y}×${Z}`);
  const spacing = opts.spacing ?? [1, 1, 1];
  const affine = opts.affine ?? [spacing[0], 0, 0, 0, 0, spacing[1], 0, 0, 0, 0, spacing[2], 0, 0, 0, 0, 1];
  if (affine.length !== 16 || !affine.every(Number.isFinite))
    throw new FileFormatError('cannot write NIfTI: the affine must be 16 finite numbers (row-major 4×4)');

  const out = new Uint8Array(VOX_OFFSET + n * 4);
  const dv = new DataView(out.buffer);
  dv.setInt32(0, HDR_SIZE, true);
  out[39] = 0; // dim_info
  [3, X!, Y!, Z!, 1, 1, 1, 1].forEach((d, i) => dv.setInt16(40 + 2 * i, d, true));
  dv.setInt16(70, 16, true); // float32
  dv.setInt16(72, 32, true);
  const q = toQuaternion([affine[0]!, affine[1]!, affine[2]!, affine[4]!, affine[5]!, affine[6]!, affine[8]!, affine[9]!, affine[10]!]);
  // pixdim = the affine's column lengths, so a reader using either the affine or pixdim sees one voxel size.
  const pix = [0, 1, 2].map((j) => Math.hypot(affine[j]!, affine[4 + j]!, affine[8 + j]!) || spacing[j]!);
  [q ? q.qfac : 1, pix[0], pix[1], pix[2], 1, 1, 1, 1].forEach((p, i) => dv.setFloat32(76 + 4 * i, p, true));
  dv.setFloat32(108, VOX_OFFSET, true);
  dv.setFloat32(112, 1, true); // scl_slope: stored values are the intensities
  dv.setFloat32(116, 0, true);
  out[123] = 2; // xyzt_units: mm
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = vol.data[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo <= hi) {
    dv.setFloat32(124, hi, true); // cal_max/cal_min: a viewer's initial window
    dv.setFloat32(128, lo, true);
  }
  const desc = (opts.description ?? 'medformer').replace(/[^\x20-\x7e]/g, '?').slice(0, 79);
  for (let i = 0; i < desc.length; i++) out[148 + i] = desc.charCodeAt(i);
  dv.setInt16(252, q ? 1 : 0, true); // qform_code: scanner-anat
  dv.setInt16(254, 1, true); // sform_code: scanner-anat
  if (q) {
    dv.setFloat32(256, q.b, true);
    dv.setFloat32(260, q.c, true);
    dv.setFloat32(264, q.d, true);
  }
  dv.setFloat32(268, affine[3]!, true);
  dv.setFloat32(272, affine[7]!, true);
  dv.setFloat32(276, affine[11]!, true);
  for (let i = 0; i < 12; i++) dv.setFloat32(280 + 4 * i, affine[i]!, true);
  out.set([0x6e, 0x2b, 0x31, 0x00], 344); // 'n+1\0'
  // bytes 348..351: extension flag 0 (no extensions)
  if (HOST_LE) out.set(new Uint8Array(vol.data.buffer, vol.data.byteOffset, n * 4), VOX_OFFSET);
  else for (let i = 0; i < n; i++) dv.setFloat32(VOX_OFFSET + 4 * i, vol.data[i]!, true);
  return out;
}
