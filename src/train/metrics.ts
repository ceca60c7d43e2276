// AUC and ACC exactly as the official MedMNIST evaluator defines them (medmnist/evaluator.py, getAUC/getACC,
// MedMNIST v3 code base; the v2 paper's numbers use the same definitions):
//
//   AUC  binary       roc_auc_score(y, score[:, -1])                      (last column = positive class)
//        multi-label  mean over labels j of roc_auc_score(y[:, j], score[:, j])
//        otherwise    mean over classes c of roc_auc_score(y == c, score[:, c])   (one-vs-rest, macro)
//   ACC  binary       accuracy(y, score[:, -1] > 0.5)
//        multi-label  mean over labels j of accuracy(y[:, j], score[:, j] > 0.5)
//        otherwise    accuracy(y, argmax(score))                           (np.argmax: first maximum wins)
//
// "otherwise" covers 'multi-class' and 'ordinal': the official code has no ordinal branch, so RetinaMNIST's
// "ordinal-regression" falls through to the multi-class one. The threshold is strict (`>`) as in the current
// evaluator; the older v2.0 code used `score < 0.5 ? 0 : 1` for multi-label, which differs only on exact 0.5.
//
// ROC AUC is computed from average ranks (Mann-Whitney U): AUC = (R+ - P(P+1)/2) / (P·N), where R+ is the sum
// of the positives' ranks and tied scores share their mean rank. That is the area sklearn's roc_auc_score gets
// from its trapezoidal ROC curve (a block of tied scores is one threshold, i.e. a diagonal segment that gives
// each tied positive/negative pair half credit), so the two agree up to float rounding.
//
// Undefined AUC: when y_true holds only one class, sklearn <= 1.5 raises ValueError, 1.6.0 returned 0.0, and
// >= 1.6.1 returns NaN with an UndefinedMetricWarning. We return NaN for that class/label, and the mean over
// classes is then NaN too (numpy's sum propagates NaN the same way), so a split missing a class is visible
// instead of silently dragging the mean down.

import { MfError, NumericalError } from '../errors.ts';

export type TaskType = 'multi-class' | 'binary' | 'multi-label' | 'ordinal';

export interface Metrics {
  auc: number;
  acc: number;
}

export const ACC_THRESHOLD = 0.5;

/**
 * Binary ROC AUC of `scores` against 0/1 `positive` flags, with average ranks for ties.
 * Returns NaN when only one class is present (see the header comment).
 */
export function rocAuc(scores: ArrayLike<number>, positive: ArrayLike<number>): number {
  const n = scores.length;
  if (positive.length !== n) {
    throw new MfError(`rocAuc: ${n} scores but ${positive.length} labels; pass one label per score`);
  }
  let p = 0;
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(scores[i]!)) throw new NumericalError(`rocAuc: score ${i} is ${scores[i]}; scores must be finite`);
    if (positive[i] !== 0) p++;
  }
  const neg = n - p;
  if (p === 0 || neg === 0) return NaN;

  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => scores[a]! - scores[b]!);

  // Walk blocks of equal scores; every member of a block gets the block's mean 1-based rank.
  let rankSumPos = 0;
  let i = 0;
  while (i < n) {
    let j = i + 1;
    while (j < n && scores[order[j]!] === scores[order[i]!]) j++;
    const meanRank = (i + 1 + j) / 2; // mean of ranks i+1 .. j
    let posInBlock = 0;
    for (let t = i; t < j; t++) if (positive[order[t]!] !== 0) posInBlock++;
    rankSumPos += posInBlock * meanRank;
    i = j;
  }
  return (rankSumPos - (p * (p + 1)) / 2) / (p * neg);
}

/**
 * AUC and ACC of `scores` (row-major n×k probabilities: softmax for multi-class/ordinal, sigmoid or 2-way
 * softmax for binary, per-label sigmoid for multi-label) against `labels` (n×1 class indices, or n×k 0/1 flags
 * for multi-label).
 */
export function evaluate(task: TaskType, scores: Float32Array, labels: Int32Array, n: number, k: number): Metrics {
  checkInputs(task, scores, labels, n, k);
  switch (task) {
    case 'binary':
      return evaluateBinary(scores, labels, n, k);
    case 'multi-label':
      return evaluateMultiLabel(scores, labels, n, k);
    case 'multi-class':
    case 'ordinal':
      return evaluateMultiClass(scores, labels, n, k);
  }
}

function checkInputs(task: TaskType, scores: Float32Array, labels: Int32Array, n: number, k: number): void {
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(k) || k < 1) {
    throw new MfError(`evaluate: need at least one sample and one class, got n=${n}, k=${k}`);
  }
  if (scores.length !== n * k) {
    throw new MfError(`evaluate: scores has ${scores.length} values, expected n×k = ${n}×${k}`);
  }
  const l = task === 'multi-label' ? k : 1;
  if (labels.length !== n * l) {
    throw new MfError(`evaluate: labels has ${labels.length} values, expected ${n}×${l} for a ${task} task`);
  }
  if (task === 'multi-class' || task === 'ordinal') {
    if (k < 2) throw new MfError(`evaluate: a ${task} task needs k >= 2 score columns, got ${k}`);
  }
  // sklearn rejects NaN/Inf inputs too; a NaN here means the model diverged, which the caller must see.
  for (let i = 0; i < scores.length; i++) {
    if (!Number.isFinite(scores[i]!)) {
      throw new NumericalError(
        `evaluate: score at row ${Math.floor(i / k)}, column ${i % k} is ${scores[i]}; the model output is not finite`,
      );
    }
  }
  const maxLabel = task === 'multi-class' || task === 'ordinal' ? k - 1 : 1;
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i]!;
    if (y < 0 || y > maxLabel) {
      throw new MfError(`evaluate: label ${y} at row ${Math.floor(i / l)} is outside 0..${maxLabel} for a ${task} task`);
    }
  }
}

function evaluateBinary(scores: Float32Array, labels: Int32Array, n: number, k: number): Metrics {
  // The official code takes y_score[:, -1]: with a 2-way softmax that is P(class 1), with one sigmoid it is that.
  const pos = new Float64Array(n);
  let correct = 0;
  for (let i = 0; i < n; i++) {
    pos[i] = scores[i * k + k - 1]!;
    if ((pos[i]! > ACC_THRESHOLD ? 1 : 0) === labels[i]) correct++;
  }
  return { auc: rocAuc(pos, labels), acc: correct / n };
}

function evaluateMultiLabel(scores: Float32Array, labels: Int32Array, n: number, k: number): Metrics {
  const col = new Float64Array(n);
  const y = new Int32Array(n);
  let aucSum = 0;
  let accSum = 0;
  for (let j = 0; j < k; j++) {
    let correct = 0;
    for (let i = 0; i < n; i++) {
      col[i] = scores[i * k + j]!;
      y[i] = labels[i * k + j]!;
      if ((col[i]! > ACC_THRESHOLD ? 1 : 0) === y[i]) correct++;
    }
    aucSum += rocAuc(col, y);
    accSum += correct / n;
  }
  return { auc: aucSum / k, acc: accSum / k };
}

function evaluateMultiClass(scores: Float32Array, labels: Int32Array, n: number, k: number): Metrics {
  let correct = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (scores[i * k + c]! > scores[i * k + best]!) best = c;
    if (best === labels[i]) correct++;
  }
  const col = new Float64Array(n);
  const isC = new Uint8Array(n);
  let aucSum = 0;
  for (let c = 0; c < k; c++) {
    for (let i = 0; i < n; i++) {
      col[i] = scores[i * k + c]!;
      isC[i] = labels[i] === c ? 1 : 0;
    }
    aucSum += rocAuc(col, isC);
  }
  return { auc: aucSum / k, acc: correct / n };
}

/**
 * The constant scores (one row of k) of a model that always answers the most common class of `labels` (the
 * training split's; per label for multi-label, the more common of 0/1). Ties go to the lower class.
 */
export function majorityScores(task: TaskType, labels: Int32Array, n: number, k: number): Float32Array {
  const row = new Float32Array(k);
  if (task === 'multi-class' || task === 'ordinal') {
    const counts = new Float64Array(k);
    for (let i = 0; i < n; i++) counts[labels[i]!]!++;
    let best = 0;
    for (let c = 1; c < k; c++) if (counts[c]! > counts[best]!) best = c;
    row[best] = 1;
    return row;
  }
  // binary (k = 1) and multi-label: a flag per column, 1 where positives are the majority.
  for (let j = 0; j < k; j++) {
    let pos = 0;
    for (let i = 0; i < n; i++) pos += labels[i * k + j]!;
    row[j] = pos > n - pos ? 1 : 0;
  }
  return row;
}

/**
 * ACC on a split (`labels`, n rows) of always answering the training split's majority class: the baseline a
 * classifier's ACC must beat to have learned anything from the images.
 */
export function majorityAccuracy(
  task: TaskType,
  train: { labels: Int32Array; n: number },
  labels: Int32Array,
  n: number,
  k: number,
): number {
  const row = majorityScores(task, train.labels, train.n, k);
  const scores = new Float32Array(n * k);
  for (let i = 0; i < n; i++) scores.set(row, i * k);
  return evaluate(task, scores, labels, n, k).acc;
}

/** Mean and sample (n − 1) standard deviation; the deviation is 0 for fewer than two values. */
export function meanStd(xs: readonly number[]): [number, number] {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return [mean, std];
}
