// NIfTI-1 files: reading (`.nii`, `.nii.gz`, `.hdr` + `.img`/`.img.gz`) and writing (float32, `.nii` or `.nii.gz`
// when the name says so). The format itself, bytes in and out, is nifti-codec.ts (no Node there: the page of
// `mf serve` decodes dropped volumes with it); this module reads and writes the files.
import { existsSync } from 'node:fs';
import { gzipSync } from 'fflate';
import { crc32 } from '../util/crc32.ts';
import { MAX_BINARY_BYTES, readRegularFile, writeFileAtomic } from '../util/files.ts';
import {
  decodeNifti,
  encodeNifti,
  fail,
  gunzipNifti,
  isGzip,
  type NiftiVolume,
  pairedImageEnd,
  unpackPairedImage,
  type Vec3,
  type WriteOptions,
} from './nifti-codec.ts';

export { decodeNifti, encodeNifti, isGzip };
export type { NiftiDatatype, NiftiVolume, Vec3, Volume, WriteOptions } from './nifti-codec.ts';
export { crc32 };

function readBytes(file: string): Uint8Array {
  return readRegularFile(file, { what: 'a NIfTI image', fix: 'check the path', maxBytes: MAX_BINARY_BYTES });
}

/** Reads a `.nii`, `.nii.gz` or `.hdr` (+ `.img`/`.img.gz`) file into a float32 volume. */
export function readNifti(file: string): NiftiVolume {
  const bytes = readBytes(file);
  let img: Uint8Array | undefined;
  const head = isGzip(bytes) ? gunzipNifti(bytes, file) : bytes;
  const end = pairedImageEnd(head, file);
  if (end !== null) {
    // 'ni1': the voxels live in the sibling .img (possibly gzipped), bounded by what the header describes.
    const base = file.replace(/\.hdr(\.gz)?$/i, '');
    const imgFile = [`${base}.img`, `${base}.img.gz`].find((f) => f !== file && existsSync(f));
    if (!imgFile) fail(file, `two-file NIfTI: no ${base}.img(.gz) beside it`, 'keep the .hdr and .img side by side');
    img = unpackPairedImage(readBytes(imgFile), imgFile, end, file);
  }
  return decodeNifti(head, file, img);
}

/**
 * Writes a float32 NIfTI-1 file atomically; gzip-compressed when the name ends in `.gz`.
 * Spacing and affine come from `opts`, else from `vol` when it carries them, else 1 mm identity.
 */
export function writeNifti(
  file: string,
  vol: { shape: readonly number[]; data: Float32Array; spacing?: Vec3; affine?: readonly number[] },
  opts: WriteOptions = {},
): void {
  const bytes = encodeNifti(vol, {
    spacing: opts.spacing ?? vol.spacing,
    affine: opts.affine ?? vol.affine,
    description: opts.description,
  });
  // Level 1: NIfTI floats barely compress better at 9, and 9 is several times slower.
  writeFileAtomic(file, /\.gz$/i.test(file) ? gzipSync(bytes, { level: 1 }) : bytes);
}
