import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import {
  buildTable,
  renderCsv,
  renderJson,
  renderMarkdown,
  tableCommand,
  type DeltaView,
  type OurScores,
  type ValueView,
} from '../../src/cli/table.ts';
import { getDataset } from '../../src/data/registry.ts';
import { ConfigError, MfError } from '../../src/errors.ts';
import {
  TABLE_IDS,
  datasetKey,
  datasetName,
  implausible,
  medmnistBaseline,
  thesisDatasets,
  thesisFlags,
  thesisTable,
  ThesisTablesSchema,
} from '../../src/report/thesis.ts';
import { jsonProblem } from '../../src/train/records.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-table-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

let dirs = 0;
function runsDir(): string {
  const dir = path.join(tmp, `runs${dirs++}`);
  fs.mkdirSync(dir);
  return dir;
}

interface Result {
  auc: number;
  acc: number;
  ssl_steps?: number | null;
}

/** A finished run folder: config.json as `mf run` resolves it (the fields the table reads) and metrics.json. */
function run(
  dir: string,
  folder: string,
  kind: string,
  preset: 'small' | 'large' | 'resnet18',
  results: Record<string, Result>,
  mtimeSeconds = 1_700_000_000,
): string {
  const out = path.join(dir, folder);
  fs.mkdirSync(out);
  const config = { name: folder, kind, model: { preset, hidden_dim: 128 }, data: { datasets: Object.keys(results), size: 28 } };
  fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify(config, null, 2));
  const metrics: Record<string, unknown> = {};
  for (const [key, r] of Object.entries(results)) {
    metrics[key] = {
      test: { auc: r.auc, acc: r.acc },
      val: { auc: r.auc, acc: r.acc },
      best_epoch: 3,
      steps: 120,
      wall_s: 10,
      samples_per_s: 500,
      ...('ssl_steps' in r ? { ssl_steps: r.ssl_steps } : {}),
    };
  }
  const file = path.join(out, 'metrics.json');
  fs.writeFileSync(file, JSON.stringify(metrics, null, 2));
  fs.utimesSync(file, mtimeSeconds, mtimeSeconds);
  return out;
}

function values(id: string, dir: string): ValueView {
  const view = buildTable(id, dir);
  if (view.regime === 'deltas') throw new Error(`table ${id} is a difference table`);
  return view;
}
function row(view: ValueView, dataset: string) {
  const r = view.rows.find((x) => x.dataset === dataset);
  if (!r) throw new Error(`no ${dataset} row in table ${view.id}`);
  return r;
}
function ours(view: ValueView, dataset: string): OurScores {
  const o = row(view, dataset).ours;
  if (o === 'missing') throw new Error(`${dataset} is missing in table ${view.id}`);
  return o;
}

/** RFC 4180 CSV: quoted fields may hold commas, quotes ("") and newlines. */
function parseCsv(text: string): Record<string, string>[] {
  const records: string[][] = [];
  let field = '';
  let rec: string[] = [];
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') rec.push(field), (field = '');
    else if (c === '\n') rec.push(field), records.push(rec), (rec = []), (field = '');
    else field += c;
  }
  rec.push(field);
  records.push(rec);
  const [head, ...body] = records;
  return body.map((r) => Object.fromEntries(head.map((h, i) => [h, r[i]])));
}

describe('thesis tables as data', () => {
  it('has every table with its model size, regime and rows by display name', () => {
    expect(TABLE_IDS).toEqual(['4.2', '4.3', '4.4', '4.5', '4.6', '4.7', '4.8', '4.9', '4.10', '4.11']);
    const shape = TABLE_IDS.map((id) => {
      const t = thesisTable(id);
      return [id, t.model, t.regime, t.rows.length];
    });
    expect(shape).toEqual([
      ['4.2', 'small', 'single-task', 12],
      ['4.3', 'small', 'single-task', 6],
      ['4.4', 'small', 'multi-task', 18],
      ['4.5', 'small', 'ssl-finetune', 18],
      ['4.6', 'small', 'deltas', 18],
      ['4.7', 'large', 'single-task', 12],
      ['4.8', 'large', 'single-task', 6],
      ['4.9', 'large', 'multi-task', 18],
      ['4.10', 'large', 'ssl-finetune', 18],
      ['4.11', 'large', 'deltas', 18],
    ]);
    const t42 = thesisTable('4.2');
    expect(t42.regime !== 'deltas' && t42.rows.find((r) => r.dataset === 'BreastMNIST')).toEqual({
      dataset: 'BreastMNIST',
      auc: 0.741,
      acc: 82.0,
    });
    const t45 = thesisTable('4.5');
    expect(t45.regime !== 'deltas' && t45.rows.find((r) => r.dataset === 'PneumoniaMNIST')?.auc).toBe(99.3);
    const t46 = thesisTable('4.6');
    expect(t46.regime === 'deltas' && t46.rows[0]).toMatchObject({
      dataset: 'PathMNIST',
      mt_minus_st: { auc: -0.004, acc: -1.0 },
      ssl_finetune_steps: 200,
    });
  });

  it('maps display names to dataset keys and back, for all 18 sets the registry knows', () => {
    expect(datasetKey('BreastMNIST')).toBe('breastmnist');
    expect(datasetKey('OrganMNIST3D')).toBe('organmnist3d');
    expect(datasetName('organmnist3d')).toBe('OrganMNIST3D');
    expect(datasetName('breastmnist')).toBe('BreastMNIST');
    expect(thesisDatasets()).toHaveLength(18);
    for (const name of thesisDatasets()) {
      expect(datasetName(datasetKey(name))).toBe(name);
      expect(getDataset(datasetKey(name)).name).toBe(name);
    }
    expect(() => datasetKey('CatMNIST')).toThrow(ConfigError);
  });

  it('has the MedMNIST v2 baseline for every dataset, labelled with the method', () => {
    expect(medmnistBaseline('BreastMNIST')).toEqual({ model: 'ResNet-18 (28)', auc: 0.901, acc: 86.3 });
    expect(medmnistBaseline('retinamnist')).toEqual({ model: 'ResNet-18 (28)', auc: 0.717, acc: 52.4 });
    expect(medmnistBaseline('AdrenalMNIST3D')).toEqual({ model: 'ResNet-18 + 3D', auc: 0.827, acc: 72.1 });
    for (const name of thesisDatasets()) expect(medmnistBaseline(name)).toBeDefined();
  });

  it('checks the figures file against its schema, which fixes each table id to its model size and regime', () => {
    const file = JSON.parse(fs.readFileSync(new URL('../../src/report/thesis-tables.json', import.meta.url), 'utf8'));
    expect(jsonProblem(ThesisTablesSchema, file)).toBeUndefined();
    file.thesis.tables['4.2'].regime = 'multi-task';
    expect(jsonProblem(ThesisTablesSchema, file)).toBe('/thesis/tables/4.2/regime is "multi-task", not "single-task"');
    file.thesis.tables['4.2'].regime = 'single-task';
    file.thesis.tables['4.11'].rows.PathMNIST.ssl_finetune_steps = '200';
    expect(jsonProblem(ThesisTablesSchema, file)).toBe(
      '/thesis/tables/4.11/rows/PathMNIST/ssl_finetune_steps is "200", not a non-negative integer',
    );
  });

  it('flags figures the official evaluator cannot produce, each with a reason', () => {
    const retina = implausible({ dataset: 'RetinaMNIST', auc: 0.2, acc: 95 }, 'ordinal');
    expect(retina.map((f) => f.rule)).toEqual(['auc-below-chance', 'acc-above-benchmark']);
    expect(retina[0].reason).toMatch(/43\.5%/);
    for (const f of retina) expect(f.reason.length).toBeGreaterThan(10);
    expect(implausible({ dataset: 'PneumoniaMNIST', auc: 99.3, acc: 96.1 }, 'binary')).toEqual([
      expect.objectContaining({ rule: 'auc-out-of-range', fields: ['auc'], reason: expect.stringMatching(/0\.993/) }),
    ]);
    expect(implausible({ dataset: 'OrganMNIST3D', auc: 0.868, acc: 9.93 }, 'multi-class').map((f) => f.rule)).toEqual(['acc-at-chance']);
    expect(implausible({ dataset: 'ChestMNIST', auc: 0.525, acc: 90 }, 'multi-label').map((f) => f.rule)).toEqual(['task-mismatch']);
    // Plausible figures, and a binary AUC below 0.5 (majority-class prediction), are left alone.
    expect(implausible({ dataset: 'BreastMNIST', auc: 0.741, acc: 82 }, 'binary')).toEqual([]);
    expect(implausible({ dataset: 'SynapseMNIST3D', auc: 0.497, acc: 72.8 }, 'binary')).toEqual([]);
    expect(implausible({ dataset: 'RetinaMNIST', auc: 0.717, acc: 52.4 }, 'ordinal')).toEqual([]);
  });

  it('flags rows repeated across tables and differences that do not follow from their tables', () => {
    expect(thesisFlags('4.4', 'BloodMNIST').map((f) => f.rule)).toEqual(['identical-row']);
    expect(thesisFlags('4.6', 'OrganCMNIST')).toEqual([expect.objectContaining({ rule: 'delta-mismatch', fields: ['ssl_minus_mt.acc'] })]);
    expect(thesisFlags('4.6', 'PneumoniaMNIST').map((f) => f.rule)).toEqual(['delta-reads-corrected', 'delta-reads-corrected']);
    expect(thesisFlags('4.6', 'PathMNIST')).toEqual([]);
  });
});

describe('buildTable', () => {
  it('puts runs next to Table 4.2: percent accuracy, differences, baseline, and missing rows marked missing', () => {
    const dir = runsDir();
    run(dir, 'st-small-breastmnist', 'supervised', 'small', { breastmnist: { auc: 0.8, acc: 0.8526 } });
    run(dir, 'st-small-retinamnist', 'supervised', 'small', { retinamnist: { auc: 0.71, acc: 0.5 } });
    run(dir, 'mt-small', 'multitask', 'small', { adrenalmnist3d: { auc: 0.83, acc: 0.8 }, breastmnist: { auc: 0.5, acc: 0.5 } });
    run(dir, 'st-large-breastmnist', 'supervised', 'large', { breastmnist: { auc: 0.6, acc: 0.6 } });
    const view = values('4.2', dir);
    expect(view).toMatchObject({ id: '4.2', model: 'small', regime: 'single-task', run_kind: 'supervised' });
    expect(view.rows.map((r) => r.dataset)).toEqual(thesisTable('4.2').rows.map((r) => r.dataset));

    const breast = row(view, 'BreastMNIST');
    expect(breast.key).toBe('breastmnist');
    expect(breast.thesis).toEqual({ auc: 0.741, acc: 82.0 });
    expect(breast.ours).toMatchObject({
      auc: 0.8,
      acc: 85.26,
      run: { dir: path.join(dir, 'st-small-breastmnist'), name: 'st-small-breastmnist' },
    });
    expect(breast.diff).toEqual({ auc: 0.059, acc: 3.26 });
    expect(breast.baseline).toEqual({ model: 'ResNet-18 (28)', auc: 0.901, acc: 86.3 });
    expect(breast.flags).toEqual([]);

    expect(ours(view, 'RetinaMNIST')).toMatchObject({ auc: 0.71, acc: 50 });
    expect(row(view, 'RetinaMNIST').diff).toEqual({ auc: 0.51, acc: -45 });

    const path_ = row(view, 'PathMNIST');
    expect(path_.ours).toBe('missing');
    expect(path_.diff).toBeNull();
    expect(view.rows.filter((r) => r.ours === 'missing')).toHaveLength(10);
    expect(view.warnings).toEqual([]);
  });

  it('takes the newest run by metrics.json mtime when several qualify, and says which', () => {
    const dir = runsDir();
    run(dir, 'a-old', 'supervised', 'small', { breastmnist: { auc: 0.7, acc: 0.7 } }, 1_700_000_000);
    run(dir, 'b-new', 'supervised', 'small', { breastmnist: { auc: 0.9, acc: 0.9 } }, 1_700_000_500);
    run(dir, 'c-older', 'supervised', 'small', { breastmnist: { auc: 0.6, acc: 0.6 } }, 1_600_000_000);
    const b = ours(values('4.2', dir), 'BreastMNIST');
    expect(b.auc).toBe(0.9);
    expect(b.run).toEqual({ dir: path.join(dir, 'b-new'), name: 'b-new', metrics_mtime: new Date(1_700_000_500_000).toISOString() });
    const json = JSON.parse(renderJson(values('4.2', dir))) as { rows: { dataset: string; ours: { run: { name: string } } }[] };
    expect(json.rows.find((r) => r.dataset === 'BreastMNIST')?.ours.run.name).toBe('b-new');
  });

  it('puts the pipeline\'s own ResNet-18 (28) runs beside the small single-task tables only, never in "Ours"', () => {
    const dir = runsDir();
    run(dir, 'st-small-breastmnist', 'supervised', 'small', { breastmnist: { auc: 0.75, acc: 0.78 } });
    run(dir, 'resnet18-breastmnist', 'supervised', 'resnet18', { breastmnist: { auc: 0.88, acc: 0.85 } });
    const view = values('4.2', dir);
    const breast = row(view, 'BreastMNIST');
    expect(breast.ours).toMatchObject({ auc: 0.75, run: { name: 'st-small-breastmnist' } });
    expect(breast.resnet18).toMatchObject({ auc: 0.88, acc: 85, run: { name: 'resnet18-breastmnist' } });
    expect(row(view, 'RetinaMNIST').resnet18).toBe('missing');
    const md = renderMarkdown(view);
    expect(md).toContain('| ResNet-18 (28) AUC | ResNet-18 (28) ACC | Ours ResNet-18 (28) AUC | Ours ResNet-18 (28) ACC |');
    expect(md).toContain('| BreastMNIST | 0.741 | 82.0 | 0.750 | 78.0 | +0.009 | −4.0 | 0.901 | 86.3 | 0.880 | 85.0 |');
    expect(md).toContain(`- BreastMNIST: ${path.join(dir, 'resnet18-breastmnist')}`);
    const csv = parseCsv(renderCsv(view)).find((r) => r.dataset === 'BreastMNIST');
    expect(csv).toMatchObject({ ours_resnet18_auc: '0.88', ours_resnet18_acc: '85', resnet18_run: path.join(dir, 'resnet18-breastmnist') });
    // Other tables have no such column: large single-task (224 px), and multi-task.
    expect(row(values('4.7', dir), 'BreastMNIST').resnet18).toBeNull();
    expect(row(values('4.4', dir), 'BreastMNIST').resnet18).toBeNull();
    // A resnet18 run alone leaves "Ours" missing rather than filling it.
    const alone = runsDir();
    run(alone, 'resnet18-breastmnist', 'supervised', 'resnet18', { breastmnist: { auc: 0.88, acc: 0.85 } });
    expect(row(values('4.2', alone), 'BreastMNIST').ours).toBe('missing');
  });

  it('fills Table 4.3 from supervised runs only, and Table 4.4 from multi-task runs', () => {
    const dir = runsDir();
    run(dir, 'mt-small', 'multitask', 'small', { adrenalmnist3d: { auc: 0.83, acc: 0.8 }, breastmnist: { auc: 0.5, acc: 0.5 } });
    expect(row(values('4.3', dir), 'AdrenalMNIST3D').ours).toBe('missing');
    expect(ours(values('4.4', dir), 'AdrenalMNIST3D')).toMatchObject({ auc: 0.83, acc: 80, run: { name: 'mt-small' } });

    run(dir, 'st-small-adrenalmnist3d', 'supervised', 'small', { adrenalmnist3d: { auc: 0.77, acc: 0.75 } });
    const adrenal = row(values('4.3', dir), 'AdrenalMNIST3D');
    expect(adrenal.ours).toMatchObject({ auc: 0.77, acc: 75, run: { name: 'st-small-adrenalmnist3d' } });
    expect(adrenal.baseline?.model).toBe('ResNet-18 + 3D');
    // The multi-task table still takes the multi-task run, whatever is newer.
    expect(ours(values('4.4', dir), 'AdrenalMNIST3D').run.name).toBe('mt-small');
  });

  it('flags RetinaMNIST in Table 4.2 and PneumoniaMNIST AUC 99.3 in Table 4.5', () => {
    const dir = runsDir();
    run(dir, 'ft-small-pneumoniamnist', 'finetune', 'small', { pneumoniamnist: { auc: 0.95, acc: 0.9, ssl_steps: 40 } });
    const retina = row(values('4.2', dir), 'RetinaMNIST');
    expect(retina.flags.map((f) => f.rule)).toEqual(expect.arrayContaining(['auc-below-chance', 'acc-above-benchmark']));
    const pneumonia = row(values('4.5', dir), 'PneumoniaMNIST');
    expect(pneumonia.flags).toEqual([expect.objectContaining({ rule: 'auc-out-of-range' })]);
    expect(pneumonia.ours).toMatchObject({ auc: 0.95, acc: 90, ssl_steps: 40 });
    expect(pneumonia.diff).toEqual({ auc: null, acc: -6.1 });
    const md = renderMarkdown(values('4.5', dir));
    expect(md).toMatch(/\| PneumoniaMNIST \| 99\.3† \| 96\.1 \| 0\.950 \| 90\.0 \| n\/a \| −6\.1 \|/);
    expect(md).toMatch(/- PneumoniaMNIST \(AUC\): AUC printed as 99\.3, outside \[0, 1\]/);
  });

  it('computes Table 4.6 differences and SSL steps from ST, MT and SSL runs of the same size', () => {
    const dir = runsDir();
    run(dir, 'st', 'supervised', 'small', { breastmnist: { auc: 0.8, acc: 0.8 }, pathmnist: { auc: 0.9, acc: 0.9 } });
    run(dir, 'mt', 'multitask', 'small', { breastmnist: { auc: 0.85, acc: 0.75 }, pathmnist: { auc: 0.95, acc: 0.95 } });
    run(dir, 'ft-breast', 'finetune', 'small', { breastmnist: { auc: 0.9, acc: 0.81, ssl_steps: 30 } });
    run(dir, 'ft-path', 'finetune', 'small', { pathmnist: { auc: 0.91, acc: 0.9, ssl_steps: null } });
    run(dir, 'st-large', 'supervised', 'large', { dermamnist: { auc: 0.9, acc: 0.7 } });
    const view = buildTable('4.6', dir) as DeltaView;
    expect(view.regime).toBe('deltas');
    const breast = view.rows.find((r) => r.dataset === 'BreastMNIST');
    expect(breast?.ours).toEqual({
      mt_minus_st: { auc: 0.05, acc: -5 },
      ssl_minus_st: { auc: 0.1, acc: 1 },
      ssl_minus_mt: { auc: 0.05, acc: 6 },
    });
    expect(breast?.steps).toEqual({ thesis: 30, ours: 30 });
    expect(breast?.runs.mt?.name).toBe('mt');
    expect(view.rows.find((r) => r.dataset === 'PathMNIST')?.steps.ours).toBe('not reached');
    const derma = view.rows.find((r) => r.dataset === 'DermaMNIST');
    expect(derma?.ours.mt_minus_st).toBe('missing');
    expect(derma?.steps.ours).toBe('missing');
    const md = renderMarkdown(view);
    expect(md).toContain(
      '| BreastMNIST | +0.083 / +0.050 | −2.6 / −5.0 | +0.109 / +0.100 | −6.4 / +1.0 | +0.026 / +0.050 | −3.8 / +6.0 | 30 / 30 |',
    );
    const csv = parseCsv(renderCsv(view));
    expect(csv.find((r) => r.dataset === 'BreastMNIST')).toMatchObject({
      thesis_mt_minus_st_auc: '0.083',
      ours_mt_minus_st_acc: '-5',
      ours_ssl_steps: '30',
    });
    expect(csv.find((r) => r.dataset === 'DermaMNIST')?.ours_ssl_minus_mt_auc).toBe('missing');
  });

  it('marks every cell missing, with a warning, when the runs folder does not exist', () => {
    const view = values('4.9', path.join(tmp, 'no-such-runs'));
    expect(view.rows.every((r) => r.ours === 'missing' && r.diff === null)).toBe(true);
    expect(view.warnings).toEqual([expect.stringMatching(/no such runs folder/)]);
  });

  it('skips unreadable or unfinished run folders with a warning instead of failing', () => {
    const dir = runsDir();
    run(dir, 'good', 'supervised', 'small', { breastmnist: { auc: 0.8, acc: 0.8 } });
    fs.mkdirSync(path.join(dir, 'broken'));
    fs.writeFileSync(path.join(dir, 'broken', 'config.json'), '{"name": "broken", "kind": "supervised"');
    fs.mkdirSync(path.join(dir, 'unfinished'));
    fs.writeFileSync(
      path.join(dir, 'unfinished', 'config.json'),
      JSON.stringify({ name: 'st-small-dermamnist', kind: 'supervised', model: { preset: 'small' }, data: { datasets: ['dermamnist'] } }),
    );
    const percentRun = run(dir, 'percent', 'supervised', 'small', { retinamnist: { auc: 0.7, acc: 52 } });
    fs.writeFileSync(path.join(dir, 'stray.txt'), 'not a run');
    const view = values('4.2', dir);
    expect(ours(view, 'BreastMNIST').run.name).toBe('good');
    expect(row(view, 'DermaMNIST').ours).toBe('missing');
    expect(row(view, 'RetinaMNIST').ours).toBe('missing');
    expect(view.warnings).toHaveLength(3);
    expect(view.warnings.join('\n')).toMatch(/broken.*not valid JSON/);
    expect(view.warnings.join('\n')).toContain(
      `${path.join(percentRun, 'metrics.json')}: /retinamnist/test/acc is 52, not a fraction in [0, 1]`,
    );
    expect(view.warnings.join('\n')).toMatch(/st-small-dermamnist has no metrics\.json yet/);
  });

  it('reads only supervised, multitask and finetune runs, checking their files against the shared schemas', () => {
    const dir = runsDir();
    const nanRun = run(dir, 'nan', 'supervised', 'small', { breastmnist: { auc: NaN, acc: 0.5 } });
    // Another kind's folder is passed over whatever its metrics.json holds.
    const ssl = path.join(dir, 'ssl');
    fs.mkdirSync(ssl);
    fs.writeFileSync(path.join(ssl, 'config.json'), JSON.stringify({ name: 'ssl', kind: 'ssl' }));
    fs.writeFileSync(path.join(ssl, 'metrics.json'), '{"ssl": ');
    const noPreset = path.join(dir, 'no-preset');
    fs.mkdirSync(noPreset);
    fs.writeFileSync(
      path.join(noPreset, 'config.json'),
      JSON.stringify({ name: 'x', kind: 'supervised', model: {}, data: { datasets: ['dermamnist'] } }),
    );
    const list = run(dir, 'list', 'supervised', 'small', { pathmnist: { auc: 0.9, acc: 0.9 } });
    fs.writeFileSync(path.join(list, 'metrics.json'), '[]');
    const view = values('4.2', dir);
    expect(view.rows.every((r) => r.ours === 'missing')).toBe(true);
    expect(view.warnings).toEqual([
      `${path.join(list, 'metrics.json')}: the top level is a list of 0, not an object; run skipped`,
      `${path.join(nanRun, 'metrics.json')}: /breastmnist/test has no AUC or ACC (null: NaN when the run wrote it); breastmnist skipped`,
      `${path.join(noPreset, 'config.json')}: /model/preset is missing (expected a string); run skipped`,
    ]);
  });

  it('refuses an unknown table id with the valid ids', () => {
    expect(() => buildTable('4.1', tmp)).toThrow(MfError);
    expect(() => buildTable('4.12', tmp)).toThrow(
      /unknown table '4\.12' \(valid ids: 4\.2, 4\.3, 4\.4, 4\.5, 4\.6, 4\.7, 4\.8, 4\.9, 4\.10, 4\.11\)/,
    );
  });
});

describe('rendering', () => {
  const dir = runsDir();
  run(dir, 'st-small-breastmnist', 'supervised', 'small', { breastmnist: { auc: 0.8, acc: 0.8526 } });
  run(dir, 'st-small-retinamnist', 'supervised', 'small', { retinamnist: { auc: 0.71, acc: 0.5 } });

  it('prints Markdown with the header, both numbers of a row, "missing" cells and footnoted flags', () => {
    const md = renderMarkdown(values('4.2', dir));
    expect(md).toContain(
      '| Dataset | Thesis AUC | Thesis ACC | Ours AUC | Ours ACC | ΔAUC | ΔACC | ResNet-18 (28) AUC | ResNet-18 (28) ACC |',
    );
    expect(md).toContain('| BreastMNIST | 0.741 | 82.0 | 0.800 | 85.3 | +0.059 | +3.3 | 0.901 | 86.3 |');
    expect(md).toContain('| PathMNIST | 0.999 | 97.2 | missing | missing | – | – | 0.983 | 90.7 |');
    expect(md).toContain('| RetinaMNIST | 0.200† | 95.0† | 0.710 | 50.0 |');
    expect(md).toMatch(/- RetinaMNIST \(AUC, ACC\): AUC 0\.200 < 0\.5/);
    expect(md).toContain('Simionescu, C. (2025)');
    expect(md).toContain('doi:10.1038/s41597-022-01721-8');
    expect(md).toContain(`- BreastMNIST: ${path.join(dir, 'st-small-breastmnist')}`);
  });

  it('prints CSV that parses back to the same numbers', () => {
    const view = values('4.2', dir);
    const rows = parseCsv(renderCsv(view));
    expect(rows).toHaveLength(view.rows.length);
    for (const [i, r] of view.rows.entries()) {
      const c = rows[i];
      expect(c.dataset).toBe(r.dataset);
      expect(Number(c.thesis_auc)).toBe(r.thesis.auc);
      expect(Number(c.thesis_acc)).toBe(r.thesis.acc);
      expect(Number(c.baseline_auc)).toBe(r.baseline?.auc);
      expect(Number(c.baseline_acc)).toBe(r.baseline?.acc);
      if (r.ours === 'missing') {
        expect([c.ours_auc, c.ours_acc, c.diff_auc, c.diff_acc]).toEqual(['missing', 'missing', 'missing', 'missing']);
      } else {
        expect(Number(c.ours_auc)).toBe(r.ours.auc);
        expect(Number(c.ours_acc)).toBe(r.ours.acc);
        expect(Number(c.diff_auc)).toBe(r.diff?.auc);
        expect(Number(c.diff_acc)).toBe(r.diff?.acc);
        expect(c.run).toBe(r.ours.run.dir);
      }
    }
    const breast = rows.find((r) => r.dataset === 'BreastMNIST');
    expect(breast).toMatchObject({
      key: 'breastmnist',
      thesis_auc: '0.741',
      thesis_acc: '82',
      ours_auc: '0.8',
      ours_acc: '85.26',
      diff_acc: '3.26',
    });
    expect(rows.find((r) => r.dataset === 'RetinaMNIST')?.thesis_flags).toContain('auc-below-chance');
  });

  it('tableCommand writes Markdown, CSV or JSON to stdout and refuses both --csv and --json', async () => {
    const out: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out.push(String(chunk));
      return true;
    });
    await tableCommand('4.2', { runs: dir });
    expect(out.join('')).toContain('| BreastMNIST | 0.741 | 82.0 | 0.800 | 85.3 |');
    out.length = 0;
    await tableCommand('4.2', { runs: dir, csv: true });
    expect(out.join('').split('\n')[0]).toMatch(/^table,dataset,key,thesis_auc/);
    out.length = 0;
    await tableCommand('4.3', { runs: dir, json: true });
    const json = JSON.parse(out.join('')) as ValueView;
    expect(json.id).toBe('4.3');
    expect(json.rows.every((r) => r.ours === 'missing')).toBe(true);
    await expect(tableCommand('4.2', { runs: dir, csv: true, json: true })).rejects.toThrow(ConfigError);
    await expect(tableCommand('9.9', { runs: dir })).rejects.toThrow(/valid ids: 4\.2/);
  });
});
