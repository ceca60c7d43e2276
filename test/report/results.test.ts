// results/*.json -> REPRODUCE.md's measured table: the rendering reads the files (majority-class verdicts, thesis
// and ResNet-18 figures beside each row), and REPRODUCE.md holds exactly the rendering of this checkout's results/.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readResultRows, relativeToCheckout, renderResults, RESULTS_BEGIN, RESULTS_END, spliceResults } from '../../src/report/results.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-results-'));

function resultFile(
  dir: string,
  name: string,
  over: { kind?: string; preset?: string; seeds?: number[]; metrics: unknown; policy?: string },
) {
  fs.mkdirSync(dir, { recursive: true });
  const file = {
    name,
    kind: over.kind ?? 'supervised',
    source: `experiments/${name}.json`,
    config_hash: 'ab'.repeat(32),
    commit: 'c'.repeat(40),
    device: 'webgpu: test',
    seeds: over.seeds ?? [0],
    collected: '2026-12-01T00:00:00.000Z',
    note: `note of ${name}`,
    settings: {
      model: { preset: over.preset ?? 'small' },
      data: { datasets: Object.keys(over.metrics as object), augment: { policy: over.policy ?? 'thesis' } },
      training: { lr: 0.001, epochs: 30, max_steps: null },
    },
    metrics: over.metrics,
  };
  fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(file));
}

const scores = (auc: number, acc: number, extra: object = {}) => ({
  test: { auc, acc },
  val: { auc, acc },
  best_epoch: 3,
  steps: 100,
  wall_s: 1234.4,
  samples_per_s: 10,
  majority_acc: 0.7307692307692307,
  ...extra,
});

describe('results table', () => {
  it('asserts one row per data set with the majority verdict, the thesis and ResNet-18 figures and the seed spread', () => {
    const dir = path.join(tmp, 'a');
    resultFile(dir, 'st-breast', { metrics: { breastmnist: scores(0.754, 0.782) } });
    resultFile(dir, 'st-breast-thesis', { metrics: { breastmnist: scores(0.644, 0.7307692307692307) } });
    resultFile(dir, 'st-breast-seeds', {
      seeds: [0, 1, 2],
      metrics: { breastmnist: scores(0.75, 0.8, { test_std: { auc: 0.01, acc: 0.02 }, seeds: [0, 1, 2] }) },
    });
    resultFile(dir, 'resnet', { preset: 'resnet18', metrics: { breastmnist: scores(0.65, 0.564) } });
    resultFile(dir, 'ssl', { kind: 'ssl', metrics: { loss: 1 } });
    const rows = readResultRows(dir);
    expect(rows.map((r) => r.file)).toEqual(['resnet.json', 'st-breast-seeds.json', 'st-breast-thesis.json', 'st-breast.json']);
    expect(rows[1].thesis).toEqual({ table: '4.2', auc: 0.741, acc: 82 });
    expect(rows[0].thesis).toBeNull();
    const md = renderResults(dir);
    expect(md).toContain(
      '| BreastMNIST | ST | Medformer-small | `thesis` | 0.001 | 30 epochs | 0 | 0.754 | 78.2% | 73.1% | above | 0.741 / 82.0% (Table 4.2) | 0.901 / 86.3% | 1,234 s | [st-breast.json](results/st-breast.json) |',
    );
    expect(md).toContain('| 0.644 | 73.1% | 73.1% | **at or below** |');
    expect(md).toContain('| 0, 1, 2 | 0.750 ± 0.010 | 80.0% ± 2.0 |');
    expect(md).toContain(
      '| BreastMNIST | ST | ResNet-18 (28) | `thesis` | 0.001 | 30 epochs | 0 | 0.650 | 56.4% | 73.1% | **at or below** | – |',
    );
    expect(md).toContain('- `st-breast.json`: note of st-breast');
    expect(md).not.toContain('ssl.json');
  });

  it('asserts single-seed files of one setting are pooled (mean ± sample std, seeds above the majority), others not', () => {
    const dir = path.join(tmp, 'pool');
    resultFile(dir, 's0', { seeds: [0], metrics: { breastmnist: scores(0.7, 0.8) } });
    resultFile(dir, 's1', { seeds: [1], metrics: { breastmnist: scores(0.8, 0.7307692307692307) } });
    resultFile(dir, 'other-policy', { seeds: [2], policy: 'none', metrics: { breastmnist: scores(0.5, 0.5) } });
    const md = renderResults(dir);
    // mean 0.75, sample std 0.0707; ACC mean 76.5%, std 4.9; one of two seeds above 73.1%.
    expect(md).toContain(
      '| BreastMNIST | ST | Medformer-small | `thesis` | 0.001 | 30 epochs | 0, 1 | 0.750 ± 0.071 | 76.5% ± 4.9 | 73.1% | 1 of 2 |',
    );
    expect(md.match(/\| 0, 1 \|/g)?.length).toBe(1);
    expect(md).not.toContain('| `none` | 0.001 | 30 epochs | 2 | 0.500 ± ');
    // One seed alone is never pooled.
    const single = path.join(tmp, 'single');
    resultFile(single, 's0', { seeds: [0], metrics: { breastmnist: scores(0.7, 0.8) } });
    expect(renderResults(single)).not.toContain('pooled');
  });

  it('asserts a run on a generated stand-in is marked as such and never pooled with runs on the real files', () => {
    const dir = path.join(tmp, 'stand-in');
    const standIn = { data_source: { origin: 'generated stand-in', files: [] } };
    resultFile(dir, 'real0', { seeds: [0], metrics: { breastmnist: scores(0.7, 0.8) } });
    resultFile(dir, 'gen1', { seeds: [1], metrics: { breastmnist: scores(0.9, 0.9, standIn) } });
    const rows = readResultRows(dir);
    expect(rows.map((r) => [r.file, r.generated])).toEqual([
      ['gen1.json', true],
      ['real0.json', false],
    ]);
    const md = renderResults(dir);
    expect(md).toContain('| BreastMNIST **(generated stand-in data)** | ST | Medformer-small | `thesis` | 0.001 | 30 epochs | 1 | 0.900 |');
    expect(md).toContain('| BreastMNIST | ST | Medformer-small | `thesis` | 0.001 | 30 epochs | 0 | 0.700 |');
    expect(md).not.toContain('pooled');
  });

  it('asserts a Cascading Sum Augmentation run names its cascade in the schedule column', () => {
    const dir = path.join(tmp, 'csa');
    resultFile(dir, 'csa0', { metrics: { breastmnist: scores(0.66, 0.7307692307692307) } });
    const file = path.join(dir, 'csa0.json');
    const record = JSON.parse(fs.readFileSync(file, 'utf8'));
    record.settings.csa = { schedule: [8, 4, 2, 1], stop: { rule: 'epochs', epochs: 8 } };
    fs.writeFileSync(file, JSON.stringify(record));
    expect(renderResults(dir)).toContain(
      '| BreastMNIST | ST | Medformer-small | `thesis` | 0.001 | CSA 8-4-2-1, 8 epochs a stage | 0 | 0.660 |',
    );
  });

  it('asserts absolute paths in a record, inside notes too, are written relative to the checkout', () => {
    const record = { source: '/m/repo/experiments/a.json', settings: { data_dir: '/m/shared/data/brain', n: 3, tags: ['/m/ev/x'] } };
    expect(relativeToCheckout('/m/repo', { ...record, note: 'npx mf run /m/ev/b.json --data-dir /m/shared/data' })).toEqual({
      source: 'experiments/a.json',
      settings: { data_dir: '../shared/data/brain', n: 3, tags: ['../ev/x'] },
      note: 'npx mf run ../ev/b.json --data-dir ../shared/data',
    });
  });

  it('asserts a results file that does not match its schema is refused with the file named', () => {
    const dir = path.join(tmp, 'bad');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'x.json'), JSON.stringify({ name: 'x' }));
    expect(() => readResultRows(dir)).toThrow(/x\.json/);
  });

  it('asserts splicing replaces only the text between the markers, and needs them', () => {
    const doc = `# T\n\n${RESULTS_BEGIN}\n\nold\n\n${RESULTS_END}\n\nafter\n`;
    expect(spliceResults(doc, 'new', 'D.md')).toBe(`# T\n\n${RESULTS_BEGIN}\n\nnew\n\n${RESULTS_END}\n\nafter\n`);
    expect(() => spliceResults('# T\n', 'new', 'D.md')).toThrow(/D\.md: no results markers/);
  });

  it("asserts REPRODUCE.md shows exactly the rendering of this checkout's results/", () => {
    const doc = fs.readFileSync('REPRODUCE.md', 'utf8');
    expect(spliceResults(doc, renderResults('results'), 'REPRODUCE.md')).toBe(doc);
  });
});
