import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileFormatError } from '../../src/errors.ts';
import { writeSafetensors } from '../../src/train/checkpoint.ts';
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  type SafetensorsFile,
  type TensorInput,
} from '../../src/train/safetensors.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-st-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function sample(): Map<string, TensorInput> {
  return new Map<string, TensorInput>([
    ['w', { shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 4, 5, 6e-8]) }],
    ['idx', { shape: [3], data: Int32Array.from([7, -1, 2 ** 31 - 1]) }],
    ['mask', { shape: [1, 2], data: Uint8Array.from([0, 255]) }],
    ['scalar', { shape: [], data: Float32Array.from([42]) }],
    ['empty', { shape: [0, 3], data: new Float32Array(0) }],
  ]);
}

/** Builds a file from a raw header object and data bytes, bypassing the writer's checks. */
function raw(header: unknown, data: Uint8Array = new Uint8Array(0), headerText?: string): Uint8Array {
  const json = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function expectSame(a: SafetensorsFile, b: ReadonlyMap<string, TensorInput>): void {
  expect([...a.tensors.keys()].sort()).toEqual([...b.keys()].sort());
  for (const [name, t] of b) {
    const got = a.tensors.get(name)!;
    expect(got.shape).toEqual(t.shape);
    expect(got.data.constructor).toBe(t.data.constructor);
    expect(Array.from(got.data)).toEqual(Array.from(t.data));
  }
}

describe('safetensors round trip', () => {
  it('writes and reads F32, I32, U8, scalars and empty tensors with metadata', () => {
    const file = path.join(tmp, 'a.safetensors');
    writeSafetensors(file, sample(), { format: 'pt', note: 'héllo' });
    const back = readSafetensors(file);
    expectSame(back, sample());
    expect(back.metadata.get('format')).toBe('pt');
    expect(back.metadata.get('note')).toBe('héllo');
  });

  it('lays the file out as the spec says: u64 LE length, "{", 8-byte aligned data', () => {
    const bytes = encodeSafetensors(sample());
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(bytes[8]).toBe(0x7b);
    expect((8 + n) % 8).toBe(0);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<
      string,
      { data_offsets: number[]; dtype: string }
    >;
    expect(header['w']).toEqual({ dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] });
    expect(header['idx']!.dtype).toBe('I32');
    expect(header['mask']!.dtype).toBe('U8');
    expect(header['__metadata__']).toBeUndefined();
  });

  it('copies data out of unaligned buffers', () => {
    const bytes = encodeSafetensors(sample());
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    expectSame(decodeSafetensors(shifted.subarray(1), 'shifted'), sample());
  });

  it('refuses reserved names and shape/data mismatches when writing', () => {
    expect(() => encodeSafetensors(new Map([['__proto__', { shape: [1], data: new Float32Array(1) }]]))).toThrow(/reserved/);
    expect(() => encodeSafetensors(new Map([['x', { shape: [2], data: new Float32Array(3) }]]))).toThrow(/shape \[2\] but 3/);
  });
});

describe('safetensors hostile files', () => {
  const f32 = { dtype: 'F32', shape: [1], data_offsets: [0, 4] };
  const four = new Uint8Array(4);
  const cases: [string, Uint8Array, RegExp][] = [
    ['shorter than 8 bytes', new Uint8Array(5), /shorter than the 8-byte/],
    [
      'header length past end of file',
      (() => {
        const b = raw({ x: f32 }, four);
        new DataView(b.buffer).setBigUint64(0, BigInt(b.length), true);
        return b;
      })(),
      /runs past the end/,
    ],
    [
      'header length over 100 MB',
      (() => {
        const b = raw({ x: f32 }, four);
        new DataView(b.buffer).setBigUint64(0, 2n ** 63n, true);
        return b;
      })(),
      /exceeds the 100000000-byte limit/,
    ],
    ['non-JSON header', raw(null, four, '{"x": nope}'), /not UTF-8 JSON/],
    [
      'invalid UTF-8 header',
      (() => {
        const b = raw(null, four, '{"ab": 1}');
        b[10] = 0xff; // the "a"
        return b;
      })(),
      /not UTF-8 JSON/,
    ],
    ['header not starting with {', raw([1, 2]), /does not start with "\{"/],
    ['__proto__ tensor name', raw(null, four, `{"__proto__": ${JSON.stringify(f32)}}`), /forbidden key "__proto__"/],
    ['constructor tensor name', raw({ constructor: f32 }, four), /forbidden key "constructor"/],
    [
      '__proto__ in metadata',
      raw(null, four, `{"__metadata__": {"__proto__": "x"}, "x": ${JSON.stringify(f32)}}`),
      /forbidden key "__proto__" in __metadata__/,
    ],
    ['non-string metadata', raw({ __metadata__: { a: 1 }, x: f32 }, four), /"a" is not a string/],
    ['entry not an object', raw({ x: [1] }, four), /entry "x" is not an object/],
    ['unknown entry field', raw({ x: { ...f32, extra: 1 } }, four), /unknown field "extra"/],
    ['offsets past the end', raw({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, four), /past the 4-byte data section/],
    ['offsets backwards', raw({ x: { dtype: 'U8', shape: [0], data_offsets: [4, 0] } }, four), /run backwards/],
    ['negative offset', raw({ x: { dtype: 'F32', shape: [1], data_offsets: [-4, 0] } }, four), /non-negative integers/],
    ['fractional shape', raw({ x: { dtype: 'F32', shape: [0.5], data_offsets: [0, 4] } }, four), /shape is not a list/],
    [
      'overlapping tensors',
      raw(
        {
          a: { dtype: 'U8', shape: [4], data_offsets: [0, 4] },
          b: { dtype: 'U8', shape: [4], data_offsets: [2, 6] },
        },
        new Uint8Array(6),
      ),
      /overlaps/,
    ],
    [
      'gap between tensors',
      raw(
        {
          a: { dtype: 'U8', shape: [4], data_offsets: [0, 4] },
          b: { dtype: 'U8', shape: [4], data_offsets: [8, 12] },
        },
        new Uint8Array(12),
      ),
      /gap in the data section/,
    ],
    ['trailing bytes', raw({ x: f32 }, new Uint8Array(8)), /4 trailing bytes/],
    [
      'shape × itemsize ≠ byte length',
      raw({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, four),
      /needs 8 bytes but data_offsets span 4/,
    ],
    ['overflowing shape', raw({ x: { dtype: 'F32', shape: [2 ** 40, 2 ** 40, 0], data_offsets: [0, 4] } }, four), /needs/],
    ['unsupported dtype', raw({ x: { dtype: 'F16', shape: [2], data_offsets: [0, 4] } }, four), /dtype F16; only F32, I32 and U8/],
    ['unknown dtype', raw({ x: { dtype: 'Q7', shape: [1], data_offsets: [0, 4] } }, four), /unknown dtype "Q7"/],
    ['prototype-name dtype', raw({ x: { dtype: 'toString', shape: [1], data_offsets: [0, 4] } }, four), /unknown dtype "toString"/],
  ];

  for (const [what, bytes, message] of cases) {
    it(`rejects ${what}`, () => {
      const file = path.join(tmp, `hostile-${what.replace(/\W+/g, '-')}.safetensors`);
      fs.writeFileSync(file, bytes);
      let err: unknown;
      try {
        readSafetensors(file);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FileFormatError);
      expect((err as Error).message).toContain(file);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toContain('\n');
    });
  }

  it('names a missing file', () => {
    expect(() => readSafetensors(path.join(tmp, 'nope.safetensors'))).toThrow(/nope\.safetensors: no such file/);
  });
});

describe('safetensors fuzz', () => {
  it('1500 random mutations either throw FileFormatError or parse consistently', () => {
    const valid = encodeSafetensors(sample(), { k: 'v' });
    const headerLen = Number(new DataView(valid.buffer).getBigUint64(0, true));
    let s = 0x9e3779b9;
    const rand = (n: number): number => {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      return (s >>> 0) % n;
    };
    const digits = '0123456789';
    let parsed = 0;
    let rejected = 0;
    for (let iter = 0; iter < 1500; iter++) {
      let b = Uint8Array.from(valid);
      const mutations = 1 + rand(3);
      for (let m = 0; m < mutations; m++) {
        switch (rand(6)) {
          case 0: // flip a random byte anywhere
            b[rand(b.length)] = rand(256);
            break;
          case 1: // change a digit inside the header (offsets, shapes) to hit the semantic checks
          case 2: {
            const at = 8 + rand(headerLen);
            if (digits.includes(String.fromCharCode(b[at]!))) b[at] = digits.charCodeAt(rand(10));
            else b[at] = b[at]! ^ (1 << rand(8));
            break;
          }
          case 3: // truncate
            b = b.slice(0, rand(b.length));
            break;
          case 4: {
            // insert bytes
            const at = rand(b.length + 1);
            const extra = Uint8Array.from({ length: 1 + rand(8) }, () => rand(256));
            b = Uint8Array.from([...b.subarray(0, at), ...extra, ...b.subarray(at)]);
            break;
          }
          case 5: // rewrite the header length
            if (b.length >= 8) new DataView(b.buffer, b.byteOffset).setBigUint64(0, BigInt(rand(b.length + 16)), true);
            break;
        }
      }
      try {
        const out = decodeSafetensors(b, 'fuzz.safetensors');
        parsed++;
        // Consistent: every tensor's element count matches its shape, and a re-encode round-trips exactly.
        for (const t of out.tensors.values()) expect(t.data.length).toBe(t.shape.reduce((x, y) => x * y, 1));
        const again = decodeSafetensors(encodeSafetensors(out.tensors, out.metadata), 'again');
        expectSame(again, out.tensors);
      } catch (e) {
        if (!(e instanceof FileFormatError)) throw new Error(`iteration ${iter}: ${String(e)}`);
        expect((e as Error).message).toContain('fuzz.safetensors');
        expect((e as Error).message).not.toMatch(/[\n\r]/);
        rejected++;
      }
    }
    expect(parsed + rejected).toBe(1500);
    expect(rejected).toBeGreaterThan(500);
  });
});
