// A toy Wide ResNet run on CIFAR-10 files in the official binary layout and one on the generated stand-in (no
// files), trained here once each, then: the data source each records in metrics.json (the files and their sizes,
// or "generated stand-in") outside the config and its hash; `mf table 5.1` filling a row from the real run only,
// listing the stand-in run below the table as generated data; `mf eval` giving metrics.json's numbers again from
// the run folder and from the model file alone (the stand-in re-created from the run's seed); `mf predict` naming
// CIFAR-10's classes for a PNG; and `mf serve`'s model lookup of the run.
import fs from 'node:fs';
import path from 'node:path';
import { PNG } from 'pngjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildCifarTable, renderCifarCsv, renderCifarMarkdown } from '../../src/cli/table-cifar.ts';
import { loadExperiment } from '../../src/kinds/index.ts';
import { pageModel } from '../../src/serve/model.ts';
import { loadCheckpoint } from '../../src/train/checkpoint.ts';
import { configHash } from '../../src/train/hash.ts';
import { configHashOfFile } from '../../src/train/run.ts';
import { mf, tmpDir } from '../run/helpers.ts';
import { toyCifarExperiment, toyCifarImage, writeToyCifar10 } from './cifar-fixture.ts';

const CIFAR10_NAMES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
const env = { LP_NUM_THREADS: '1' };
const dir = tmpDir('cifar-eval');
const data = path.join(dir, 'data');
const runs = path.join(dir, 'runs');
const real = path.join(runs, 'real');
const standIn = path.join(runs, 'stand-in');
let realExp = '';
let standInExp = '';
const trained: Record<string, { status: number | null; stderr: string }> = {};

interface EvalJson {
  name: string;
  split: string;
  tasks: Record<
    string,
    { auc: number; acc: number; majority_acc: number; n: number; weights: string; data_source: { origin: string; files: unknown[] } }
  >;
}
const evalJson = (args: string[]) => {
  const r = mf(['eval', ...args, '--json'], env);
  expect(r.status, r.stderr).toBe(0);
  return { json: JSON.parse(r.stdout) as EvalJson, stderr: r.stderr };
};
const metricsOf = (run: string) => JSON.parse(fs.readFileSync(path.join(run, 'metrics.json'), 'utf8')).cifar10;

beforeAll(() => {
  writeToyCifar10(data);
  realExp = toyCifarExperiment(dir, data, { name: 'toy-real' });
  // The same experiment with a data root that holds no CIFAR files: the generated CIFAR-like set stands in.
  standInExp = toyCifarExperiment(dir, path.join(dir, 'empty'), { name: 'toy-stand-in' });
  for (const [exp, out] of [
    [realExp, real],
    [standInExp, standIn],
  ] as const) {
    trained[out] = mf(['run', exp, '--out', out, '--quiet'], env);
  }
}, 600_000);

describe('data provenance of CIFAR runs', () => {
  it('metrics.json records the files read and their sizes, or the generated stand-in; report.md says which', () => {
    for (const out of [real, standIn]) expect(trained[out]!.status, trained[out]!.stderr).toBe(0);
    const files = ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin', 'test_batch.bin'];
    expect(metricsOf(real).data_source).toEqual({
      origin: 'files',
      // 20 records of 1 label byte and 3,072 pixel bytes each.
      files: files.map((f) => ({ path: path.join(data, 'cifar-10-batches-bin', f), bytes: 20 * 3073 })),
    });
    expect(metricsOf(standIn).data_source).toEqual({ origin: 'generated stand-in', files: [] });
    expect(trained[standIn]!.stderr).toMatch(/NO CIFAR-10 FILES/);
    expect(fs.readFileSync(path.join(standIn, 'report.md'), 'utf8')).toMatch(/- cifar10: \*\*GENERATED DATA\*\*/);
    expect(fs.readFileSync(path.join(real, 'report.md'), 'utf8')).toContain(
      `- cifar10: ${path.join(data, 'cifar-10-batches-bin', 'data_batch_1.bin')} (61,460 bytes)`,
    );
  });

  it('keeps the record out of the config and its hash: config.json, the checkpoint and the experiment agree', () => {
    for (const out of [real, standIn]) {
      expect(trained[out]!.status, trained[out]!.stderr).toBe(0);
      expect(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).not.toMatch(/data_source|"origin"|data_batch/);
      const hash = configHash(loadExperiment(out === real ? realExp : standInExp).settings);
      expect(configHashOfFile(path.join(out, 'config.json'))).toBe(hash);
      expect(loadCheckpoint(out).state.config_hash).toBe(hash);
    }
    // A resume of the stand-in run is not refused for a changed config: nothing of the record is in it.
    const again = mf(['run', standInExp, '--out', standIn, '--quiet', '--resume'], env);
    expect(again.status, again.stderr).toBe(0);
  });

  it('mf table 5.1 fills a row from the run on files only; the stand-in run, newer, is listed as generated data', () => {
    for (const out of [real, standIn]) expect(trained[out]!.status, trained[out]!.stderr).toBe(0);
    // Both runs' folders under the row's settings (WRN-40-4 at 32 px, 100 a class, plain), the stand-in's newest.
    const rows = tmpDir('cifar-generated-rows');
    for (const [name, from] of [
      ['on-files', real],
      ['on-generated', standIn],
    ] as const) {
      const to = path.join(rows, name);
      fs.mkdirSync(to);
      const config = JSON.parse(fs.readFileSync(path.join(from, 'config.json'), 'utf8'));
      config.name = name;
      config.model = { preset: 'wrn-40-4', image_size_2d: 32, depth: 40, widen_factor: 4 };
      config.data.samples_per_class = 100;
      fs.writeFileSync(path.join(to, 'config.json'), JSON.stringify(config));
      fs.copyFileSync(path.join(from, 'metrics.json'), path.join(to, 'metrics.json'));
    }
    const hourAgo = new Date(Date.now() - 3_600_000);
    fs.utimesSync(path.join(rows, 'on-files', 'metrics.json'), hourAgo, hourAgo);
    const view = buildCifarTable('5.1', rows);
    const filled = view.rows.filter((r) => r.ours !== 'missing');
    expect(filled.map((r) => [r.samples_per_class, r.model, r.method])).toEqual([[100, 'WRN-40-4', 'plain']]);
    const ours = filled[0]!.ours as Exclude<(typeof filled)[0]['ours'], 'missing'>;
    expect(path.basename(ours.run.dir)).toBe('on-files');
    expect(view.others).toEqual([]);
    expect(view.generated.map((g) => path.basename(g.ours.run.dir))).toEqual(['on-generated']);
    const md = renderCifarMarkdown(view);
    expect(md).toMatch(/Runs on generated data \(the CIFAR-like stand-in for missing cifar10 files/);
    expect(md).toMatch(/\| WRN-40-4 \| 32 \| 100 \| plain \| [\d.]+ \| [\d.]+ \| generated data \| .*on-generated/);
    expect(md.split('Runs on generated data')[0]).not.toContain('on-generated');
    const csv = renderCifarCsv(view).split('\n');
    expect(csv.filter((l) => l.includes('on-generated'))).toHaveLength(1);
    expect(csv.find((l) => l.includes('on-generated'))).toMatch(/^5\.1,cifar10,generated data,100,WRN-40-4,plain,/);
    // Through the command too.
    const r = mf(['table', '5.1', '--runs', rows]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\| 100 \| WRN-40-4 \| plain \| not transcribed \| [\d.]+ \| [\d.]+ \|/);
    expect(r.stdout).toContain('generated data');
  });
});

describe('mf eval, mf predict and mf serve on a WRN run on CIFAR', () => {
  it('mf eval gives metrics.json numbers from the run folder and from the model file alone, on files and on the stand-in', () => {
    for (const out of [real, standIn]) expect(trained[out]!.status, trained[out]!.stderr).toBe(0);
    const m = metricsOf(real);
    const { json, stderr } = evalJson([real]);
    expect(json.name).toBe('toy-real');
    const t = json.tasks.cifar10!;
    expect({ auc: t.auc, acc: t.acc }).toEqual(m.test);
    expect(t.majority_acc).toBe(m.majority_acc);
    expect(t.n).toBe(20);
    expect(path.basename(t.weights)).toBe('best-cifar10.safetensors');
    // The evaluated split's own files: the test batch.
    expect(t.data_source).toEqual({ origin: 'files', files: [m.data_source.files.at(-1)] });
    expect(stderr).not.toMatch(/GENERATED/);
    const val = evalJson([real, '--split', 'val']).json.tasks.cifar10!;
    expect({ auc: val.auc, acc: val.acc }).toEqual(m.val);
    expect(val.n).toBe(10);
    // The best model file alone, out of its folder: its metadata rebuild the WRN, samples per class and seed.
    const lone = path.join(tmpDir('cifar-lone'), 'best.safetensors');
    fs.copyFileSync(path.join(real, 'best-cifar10.safetensors'), lone);
    const alone = evalJson([lone, '--data-dir', data]).json.tasks.cifar10!;
    expect({ auc: alone.auc, acc: alone.acc }).toEqual(m.test);

    // The stand-in run: the same generated test split again (from the run's seed), said loudly.
    const g = metricsOf(standIn);
    const gen = evalJson([standIn]);
    expect({ auc: gen.json.tasks.cifar10!.auc, acc: gen.json.tasks.cifar10!.acc }).toEqual(g.test);
    expect(gen.json.tasks.cifar10!.data_source.origin).toBe('generated stand-in');
    expect(gen.stderr).toMatch(/cifar10: NO CIFAR-10 FILES in .*GENERATED stand-in/);
    const text = mf(['eval', standIn], env);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^cifar10 +AUC [\d.]+ +ACC [\d.]+% .*on GENERATED data$/m);
  });

  it("mf predict names CIFAR-10's classes for a 32×32 PNG, and mf serve's model lookup has the run's heads", () => {
    expect(trained[real]!.status, trained[real]!.stderr).toBe(0);
    // A toy image of class 3 ("cat"), as a 32×32 RGB PNG (CIFAR's side; the model reads 8 px).
    const planar = toyCifarImage(3);
    const png = new PNG({ width: 32, height: 32 });
    for (let p = 0; p < 1024; p++) {
      for (let c = 0; c < 3; c++) png.data[4 * p + c] = planar[c * 1024 + p]!;
      png.data[4 * p + 3] = 255;
    }
    const file = path.join(dir, 'cat.png');
    fs.writeFileSync(file, PNG.sync.write(png, { colorType: 2 }));
    const out = path.join(dir, 'predictions.json');
    const r = mf(['predict', real, file, '--out', out], env);
    expect(r.status, r.stderr).toBe(0);
    const [p] = JSON.parse(fs.readFileSync(out, 'utf8')) as {
      input: string;
      task: string;
      predicted: string;
      probabilities: Record<string, number>;
    }[];
    expect(p!.input).toBe(file);
    expect(p!.task).toBe('cifar10');
    expect(Object.keys(p!.probabilities)).toEqual(CIFAR10_NAMES);
    expect(Object.values(p!.probabilities).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    expect(CIFAR10_NAMES).toContain(p!.predicted);
    expect(r.stdout).toMatch(new RegExp(`cat\\.png: (${CIFAR10_NAMES.join('|')}) \\(p: airplane 0\\.\\d{4}, automobile`));
    // A CSV names every class as a column.
    const csv = path.join(dir, 'predictions.csv');
    expect(mf(['predict', real, file, '--out', csv], env).status).toBe(0);
    expect(fs.readFileSync(csv, 'utf8').split('\n')[0]).toBe(`input,task,predicted,${CIFAR10_NAMES.join(',')}`);

    const page = pageModel(real);
    expect(page.model.model).toEqual({ preset: 'wrn', image_size_2d: 8, depth: 10, widen_factor: 0.5 });
    expect(page.model.heads.map((h) => [h.key, h.labels, h.want])).toEqual([['cifar10', CIFAR10_NAMES, { dim: 2, channels: 3, size: 8 }]]);
    expect(page.weights.get('cifar10')!.length).toBe(
      page.model.heads[0]!.weights.tensors.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0),
    );
  });
});
