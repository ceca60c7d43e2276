// Multi-task sampling: how many batches each task gets per epoch, their order, and where in its own data
// each batch comes from.
import { describe, expect, it } from 'vitest';
import { epochOrder, loaderPosition, occurrences, taskBatchCounts } from '../../src/kinds/medformer/sampling.ts';

describe('multi-task sampling', () => {
  const own = [2, 8, 30];

  it("proportional keeps each task's own batch count", () => {
    expect(taskBatchCounts(own, 'proportional', null)).toEqual([2, 8, 30]);
  });

  it('uniform gives every task the same count, keeping the total', () => {
    expect(taskBatchCounts(own, 'uniform', null)).toEqual([13, 13, 13]);
  });

  it('temperature τ: counts ∝ size^(1/τ); τ = 1 is proportional, large τ approaches uniform', () => {
    expect(taskBatchCounts(own, 'temperature', 1)).toEqual([2, 8, 30]);
    // τ = 2: weights √2, √8, √30 = 1.41, 2.83, 5.48 of 9.72, times 40 batches.
    expect(taskBatchCounts(own, 'temperature', 2)).toEqual([6, 12, 23]);
    const hot = taskBatchCounts(own, 'temperature', 100);
    expect(Math.max(...hot) - Math.min(...hot)).toBeLessThanOrEqual(2);
  });

  it('every task gets at least one batch', () => {
    expect(taskBatchCounts([1, 1000], 'temperature', 0.2)).toEqual([1, 1001]);
  });

  it('batches of one task alternate with the others and keep their count', () => {
    const counts = [3, 6];
    const order = epochOrder(counts);
    expect(Array.from(order).filter((t) => t === 0).length).toBe(3);
    expect(Array.from(order)).toEqual([1, 0, 1, 1, 0, 1, 1, 0, 1]);
    expect(Array.from(occurrences(order))).toEqual([0, 0, 1, 2, 1, 3, 4, 2, 5]);
  });

  it('an over-sampled task walks on into its next pass; proportional sampling maps epoch e to loader epoch e', () => {
    // 5 batches per epoch from a task whose data holds 2: epoch 0 takes loader epochs 0, 0, 1, 1, 2.
    const seen = Array.from({ length: 5 }, (_, k) => loaderPosition(0, k, 5, 2));
    expect(seen).toEqual([
      { epoch: 0, index: 0 },
      { epoch: 0, index: 1 },
      { epoch: 1, index: 0 },
      { epoch: 1, index: 1 },
      { epoch: 2, index: 0 },
    ]);
    expect(loaderPosition(1, 0, 5, 2)).toEqual({ epoch: 2, index: 1 });
    // Under-sampled: 2 batches per epoch of 5 resume where the last epoch stopped.
    expect(loaderPosition(1, 0, 2, 5)).toEqual({ epoch: 0, index: 2 });
    for (let e = 0; e < 3; e++) for (let k = 0; k < 4; k++) expect(loaderPosition(e, k, 4, 4)).toEqual({ epoch: e, index: k });
  });
});
