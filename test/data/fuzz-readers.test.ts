// Seeded fuzzing of every reader of files from outside: npz, the .npy header, NIfTI (plain, gzip, big-endian),
// safetensors, the checkpoint pointer and training state, and experiment JSON. Each case is a valid file with
// random damage (byte changes, cuts, insertions, hostile 32-bit sizes, edits of the text inside) and must end in a
// consistent result or the project's typed error (one line naming the file), within a time and memory bound
// checked per case. MF_FUZZ_CASES=<n> runs n cases per reader instead of the CI default.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'fflate';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeNifti, encodeNifti } from '../../src/data/nifti.ts';
import { encodeNpy, parseNpy, readNpz, writeNpz } from '../../src/data/npz.ts';
import { ConfigError, FileFormatError, MfError } from '../../src/errors.ts';
import { validateExperiment } from '../../src/kinds/index.ts';
import { loadCheckpoint, POINTER_FILE, saveCheckpoint } from '../../src/train/checkpoint.ts';
import { decodeSafetensors, encodeSafetensors } from '../../src/train/safetensors.ts';
import { parseJsonText } from '../../src/util/json.ts';
import { Rng } from '../../src/util/rng.ts';

const CASES = Number(process.env.MF_FUZZ_CASES) || 0;
/** Cases per reader: `base` in CI, MF_FUZZ_CASES when set. */
const cases = (base: number): number => CASES || base;
/** One case may take this long on a loaded 2-core machine (a whole case is normally well under 5 ms). */
const CASE_MS = 1000;
/** External (ArrayBuffer) memory one case may add; the inputs are kilobytes, so anything near this is a claim believed. */
const CASE_MIB = 64;
/** Peak RSS over a whole reader's run may grow by at most this. */
const RUN_MIB = 256;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-fuzz-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** 32-bit values that break size arithmetic: sign bit, all ones, zero, one past a small limit, 2 GiB. */
const HOSTILE = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffffe, 0x10000, 65537, 2 ** 31 - 1];

/** One random mutation of `b`: a byte, a bit, a cut, an insertion, a hostile 32-bit value, or a run of bytes. */
function mutate(rng: Rng, bytes: Uint8Array, hot: readonly number[] = []): Uint8Array {
  let b = Uint8Array.from(bytes);
  const at = () => (hot.length && rng.int(2) ? hot[rng.int(hot.length)]! + rng.int(4) : rng.int(b.length));
  switch (rng.int(6)) {
    case 0:
      b[at()] = rng.int(256);
      break;
    case 1:
      b[at()] ^= 1 << rng.int(8);
      break;
    case 2:
      b = b.slice(0, rng.int(b.length + 1));
      break;
    case 3: {
      const i = rng.int(b.length + 1);
      const ins = Uint8Array.from({ length: 1 + rng.int(16) }, () => rng.int(256));
      b = Uint8Array.from([...b.subarray(0, i), ...ins, ...b.subarray(i)]);
      break;
    }
    case 4: {
      const i = Math.min(at(), Math.max(0, b.length - 4));
      if (b.length >= 4) new DataView(b.buffer).setUint32(i, HOSTILE[rng.int(HOSTILE.length)]!, rng.int(2) === 0);
      break;
    }
    default: {
      const i = at();
      for (let k = 0; k < 1 + rng.int(8) && i + k < b.length; k++) b[i + k] = rng.int(256);
    }
  }
  return b;
}

/** Text edits that reach the semantic checks: digits, quotes, brackets and hostile numbers swapped in. */
function mutateText(rng: Rng, text: string): string {
  const pieces = ['0', '-1', '1e300', '2e9', '9007199254740993', '"x"', 'null', '[', ']', '{', '}', ',', ':', '"', '[[[[', 'true', '1.5'];
  const i = rng.int(text.length + 1);
  switch (rng.int(4)) {
    case 0:
      return text.slice(0, i) + pieces[rng.int(pieces.length)] + text.slice(i);
    case 1:
      return text.slice(0, i) + pieces[rng.int(pieces.length)] + text.slice(i + 1 + rng.int(6));
    case 2: {
      // replace one number with a hostile one
      const nums = [...text.matchAll(/-?\d+(\.\d+)?(e[+-]?\d+)?/g)];
      if (!nums.length) return text;
      const m = nums[rng.int(nums.length)]!;
      return text.slice(0, m.index) + pieces[rng.int(5)] + text.slice(m.index! + m[0].length);
    }
    default:
      return text.slice(0, i);
  }
}

interface Tally {
  ok: number;
  errors: number;
  worstMs: number;
  worstMiB: number;
  rssGrowthMiB: number;
}

/**
 * Runs `n` cases of `one` (which builds a case from the rng and reads it), checking per case that it ends in a
 * result `one` vouched for or in an `expected` error naming `name`, within CASE_MS and CASE_MIB.
 */
function fuzz(n: number, seed: number, name: string, expected: (e: unknown) => boolean, one: (rng: Rng, t: number) => void): Tally {
  const rng = new Rng(seed);
  const tally: Tally = { ok: 0, errors: 0, worstMs: 0, worstMiB: 0, rssGrowthMiB: 0 };
  const rss0 = process.resourceUsage().maxRSS;
  for (let t = 0; t < n; t++) {
    const ab0 = process.memoryUsage().arrayBuffers;
    const t0 = performance.now();
    try {
      one(rng, t);
      tally.ok++;
    } catch (e) {
      if (!expected(e)) throw new Error(`case ${t} (seed ${seed}) threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
      const msg = (e as Error).message;
      if (!msg.includes(name) || msg.includes('\n')) throw new Error(`case ${t}: message does not name ${name} on one line: ${msg}`);
      tally.errors++;
    }
    const ms = performance.now() - t0;
    const mib = (process.memoryUsage().arrayBuffers - ab0) / 2 ** 20;
    if (ms > CASE_MS) throw new Error(`case ${t} (seed ${seed}) took ${ms.toFixed(0)} ms, over ${CASE_MS}`);
    if (mib > CASE_MIB) throw new Error(`case ${t} (seed ${seed}) grew ArrayBuffer memory by ${mib.toFixed(0)} MiB`);
    tally.worstMs = Math.max(tally.worstMs, ms);
    tally.worstMiB = Math.max(tally.worstMiB, mib);
  }
  tally.rssGrowthMiB = (process.resourceUsage().maxRSS - rss0) / 1024;
  return tally;
}

/** Both outcomes must occur, and the bounds must have held over the run. */
function expectTally(t: Tally, n: number): void {
  expect(t.ok + t.errors).toBe(n);
  expect(t.errors, 'some mutations must be refused').toBeGreaterThan(n / 10);
  expect(t.ok, 'some mutations must still read').toBeGreaterThan(0);
  expect(t.worstMs).toBeLessThanOrEqual(CASE_MS);
  expect(t.worstMiB).toBeLessThanOrEqual(CASE_MIB);
  expect(t.rssGrowthMiB).toBeLessThan(RUN_MIB);
}

const isFormat = (e: unknown) => e instanceof FileFormatError;

describe('fuzz: every reader ends in a result or its typed error, within time and memory bounds', () => {
  it(`npz: ${cases(2000)} mutated archives (stored and deflated)`, () => {
    const arrays = {
      images: { dtype: '|u1' as const, shape: [6, 4, 4], data: Uint8Array.from({ length: 96 }, (_, i) => (i * 37) % 256) },
      labels: { dtype: '<i8' as const, shape: [6, 1], data: BigInt64Array.from([0n, 1n, 1n, 0n, 2n, 1n]) },
    };
    const bases = [false, true].map((compress) => {
      const f = path.join(tmp, `base-${compress}.npz`);
      writeNpz(f, arrays, { compress });
      return new Uint8Array(fs.readFileSync(f));
    });
    // Offsets of the size fields in the first local header and (found by signature) the central directory.
    const hot = (b: Uint8Array) => {
      const cd = [...b.keys()].filter((i) => b[i] === 0x50 && b[i + 1] === 0x4b && b[i + 2] === 1 && b[i + 3] === 2);
      return [14, 18, 22, ...cd.flatMap((i) => [16, 20, 24, 42].map((o) => i + o))];
    };
    const hots = bases.map(hot);
    for (const compress of [false, true]) expect(readNpz(path.join(tmp, `base-${compress}.npz`)).size).toBe(2);
    const file = path.join(tmp, 'fuzz.npz');
    const n = cases(2000);
    const t = fuzz(n, 11, 'fuzz.npz', isFormat, (rng, i) => {
      const b = mutate(rng, bases[i % 2]!, hots[i % 2]);
      fs.writeFileSync(file, b);
      for (const a of readNpz(file).values()) {
        expect(a.data.length).toBe(a.shape.reduce((x, y) => x * y, 1));
      }
    });
    expectTally(t, n);
  });

  it(`npy header: ${cases(3000)} edited header texts`, () => {
    const base = encodeNpy({ dtype: '<f4', shape: [3, 2], data: Float32Array.from([1, 2, 3, 4, 5, 6]) });
    const headerEnd = base.indexOf(0x0a);
    const n = cases(3000);
    const alphabet = '0123456789(),:\'" {}TrueFalse<|>fiub248L-';
    const t = fuzz(n, 12, 'x.npz', isFormat, (rng) => {
      let b: Uint8Array = Uint8Array.from(base);
      if (rng.int(3) === 0) b = mutate(rng, b, [6, 8]);
      else for (let k = 1 + rng.int(3); k > 0; k--) b[10 + rng.int(headerEnd - 10)] = alphabet.charCodeAt(rng.int(alphabet.length));
      const a = parseNpy(b, 'x.npz', 'k');
      expect(a.data.length).toBe(a.shape.reduce((x, y) => x * y, 1));
    });
    expectTally(t, n);
  });

  it(`NIfTI: ${cases(2000)} mutated .nii, .nii.gz and big-endian images`, () => {
    const vol = { shape: [4, 3, 2], data: Float32Array.from({ length: 24 }, (_, i) => i * 1.5 - 7) };
    const le = encodeNifti(vol, { spacing: [1, 2, 3] });
    // A big-endian copy: swap every header field and voxel we wrote (all 2- or 4-byte fields).
    const be = Uint8Array.from(le);
    const swap = (o: number, size: number) => be.subarray(o, o + size).reverse();
    swap(0, 4);
    for (let o = 40; o < 56; o += 2) swap(o, 2);
    swap(70, 2);
    swap(72, 2);
    for (let o = 76; o < 148; o += 4) swap(o, 4);
    swap(252, 2);
    swap(254, 2);
    for (let o = 256; o < 328; o += 4) swap(o, 4);
    for (let o = 352; o < be.length; o += 4) swap(o, 4);
    const bases = [le, gzipSync(le), be];
    for (const b of bases) expect(Array.from(decodeNifti(b, 'base.nii').data)).toEqual(Array.from(vol.data));
    const fields = [0, 40, 42, 44, 46, 48, 70, 72, 76, 80, 108, 112, 116, 252, 254, 256, 280, 300, 344];
    const names = ['fuzz.nii', 'fuzz.nii.gz', 'fuzz-be.nii'];
    const n = cases(2000);
    let i = 0;
    const t = fuzz(n, 13, 'fuzz', isFormat, (rng) => {
      const k = i++ % 3;
      const b = mutate(rng, bases[k]!, k === 1 ? [] : fields);
      const r = decodeNifti(b, names[k]!);
      expect(r.data.length).toBe(r.shape[0] * r.shape[1] * r.shape[2]);
      expect(r.data.every(Number.isFinite)).toBe(true);
      expect(r.affine.every(Number.isFinite)).toBe(true);
    });
    expectTally(t, n);
  });

  it(`safetensors: ${cases(2000)} mutated files`, () => {
    const base = encodeSafetensors(
      new Map([
        ['w', { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) }],
        ['b', { shape: [3], data: Int32Array.from([7, 8, 9]) }],
      ]),
      { producer: 'fuzz' },
    );
    const headerLen = Number(new DataView(base.buffer).getBigUint64(0, true));
    const text = new TextDecoder().decode(base.subarray(8, 8 + headerLen));
    expect(decodeSafetensors(base, 'base.safetensors').tensors.size).toBe(2);
    const n = cases(2000);
    const t = fuzz(n, 14, 'fuzz.safetensors', isFormat, (rng) => {
      let b: Uint8Array;
      if (rng.int(2)) b = mutate(rng, base, [0, 4]);
      else {
        // an edited header with its length fixed up, so the JSON and the layout checks are reached
        const h = new TextEncoder().encode(mutateText(rng, text));
        b = new Uint8Array(8 + h.length + base.length - 8 - headerLen);
        new DataView(b.buffer).setBigUint64(0, BigInt(h.length), true);
        b.set(h, 8);
        b.set(base.subarray(8 + headerLen), 8 + h.length);
      }
      for (const x of decodeSafetensors(b, 'fuzz.safetensors').tensors.values()) {
        expect(x.data.length).toBe(x.shape.reduce((p, q) => p * q, 1));
      }
    });
    expectTally(t, n);
  });

  it(`checkpoint: ${cases(1000)} edited pointers and ${cases(1000)} edited training states`, () => {
    const dir = path.join(tmp, 'ck');
    const model = new Map([['w', { shape: [2], data: Float32Array.from([1, 2]) }]]);
    const state = {
      step: 7,
      epoch: 1,
      batch_position: 2,
      rng: { data: 5 },
      config_hash: 'abc',
      extra: { adam_step: 7, best: { a: { epoch: 1, step: 4, val: { auc: 0.5 } } }, reached: { a: null } },
    };
    saveCheckpoint(dir, { model, optimizer: model, state });
    const pointerFile = path.join(dir, POINTER_FILE);
    const pointer = fs.readFileSync(pointerFile, 'utf8');
    expect(loadCheckpoint(dir).state).toEqual(state);
    const n = cases(1000);
    const tp = fuzz(
      n,
      15,
      dir,
      (e) => e instanceof MfError,
      (rng) => {
        fs.writeFileSync(pointerFile, mutateText(rng, pointer));
        expect(loadCheckpoint(dir).step).toBe(7);
      },
    );
    expectTally(tp, n);
    fs.writeFileSync(pointerFile, pointer);

    // The training state sits in the state file's header; re-save it so the hashes match and parsing is reached.
    const stateText = JSON.stringify(state);
    const ts = fuzz(n, 16, 'state-', isFormat, (rng) => {
      const edited = mutateText(rng, stateText);
      const st = encodeSafetensors(model, { producer: 'medformer', training_state: edited });
      const p = JSON.parse(pointer) as { state: string; state_sha256: string };
      fs.writeFileSync(path.join(dir, p.state), st);
      fs.writeFileSync(pointerFile, JSON.stringify({ ...p, state_sha256: crypto.createHash('sha256').update(st).digest('hex') }));
      const ck = loadCheckpoint(dir);
      expect(ck.state.step).toBe(7);
    });
    expectTally(ts, n);
  });

  it(`experiment JSON: ${cases(2000)} edited experiment files`, () => {
    const text = fs.readFileSync(path.join(import.meta.dirname, '../../experiments/quickstart.json'), 'utf8');
    // The unedited file is valid (and validating it once compiles the schema outside the timed cases).
    expect(validateExperiment(parseJsonText(text, { file: 'quickstart.json', config: true }), 'quickstart.json').settings.name).toBe(
      'quickstart',
    );
    const n = cases(2000);
    const t = fuzz(
      n,
      17,
      'fuzz.json',
      (e) => e instanceof ConfigError,
      (rng) => {
        const s = validateExperiment(parseJsonText(mutateText(rng, text), { file: 'fuzz.json', config: true }), 'fuzz.json').settings;
        expect(typeof s.name).toBe('string');
      },
    );
    expectTally(t, n);
  });
});
