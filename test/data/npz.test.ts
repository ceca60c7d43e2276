import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileFormatError } from '../../src/errors.ts';
import { listNpz, readNpz, writeNpz, type NpyArray } from '../../src/data/npz.ts';
import { Rng } from '../../src/util/rng.ts';
import { npyBytes, tempDir, zipBytes } from './helpers.ts';

const dir = tempDir();

const arrays: Record<string, NpyArray> = {
  u8: { dtype: '|u1', shape: [3, 4, 5], data: Uint8Array.from({ length: 60 }, (_, i) => (i * 7) % 256) },
  f32: { dtype: '<f4', shape: [2, 3], data: new Float32Array([1.5, -2, 3.25, 0, 1e-20, -7]) },
  i32: { dtype: '<i4', shape: [4], data: new Int32Array([-1, 0, 2 ** 31 - 1, -(2 ** 31)]) },
  f64: { dtype: '<f8', shape: [1, 1], data: new Float64Array([Math.PI]) },
  i8: { dtype: '|i1', shape: [2], data: new Int8Array([-128, 127]) },
  u16: { dtype: '<u2', shape: [2], data: new Uint16Array([0, 65535]) },
  i64: { dtype: '<i8', shape: [], data: new BigInt64Array([-5n]) },
  bool: { dtype: '|b1', shape: [3], data: new Uint8Array([1, 0, 1]) },
  empty: { dtype: '<f4', shape: [0, 3], data: new Float32Array(0) },
};

/** Asserts fn throws a FileFormatError whose one-line message names the file (and the key, if given). */
function expectFormatError(fn: () => unknown, file: string, key?: string, what?: RegExp): FileFormatError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'should throw').toBeInstanceOf(FileFormatError);
  const msg = (err as Error).message;
  expect(msg).toContain(file.split('/').pop()!);
  if (key) expect(msg).toContain(key);
  if (what) expect(msg).toMatch(what);
  expect(msg).not.toContain('\n');
  return err as FileFormatError;
}

function writeRaw(name: string, bytes: Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

describe('npz round trip', () => {
  for (const compress of [false, true]) {
    it(`writes and reads every dtype (${compress ? 'deflate' : 'stored'})`, () => {
      const p = join(dir, `rt-${compress}.npz`);
      writeNpz(p, arrays, { compress });
      const back = readNpz(p);
      expect([...back.keys()].sort()).toEqual(Object.keys(arrays).sort());
      for (const [k, a] of Object.entries(arrays)) {
        const b = back.get(k)!;
        expect(b.dtype, k).toBe(a.dtype);
        expect(b.shape, k).toEqual(a.shape);
        expect(b.data.constructor, k).toBe(a.data.constructor);
        expect(Array.from(b.data as ArrayLike<number | bigint>), k).toEqual(Array.from(a.data as ArrayLike<number | bigint>));
      }
      expect(listNpz(p).sort()).toEqual(Object.keys(arrays).sort());
    });
  }

  it('reads only the requested keys and gives the same bytes for the same arrays', () => {
    const p1 = join(dir, 'a.npz');
    const p2 = join(dir, 'b.npz');
    writeNpz(p1, arrays);
    writeNpz(p2, new Map(Object.entries(arrays)));
    expect(readFileSync(p1)).toEqual(readFileSync(p2));
    const some = readNpz(p1, ['f32']);
    expect([...some.keys()]).toEqual(['f32']);
  });

  it('reads entries whose data is not aligned (copying)', () => {
    // A 1-byte entry first shifts the next entry's payload off 4-byte alignment in the file buffer.
    const f = new Float32Array([1, 2, 3]);
    const p = writeRaw(
      'unaligned.npz',
      zipBytes({
        'a.npy': npyBytes("{'descr': '|u1', 'fortran_order': False, 'shape': (1,), }", new Uint8Array([9])),
        'b.npy': npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", new Uint8Array(f.buffer)),
      }),
    );
    expect(Array.from(readNpz(p).get('b')!.data as Float32Array)).toEqual([1, 2, 3]);
  });
});

describe('npz corruption', () => {
  const good = join(dir, 'good.npz');
  writeNpz(good, { x: arrays.u8!, y: arrays.f32! });
  const goodBytes = new Uint8Array(readFileSync(good));

  it('missing file', () => {
    expectFormatError(() => readNpz(join(dir, 'nope.npz')), 'nope.npz', undefined, /not found/);
  });

  it('not a zip', () => {
    const p = writeRaw('text.npz', new TextEncoder().encode('this is not a zip file at all, just some text that is long enough'));
    expectFormatError(() => readNpz(p), 'text.npz', undefined, /not a zip/);
    const q = writeRaw('tiny.npz', new Uint8Array([1, 2, 3]));
    expectFormatError(() => readNpz(q), 'tiny.npz');
  });

  it('truncated zip, at many cut points', () => {
    for (const cut of [goodBytes.length - 1, goodBytes.length - 22, Math.floor(goodBytes.length / 2), 100, 30, 4]) {
      const p = writeRaw(`trunc-${cut}.npz`, goodBytes.subarray(0, cut));
      expectFormatError(() => readNpz(p), `trunc-${cut}.npz`);
    }
  });

  it('bad .npy magic', () => {
    const p = writeRaw(
      'magic.npz',
      zipBytes({
        'x.npy': npyBytes("{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }", new Uint8Array(2), 'XNUMPY'),
      }),
    );
    expectFormatError(() => readNpz(p), 'magic.npz', 'x', /magic/);
  });

  it('header lying about the shape', () => {
    const bigger = writeRaw(
      'lie1.npz',
      zipBytes(
        {
          'x.npy': npyBytes("{'descr': '|u1', 'fortran_order': False, 'shape': (10, 10), }", new Uint8Array(99)),
        },
        true,
      ),
    );
    expectFormatError(() => readNpz(bigger), 'lie1.npz', 'x', /needs 100 bytes but the array holds 99/);
    const smaller = writeRaw(
      'lie2.npz',
      zipBytes({
        'x.npy': npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", new Uint8Array(12)),
      }),
    );
    expectFormatError(() => readNpz(smaller), 'lie2.npz', 'x', /needs 8 bytes/);
  });

  it('wrong or unsupported dtype', () => {
    for (const [i, descr] of ['<c8', '>f4', 'O', '<U3', '=f4'].entries()) {
      const p = writeRaw(
        `dtype${i}.npz`,
        zipBytes({
          'x.npy': npyBytes(`{'descr': '${descr}', 'fortran_order': False, 'shape': (2,), }`, new Uint8Array(16)),
        }),
      );
      expectFormatError(() => readNpz(p), `dtype${i}.npz`, 'x', /unsupported dtype/);
    }
    const structured = writeRaw(
      'dtype-struct.npz',
      zipBytes({
        'x.npy': npyBytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", new Uint8Array(8)),
      }),
    );
    expectFormatError(() => readNpz(structured), 'dtype-struct.npz', 'x');
    const bool = writeRaw(
      'badbool.npz',
      zipBytes({
        'x.npy': npyBytes("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", new Uint8Array([1, 7])),
      }),
    );
    expectFormatError(() => readNpz(bool), 'badbool.npz', 'x', /bool/);
  });

  it('fortran order and malformed headers', () => {
    const cases: Record<string, string> = {
      fortran: "{'descr': '|u1', 'fortran_order': True, 'shape': (2,), }",
      nokey: "{'descr': '|u1', 'shape': (2,), }",
      extra: "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), 'x': 1, }",
      garbage: "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), } junk",
      notdict: 'hello',
      negative: "{'descr': '|u1', 'fortran_order': False, 'shape': (-2,), }",
    };
    for (const [name, header] of Object.entries(cases)) {
      const p = writeRaw(`hdr-${name}.npz`, zipBytes({ 'x.npy': npyBytes(header, new Uint8Array(2)) }));
      expectFormatError(() => readNpz(p), `hdr-${name}.npz`, 'x');
    }
  });

  it('missing key names the file, the key and what is there', () => {
    const err = expectFormatError(() => readNpz(good, ['x', 'val_images']), 'good.npz', 'val_images');
    expect(err.message).toMatch(/has: x, y/);
  });

  it('a flipped payload byte fails the CRC check', () => {
    const p = join(dir, 'crc.npz');
    writeNpz(p, { x: arrays.u8! });
    const b = new Uint8Array(readFileSync(p));
    b[200] ^= 0xff; // inside the stored payload (header is 128 bytes after a ~40-byte local header)
    writeFileSync(p, b);
    expectFormatError(() => readNpz(p), 'crc.npz', 'x', /CRC/);
  });

  const FUZZ = Number(process.env.MF_FUZZ_CASES) || 300;
  it(`fuzz: ${FUZZ} mutated or truncated files only ever throw FileFormatError or read consistently`, () => {
    const rng = new Rng(2024);
    const deflated = join(dir, 'fuzz-base.npz');
    writeNpz(deflated, { x: arrays.u8!, y: arrays.f32!, z: arrays.i64! }, { compress: true });
    const bases = [goodBytes, new Uint8Array(readFileSync(deflated))];
    const outcomes = { ok: 0, error: 0 };
    for (let t = 0; t < FUZZ; t++) {
      const base = bases[t % 2]!;
      let b = Uint8Array.from(base);
      const kind = rng.int(4);
      if (kind === 0) b = b.subarray(0, rng.int(b.length));
      else if (kind === 3) {
        const at = rng.int(b.length);
        const ins = Uint8Array.from({ length: 1 + rng.int(8) }, () => rng.int(256));
        b = Uint8Array.from([...b.subarray(0, at), ...ins, ...b.subarray(at)]);
      } else {
        const n = 1 + rng.int(kind === 1 ? 1 : 8);
        for (let i = 0; i < n; i++) b[rng.int(b.length)] = rng.int(256);
      }
      const p = writeRaw('fuzz.npz', b);
      try {
        const m = readNpz(p);
        for (const a of m.values()) {
          expect(a.data.length).toBe(a.shape.reduce((x, y) => x * y, 1));
          expect(a.shape.every((d) => Number.isSafeInteger(d) && d >= 0)).toBe(true);
        }
        outcomes.ok++;
      } catch (e) {
        if (!(e instanceof FileFormatError)) throw new Error(`case ${t} (kind ${kind}): ${String(e)}`);
        expect((e as Error).message).toContain('fuzz.npz');
        expect((e as Error).message).not.toContain('\n');
        outcomes.error++;
      }
    }
    expect(outcomes.error).toBeGreaterThan(FUZZ / 3);
  });
});
