// Reading and writing NumPy .npz files (a zip of .npy arrays), strictly. A data file that is cut
// short or altered must fail here with a FileFormatError naming the file and array, never reach
// training as garbage. The zip directory is parsed here and only the requested entries are read
// from disk (positioned reads) and inflated with fflate, so loading one split of a large file
// neither reads nor inflates the others; every entry's CRC-32 is checked after inflating.
// Memory and time are bounded by what the file honestly holds: only a regular file is opened (a FIFO or a link to
// /dev/zero is refused, never read), and an entry is inflated as a stream capped at its declared size, lowered to
// the exact size its .npy header gives as soon as that header is out, so a zip bomb stops at the first piece past
// the cap instead of filling gigabytes.
// Over 400 lines because it holds one format end to end (zip directory, .npy header, payload checks); each
// part is only meaningful with the others.
import { crc32 } from '../util/crc32.ts';
import { closeSync, readSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { zipSync, type Zippable } from 'fflate';
import { FileFormatError, MfError } from '../errors.ts';
import { openRegularFile } from '../util/files.ts';
import { inflateBounded } from '../util/inflate.ts';

/** The .npy dtypes supported, spelled as NumPy writes them (little-endian or byte-sized). */
export type NpyDType = '|u1' | '|i1' | '|b1' | '<u2' | '<i2' | '<u4' | '<i4' | '<f4' | '<f8' | '<i8' | '<u8';

export type NpyData =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array;

export interface NpyArray {
  dtype: NpyDType;
  shape: number[];
  data: NpyData;
}

interface DTypeInfo {
  size: number;
  make: (buf: ArrayBuffer, offset: number, length: number) => NpyData;
}

const DTYPES: Record<NpyDType, DTypeInfo> = {
  '|u1': { size: 1, make: (b, o, n) => new Uint8Array(b, o, n) },
  '|b1': { size: 1, make: (b, o, n) => new Uint8Array(b, o, n) },
  '|i1': { size: 1, make: (b, o, n) => new Int8Array(b, o, n) },
  '<u2': { size: 2, make: (b, o, n) => new Uint16Array(b, o, n) },
  '<i2': { size: 2, make: (b, o, n) => new Int16Array(b, o, n) },
  '<u4': { size: 4, make: (b, o, n) => new Uint32Array(b, o, n) },
  '<i4': { size: 4, make: (b, o, n) => new Int32Array(b, o, n) },
  '<f4': { size: 4, make: (b, o, n) => new Float32Array(b, o, n) },
  '<f8': { size: 8, make: (b, o, n) => new Float64Array(b, o, n) },
  '<i8': { size: 8, make: (b, o, n) => new BigInt64Array(b, o, n) },
  '<u8': { size: 8, make: (b, o, n) => new BigUint64Array(b, o, n) },
};

const isDType = (s: string): s is NpyDType => Object.hasOwn(DTYPES, s);

// Typed arrays use the host's byte order; .npy '<' data is only valid as-is on little-endian hosts.
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const HINT_CORRUPT = 're-download it or copy an intact copy into the data root; `mf data verify` checks every file';

function fail(file: string, what: string, key?: string, hint = HINT_CORRUPT): never {
  const where = key === undefined ? file : `${file} [${key}]`;
  // One line, always: messages from lower layers may carry newlines.
  throw new FileFormatError(`${where}: ${what}`.replace(/\s+/g, ' '), hint);
}

// ---------------------------------------------------------------------------------------------
// .npy

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

type PyValue = string | boolean | number[];

/** Parses the header dict: {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } and nothing else. */
function parseHeaderDict(text: string, file: string, key: string): Map<string, PyValue> {
  let i = 0;
  const bad = (why: string): never => fail(file, `bad .npy header (${why}): ${JSON.stringify(text.slice(0, 120))}`, key);
  const ws = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t')) i++;
  };
  const expectChar = (c: string) => {
    ws();
    if (text[i] !== c) bad(`expected '${c}' at ${i}`);
    i++;
  };
  const str = (): string => {
    ws();
    const q = text[i];
    if (q !== "'" && q !== '"') bad(`expected a string at ${i}`);
    const end = text.indexOf(q!, i + 1);
    if (end < 0) bad('unterminated string');
    const s = text.slice(i + 1, end);
    i = end + 1;
    return s;
  };
  const value = (): PyValue => {
    ws();
    for (const [word, v] of [
      ['True', true],
      ['False', false],
    ] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    if (text[i] === "'" || text[i] === '"') return str();
    if (text[i] === '(') {
      i++;
      const dims: number[] = [];
      for (;;) {
        ws();
        if (text[i] === ')') break;
        const m = /^[0-9]+L?/.exec(text.slice(i, i + 24));
        if (!m) bad(`expected a dimension at ${i}`);
        const d = Number(m![0].replace('L', ''));
        if (!Number.isSafeInteger(d)) bad(`dimension ${m![0]} is too large`);
        dims.push(d);
        i += m![0].length;
        ws();
        if (text[i] === ',') i++;
        else if (text[i] !== ')') bad(`expected ',' or ')' at ${i}`);
      }
      i++;
      return dims;
    }
    return bad(`unsupported value at ${i} (structured or object dtypes are not supported)`);
  };
  const out = new Map<string, PyValue>();
  expectChar('{');
  for (;;) {
    ws();
    if (text[i] === '}') break;
    const k = str();
    expectChar(':');
    if (out.has(k)) bad(`duplicate key '${k}'`);
    out.set(k, value());
    ws();
    if (text[i] === ',') i++;
    else if (text[i] !== '}') bad(`expected ',' or '}' at ${i}`);
  }
  i++;
  // NumPy pads with spaces and ends with one newline.
  if (!/^[ ]*\n$/.test(text.slice(i))) bad('trailing characters after the dict');
  const keys = [...out.keys()].sort().join(',');
  if (keys !== 'descr,fortran_order,shape') bad(`keys are {${keys}}, expected {descr, fortran_order, shape}`);
  return out;
}

/** The longest .npy header accepted; NumPy itself writes at most 10000 bytes unless told otherwise. */
const MAX_NPY_HEADER = 65536;

interface NpyLayout {
  dtype: NpyDType;
  shape: number[];
  /** Offset of the first data byte. */
  dataStart: number;
  /** Data bytes the shape and dtype need. */
  dataBytes: number;
}

/** Parses the magic, version and header of a .npy image (the data need not be there yet). */
function npyLayout(bytes: Uint8Array, file: string, key: string): NpyLayout {
  if (bytes.length < 10 || NPY_MAGIC.some((b, j) => bytes[j] !== b)) fail(file, 'not a .npy array (bad magic)', key);
  const major = bytes[6]!;
  const minor = bytes[7]!;
  if (major < 1 || major > 3 || minor !== 0) fail(file, `unsupported .npy version ${major}.${minor}`, key);
  const lenBytes = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lenBytes) fail(file, '.npy header is truncated', key);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  if (headerLen > MAX_NPY_HEADER) fail(file, `.npy header length ${headerLen} is implausible`, key);
  const dataStart = 8 + lenBytes + headerLen;
  if (dataStart > bytes.length) fail(file, `.npy header claims ${headerLen} bytes but the entry has ${bytes.length}`, key);
  const raw = bytes.subarray(8 + lenBytes, dataStart);
  // v1/v2 headers are latin-1 (ASCII in practice); v3 allows UTF-8.
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(raw);
  const dict = parseHeaderDict(text, file, key);
  const descr = dict.get('descr');
  const fortran = dict.get('fortran_order');
  const shape = dict.get('shape');
  if (typeof descr !== 'string') return fail(file, "'descr' is not a string", key);
  if (typeof fortran !== 'boolean') return fail(file, "'fortran_order' is not True/False", key);
  if (!Array.isArray(shape)) return fail(file, "'shape' is not a tuple", key);
  if (!isDType(descr)) {
    return fail(
      file,
      `unsupported dtype '${descr}'`,
      key,
      `supported: ${Object.keys(DTYPES).join(' ')}; re-save the array with one of them`,
    );
  }
  if (fortran) fail(file, 'fortran_order=True arrays are not supported', key, 're-save the array with np.ascontiguousarray');
  if (!HOST_LE && DTYPES[descr].size > 1) fail(file, 'multi-byte arrays need a little-endian host', key, 'run on a little-endian machine');
  let count = 1;
  for (const d of shape) count *= d;
  const dataBytes = count * DTYPES[descr].size;
  if (!Number.isSafeInteger(dataBytes)) fail(file, `shape (${shape.join(', ')}) is too large`, key);
  return { dtype: descr, shape: [...shape], dataStart, dataBytes };
}

/**
 * The size a .npy image's header implies, from the first bytes of an inflating entry: undefined until the header is
 * complete, null when there is no valid header to read (parseNpy reports why once the entry is in).
 */
function npySizeFromHead(head: Uint8Array, file: string, key: string): { max: number; what: string } | null | undefined {
  if (head.length < 12) return undefined;
  const lenBytes = head[6] === 1 ? 2 : 4;
  const headerLen = lenBytes === 2 ? head[8]! | (head[9]! << 8) : new DataView(head.buffer, head.byteOffset + 8, 4).getUint32(0, true);
  if (headerLen <= MAX_NPY_HEADER && head.length < 8 + lenBytes + headerLen) return undefined;
  try {
    const l = npyLayout(head, file, key);
    const max = l.dataStart + l.dataBytes;
    return { max, what: `the ${max} bytes its .npy header describes (shape (${l.shape.join(', ')}), ${l.dtype})` };
  } catch {
    return null;
  }
}

/** Parses one .npy file image. The returned data is a view when aligned, else a copy. */
export function parseNpy(bytes: Uint8Array, file: string, key: string): NpyArray {
  const { dtype: descr, shape, dataStart, dataBytes } = npyLayout(bytes, file, key);
  const { size, make } = DTYPES[descr];
  const count = dataBytes / size;
  const payload = bytes.length - dataStart;
  if (payload !== dataBytes) {
    fail(file, `shape (${shape.join(', ')}) × ${size} B needs ${dataBytes} bytes but the array holds ${payload}`, key);
  }
  const offset = bytes.byteOffset + dataStart;
  // Typed arrays need element alignment; NumPy pads headers to 64 bytes, but the entry itself may sit anywhere.
  const data = offset % size === 0 ? make(bytes.buffer as ArrayBuffer, offset, count) : make(bytes.slice(dataStart).buffer, 0, count);
  if (descr === '|b1') {
    for (let j = 0; j < data.length; j++)
      if ((data as Uint8Array)[j]! > 1) fail(file, `bool array holds value ${(data as Uint8Array)[j]} at ${j}`, key);
  }
  return { dtype: descr, shape, data };
}

function npyHeader(dtype: NpyDType, shape: readonly number[]): Uint8Array {
  const shapeStr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${dtype}', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  // Pad so the data starts on a 64-byte boundary, as NumPy does (aligned views when read back).
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  dict = `${dict.padEnd(total - 10 - 1, ' ')}\n`;
  if (dict.length > 0xffff) throw new MfError(`npy header too long for shape (${shape.join(', ')})`);
  const out = new Uint8Array(10 + dict.length);
  out.set(NPY_MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  out[8] = dict.length & 0xff;
  out[9] = dict.length >>> 8;
  for (let j = 0; j < dict.length; j++) out[10 + j] = dict.charCodeAt(j);
  return out;
}

/** Serialises one array as a .npy file image (version 1.0, C order). */
export function encodeNpy(arr: NpyArray): Uint8Array {
  const info = DTYPES[arr.dtype];
  if (!info) throw new MfError(`cannot write dtype '${arr.dtype}'`);
  const count = arr.shape.reduce((a, b) => a * b, 1);
  if (arr.data.length !== count) {
    throw new MfError(`array of shape (${arr.shape.join(', ')}) needs ${count} elements but has ${arr.data.length}`);
  }
  if (arr.data.BYTES_PER_ELEMENT !== info.size) throw new MfError(`dtype '${arr.dtype}' does not match a ${arr.data.constructor.name}`);
  const head = npyHeader(arr.dtype, arr.shape);
  const out = new Uint8Array(head.length + arr.data.byteLength);
  out.set(head, 0);
  out.set(new Uint8Array(arr.data.buffer, arr.data.byteOffset, arr.data.byteLength), head.length);
  return out;
}

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
