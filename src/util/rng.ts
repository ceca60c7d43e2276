// Deterministic seeded randomness. Every random choice in data loading and augmentation goes
// through an Rng so a run is reproducible from its seed, and its whole state is one uint32 so a
// checkpoint can store it and a resumed run continues the very same sequence.
import { ConfigError } from '../errors.ts';

const TWO_32 = 4294967296;

/** murmur3's 32-bit finaliser: a bijection on uint32 with full avalanche. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function mixIn(h: number, v: number): number {
  // h ^ v, times an odd constant, then fmix32: distinct v give distinct results for a fixed h.
  return fmix32((Math.imul(h ^ (v >>> 0), 0x9e3779b1) + 0x632be5ab) >>> 0);
}

/**
 * Hashes numbers and strings into a uint32 seed. Used to derive independent streams from
 * (seed, purpose, epoch, sample) without advancing any generator, which makes seeking O(1).
 * Numbers must be finite; integers up to 2^53 are folded exactly, other values by their bits.
 */
export function hashSeed(...parts: readonly (number | string)[]): number {
  let h = 0x2545f491;
  for (const p of parts) {
    if (typeof p === 'string') {
      h = mixIn(h, 0x5354_5200 ^ p.length); // tag strings so 'a' never hashes like a number
      for (let i = 0; i < p.length; i++) h = mixIn(h, p.charCodeAt(i));
    } else {
      if (!Number.isFinite(p)) throw new ConfigError(`random seed part ${p} is not a finite number`, 'use an integer seed');
      if (Number.isSafeInteger(p)) {
        const neg = p < 0 ? 1 : 0;
        const a = Math.abs(p);
        h = mixIn(h, a % TWO_32);
        h = mixIn(h, Math.floor(a / TWO_32) ^ (neg << 31));
      } else {
        const f = new Float64Array([p]);
        const u = new Uint32Array(f.buffer);
        h = mixIn(mixIn(h, u[0]!), u[1]!);
      }
    }
  }
  return h;
}

/** mulberry32: tiny, fast, passes the usual statistical batteries for this use; period 2^32. */
export class Rng {
  private s: number;

  /** A seed of any number or string; it is hashed, so seeds 0, 1, 2 give unrelated streams. */
  constructor(seed: number | string = 0) {
    this.s = hashSeed(seed);
  }

  /** A generator that starts from a saved `state()` rather than from a seed. */
  static fromState(state: number): Rng {
    const r = new Rng(0);
    r.setState(state);
    return r;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) | 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / TWO_32;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [0, n). The modulo bias is below 2^-20 for n < 4096, the sizes used here. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > TWO_32) throw new ConfigError(`Rng.int(${n}): n must be an integer in 1..2^32`);
    return Math.floor(this.next() * n);
  }

  /** True with probability p. */
  bool(p = 0.5): boolean {
    return this.next() < p;
  }

  /** Standard normal by Box-Muller. No spare value is cached, so the state stays one number. */
  normal(): number {
    const u1 = 1 - this.next(); // (0, 1]: log stays finite
    const u2 = this.next();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** Fisher-Yates shuffle in place; returns the same array. */
  shuffle<A extends { length: number; [i: number]: unknown }>(a: A): A {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }

  /**
   * An independent child stream named by `label`, derived from the current state without
   * advancing it: forking the same label twice at the same point gives the same child.
   */
  fork(label: string | number): Rng {
    return Rng.fromState(hashSeed(this.s >>> 0, 'fork', label));
  }

  /** The whole generator state (a uint32); `setState` of it continues the same sequence. */
  state(): number {
    return this.s >>> 0;
  }

  setState(state: number): void {
    if (!Number.isInteger(state) || state < 0 || state >= TWO_32) {
      throw new ConfigError(`invalid Rng state ${state}`, 'a saved state is an integer in 0..2^32-1; the checkpoint may be corrupt');
    }
    this.s = state | 0;
  }
}
