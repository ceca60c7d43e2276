import { describe, expect, it } from 'vitest';
import { ConfigError, MfError } from '../../src/errors.ts';
import { oneCycle, warmupSteps } from '../../src/train/schedule.ts';

// Values below are worked out by hand from the formulas in schedule.ts (PyTorch OneCycleLR, cos annealing).
describe('oneCycle', () => {
  const s = oneCycle({ maxLr: 1e-3, totalSteps: 100, warmupSteps: 10 });
  const max = 1e-3;
  const initial = 1e-3 / 25; // 4e-5
  const min = initial / 1e4; // 4e-9

  it('has PyTorch default div factors', () => {
    expect(s.initialLr).toBeCloseTo(4e-5, 15);
    expect(s.minLr).toBeCloseTo(4e-9, 18);
  });

  it('warms up from max/25 to max over steps 0..w-1', () => {
    expect(s.lr(0)).toBeCloseTo(initial, 15);
    // step 3: pct = 3/9, cos(pi/3) = 0.5 -> max + (initial - max)/2 * 1.5
    expect(s.lr(3)).toBeCloseTo(max + ((initial - max) / 2) * 1.5, 15);
    expect(s.lr(3)).toBeCloseTo(2.8e-4, 15);
    expect(s.lr(9)).toBeCloseTo(max, 15);
  });

  it('anneals from max to max/25/1e4 over steps w-1..T-1', () => {
    // span = 99 - 9 = 90; step 24: pct = 1/6, cos = sqrt(3)/2
    expect(s.lr(24)).toBeCloseTo(min + ((max - min) / 2) * (1 + Math.sqrt(3) / 2), 15);
    // step 54: pct = 1/2 -> midpoint
    expect(s.lr(54)).toBeCloseTo((max + min) / 2, 15);
    expect(s.lr(99)).toBeCloseTo(min, 18);
    // step T is defined (PyTorch allows it), slightly past pct = 1
    expect(s.lr(100)).toBeCloseTo(min + ((max - min) / 2) * (1 - Math.cos(Math.PI / 90)), 18);
    expect(() => s.lr(101)).toThrow(MfError);
    expect(() => s.lr(-1)).toThrow(MfError);
  });

  it('matches a small PyTorch run: max_lr 0.01, 10 steps, pct_start 0.3', () => {
    const t = oneCycle({ maxLr: 0.01, totalSteps: 10, warmupSteps: 3 });
    expect(t.lr(0)).toBeCloseTo(0.0004, 12);
    expect(t.lr(1)).toBeCloseTo(0.0052, 12); // pct 0.5: 0.01 + (0.0004 - 0.01)/2
    expect(t.lr(2)).toBeCloseTo(0.01, 12);
    // phase 2 span 7; step 9 is the final value 4e-8
    expect(t.lr(9)).toBeCloseTo(4e-8, 15);
  });

  it('cycles momentum the opposite way (0.95 -> 0.85 -> 0.95)', () => {
    expect(s.momentum(0)).toBeCloseTo(0.95, 12);
    expect(s.momentum(9)).toBeCloseTo(0.85, 12);
    expect(s.momentum(54)).toBeCloseTo(0.9, 12);
    expect(s.momentum(99)).toBeCloseTo(0.95, 12);
  });

  it('handles the degenerate warm-ups PyTorch divides by zero on', () => {
    const none = oneCycle({ maxLr: 1, totalSteps: 4, warmupSteps: 0 });
    // phase 1 ends at step -1, so step 0 is already pct = 1/4 into the anneal
    expect(none.lr(0)).toBeCloseTo(0.04e-4 + ((1 - 0.04e-4) / 2) * (1 + Math.cos(Math.PI / 4)), 12);
    const one = oneCycle({ maxLr: 1, totalSteps: 4, warmupSteps: 1 });
    expect(one.lr(0)).toBe(1);
    const all = oneCycle({ maxLr: 1, totalSteps: 4, warmupSteps: 4 });
    expect(all.lr(3)).toBeCloseTo(1, 12);
    expect(Number.isFinite(all.lr(4))).toBe(true);
  });

  it('validates its options', () => {
    expect(() => oneCycle({ maxLr: 0, totalSteps: 10, warmupSteps: 1 })).toThrow(ConfigError);
    expect(() => oneCycle({ maxLr: 1, totalSteps: 0, warmupSteps: 0 })).toThrow(ConfigError);
    expect(() => oneCycle({ maxLr: 1, totalSteps: 10, warmupSteps: 11 })).toThrow(/warm-up steps 11/);
  });

  it('converts warm-up epochs to steps', () => {
    expect(warmupSteps(5, 39)).toBe(195);
    expect(warmupSteps(0.5, 39)).toBe(20);
  });
});
