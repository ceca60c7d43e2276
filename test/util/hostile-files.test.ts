// Hostile files against every reader: zip and gzip bombs, lying sizes, FIFOs and devices in place of files, JSON
// nested past the stack, checkpoint fields of the wrong shape, NIfTI headers with unusable affines or scaling,
// configs with absurd numbers. Each case must end in one typed error line naming the file, fast and without
// allocating what the file claims.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import { gzipSync } from 'fflate';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeNifti, encodeNifti, readNifti } from '../../src/data/nifti.ts';
import { readNpz } from '../../src/data/npz.ts';
import { ConfigError, FileFormatError } from '../../src/errors.ts';
import { validateExperiment } from '../../src/kinds/index.ts';
import { loadCheckpoint, POINTER_FILE, saveCheckpoint } from '../../src/train/checkpoint.ts';
import { trainingOverrides } from '../../src/train/run.ts';
import { crc32 } from '../../src/util/crc32.ts';
import { inflateBounded } from '../../src/util/inflate.ts';
import { readJsonFile } from '../../src/util/files.ts';
import { canonical, MAX_JSON_DEPTH, parseJsonText } from '../../src/util/json.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-hostile-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const put = (name: string, bytes: Uint8Array | string): string => {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, bytes);
  return file;
};

/** The error `fn` throws (failing the test when it throws none). */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error, none was thrown');
}

/** Runs `fn` and returns its error, the time it took and how far external (ArrayBuffer) memory rose meanwhile. */
function measured(fn: () => unknown): { err: Error; ms: number; grewMiB: number } {
  const before = process.memoryUsage().arrayBuffers;
  const t = performance.now();
  const err = thrown(fn);
  return { err, ms: performance.now() - t, grewMiB: (process.memoryUsage().arrayBuffers - before) / 2 ** 20 };
}

// ---------------------------------------------------------------------------------------------------------------
// Bomb builders

/** Writes bits LSB first, as deflate packs them, into a buffer that starts zeroed (so zero bits cost nothing). */
class Bits {
  readonly out: Uint8Array;
  at = 0;
  constructor(bytes: number) {
    this.out = new Uint8Array(bytes);
  }
  put(value: number, n: number): void {
    for (let i = 0; i < n; i++, this.at++) if ((value >> i) & 1) this.out[this.at >> 3]! |= 1 << (this.at & 7);
  }
  /** A Huffman code: its bits go out most significant first. */
  code(value: number, n: number): void {
    for (let i = n - 1; i >= 0; i--) this.put((value >> i) & 1, 1);
  }
  bytes(b: Uint8Array): void {
    this.at = Math.ceil(this.at / 8) * 8;
    this.out.set(b, this.at >> 3);
    this.at += b.length * 8;
  }
  done(): Uint8Array {
    return this.out.subarray(0, Math.ceil(this.at / 8));
  }
}

/**
 * Raw deflate data that inflates to `prefix` followed by `zeros` zero bytes at deflate's best ratio (~1032:1): a
 * stored block holding the prefix, then one dynamic-Huffman block whose codes are length 258 = '0', literal 0 =
 * '10', end of block = '11' and distance 1 = '0', so every 258 zero bytes cost two zero bits.
 */
function deflateBomb(prefix: Uint8Array, zeros: number): Uint8Array {
  const repeats = Math.floor((zeros - 1) / 258);
  const literals = zeros - 1 - repeats * 258;
  const w = new Bits(prefix.length + 512 + Math.ceil((repeats * 2 + literals * 2) / 8));
  w.put(0, 3); // not final, stored
  const n = prefix.length;
  w.bytes(Uint8Array.from([n & 0xff, n >> 8, ~n & 0xff, (~n >> 8) & 0xff, ...prefix]));
  w.put(1, 1); // final
  w.put(2, 2); // dynamic Huffman
  w.put(286 - 257, 5); // HLIT: literal/length codes 0..285
  w.put(2 - 1, 5); // HDIST: two distance codes, so the distance code is complete
  const order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1];
  w.put(order.length - 4, 4); // HCLEN
  const clen: Record<number, number> = { 0: 1, 1: 2, 2: 2 }; // code-length code: 0 = '0', 1 = '10', 2 = '11'
  for (const sym of order) w.put(clen[sym] ?? 0, 3);
  const lengths = new Array<number>(288).fill(0);
  lengths[0] = 2; // literal 0
  lengths[256] = 2; // end of block
  lengths[285] = 1; // length 258
  lengths[286] = 1; // distance 1
  lengths[287] = 1; // distance 2 (unused)
  for (const l of lengths) l === 0 ? w.code(0, 1) : l === 1 ? w.code(2, 2) : w.code(3, 2);
  w.code(2, 2); // literal 0
  w.at += repeats * 2; // each repeat is '0' + '0'
  for (let i = 0; i < literals; i++) w.code(2, 2);
  w.code(3, 2); // end of block
  return w.done();
}

/** A one-entry zip (deflated) whose directory says `declared` bytes with CRC `crc`. */
function zipOf(name: string, deflated: Uint8Array, declared: number, crc: number): Uint8Array {
  const nm = new TextEncoder().encode(name);
  const local = new Uint8Array(30 + nm.length);
  const lv = new DataView(local.buffer);
  lv.setUint32(0, 0x04034b50, true);
  lv.setUint16(4, 20, true);
  lv.setUint16(8, 8, true);
  lv.setUint32(14, crc, true);
  lv.setUint32(18, deflated.length, true);
  lv.setUint32(22, declared, true);
  lv.setUint16(26, nm.length, true);
  local.set(nm, 30);
  const cd = new Uint8Array(46 + nm.length);
  const cv = new DataView(cd.buffer);
  cv.setUint32(0, 0x02014b50, true);
  cv.setUint16(4, 20, true);
  cv.setUint16(6, 20, true);
  cv.setUint16(10, 8, true);
  cv.setUint32(16, crc, true);
  cv.setUint32(20, deflated.length, true);
  cv.setUint32(24, declared, true);
  cv.setUint16(28, nm.length, true);
  cv.setUint32(42, 0, true);
  cd.set(nm, 46);
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, 1, true);
  ev.setUint16(10, 1, true);
  ev.setUint32(12, cd.length, true);
  ev.setUint32(16, local.length + deflated.length, true);
  const out = new Uint8Array(local.length + deflated.length + cd.length + 22);
  out.set(local);
  out.set(deflated, local.length);
  out.set(cd, local.length + deflated.length);
  out.set(eocd, out.length - 22);
  return out;
}

/** A .npy header (NumPy's padding) for a 1-D uint8 array of `n` elements. */
function npyHeader(n: number): Uint8Array {
  let h = `{'descr': '|u1', 'fortran_order': False, 'shape': (${n},), }`;
  h = `${h.padEnd(Math.ceil((10 + h.length + 1) / 64) * 64 - 11, ' ')}\n`;
  const out = new Uint8Array(10 + h.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, h.length & 0xff, h.length >> 8]);
  for (let i = 0; i < h.length; i++) out[10 + i] = h.charCodeAt(i);
  return out;
}

const GIB2 = 2 ** 31 - 1;

describe('bounded inflate', () => {
  it('the bomb builder is a real 1032:1 stream (checked at 8 MiB)', () => {
    const prefix = Uint8Array.from([1, 2, 3]);
    const b = deflateBomb(prefix, 8 * 2 ** 20);
    const out = inflateBounded(b, {
      max: 2 ** 24,
      maxWhat: 'x',
      fail: (w) => {
        throw new Error(w);
      },
    });
    expect(out.length).toBe(3 + 8 * 2 ** 20);
    expect(Array.from(out.subarray(0, 4))).toEqual([1, 2, 3, 0]);
    expect(out.every((v, i) => i < 3 || v === 0)).toBe(true);
    expect(out.length / b.length).toBeGreaterThan(1000);
  });

  it('a 2 MB stream that inflates to 2 GiB stops at the first piece past a 1 MiB cap', () => {
    const bomb = deflateBomb(new Uint8Array(0), GIB2);
    expect(bomb.length).toBeLessThan(2.2e6);
    const r = measured(() =>
      inflateBounded(bomb, {
        max: 2 ** 20,
        maxWhat: 'the 1 MiB cap',
        fail: (w) => {
          throw new FileFormatError(w);
        },
      }),
    );
    expect(r.err).toBeInstanceOf(FileFormatError);
    expect(r.err.message).toBe('inflates to more than the 1 MiB cap');
    expect(r.ms).toBeLessThan(2000);
    expect(r.grewMiB).toBeLessThan(64);
  });
});

describe('npz zip bombs', () => {
  const bomb = deflateBomb(npyHeader(GIB2 - 128), GIB2 - 128 - 1);

  it('a small declared size with a 2 GiB stream fails fast, naming the file and the array', () => {
    const file = put('small-declared.npz', zipOf('x.npy', bomb, 4096, 0));
    const r = measured(() => readNpz(file));
    expect(r.err).toBeInstanceOf(FileFormatError);
    expect(r.err.message).toMatch(/small-declared\.npz \[x\]: inflates to more than the 4096 bytes the zip directory declares/);
    expect(r.ms).toBeLessThan(2000);
    expect(r.grewMiB).toBeLessThan(64);
  });

  it("a declared size the .npy header contradicts stops at the header's size", () => {
    const lying = deflateBomb(npyHeader(1000), GIB2 - 128 - 1);
    const file = put('header-small.npz', zipOf('x.npy', lying, GIB2, 0));
    const r = measured(() => readNpz(file));
    expect(r.err.message).toMatch(/header-small\.npz \[x\]: inflates to more than the 1128 bytes its \.npy header describes/);
    expect(r.ms).toBeLessThan(2000);
    expect(r.grewMiB).toBeLessThan(64);
  });

  it('an honest 2 GiB entry is refused unread when the caller knows the array is smaller', () => {
    const file = put('honest.npz', zipOf('x.npy', bomb, GIB2, 0));
    const r = measured(() => readNpz(file, ['x'], { maxBytes: { x: 10 ** 6 } }));
    expect(r.err.message).toMatch(/honest\.npz \[x\]: entry declares 2147483647 bytes, more than the 1000000 this array can need/);
    expect(r.ms).toBeLessThan(500);
    expect(r.grewMiB).toBeLessThan(16);
  });

  it('an honest small entry still reads (the caps are exact, not approximate)', () => {
    const payload = deflateBomb(npyHeader(5000), 5000);
    const image = inflateBounded(payload, {
      max: 1e6,
      maxWhat: 'x',
      fail: (w) => {
        throw new Error(w);
      },
    });
    const file = put('ok.npz', zipOf('x.npy', payload, image.length, crc32(image)));
    const x = readNpz(file, ['x'], { maxBytes: { x: image.length } }).get('x')!;
    expect(x.shape).toEqual([5000]);
    expect(x.data.every((v) => v === 0)).toBe(true);
  });
});

/** A float32 NIfTI of `shape` with header fields set by `edit`. */
function nifti(shape: [number, number, number], edit: (dv: DataView) => void = () => {}): Uint8Array {
  const n = shape[0] * shape[1] * shape[2];
  const b = encodeNifti({ shape, data: Float32Array.from({ length: n }, (_, i) => i) });
  edit(new DataView(b.buffer));
  return b;
}

/** gzip (RFC 1952) around raw deflate data, with the trailer given. */
function gzipOf(deflated: Uint8Array, crc: number, isize: number): Uint8Array {
  const out = new Uint8Array(10 + deflated.length + 8);
  out.set([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
  out.set(deflated, 10);
  const dv = new DataView(out.buffer);
  dv.setUint32(out.length - 8, crc, true);
  dv.setUint32(out.length - 4, isize >>> 0, true);
  return out;
}

describe('.nii.gz bombs and truncation', () => {
  it('a gzip stream past what the header describes stops there, naming the file', () => {
    const head = nifti([4, 4, 4]).subarray(0, 352);
    const file = put('bomb.nii.gz', gzipOf(deflateBomb(head, GIB2 - 400), 0, 0));
    const r = measured(() => readNifti(file));
    expect(r.err).toBeInstanceOf(FileFormatError);
    expect(r.err.message).toMatch(/bomb\.nii\.gz: inflates to more than the 608 bytes its header describes/);
    expect(r.ms).toBeLessThan(2000);
    expect(r.grewMiB).toBeLessThan(64);
  });

  it('a truncated .nii.gz does not size anything from the bytes where its trailer was', () => {
    const gz = gzipSync(nifti([32, 32, 32]));
    const cut = gz.slice(0, gz.length - 40);
    // what a cut leaves as the "trailer": claim 4 GiB - 1
    cut.set([0xff, 0xff, 0xff, 0xff], cut.length - 4);
    const file = put('cut.nii.gz', cut);
    const r = measured(() => readNifti(file));
    expect(r.err).toBeInstanceOf(FileFormatError);
    expect(r.err.message).toMatch(/^.*cut\.nii\.gz: corrupt gzip data/);
    expect(r.grewMiB).toBeLessThan(16);
  });

  it('a header that does not parse is reported as soon as it is out, before the rest inflates', () => {
    const head = nifti([4, 4, 4], (dv) => dv.setInt32(0, 349, true)).subarray(0, 352);
    const file = put('badhead.nii.gz', gzipOf(deflateBomb(head, GIB2 - 400), 0, 0));
    const r = measured(() => readNifti(file));
    expect(r.err.message).toMatch(/badhead\.nii\.gz: not a NIfTI-1 file: sizeof_hdr is 349/);
    expect(r.ms).toBeLessThan(2000);
  });
});

describe('NIfTI affines and scaling', () => {
  const sform = (srow: number[], qform: boolean) =>
    nifti([2, 2, 2], (dv) => {
      srow.forEach((v, i) => dv.setFloat32(280 + 4 * i, v, true));
      dv.setInt16(252, qform ? 1 : 0, true);
    });

  it('a zero sform falls back to the qform, with a note; without a qform it is refused', () => {
    const v = decodeNifti(sform(new Array(12).fill(0), true), 'zero.nii');
    expect(v.affineSource).toBe('qform');
    expect(v.affine.slice(0, 3)).toEqual([1, 0, 0]);
    expect(v.notes.join()).toMatch(/sform is zero or singular.*qform was used/);
    expect(thrown(() => decodeNifti(sform(new Array(12).fill(0), false), 'zero-noq.nii')).message).toMatch(
      /^zero-noq\.nii: sform \(srow_x\/y\/z\) is zero or singular \(rank < 3\) and there is no qform to fall back to/,
    );
  });

  it('a rank-1 sform is refused or replaced, a sheared full-rank one is kept', () => {
    const rank1 = [1, 1, 1, 0, 2, 2, 2, 0, 3, 3, 3, 0];
    expect(thrown(() => decodeNifti(sform(rank1, false), 'rank1.nii'))).toBeInstanceOf(FileFormatError);
    expect(decodeNifti(sform(rank1, true), 'rank1q.nii').affineSource).toBe('qform');
    const sheared = [1, 0.5, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0];
    expect(decodeNifti(sform(sheared, false), 'shear.nii').affineSource).toBe('sform');
  });

  it('scl_slope that overflows float32 is refused, naming the file, the voxel and the scaling', () => {
    const b = nifti([2, 2, 2], (dv) => dv.setFloat32(112, 3e38, true));
    const e = thrown(() => decodeNifti(b, 'slope.nii'));
    expect(e).toBeInstanceOf(FileFormatError);
    expect(e.message).toMatch(/^slope\.nii: voxel 2 is Infinity after scl_slope 3\.0000000\d+e\+38 and scl_inter 0/);
    const nanData = nifti([2, 1, 1], (dv) => dv.setFloat32(356, Number.NaN, true));
    expect(thrown(() => decodeNifti(nanData, 'nan.nii')).message).toMatch(/^nan\.nii: voxel 1 is NaN \(fix/);
  });
});

describe('JSON nesting', () => {
  it('5000 nested levels are refused with the position of the level past the limit', () => {
    const text = `${'['.repeat(5000)}${']'.repeat(5000)}`;
    const e = thrown(() => parseJsonText(text, { file: 'deep.json', fix: 'flatten it' }));
    expect(e).toBeInstanceOf(FileFormatError);
    expect(e.message).toBe(
      `deep.json: not valid JSON (line 1, column ${MAX_JSON_DEPTH + 1}: nested deeper than ${MAX_JSON_DEPTH} levels); flatten it`,
    );
  });

  it('10,000 unclosed [ in an experiment give a line and column, not NaN or a stack overflow', () => {
    const e = thrown(() => parseJsonText(`{"name": "x",\n "description": ${'['.repeat(10000)}`, { file: 'exp.json', config: true }));
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toBe(`exp.json: invalid JSON at line 2, column ${16 + MAX_JSON_DEPTH}: nested deeper than ${MAX_JSON_DEPTH} levels`);
    expect(e.message).not.toMatch(/NaN|undefined/);
  });

  it('nesting up to the limit parses and hashes', () => {
    const text = `${'['.repeat(MAX_JSON_DEPTH)}1${']'.repeat(MAX_JSON_DEPTH)}`;
    expect(canonical(parseJsonText(text, { file: 'ok.json' }))).toBe(text);
  });
});

describe('checkpoint fields read back', () => {
  const state = (extra: Record<string, unknown>) => ({
    step: 3,
    epoch: 0,
    batch_position: 3,
    rng: {},
    config_hash: 'h',
    extra,
  });
  const save = (dir: string, extra: Record<string, unknown>) =>
    saveCheckpoint(dir, {
      model: new Map([['w', { shape: [1], data: new Float32Array(1) }]]),
      optimizer: new Map(),
      state: state(extra),
    });

  it('training_state.extra.best as a number is refused on load, naming the file and the path', () => {
    const dir = path.join(tmp, 'ck-best');
    const paths = save(dir, { best: 5 });
    expect(thrown(() => loadCheckpoint(dir)).message).toBe(
      `${paths.state}: training_state/extra/best is 5, not an object of best-validation records; restore the checkpoint or run without --resume to start fresh`,
    );
    save(dir, { best: { breastmnist: { epoch: 1, step: 'x', val: {} } } });
    expect(thrown(() => loadCheckpoint(dir)).message).toMatch(/training_state\/extra\/best\/breastmnist/);
    save(dir, { adam_step: -1 });
    expect(thrown(() => loadCheckpoint(dir)).message).toMatch(/training_state\/extra\/adam_step is -1, not a non-negative integer/);
  });

  it('the fields the trainer writes load back', () => {
    const dir = path.join(tmp, 'ck-ok');
    const extra = {
      best: { a: { epoch: 1, step: 2, val: { auc: null, acc: 0.5 } }, b: null },
      reached: { a: 3, b: null },
      adam_step: 3,
      phase: 'p',
      train_seconds: 1.5,
    };
    save(dir, extra);
    expect(loadCheckpoint(dir).state.extra).toEqual(extra);
  });
});

describe('config bounds', () => {
  const exp = (training: Record<string, unknown>, datasets = ['synthetic2d']) => ({
    name: 'x',
    kind: 'supervised',
    model: { preset: 'small' },
    data: { datasets },
    training: { epochs: 1, batch_size: 8, lr: 1e-3, weight_decay: 0, warmup_epochs: 0, ...training },
  });
  const error = (x: unknown) => {
    const e = thrown(() => validateExperiment(x, 'x.json'));
    expect(e).toBeInstanceOf(ConfigError);
    return e.message;
  };

  it('absurd numbers are refused, naming the key and the bound', () => {
    expect(error(exp({ batch_size: 1e300 }))).toBe('x.json: /training/batch_size must be <= 65536');
    expect(error(exp({ epochs: 2 ** 53 }))).toBe('x.json: /training/epochs must be <= 100000');
    expect(error(exp({ lr: 1e9 }))).toBe('x.json: /training/lr must be <= 1');
    expect(error(exp({ max_steps: 1e12 }))).toBe('x.json: /training/max_steps must be <= 1000000000');
    expect(error(exp({ weight_decay: 1e6 }))).toBe('x.json: /training/weight_decay must be <= 10');
    expect(() => validateExperiment(exp({ batch_size: 65536, lr: 1 }), 'x.json')).not.toThrow();
  });

  it('a data set listed twice in different case names both entries', () => {
    expect(error(exp({}, ['breastmnist', 'BreastMNIST']))).toBe(
      'x.json: /data/datasets/0 "breastmnist" and /data/datasets/1 "BreastMNIST" are the same data set; keep one',
    );
  });

  it('--max-steps abc says what was typed and what is wanted, never NaN', () => {
    const e = thrown(() => trainingOverrides({ maxSteps: 'abc' }));
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toBe('--max-steps "abc" is not a whole number in [1, 1000000000]; give one, e.g. --max-steps 1000');
    for (const bad of ['1.5', '1e3', '-2', '', '0', '1000000001'])
      expect(() => trainingOverrides({ maxSteps: bad }), bad).toThrow(ConfigError);
    expect(thrown(() => trainingOverrides({ epochs: 'ten' })).message).toMatch(/^--epochs "ten"/);
    expect(thrown(() => trainingOverrides({ seed: '-1' })).message).toMatch(/^--seed "-1"/);
    expect(trainingOverrides({ maxSteps: '20', epochs: '3', batchSize: '4', seed: '0' })).toEqual({
      max_steps: 20,
      epochs: 3,
      batch_size: 4,
      seed: 0,
    });
  });
});

describe('non-regular files', () => {
  // In a child process with a timeout: a reader that blocked on a FIFO would otherwise hang the whole suite.
  it.skipIf(process.platform === 'win32')('a FIFO or a link to /dev/zero is refused by every reader, at once, naming the file', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'fifo-'));
    for (const name of ['data.npz', 'brain.nii.gz', 'w.safetensors', 'm.json']) {
      expect(spawnSync('mkfifo', [path.join(dir, name)]).status).toBe(0);
    }
    fs.symlinkSync('/dev/zero', path.join(dir, 'zero.nii'));
    fs.mkdirSync(path.join(dir, 'ck'));
    expect(spawnSync('mkfifo', [path.join(dir, 'ck', POINTER_FILE)]).status).toBe(0);
    const script = `
      import { readNpz } from './src/data/npz.ts';
      import { readNifti } from './src/data/nifti.ts';
      import { readSafetensors } from './src/train/safetensors.ts';
      import { loadCheckpoint } from './src/train/checkpoint.ts';
      import { readJsonFile } from './src/util/files.ts';
      import { Type } from '@sinclair/typebox';
      const d = ${JSON.stringify(dir)};
      const cases = {
        npz: () => readNpz(d + '/data.npz'),
        nifti: () => readNifti(d + '/brain.nii.gz'),
        zero: () => readNifti(d + '/zero.nii'),
        safetensors: () => readSafetensors(d + '/w.safetensors'),
        checkpoint: () => loadCheckpoint(d + '/ck'),
        json: () => readJsonFile(d + '/m.json', Type.Unknown(), { what: 'metrics', fix: 'rerun' }),
      };
      const out = {};
      for (const [k, f] of Object.entries(cases)) {
        try { f(); out[k] = 'no error'; } catch (e) { out[k] = e.constructor.name + ': ' + e.message; }
      }
      console.log(JSON.stringify(out));
    `;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.signal, 'a reader blocked on a FIFO').toBeNull();
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, string>;
    expect(out.npz).toMatch(/^FileFormatError: .*data\.npz: is a named pipe \(FIFO\), not a regular file .*; point the data root/);
    expect(out.nifti).toMatch(
      /^FileFormatError: .*brain\.nii\.gz: is a named pipe \(FIFO\), not a regular file \(a NIfTI image\); check the path$/,
    );
    expect(out.zero).toMatch(/^FileFormatError: .*zero\.nii: is a character device, not a regular file/);
    expect(out.safetensors).toMatch(/^FileFormatError: .*w\.safetensors: is a named pipe/);
    expect(out.checkpoint).toMatch(/^FileFormatError: .*checkpoint\.json: is a named pipe .*run without --resume/);
    expect(out.json).toMatch(/^FileFormatError: .*m\.json: is a named pipe .*; rerun$/);
    for (const v of Object.values(out)) expect(v).not.toContain('\n');
  });

  it('a file over the size limit is refused before it is read', () => {
    const big = put('big.json', '');
    fs.truncateSync(big, 300 * 2 ** 20); // sparse: no disk used
    const r = measured(() => readJsonFile(big, Type.Unknown(), { what: 'metrics', fix: 'rerun' }));
    expect(r.err).toBeInstanceOf(FileFormatError);
    expect(r.err.message).toBe(`${big}: is 314572800 bytes, more than the 268435456-byte limit (metrics); rerun`);
    expect(r.grewMiB).toBeLessThan(16);
  });
});
