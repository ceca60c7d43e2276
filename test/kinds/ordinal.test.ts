// The ordinal regression head (data.ordinal "regression"): normalised target, MSE, decoded into class scores
// that the official evaluator ranks.
import { describe, expect, it } from 'vitest';
import { getDataset } from '../../src/data/registry.ts';
import { headOutputs, ordinalScores, taskLoss } from '../../src/kinds/medformer/tasks.ts';
import { setBackend, Tensor } from '../../src/tensor/tensor.ts';
import { evaluate } from '../../src/train/metrics.ts';
import { cpu } from '../helpers.ts';

describe('ordinal regression head', () => {
  it('decodes v·(K−1) into a triangle of class scores whose argmax is the nearest class', () => {
    expect([...ordinalScores(0.5, 5)]).toEqual([0, 0, 1, 0, 0]);
    const s = ordinalScores(0.6, 5); // x = 2.4
    expect(s[2]).toBeCloseTo(0.6, 6);
    expect(s[3]).toBeCloseTo(0.4, 6);
    expect(s[0] + s[1] + s[4]).toBe(0);
    // Out of range predictions clamp to the end classes.
    expect([...ordinalScores(-3, 5)]).toEqual([1, 0, 0, 0, 0]);
    expect([...ordinalScores(7, 5)]).toEqual([0, 0, 0, 0, 1]);
  });

  it('gives ACC 1 and AUC 1 for exact predictions and scores the nearest class', () => {
    const labels = Int32Array.from([0, 1, 2, 3, 4, 2]);
    const scores = new Float32Array(6 * 5);
    labels.forEach((y, i) => scores.set(ordinalScores(y / 4 + 0.05, 5), i * 5));
    expect(evaluate('ordinal', scores, labels, 6, 5)).toEqual({ auc: 1, acc: 1 });
  });

  it('has one output and an MSE loss against label / (K − 1)', async () => {
    setBackend(cpu);
    const retina = getDataset('retinamnist');
    const t = { ds: retina, head: 'regression' as const };
    expect(headOutputs(t)).toBe(1);
    expect(headOutputs({ ds: retina, head: 'classes' })).toBe(5);
    const pred = Tensor.from(Float32Array.from([0, 0.5, 1]), [3, 1]);
    // targets 0/4, 2/4, 4/4 -> 0, 0.5, 1: zero loss; label 1 for the first -> (0 - 0.25)^2 / 3.
    expect((await taskLoss(t, pred, Int32Array.from([0, 2, 4])).data())[0]).toBeCloseTo(0, 7);
    expect((await taskLoss(t, pred, Int32Array.from([1, 2, 4])).data())[0]).toBeCloseTo(0.0625 / 3, 7);
  });
});
