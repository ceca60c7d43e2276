// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian unsigned header
// length N, N bytes of UTF-8 JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}`
// (may be right-padded with spaces), then the byte buffer. Offsets are relative to the buffer's start, tensors are
// row-major little-endian, and the buffer must be covered exactly: contiguous tensors, no gaps, no overlap, no
// trailing bytes. Only F32, I32 and U8 are supported here; any other dtype is rejected with a message naming it.
//
// The reader treats every file as hostile: each bound is checked before it is used, and every failure is one
// FileFormatError naming the file. Parsed names go into a Map, never onto a plain object, and names that could
// reach an object prototype elsewhere (__proto__, constructor, prototype) are refused outright. JSON.parse keeps
// the last of duplicate keys; a hidden duplicate cannot smuggle bytes past us because the surviving entries must
// still tile the data section exactly.

import os from 'node:os';
import { FileFormatError, MfError } from '../errors.ts';
import { MAX_BINARY_BYTES, readRegularFile, writeFileAtomic } from '../util/files.ts';

export type Dtype = 'F32' | 'I32' | 'U8';

export type SafeTensor =
  | { dtype: 'F32'; shape: number[]; data: Float32Array }
  | { dtype: 'I32'; shape: number[]; data: Int32Array }
  | { dtype: 'U8'; shape: number[]; data: Uint8Array };

/** What a writer takes: the dtype follows from the array type. */
export interface TensorInput {
  shape: readonly number[];
  data: Float32Array | Int32Array | Uint8Array;
}

export interface SafetensorsFile {
  tensors: Map<string, SafeTensor>;
  metadata: Map<string, string>;
}

/** The reference Rust reader's limit; a real header (names + shapes) is kilobytes. */
export const MAX_HEADER_BYTES = 100_000_000;

const ITEM_SIZE: Record<Dtype, number> = { F32: 4, I32: 4, U8: 1 };
/** dtypes the format defines but this project does not read; named in the error so the fix is obvious. */
const KNOWN_UNSUPPORTED = new Set(['BOOL', 'I8', 'I16', 'U16', 'F16', 'BF16', 'U32', 'I64', 'U64', 'F64', 'F8_E5M2', 'F8_E4M3']);
const FORBIDDEN_NAMES = new Set(['__proto__', 'constructor', 'prototype']);
const ENTRY_KEYS = new Set(['dtype', 'shape', 'data_offsets']);

// Tensor bytes are copied into typed arrays directly, which is only right on a little-endian host (every platform
// Node and WebGPU run on today). Fail loudly rather than silently byte-swap weights.
if (os.endianness() !== 'LE') {
  throw new MfError('safetensors: this host is big-endian; checkpoints are little-endian and cannot be mapped here');
}

/** A name or message from a hostile file, quoted, escaped and truncated so the error stays one short line. */
function q(text: string): string {
  const s = JSON.stringify(text);
  return s.length > 82 ? `${s.slice(0, 80)}…"` : s;
}

function dtypeOf(data: TensorInput['data']): Dtype {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Int32Array) return 'I32';
  return 'U8';
}

/** Serializes tensors (in Map order) and string metadata. The buffer starts 8-byte aligned, as the Rust writer does. */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, TensorInput>,
  metadata: ReadonlyMap<string, string> | Record<string, string> = {},
): Uint8Array {
  const header: Record<string, unknown> = {};
  const meta = metadata instanceof Map ? [...metadata] : Object.entries(metadata);
  if (meta.length > 0) {
    const m: Record<string, string> = {};
    for (const [key, value] of meta) {
      if (FORBIDDEN_NAMES.has(key)) throw new MfError(`safetensors: metadata key "${key}" is reserved; rename it`);
      if (typeof value !== 'string') throw new MfError(`safetensors: metadata "${key}" must be a string; JSON.stringify it`);
      Object.defineProperty(m, key, { value, enumerable: true });
    }
    header['__metadata__'] = m;
  }
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === '' || name === '__metadata__' || FORBIDDEN_NAMES.has(name)) {
      throw new MfError(`safetensors: tensor name "${name}" is reserved; rename the parameter`);
    }
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0) || count !== t.data.length) {
      throw new MfError(`safetensors: tensor "${name}" has shape [${t.shape}] but ${t.data.length} elements`);
    }
    const dtype = dtypeOf(t.data);
    const end = offset + count * ITEM_SIZE[dtype];
    Object.defineProperty(header, name, {
      value: { dtype, shape: [...t.shape], data_offsets: [offset, end] },
      enumerable: true,
    });
    offset = end;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);

  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const t of tensors.values()) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

/** Writes a safetensors file atomically (see writeFileAtomic in src/util/files.ts). */
export function writeSafetensors(
  file: string,
  tensors: ReadonlyMap<string, TensorInput>,
  metadata: ReadonlyMap<string, string> | Record<string, string> = {},
): void {
  writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}

/**
 * Reads and validates a safetensors file from disk: a regular file of at most 2 GiB (a FIFO or a link to a device
 * is refused unread, never waited on).
 */
export function readSafetensors(path: string): SafetensorsFile {
  const bytes = readRegularFile(path, { what: 'a safetensors file', fix: 'check the path', maxBytes: MAX_BINARY_BYTES });
  return decodeSafetensors(bytes, path);
}

/** Parses safetensors bytes; `file` only names the source in errors. Tensor data is copied out of `bytes`. */
export function decodeSafetensors(bytes: Uint8Array, file: string): SafetensorsFile {
  const bad = (why: string): FileFormatError => new FileFormatError(`${file}: not a valid safetensors file: ${why}`);
  if (bytes.length < 8) throw bad(`${bytes.length} bytes is shorter than the 8-byte header length`);

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen64 = view.getBigUint64(0, true);
  if (headerLen64 > BigInt(MAX_HEADER_BYTES)) throw bad(`header length ${headerLen64} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const headerLen = Number(headerLen64);
  if (8 + headerLen > bytes.length) throw bad(`header length ${headerLen} runs past the end of the ${bytes.length}-byte file`);
  if (headerLen < 2 || bytes[8] !== 0x7b) throw bad('header does not start with "{"');

  let parsed: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen));
    parsed = JSON.parse(text); // JSON.parse defines "__proto__" as an own key; it never sets a prototype.
  } catch (e) {
    const why = (e instanceof Error ? e.message : String(e)).replace(/[\s\x00-\x1f]+/g, ' ').slice(0, 120);
    throw bad(`header is not UTF-8 JSON (${why})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw bad('header is not a JSON object');

  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const metadata = new Map<string, string>();
  const entries: { name: string; dtype: Dtype; shape: number[]; begin: number; end: number }[] = [];

  for (const [name, value] of Object.entries(parsed)) {
    if (FORBIDDEN_NAMES.has(name)) throw bad(`forbidden key ${q(name)} in header`);
    if (name === '__metadata__') {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad('__metadata__ is not an object');
      for (const [k, v] of Object.entries(value)) {
        if (FORBIDDEN_NAMES.has(k)) throw bad(`forbidden key ${q(k)} in __metadata__`);
        if (typeof v !== 'string') throw bad(`__metadata__ ${q(k)} is not a string`);
        metadata.set(k, v);
      }
      continue;
    }
    if (name === '') throw bad('empty tensor name');
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad(`entry ${q(name)} is not an object`);
    const entry = value as Record<string, unknown>;
    for (const k of Object.keys(entry)) if (!ENTRY_KEYS.has(k)) throw bad(`entry ${q(name)} has unknown field ${q(k)}`);

    const dtype = entry['dtype'];
    if (typeof dtype !== 'string') throw bad(`entry ${q(name)} has no dtype string`);
    if (!Object.hasOwn(ITEM_SIZE, dtype)) {
      throw bad(
        KNOWN_UNSUPPORTED.has(dtype)
          ? `tensor ${q(name)} has dtype ${dtype}; only F32, I32 and U8 are supported (convert it to F32)`
          : `tensor ${q(name)} has unknown dtype ${q(dtype)}`,
      );
    }
    const shape = entry['shape'];
    if (!Array.isArray(shape) || !shape.every((d): d is number => Number.isSafeInteger(d) && d >= 0)) {
      throw bad(`tensor ${q(name)} shape is not a list of non-negative integers`);
    }
    const offsets = entry['data_offsets'];
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o): o is number => Number.isSafeInteger(o) && o >= 0)) {
      throw bad(`tensor ${q(name)} data_offsets is not [begin, end] with non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) throw bad(`tensor ${q(name)} data_offsets [${begin}, ${end}] run backwards`);
    if (end > dataLen) throw bad(`tensor ${q(name)} data_offsets end ${end} is past the ${dataLen}-byte data section`);
    // Multiply with an early exit: a hostile shape like [2^40, 2^40] must not overflow into a matching number.
    let bytesNeeded = ITEM_SIZE[dtype as Dtype];
    for (const d of shape) {
      bytesNeeded *= d;
      if (bytesNeeded > dataLen) break;
    }
    if (bytesNeeded !== end - begin) {
      throw bad(`tensor ${q(name)} shape [${shape.join(', ')}] × ${dtype} needs ${bytesNeeded} bytes but data_offsets span ${end - begin}`);
    }
    entries.push({ name, dtype: dtype as Dtype, shape, begin, end });
  }

  // The buffer must be tiled exactly: sorted by begin, each tensor starts where the previous one ended.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const e of entries) {
    if (e.begin < expected) throw bad(`tensor ${q(e.name)} overlaps the previous tensor at byte ${e.begin}`);
    if (e.begin > expected) throw bad(`gap in the data section before tensor ${q(e.name)} (bytes ${expected}..${e.begin})`);
    expected = e.end;
  }
  if (expected !== dataLen) throw bad(`data section has ${dataLen - expected} trailing bytes no tensor covers`);

  const tensors = new Map<string, SafeTensor>();
  for (const e of entries) {
    // slice() copies into a fresh, aligned ArrayBuffer, so the typed array does not depend on the file's alignment.
    const at = bytes.byteOffset + dataStart;
    const buf = bytes.buffer.slice(at + e.begin, at + e.end);
    if (e.dtype === 'F32') tensors.set(e.name, { dtype: 'F32', shape: e.shape, data: new Float32Array(buf) });
    else if (e.dtype === 'I32') tensors.set(e.name, { dtype: 'I32', shape: e.shape, data: new Int32Array(buf) });
    else tensors.set(e.name, { dtype: 'U8', shape: e.shape, data: new Uint8Array(buf) });
  }
  return { tensors, metadata };
}
