// What a researcher looks at beside AUC and ACC: the test split's confusion matrix and ROC curves, computed
// from the same scores and with the same decision rule as the official evaluator (src/train/metrics.ts).
import { ACC_THRESHOLD, type TaskType } from './metrics.ts';
import type { Series } from './report.ts';

/**
 * Counts[true][predicted] of a single-label task: argmax for multi-class and ordinal, P(class 1) > 0.5 for
 * binary (the evaluator's ACC rule). Null for multi-label, which has one 2×2 table per label instead.
 */
export function confusionMatrix(task: TaskType, scores: Float32Array, labels: Int32Array, n: number, k: number): number[][] | null {
  if (task === 'multi-label') return null;
  const classes = task === 'binary' ? 2 : k;
  const m = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let i = 0; i < n; i++) {
    let predicted = 0;
    if (task === 'binary') predicted = scores[i * k + k - 1]! > ACC_THRESHOLD ? 1 : 0;
    else for (let c = 1; c < k; c++) if (scores[i * k + c]! > scores[i * k + predicted]!) predicted = c;
    m[labels[i]!]![predicted]!++;
  }
  return m;
}

/**
 * ROC curve of `scores` against 0/1 `positive` flags: (false-positive rate, true-positive rate) from (0, 0) to
 * (1, 1), one point per distinct score (ties move both rates at once, as sklearn's roc_curve does). Its
 * trapezoidal area is the rank AUC of metrics.ts rocAuc. Empty when one class is absent (the AUC is undefined).
 */
export function rocCurve(scores: ArrayLike<number>, positive: ArrayLike<number>): [number, number][] {
  const n = scores.length;
  let p = 0;
  for (let i = 0; i < n; i++) if (positive[i] !== 0) p++;
  const neg = n - p;
  if (p === 0 || neg === 0) return [];
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
  const points: [number, number][] = [[0, 0]];
  let tp = 0;
  let fp = 0;
  for (let i = 0; i < n; ) {
    const s = scores[order[i]!]!;
    for (; i < n && scores[order[i]!] === s; i++) positive[order[i]!] !== 0 ? tp++ : fp++;
    points.push([fp / neg, tp / p]);
  }
  return points;
}

/** Trapezoidal area under a curve of (x, y) points sorted by x. */
export function areaUnder(points: readonly [number, number][]): number {
  let a = 0;
  for (let i = 1; i < points.length; i++) a += ((points[i]![0] - points[i - 1]![0]) * (points[i]![1] + points[i - 1]![1])) / 2;
  return a;
}

/**
 * One ROC curve per class the evaluator scores: the positive class of a binary task, each class one-vs-rest for
 * multi-class and ordinal, each label for multi-label. Labelled with the data set's label names.
 */
export function rocSeries(
  task: TaskType,
  scores: Float32Array,
  labels: Int32Array,
  n: number,
  k: number,
  names: readonly string[],
): Series[] {
  const column = (c: number) => Float64Array.from({ length: n }, (_, i) => scores[i * k + c]!);
  if (task === 'binary') return [{ label: names[1] ?? 'positive', points: rocCurve(column(k - 1), labels) }];
  return Array.from({ length: k }, (_, c) => ({
    label: names[c] ?? `class ${c}`,
    points: rocCurve(
      column(c),
      task === 'multi-label' ? Int32Array.from({ length: n }, (_, i) => labels[i * k + c]!) : labels.map((y) => (y === c ? 1 : 0)),
    ),
  }));
}

/** A confusion matrix as a Markdown table, rows the true class, columns the predicted one. */
export function confusionMarkdown(m: readonly (readonly number[])[], names: readonly string[]): string[] {
  const name = (c: number) => (names[c] ?? `class ${c}`).replace(/\|/g, '/');
  return [
    `| true \\ predicted | ${m.map((_, c) => name(c)).join(' | ')} |`,
    `|---|${m.map(() => '---:').join('|')}|`,
    ...m.map((row, t) => `| ${name(t)} | ${row.join(' | ')} |`),
  ];
}
