// NumPy .npy arrays in memory, strictly: bytes in, a typed array out, and back. An array that is cut short or altered
// must fail here with a FileFormatError naming the file and array, never reach training as garbage. No Node module
// here: npz.ts reads .npz files (zips of .npy) with it, `mf predict` reads .npy files, and the page of `mf serve`
// parses dropped .npy volumes.
import { FileFormatError, MfError } from '../errors.ts';

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

export function fail(file: string, what: string, key?: string, hint = HINT_CORRUPT): never {
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
export function npySizeFromHead(head: Uint8Array, file: string, key: string): { max: number; what: string } | null | undefined {
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
