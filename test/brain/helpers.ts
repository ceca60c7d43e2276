// Shared bits for the brain tests: temp folders, the real-data folder, and hand-built NIfTI-1 bytes
// (any byte order and datatype) so the reader is tested against files it did not write itself.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { writeNifti } from '../../src/data/nifti.ts';

export function tempDir(prefix = 'mf-brain-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** $MEDFORMER_SHARED_DATA (the shared `data/` folder), or undefined: tests that need it skip. */
export const sharedData: string | undefined = process.env.MEDFORMER_SHARED_DATA || undefined;
export const SHARED_SKIP = sharedData ? '' : ' (skipped: set MEDFORMER_SHARED_DATA to the shared data folder)';

export type DtypeName = 'uint8' | 'int8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32' | 'float64';
const CODES: Record<DtypeName, [number, number]> = {
  uint8: [2, 1],
  int8: [256, 1],
  int16: [4, 2],
  uint16: [512, 2],
  int32: [8, 4],
  uint32: [768, 4],
  float32: [16, 4],
  float64: [64, 8],
};

export interface HandHeader {
  le?: boolean;
  dtype?: DtypeName;
  dims: number[]; // dim[1..]
  pixdim?: number[]; // pixdim[0..3]
  slope?: number;
  inter?: number;
  voxOffset?: number;
  qformCode?: number;
  sformCode?: number;
  quatern?: [number, number, number];
  qoffset?: [number, number, number];
  srow?: number[];
  magic?: string;
  /** Stored (unscaled) values, written in `dtype` and byte order. */
  values: number[];
  /** Write the header only (for .hdr of a two-file pair) and return the payload separately. */
  split?: boolean;
}

/** A NIfTI-1 file image built field by field, independent of src/data/nifti.ts. */
export function handNifti(h: HandHeader): Uint8Array {
  const le = h.le ?? true;
  const [code, size] = CODES[h.dtype ?? 'int16'];
  const off = h.split ? 0 : (h.voxOffset ?? 352);
  const hdrLen = h.split ? 348 : off;
  const out = new Uint8Array(h.split ? 348 : off + h.values.length * size);
  const dv = new DataView(out.buffer);
  dv.setInt32(0, 348, le);
  dv.setInt16(40, h.dims.length, le);
  h.dims.forEach((d, i) => dv.setInt16(42 + 2 * i, d, le));
  for (let i = h.dims.length; i < 7; i++) dv.setInt16(42 + 2 * i, 1, le);
  dv.setInt16(70, code, le);
  dv.setInt16(72, size * 8, le);
  (h.pixdim ?? [1, 1, 1, 1]).forEach((p, i) => dv.setFloat32(76 + 4 * i, p, le));
  dv.setFloat32(108, h.voxOffset ?? (h.split ? 0 : 352), le);
  dv.setFloat32(112, h.slope ?? 0, le);
  dv.setFloat32(116, h.inter ?? 0, le);
  dv.setInt16(252, h.qformCode ?? 0, le);
  dv.setInt16(254, h.sformCode ?? 0, le);
  (h.quatern ?? [0, 0, 0]).forEach((q, i) => dv.setFloat32(256 + 4 * i, q, le));
  (h.qoffset ?? [0, 0, 0]).forEach((q, i) => dv.setFloat32(268 + 4 * i, q, le));
  (h.srow ?? []).forEach((s, i) => dv.setFloat32(280 + 4 * i, s, le));
  const magic = h.magic ?? (h.split ? 'ni1\0' : 'n+1\0');
  for (let i = 0; i < 4; i++) out[344 + i] = magic.charCodeAt(i);
  if (!h.split) writeValues(dv, hdrLen, h.dtype ?? 'int16', h.values, le);
  return out;
}

/** The raw payload alone (for the .img of a two-file pair). */
export function handPayload(dtype: DtypeName, values: number[], le = true): Uint8Array {
  const out = new Uint8Array(values.length * CODES[dtype][1]);
  writeValues(new DataView(out.buffer), 0, dtype, values, le);
  return out;
}

function writeValues(dv: DataView, off: number, dtype: DtypeName, values: number[], le: boolean): void {
  const size = CODES[dtype][1];
  values.forEach((v, i) => {
    const o = off + i * size;
    switch (dtype) {
      case 'uint8':
        return dv.setUint8(o, v);
      case 'int8':
        return dv.setInt8(o, v);
      case 'int16':
        return dv.setInt16(o, v, le);
      case 'uint16':
        return dv.setUint16(o, v, le);
      case 'int32':
        return dv.setInt32(o, v, le);
      case 'uint32':
        return dv.setUint32(o, v, le);
      case 'float32':
        return dv.setFloat32(o, v, le);
      case 'float64':
        return dv.setFloat64(o, v, le);
    }
  });
}

/** A smooth test volume with a bright ellipsoid "brain" in a zero background, x fastest. */
export function blobVolume(
  shape: [number, number, number],
  centre: [number, number, number],
  radii: [number, number, number],
  peak = 1000,
): Float32Array {
  const [X, Y, Z] = shape;
  const out = new Float32Array(X * Y * Z);
  let i = 0;
  for (let z = 0; z < Z; z++) {
    for (let y = 0; y < Y; y++) {
      for (let x = 0; x < X; x++, i++) {
        const r = ((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((z - centre[2]) / radii[2]) ** 2;
        if (r <= 1) out[i] = peak * (0.5 + 0.5 * Math.cos(Math.PI * r)) + 10 + ((x * 7 + y * 13 + z * 17) % 5);
      }
    }
  }
  return out;
}

/** A brain-like n³ volume: an ellipsoid of intensity shells in a zero background, ventricles growing with age. */
export function brainLike(n: number, age: number, wobble = 0): Float32Array {
  const v = new Float32Array(n * n * n);
  const c = (n - 1) / 2;
  let i = 0;
  for (let z = 0; z < n; z++) {
    for (let y = 0; y < n; y++) {
      for (let x = 0; x < n; x++, i++) {
        const dx = (x - c) / (0.36 * n);
        const dy = (y - c) / (0.42 * n);
        const dz = (z - c) / (0.34 * n);
        const r = Math.sqrt(dx * dx + dy * dy + dz * dz);
        if (r > 1) continue;
        const vent = Math.hypot(dx / 0.3, dy / 0.45, dz / 0.3) < 0.3 + age / 200 ? 0.15 : 0;
        v[i] = Math.max(0.05, 0.55 + 0.3 * Math.cos(9 * r + 2 * Math.sin(3 * dx + wobble)) - vent);
      }
    }
  }
  return v;
}

/**
 * A synthetic IXI folder at `data`: 10 brain-like subjects (IXI100..IXI109, ages 22..81), each a T1 and a T2
 * NIfTI, and ixi_subjects.csv. Returns `data`.
 */
export function syntheticIxiFolder(data: string): string {
  mkdirSync(data, { recursive: true });
  const ages = [22, 31, 38, 44, 52, 57, 63, 69, 75, 81];
  const rows = ['ixi_id,sex,age_years,file'];
  ages.forEach((age, i) => {
    const id = `IXI${String(100 + i).padStart(3, '0')}`;
    const file = `${id}-Synth-T1.nii.gz`;
    // 32³ at 5 mm: a 160 mm field of view, as the preprocessing expects of a brain.
    const t1 = brainLike(32, age, i).map((v) => v * 1000);
    writeNifti(join(data, file), { shape: [32, 32, 32], data: t1, spacing: [5, 5, 5] });
    // A T2 beside it (inverted contrast inside the brain), for the multi-channel study.
    writeNifti(join(data, file.replace('-T1.', '-T2.')), {
      shape: [32, 32, 32],
      data: t1.map((v) => (v > 0 ? 1200 - v : 0)),
      spacing: [5, 5, 5],
    });
    rows.push(`${100 + i},${i % 2 ? 'M' : 'F'},${age},${file}`);
  });
  writeFileSync(join(data, 'ixi_subjects.csv'), `${rows.join('\n')}\n`);
  return data;
}
