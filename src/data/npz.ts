// Reading and writing NumPy .npz files (a zip of .npy arrays), strictly. A data file that is cut
// short or altered must fail here with a FileFormatError naming the file and array, never reach
// training as garbage. The zip directory is parsed here and only the requested entries are read
// from disk (positioned reads) and inflated with fflate, so loading one split of a large file
// neither reads nor inflates the others; every entry's CRC-32 is checked after inflating.
// Memory and time are bounded by what the file honestly holds: only a regular file is opened (a FIFO or a link to
// /dev/zero is refused, never read), and an entry is inflated as a stream capped at its declared size, lowered to
// the exact size its .npy header gives as soon as that header is out, so a zip bomb stops at the first piece past
// the cap instead of filling gigabytes.
// The .npy format itself (header, dtypes, payload checks) is npy-codec.ts, which imports no Node module.
import { crc32 } from '../util/crc32.ts';
import { closeSync, readSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { zipSync, type Zippable } from 'fflate';
import { MfError } from '../errors.ts';
import { openRegularFile } from '../util/files.ts';
import { inflateBounded } from '../util/inflate.ts';
import { encodeNpy, fail, type NpyArray, npySizeFromHead, parseNpy } from './npy-codec.ts';

export { encodeNpy, parseNpy };
export type { NpyArray, NpyData, NpyDType } from './npy-codec.ts';

// ---------------------------------------------------------------------------------------------
// zip

interface ZipEntry {
  name: string;
  flags: number;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

export { crc32 };

/** The largest entry read: one typed array's worth, and more than any MedMNIST+ file this project reads holds. */
const MAX_ENTRY_BYTES = 2 ** 31 - 1;

class ZipFile {
  private readonly fd: number;
  readonly length: number;

  constructor(readonly path: string) {
    // Positioned reads only, so no size limit here; each entry is bounded when it is extracted.
    const opened = openRegularFile(path, {
      what: 'an .npz data file',
      fix: 'point the data root at the folder holding the .npz files',
      maxBytes: Number.MAX_SAFE_INTEGER,
      missing: () =>
        fail(
          path,
          'file not found',
          undefined,
          'fetch it with `mf data download <key>` or `mf run --download`, or copy it into the data root',
        ),
    });
    this.fd = opened.fd;
    this.length = opened.size;
  }

  read(pos: number, len: number, what: string): Uint8Array {
    if (pos < 0 || len < 0 || pos + len > this.length) fail(this.path, `truncated: ${what} runs past the end of the file`);
    const buf = new Uint8Array(len);
    let got = 0;
    while (got < len) {
      const n = readSync(this.fd, buf, got, len - got, pos + got);
      if (n === 0) fail(this.path, `truncated while reading ${what}`);
      got += n;
    }
    return buf;
  }

  close(): void {
    closeSync(this.fd);
  }

  /** Entries from the central directory (with zip64 sizes and offsets resolved). */
  entries(): ZipEntry[] {
    const p = this.path;
    if (this.length < 22) fail(p, `not a zip/npz file (${this.length} bytes)`);
    const tailLen = Math.min(this.length, 22 + 0xffff);
    const tailStart = this.length - tailLen;
    const tail = this.read(tailStart, tailLen, 'end of central directory');
    const tv = new DataView(tail.buffer);
    let e = -1;
    for (let j = tailLen - 22; j >= 0; j--) {
      if (tv.getUint32(j, true) === 0x06054b50 && j + 22 + tv.getUint16(j + 20, true) === tailLen) {
        e = j;
        break;
      }
    }
    if (e < 0) fail(p, 'not a zip/npz file (no end-of-central-directory record; truncated or not an npz)');
    if (tv.getUint16(e + 4, true) !== 0 || tv.getUint16(e + 6, true) !== 0) fail(p, 'multi-disk zip archives are not supported');
    let count = tv.getUint16(e + 10, true);
    let cdSize = tv.getUint32(e + 12, true);
    let cdOffset = tv.getUint32(e + 16, true);
    const eocdPos = tailStart + e;
    let cdEnd = eocdPos;
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      // zip64: a locator sits just before the EOCD and points at the zip64 EOCD record.
      if (e < 20 || tv.getUint32(e - 20, true) !== 0x07064b50) fail(p, 'zip64 locator missing');
      const z64 = Number(tv.getBigUint64(e - 12, true));
      const rec = new DataView(this.read(z64, 56, 'zip64 end record').buffer);
      if (rec.getUint32(0, true) !== 0x06064b50) fail(p, 'bad zip64 end record');
      count = Number(rec.getBigUint64(32, true));
      cdSize = Number(rec.getBigUint64(40, true));
      cdOffset = Number(rec.getBigUint64(48, true));
      cdEnd = z64;
    }
    if (cdOffset + cdSize > cdEnd) fail(p, 'central directory overlaps its end record (corrupt)');
    if (count > cdSize / 46) fail(p, `central directory too small for ${count} entries (corrupt)`);
    const cd = this.read(cdOffset, cdSize, 'central directory');
    const cv = new DataView(cd.buffer);
    const out: ZipEntry[] = [];
    let o = 0;
    for (let k = 0; k < count; k++) {
      if (o + 46 > cdSize || cv.getUint32(o, true) !== 0x02014b50) fail(p, `central directory entry ${k} is corrupt`);
      const nameLen = cv.getUint16(o + 28, true);
      const extraLen = cv.getUint16(o + 30, true);
      const commentLen = cv.getUint16(o + 32, true);
      if (o + 46 + nameLen + extraLen + commentLen > cdSize) fail(p, `central directory entry ${k} runs past its end`);
      const name = new TextDecoder().decode(cd.subarray(o + 46, o + 46 + nameLen));
      const ent: ZipEntry = {
        name,
        flags: cv.getUint16(o + 8, true),
        method: cv.getUint16(o + 10, true),
        crc: cv.getUint32(o + 16, true),
        compressedSize: cv.getUint32(o + 20, true),
        size: cv.getUint32(o + 24, true),
        localOffset: cv.getUint32(o + 42, true),
      };
      // zip64 extra field (id 1) holds, in order, whichever of size/compressed/offset overflowed.
      let x = o + 46 + nameLen;
      const xEnd = x + extraLen;
      while (x + 4 <= xEnd) {
        const id = cv.getUint16(x, true);
        const len = cv.getUint16(x + 2, true);
        if (x + 4 + len > xEnd) fail(p, `bad extra field in entry '${name}'`);
        if (id === 1) {
          let f = x + 4;
          const take = (): number => {
            if (f + 8 > x + 4 + len) fail(p, `short zip64 field in entry '${name}'`);
            const v = Number(cv.getBigUint64(f, true));
            f += 8;
            return v;
          };
          if (ent.size === 0xffffffff) ent.size = take();
          if (ent.compressedSize === 0xffffffff) ent.compressedSize = take();
          if (ent.localOffset === 0xffffffff) ent.localOffset = take();
        }
        x += 4 + len;
      }
      out.push(ent);
      o += 46 + nameLen + extraLen + commentLen;
    }
    return out;
  }

  /**
   * Reads, inflates and CRC-checks one entry of at most `maxBytes` (declared, and in fact: the inflate stops at the
   * first piece past the declared size or the size its .npy header gives, whichever is smaller).
   */
  extract(ent: ZipEntry, key: string, maxBytes = MAX_ENTRY_BYTES): Uint8Array {
    const p = this.path;
    if (ent.flags & 1) fail(p, 'encrypted entries are not supported', key);
    if (!Number.isSafeInteger(ent.size) || ent.size > MAX_ENTRY_BYTES) {
      fail(p, `entry is ${ent.size} bytes, more than one array can hold in memory`, key, 'use a smaller image size');
    }
    if (ent.size > maxBytes) fail(p, `entry declares ${ent.size} bytes, more than the ${maxBytes} this array can need`, key);
    const lh = new DataView(this.read(ent.localOffset, 30, `local header of ${ent.name}`).buffer);
    if (lh.getUint32(0, true) !== 0x04034b50) fail(p, 'bad local file header', key);
    const start = ent.localOffset + 30 + lh.getUint16(26, true) + lh.getUint16(28, true);
    const comp = this.read(start, ent.compressedSize, `data of ${ent.name}`);
    let data: Uint8Array;
    if (ent.method === 0) {
      if (ent.compressedSize !== ent.size) fail(p, 'stored entry sizes disagree', key);
      data = comp;
    } else if (ent.method === 8) {
      // Deflate expands at most ~1032:1; a bigger claimed size is a corrupt directory, not a reason to allocate it.
      if (ent.size > ent.compressedSize * 1032 + 1024)
        fail(p, `claims ${ent.size} bytes from ${ent.compressedSize} compressed (corrupt)`, key);
      data = inflateBounded(comp, {
        max: ent.size,
        maxWhat: `the ${ent.size} bytes the zip directory declares`,
        limitFromHead: (head) => npySizeFromHead(head, p, key),
        fail: (what) => fail(p, what, key),
      });
      if (data.length !== ent.size) fail(p, `inflated to ${data.length} bytes, the directory says ${ent.size}`, key);
    } else {
      return fail(p, `unsupported zip compression method ${ent.method}`, key, 're-save with np.savez or np.savez_compressed');
    }
    if (crc32(data) !== ent.crc) fail(p, 'CRC-32 mismatch (the file is corrupt)', key);
    return data;
  }
}

/** Names of the arrays in an .npz file (zip entries ending in .npy, without the suffix). */
export function listNpz(path: string): string[] {
  const z = new ZipFile(path);
  try {
    return z.entries().map((e) => e.name.replace(/\.npy$/, ''));
  } finally {
    z.close();
  }
}

export interface ReadNpzOptions {
  /**
   * Most bytes (the whole .npy image, header included) each named array may take, e.g. from the data set's known
   * sample count and image size. An entry declaring more is refused before anything is inflated.
   */
  maxBytes?: Readonly<Record<string, number>>;
}

/**
 * Reads arrays from an .npz file: all of them, or just `keys` (only those are read and inflated).
 * Any problem — missing file, not a zip, truncation, bad CRC, bad .npy header, unsupported dtype,
 * shape/size mismatch, missing key, an entry larger than its limit — is a one-line FileFormatError naming the file
 * (and array).
 */
export function readNpz(path: string, keys?: readonly string[], opts: ReadNpzOptions = {}): Map<string, NpyArray> {
  const z = new ZipFile(path);
  try {
    const entries = z.entries();
    const byKey = new Map<string, ZipEntry>();
    for (const e of entries) {
      if (!e.name.endsWith('.npy')) continue;
      const k = e.name.slice(0, -4);
      if (byKey.has(k)) fail(path, 'duplicate array in archive', k);
      byKey.set(k, e);
    }
    const want = keys ?? [...byKey.keys()];
    const out = new Map<string, NpyArray>();
    for (const k of want) {
      const e = byKey.get(k);
      if (!e) {
        fail(
          path,
          `no array '${k}' (has: ${[...byKey.keys()].join(', ') || 'none'})`,
          undefined,
          'the file is not an official MedMNIST npz or is damaged; re-download it',
        );
      }
      const limit = opts.maxBytes && Object.hasOwn(opts.maxBytes, k) ? opts.maxBytes[k] : undefined;
      out.set(k, parseNpy(z.extract(e, k, limit), path, k));
    }
    return out;
  } catch (e) {
    if (e instanceof MfError) throw e;
    // Anything else (a RangeError from a corrupt offset, an allocation failure) still names the file.
    return fail(path, `unreadable (${(e as Error).message})`);
  } finally {
    z.close();
  }
}

/**
 * Writes arrays as an .npz file, atomically (temp file in the same folder, then rename), so a crash
 * never leaves a half-written file where a reader would find it. `compress` deflates like
 * np.savez_compressed; off by default (faster, like np.savez).
 */
export function writeNpz(
  path: string,
  arrays: ReadonlyMap<string, NpyArray> | Readonly<Record<string, NpyArray>>,
  opts: { compress?: boolean } = {},
): void {
  const entries = arrays instanceof Map ? [...arrays.entries()] : Object.entries(arrays);
  const files: Zippable = {};
  for (const [k, arr] of entries) {
    files[`${k}.npy`] = [encodeNpy(arr), { level: opts.compress ? 6 : 0 }];
  }
  // A fixed timestamp makes the same arrays give byte-identical files (and MD5s).
  const bytes = zipSync(files, { mtime: new Date(2000, 0, 1) });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new MfError(
      `cannot write ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      'check that the folder exists and is writable',
    );
  }
}
