// The test split's confusion matrix and ROC curves in report.md use the evaluator's own decision rule and
// agree with its AUC.
import { describe, expect, it } from 'vitest';
import { areaUnder, confusionMarkdown, confusionMatrix, rocCurve, rocSeries } from '../../src/train/diagnostics.ts';
import { rocAuc } from '../../src/train/metrics.ts';
import { Rng } from '../../src/util/rng.ts';

describe('confusion matrix', () => {
  it('asserts binary uses P(class 1) > 0.5 and multi-class the argmax, rows true and columns predicted', () => {
    // Binary, one sigmoid per sample: 0.5 itself is class 0, as in the evaluator's ACC.
    const bin = confusionMatrix('binary', Float32Array.of(0.9, 0.5, 0.2, 0.7), Int32Array.of(1, 1, 0, 0), 4, 1);
    expect(bin).toEqual([
      [1, 1],
      [1, 1],
    ]);
    const mc = confusionMatrix('multi-class', Float32Array.of(0.1, 0.7, 0.2, 0.6, 0.3, 0.1, 0.2, 0.2, 0.6), Int32Array.of(1, 0, 1), 3, 3);
    expect(mc).toEqual([
      [1, 0, 0],
      [0, 1, 1],
      [0, 0, 0],
    ]);
    expect(confusionMatrix('multi-label', new Float32Array(4), new Int32Array(4), 2, 2)).toBeNull();
    expect(confusionMarkdown(mc as number[][], ['a', 'b|c'])).toEqual([
      '| true \\ predicted | a | b/c | class 2 |',
      '|---|---:|---:|---:|',
      '| a | 1 | 0 | 0 |',
      '| b/c | 0 | 1 | 1 |',
      '| class 2 | 0 | 0 | 0 |',
    ]);
  });
});

describe('ROC curve', () => {
  it('asserts a known curve, ties moving both rates at once, and no curve when a class is absent', () => {
    expect(rocCurve([0.9, 0.8, 0.8, 0.1], [1, 0, 1, 0])).toEqual([
      [0, 0],
      [0, 0.5],
      [0.5, 1],
      [1, 1],
    ]);
    expect(rocCurve([0.3, 0.4], [1, 1])).toEqual([]);
  });

  it('asserts its trapezoidal area equals the evaluator rank AUC (200 random cases with ties)', () => {
    const rng = new Rng(5);
    for (let t = 0; t < 200; t++) {
      const n = 2 + rng.int(60);
      const scores = Array.from({ length: n }, () => rng.int(8) / 8);
      const positive = Array.from({ length: n }, () => (rng.bool() ? 1 : 0));
      const auc = rocAuc(scores, positive);
      const curve = rocCurve(scores, positive);
      if (Number.isNaN(auc)) expect(curve).toEqual([]);
      else expect(areaUnder(curve)).toBeCloseTo(auc, 12);
    }
  });

  it('asserts one curve per class one-vs-rest, the positive class for binary, per label for multi-label', () => {
    const labels3 = Int32Array.of(0, 1, 2, 1);
    const s3 = new Float32Array(12).map((_, i) => (i % 3 === labels3[Math.floor(i / 3)]! ? 0.8 : 0.1));
    const mc = rocSeries('multi-class', s3, labels3, 4, 3, ['x', 'y', 'z']);
    expect(mc.map((s) => s.label)).toEqual(['x', 'y', 'z']);
    for (const s of mc) expect(areaUnder(s.points)).toBe(1);
    const bin = rocSeries('binary', Float32Array.of(0.2, 0.9), Int32Array.of(0, 1), 2, 1, ['benign', 'malignant']);
    expect(bin).toHaveLength(1);
    expect(bin[0]!.label).toBe('malignant');
    expect(areaUnder(bin[0]!.points)).toBe(1);
    const ml = rocSeries('multi-label', Float32Array.of(0.9, 0.1, 0.2, 0.8), Int32Array.of(0, 1, 1, 0), 2, 2, ['p', 'q']);
    expect(ml.map((s) => areaUnder(s.points))).toEqual([0, 0]);
  });
});
