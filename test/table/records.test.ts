// The schemas of the files runs write (src/train/records.ts): samples in the shapes the writers produce pass, and
// a damaged file is one line naming the file, the JSON path and the fix.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileFormatError, MfError } from '../../src/errors.ts';
import {
  checkLogRecord,
  isMetricsKind,
  jsonProblem,
  LOG_EVENTS,
  LogRecordSchema,
  MetricsSchema,
  MetricsSchemaFor,
  readJsonFile,
  readLogFile,
  type LogRecord,
} from '../../src/train/records.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-records-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** One record of every event, with the fields its writer logs (NaN already turned into null, as JSON does). */
const LOG: LogRecord[] = [
  { t: 0.1, event: 'init', from: 'runs/ssl', loaded: ['body.w'], fresh: ['output.b'], mismatched: [], ignored: [] },
  { t: 0.2, event: 'split', train: ['IXI100'], val: ['IXI101'], test: ['IXI102'] },
  { t: 0.3, event: 'phase', phase: 'NT-s0' },
  { t: 1, event: 'train', step: 1, epoch: 0, task: 'synthetic2d', loss: 1.6, grad_norm: 2.1, lr: 1e-3, samples_per_s: 50 },
  {
    t: 1.1,
    event: 'train',
    step: 2,
    epoch: 0,
    task: 'synthetic2d',
    loss: 18.3,
    grad_norm: 20.8,
    invariance: 0.28,
    variance: 0.63,
    covariance: 0.96,
    lr: 1e-8,
    samples_per_s: 79,
  },
  { t: 1.2, event: 'train', step: 3, epoch: 1, max_gap: 4, loss: 0.2, grad_norm: 0.5, recon: 0.2, lr: 1e-3, samples_per_s: 9 },
  { t: 1.3, event: 'skip', step: 4, skipped: 2, total: 2, first_step: 3 },
  { t: 2, event: 'val', epoch: 0, step: 2, task: 'synthetic2d', auc: null, acc: 0.25 },
  { t: 2.1, event: 'val', epoch: 0, step: 2, gap: 4, psnr_model: 18.9, psnr_linear: null, max_gap: 2 },
  { t: 2.2, event: 'val', phase: 'NT-s0', epoch: 0, step: 2, top1: 0, top3: 0.5, top5: 1, mae: 12.5 },
  { t: 3, event: 'checkpoint', step: 2 },
  { t: 4, event: 'test', task: 'synthetic2d', auc: 0.47, acc: 0.25, best_epoch: null },
];

describe('log.jsonl records', () => {
  it('accepts a record of every event as its writer logs it', () => {
    expect([...new Set(LOG.map((r) => r.event))].sort()).toEqual([...LOG_EVENTS].sort());
    for (const r of LOG) {
      expect(jsonProblem(LogRecordSchema, r), JSON.stringify(r)).toBeUndefined();
      expect(checkLogRecord(r, 'log.jsonl', 1)).toBe(r);
    }
  });

  it('names the line, the field and the fix of a damaged record, and refuses unknown events', () => {
    expect(() => checkLogRecord({ t: 1, event: 'checkpoint', step: -2 }, 'run/log.jsonl', 7)).toThrow(
      'run/log.jsonl:7: /step is -2, not a non-negative integer; the log is damaged: repair or delete that line',
    );
    expect(() => checkLogRecord({ t: 1, event: 'test', task: 'x', auc: 0.5, acc: 0.5 }, 'log.jsonl', 1)).toThrow(
      /\/best_epoch is missing \(expected an epoch number or null\)/,
    );
    expect(() => checkLogRecord({ t: 1, event: 'tset' }, 'log.jsonl', 1)).toThrow(/\/event is "tset", not one of "train", "val", "test"/);
  });

  it('readLogFile reads every line, and names the line that is not JSON', () => {
    const file = path.join(tmp, 'log.jsonl');
    fs.writeFileSync(file, `${LOG.map((r) => JSON.stringify(r)).join('\n')}\n`);
    expect(readLogFile(file)).toEqual(LOG);
    fs.appendFileSync(file, '{"t": 5, "event": "chec\n');
    expect(() => readLogFile(file)).toThrow(FileFormatError);
    expect(() => readLogFile(file)).toThrow(
      new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:${LOG.length + 1}: not valid JSON \\(`),
    );
  });
});

const scores = { test: { auc: 0.9, acc: 0.8 }, val: { auc: null, acc: null }, best_epoch: 0, steps: 12, wall_s: 3.5, samples_per_s: 40.1 };
const split = { seed: 0, train: ['IXI100'], val: ['IXI101'], test: ['IXI102'] };
const quality = { psnr: 18.9, ssim: 0.68 };
const meanStd = [33.3, 0] as const;
const METRICS = {
  supervised: { breastmnist: scores },
  multitask: { synthetic2d: scores, synthetic3d: scores },
  finetune: { synthetic2d: { ...scores, ssl_steps: null } },
  ssl: { ssl: { steps: 2, wall_s: 0.5, samples_per_s: 32, final: LOG[4] } },
  'brainfuse-interp': {
    interp: {
      steps: 4,
      wall_s: 1,
      eval_s: 0.3,
      samples_per_s: 9,
      shape: 16,
      split,
      by_gap: { '2': { slices: 12, model: quality, linear: { psnr: null, ssim: 0.68 }, model_better: 0.5 } },
    },
  },
  brainage: {
    brainage: {
      demonstration: true,
      split,
      bins: { edges: [20, 25, 30], count: 2, label_sigma: 1 },
      input: '16³ (preprocessed at 16³, averaged 1×)',
      arms: { NT: { top1: meanStd, top3: meanStd, top5: meanStd, mae: [10.5, 0], spread: 1.2, seeds: 1 } },
      majority_baseline: { top1: 33.33, top3: 66.67, top5: 100 },
      fusion: [{ mode: 'BrainFuse', transition: '3', proposed: 6, kept: 6, rejected: 0 }],
      wall_s: 6.8,
      train_s: 4.1,
      runs: [{ arm: 'NT', seed: 0, top1: 0.33, top3: 0.67, top5: 1, mae: 10.5, steps: 4, wall_s: 1, train_samples: 6 }],
    },
    thesis: { citation: 'Simionescu, C. (2025)', table: { NT: { top1: [32.1, 0.27], top3: [53.8, 0.18], top5: [64.21, 0.32] } } },
  },
} as const;

describe('metrics.json', () => {
  it('has a schema for every kind that accepts what its writer produces, and none of the others', () => {
    for (const [kind, sample] of Object.entries(METRICS)) {
      expect(isMetricsKind(kind)).toBe(true);
      if (!isMetricsKind(kind)) continue;
      expect(jsonProblem(MetricsSchemaFor(kind), sample), kind).toBeUndefined();
      expect(jsonProblem(MetricsSchema, sample), kind).toBeUndefined();
    }
    expect(isMetricsKind('constructor')).toBe(false);
    expect(jsonProblem(MetricsSchemaFor('ssl'), METRICS.supervised)).toBe('/ssl is missing (expected an object)');
    expect(jsonProblem(MetricsSchemaFor('ssl'), { ssl: { ...METRICS.ssl.ssl, final: {} } })).toBeUndefined();
    expect(jsonProblem(MetricsSchemaFor('supervised'), { breastmnist: { ...scores, steps: 1.5 } })).toBe(
      '/breastmnist/steps is 1.5, not a non-negative integer',
    );
  });

  it('readJsonFile names the file and the fix for a missing, broken or non-conforming file', () => {
    const file = path.join(tmp, 'metrics.json');
    const read = () => readJsonFile(file, MetricsSchemaFor('supervised'), { what: 'the metrics', fix: 'rerun it' });
    expect(read).toThrow(MfError);
    expect(read).toThrow(`${file}: no such file (the metrics); rerun it`);
    fs.writeFileSync(file, '{"breastmnist": ');
    expect(read).toThrow(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not valid JSON \\(.*\\); rerun it$`));
    fs.writeFileSync(file, `\uFEFF${JSON.stringify({ breastmnist: { ...scores, test: { auc: 0.9, acc: 85 } } })}`);
    expect(read).toThrow(`${file}: /breastmnist/test/acc is 85, not a fraction in [0, 1] or null; rerun it`);
    fs.writeFileSync(file, JSON.stringify(METRICS.supervised));
    expect(read()).toEqual(METRICS.supervised);
  });
});
