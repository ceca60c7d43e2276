import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import { hashSeed, Rng } from '../../src/util/rng.ts';

const draw = (r: Rng, n: number) => Array.from({ length: n }, () => r.next());

describe('Rng', () => {
  it('is deterministic per seed and differs across seeds', () => {
    expect(draw(new Rng(42), 100)).toEqual(draw(new Rng(42), 100));
    expect(draw(new Rng(42), 10)).not.toEqual(draw(new Rng(43), 10));
    expect(draw(new Rng('run-a'), 10)).toEqual(draw(new Rng('run-a'), 10));
  });

  it('next() stays in [0, 1) and int(n) in [0, n)', () => {
    const r = new Rng(1);
    for (let i = 0; i < 10000; i++) {
      const v = r.next();
      expect(v >= 0 && v < 1).toBe(true);
      const k = r.int(7);
      expect(Number.isInteger(k) && k >= 0 && k < 7).toBe(true);
    }
    expect(() => r.int(0)).toThrow(ConfigError);
    expect(() => r.int(2.5)).toThrow(ConfigError);
  });

  it('a saved state continues the same sequence', () => {
    const a = new Rng(7);
    draw(a, 13);
    const saved = a.state();
    const rest = draw(a, 50);
    const b = Rng.fromState(saved);
    expect(draw(b, 50)).toEqual(rest);
    const c = new Rng(999);
    c.setState(saved);
    expect(draw(c, 50)).toEqual(rest);
    expect(() => c.setState(-1)).toThrow(ConfigError);
    expect(() => c.setState(2 ** 32)).toThrow(ConfigError);
  });

  it('fork is named, independent and does not advance the parent', () => {
    const a = new Rng(5);
    const before = a.state();
    const f1 = a.fork('augment');
    const f2 = a.fork('augment');
    const g = a.fork('order');
    expect(a.state()).toBe(before);
    expect(draw(f1, 20)).toEqual(draw(f2, 20));
    expect(draw(a.fork('augment'), 20)).not.toEqual(draw(g, 20));
    expect(draw(a.fork('x'), 5)).not.toEqual(draw(new Rng(5), 5));
  });

  it('shuffle is a seeded permutation', () => {
    const a = new Int32Array(100).map((_, i) => i);
    new Rng(3).shuffle(a);
    expect([...a].sort((x, y) => x - y)).toEqual([...Array(100).keys()]);
    expect([...a]).not.toEqual([...Array(100).keys()]);
    const b = new Int32Array(100).map((_, i) => i);
    new Rng(3).shuffle(b);
    expect(b).toEqual(a);
  });

  it('normal() has mean ~0 and variance ~1', () => {
    const r = new Rng(11);
    const n = 20000;
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const v = r.normal();
      s += v;
      s2 += v * v;
    }
    expect(Math.abs(s / n)).toBeLessThan(0.03);
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.05);
  });

  it('hashSeed separates parts, types and order', () => {
    const seen = new Set<number>();
    for (let e = 0; e < 20; e++) for (let i = 0; i < 200; i++) seen.add(hashSeed(1, 'augment', e, i));
    expect(seen.size).toBe(4000);
    expect(hashSeed(1, 2)).not.toBe(hashSeed(2, 1));
    expect(hashSeed('1')).not.toBe(hashSeed(1));
    expect(hashSeed(2 ** 40)).not.toBe(hashSeed(0));
    expect(() => hashSeed(NaN)).toThrow(ConfigError);
  });
});
