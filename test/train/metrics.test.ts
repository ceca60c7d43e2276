import { describe, expect, it } from 'vitest';
import { MfError, NumericalError } from '../../src/errors.ts';
import { evaluate, majorityAccuracy, majorityScores, rocAuc } from '../../src/train/metrics.ts';

const f32 = (xs: number[]): Float32Array => Float32Array.from(xs);
const i32 = (xs: number[]): Int32Array => Int32Array.from(xs);

/** O(n²) definition of AUC: P(score+ > score-) + ½ P(tie), over all positive/negative pairs. */
function pairwiseAuc(scores: ArrayLike<number>, y: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < scores.length; i++) {
    if (!y[i]) continue;
    for (let j = 0; j < scores.length; j++) {
      if (y[j]) continue;
      den++;
      num += scores[i]! > scores[j]! ? 1 : scores[i] === scores[j] ? 0.5 : 0;
    }
  }
  return num / den;
}

describe('rocAuc', () => {
  it('matches the sklearn docs example', () => {
    // sklearn: roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    expect(rocAuc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])).toBeCloseTo(0.75, 12);
  });

  it('gives 1 for perfect and 0 for inverted ranking', () => {
    expect(rocAuc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])).toBe(1);
    expect(rocAuc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1])).toBe(0);
  });

  it('gives tied positive/negative pairs half credit (average ranks)', () => {
    // positives 0.3, 0.6; negatives 0.3, 0.1, 0.6 -> pairs: 0.5 + 1 + 0 + 1 + 1 + 0.5 = 4 of 6
    expect(rocAuc([0.3, 0.6, 0.3, 0.1, 0.6], [1, 1, 0, 0, 0])).toBeCloseTo(4 / 6, 12);
    // all scores tied -> 0.5
    expect(rocAuc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1])).toBe(0.5);
  });

  it('returns NaN when only one class is present (sklearn >= 1.6.1 behaviour)', () => {
    expect(rocAuc([0.1, 0.9], [1, 1])).toBeNaN();
    expect(rocAuc([0.1, 0.9], [0, 0])).toBeNaN();
  });

  it('agrees with the pairwise definition on random data with many ties', () => {
    let s = 12345;
    const rand = (): number => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
    for (let trial = 0; trial < 50; trial++) {
      const n = 2 + Math.floor(rand() * 60);
      const scores = Array.from({ length: n }, () => Math.floor(rand() * 6) / 5);
      const y = Array.from({ length: n }, () => (rand() < 0.4 ? 1 : 0));
      y[0] = 1;
      y[1] = 0;
      expect(rocAuc(scores, y)).toBeCloseTo(pairwiseAuc(scores, y), 12);
    }
  });
});

describe('evaluate', () => {
  it('binary: positive-class score is the last column; ACC uses score > 0.5', () => {
    // 2-way softmax: column 1 is P(positive)
    const scores = f32([0.9, 0.1, 0.6, 0.4, 0.65, 0.35, 0.2, 0.8]);
    const r = evaluate('binary', scores, i32([0, 0, 1, 1]), 4, 2);
    expect(r.auc).toBeCloseTo(0.75, 6);
    expect(r.acc).toBe(0.75);
    // single sigmoid column gives the same
    const r1 = evaluate('binary', f32([0.1, 0.4, 0.35, 0.8]), i32([0, 0, 1, 1]), 4, 1);
    expect(r1.auc).toBeCloseTo(0.75, 6);
    expect(r1.acc).toBe(0.75);
  });

  it('binary: a score of exactly 0.5 is predicted negative (strict threshold)', () => {
    const r = evaluate('binary', f32([0.5, 0.5, 0.5, 0.5]), i32([0, 0, 0, 1]), 4, 1);
    expect(r.acc).toBe(0.75);
    expect(r.auc).toBe(0.5);
  });

  it('multi-class: one-vs-rest macro AUC and argmax ACC with first-max ties', () => {
    const scores = f32([
      0.7,
      0.2,
      0.1, // label 0, pred 0
      0.2,
      0.5,
      0.3, // label 1, pred 1
      0.45,
      0.25,
      0.3, // label 2, pred 0
      0.4,
      0.4,
      0.2, // label 1, argmax tie -> 0 (np.argmax takes the first), wrong
    ]);
    const labels = i32([0, 1, 2, 1]);
    // class 0: 1; class 1: 1; class 2: pos 0.3 vs neg {0.1, 0.3, 0.2} -> 2.5/3
    const expectedAuc = (1 + 1 + 2.5 / 3) / 3;
    const r = evaluate('multi-class', scores, labels, 4, 3);
    expect(r.auc).toBeCloseTo(expectedAuc, 6);
    expect(r.acc).toBe(0.5);
    // ordinal is evaluated exactly like multi-class, as in the official evaluator
    expect(evaluate('ordinal', scores, labels, 4, 3)).toEqual(r);
  });

  it('multi-class: a class absent from the labels makes AUC NaN, ACC stays defined', () => {
    const r = evaluate('multi-class', f32([0.8, 0.1, 0.1, 0.1, 0.8, 0.1]), i32([0, 1]), 2, 3);
    expect(r.auc).toBeNaN();
    expect(r.acc).toBe(1);
  });

  it('multi-label: per-label mean of AUC and of thresholded accuracy', () => {
    const scores = f32([0.9, 0.5, 0.6, 0.7, 0.4, 0.5, 0.2, 0.1]);
    const labels = i32([1, 0, 0, 1, 1, 1, 0, 1]);
    // label 0: scores .9 .6 .4 .2, y 1 0 1 0 -> AUC 3/4, preds 1 1 0 0 -> ACC 2/4
    // label 1: scores .5 .7 .5 .1, y 0 1 1 1 -> AUC (1 + .5 + 0)/3, preds 0 1 0 0 -> ACC 2/4
    const r = evaluate('multi-label', scores, labels, 4, 2);
    expect(r.auc).toBeCloseTo((0.75 + 0.5) / 2, 6);
    expect(r.acc).toBe(0.5);
  });

  it('rejects non-finite scores, bad labels and mismatched sizes with one-line errors', () => {
    expect(() => evaluate('binary', f32([0.1, NaN]), i32([0, 1]), 2, 1)).toThrow(NumericalError);
    expect(() => evaluate('binary', f32([0.1, NaN]), i32([0, 1]), 2, 1)).toThrow(/row 1, column 0 is NaN/);
    expect(() => evaluate('multi-class', f32([0.5, 0.5]), i32([2]), 1, 2)).toThrow(/label 2 at row 0 is outside 0..1/);
    expect(() => evaluate('binary', f32([0.5]), i32([0, 1]), 2, 1)).toThrow(MfError);
    expect(() => evaluate('multi-label', f32([0.5, 0.5]), i32([1]), 1, 2)).toThrow(/expected 1×2/);
  });
});

describe('majority-class baseline', () => {
  it("answers the training split's most common class, per label for multi-label", () => {
    // Train: class 2 is most common; test: 3 of 5 are class 2.
    const train = { labels: Int32Array.from([2, 2, 1, 0, 2]), n: 5 };
    expect(majorityScores('multi-class', train.labels, 5, 3)).toEqual(Float32Array.from([0, 0, 1]));
    expect(majorityAccuracy('multi-class', train, Int32Array.from([2, 0, 2, 1, 2]), 5, 3)).toBeCloseTo(0.6, 12);
    // Binary (one output): positives are the training majority, so the baseline is the test positive rate.
    expect(majorityAccuracy('binary', { labels: Int32Array.from([1, 1, 0]), n: 3 }, Int32Array.from([0, 1, 0, 0]), 4, 1)).toBeCloseTo(
      0.25,
      12,
    );
    // Multi-label, 2 labels: label 0 mostly 1, label 1 mostly 0 in training.
    const ml = { labels: Int32Array.from([1, 0, 1, 0, 0, 1]), n: 3 };
    expect(majorityScores('multi-label', ml.labels, 3, 2)).toEqual(Float32Array.from([1, 0]));
    expect(majorityAccuracy('multi-label', ml, Int32Array.from([1, 0, 0, 0]), 2, 2)).toBeCloseTo((0.5 + 1) / 2, 12);
  });
});
