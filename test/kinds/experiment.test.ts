import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import { ExperimentSchema, loadExperiment as load, RUN_KINDS, validateExperiment as validate } from '../../src/kinds/index.ts';
import { PRESETS, resolveModelConfig } from '../../src/models/medformer_config.ts';
import { configHash } from '../../src/train/hash.ts';
import { findJsonError } from '../../src/util/json.ts';

import type { MedformerSettings } from '../../src/kinds/medformer/schema.ts';

// Settings of the Medformer kinds, with the sections of ssl and finetune.
type Settings = MedformerSettings & { ssl?: unknown; finetune?: unknown };
const loadExperiment = (file: string): Settings => load(file).settings as Settings;
const validateExperiment = (raw: unknown, file: string): Settings => validate(raw, file).settings as Settings;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mf-cfg-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

type Json = Record<string, unknown>;
const minimal = (): Json => ({
  name: 'pathmnist-small',
  kind: 'supervised',
  model: { preset: 'small' },
  data: { datasets: ['pathmnist'] },
  training: { batch_size: 128, lr: 1e-3, weight_decay: 1e-3, warmup_epochs: 5 },
});

function write(name: string, value: unknown): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
  return file;
}

/** The one-line message loadExperiment throws for `value`. */
function errorFor(value: unknown): string {
  const file = write('x.json', value);
  try {
    loadExperiment(file);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    const msg = (e as Error).message;
    expect(msg.startsWith(`${file}: `)).toBe(true);
    expect(msg).not.toContain('\n');
    return msg.slice(file.length + 2);
  }
  throw new Error('expected a ConfigError');
}

const edit = (f: (x: Json) => void): Json => {
  const x = minimal();
  f(x);
  return x;
};
const section = (x: Json, key: string): Json => x[key] as Json;

describe('loadExperiment', () => {
  it('fills in defaults from the preset and the thesis recipe', () => {
    const exp = loadExperiment(write('ok.json', minimal()));
    expect(exp.model).toEqual({ preset: 'small', ...PRESETS.small.model, num_task_latents: null, dropout: 0 });
    expect(exp.data).toEqual({
      datasets: ['pathmnist'],
      size: 28,
      root: null,
      augment: {
        policy: 'thesis',
        '2d': { crop: 4, flips: true, rotate: 10, randaugment: { n: 2, m: 8, bins: 31 }, intensity: null },
        '3d': { crop: 0, flips: true, rotate: 10, randaugment: null, intensity: null },
      },
      sampling: 'proportional',
      temperature: null,
      train_limit: null,
      ordinal: 'classes',
      download: false,
    });
    expect(exp.training).toMatchObject({ epochs: 100, max_steps: null, seed: 0, eval_every: 'epoch', nan_policy: 'stop', grad_clip: null });
    expect(exp.ssl).toBeUndefined();
    expect(exp.kind).toBe('supervised');
  });

  it('names an unknown key with its path', () => {
    expect(errorFor(edit((x) => (section(x, 'training')['lrr'] = 1)))).toMatch(/^unknown key \/training\/lrr \(allowed: epochs, /);
    expect(errorFor(edit((x) => (x['extra'] = 1)))).toMatch(/^unknown key \/extra/);
    expect(errorFor(edit((x) => (section(x, 'model')['hidden'] = 64)))).toMatch(/^unknown key \/model\/hidden/);
  });

  it('names a wrong type with its path', () => {
    expect(errorFor(edit((x) => (section(x, 'training')['lr'] = '0.001')))).toBe('/training/lr must be number');
    expect(errorFor(edit((x) => (section(x, 'training')['batch_size'] = 1.5)))).toBe('/training/batch_size must be integer');
    expect(errorFor(edit((x) => (x['kind'] = 'pretrain')))).toMatch(/^\/kind must be one of "supervised", "multitask"/);
    expect(errorFor(edit((x) => (section(x, 'data')['augment'] = 'yes')))).toBe(
      '/data/augment must be "thesis", "flips-rotations", "ssl", "none", true (= "thesis"), false (= "none"), or an object {flips, rotate, crop, randaugment: {n, m}, intensity}',
    );
    expect(errorFor(edit((x) => (section(x, 'training')['eval_every'] = 'weekly')))).toBe(
      '/training/eval_every must be "epoch" or a positive integer number of steps',
    );
  });

  it('names missing or empty datasets', () => {
    expect(errorFor(edit((x) => delete section(x, 'data')['datasets']))).toBe('missing required key /data/datasets');
    expect(errorFor(edit((x) => (section(x, 'data')['datasets'] = [])))).toBe('/data/datasets must NOT have fewer than 1 items');
    expect(errorFor(edit((x) => delete x['training']))).toBe('missing required key /training');
  });

  it('reports JSON syntax errors with line and column', () => {
    expect(errorFor('{\n  "name": "x",\n  "kind": }\n')).toBe('invalid JSON at line 3, column 11: expected a value');
    expect(errorFor('{\n  "name": "x",')).toBe('invalid JSON at line 2, column 15: unexpected end of file');
    expect(errorFor('{"a": 1,}')).toBe('invalid JSON at line 1, column 9: expected a "quoted" key');
    expect(errorFor('{"a": [1 2]}')).toBe("invalid JSON at line 1, column 10: expected ',' or ']'");
    expect(errorFor('{"a": "x\\q"}')).toBe('invalid JSON at line 1, column 10: bad escape');
    // a byte-order mark is tolerated
    expect(() => loadExperiment(write('bom.json', `\uFEFF${JSON.stringify(minimal())}`))).not.toThrow();
  });

  it('locates syntax errors exactly when JSON.parse rejects (2000 random mutations)', () => {
    const valid = JSON.stringify({ ...minimal(), n: [-1.5e3, 0, true, null], s: 'a\\"\\u00e9\\n' }, null, 1);
    const alphabet = '{}[]:,"\\ 0123456789.eE+-tfnulrsa\n';
    let seed = 7;
    const rand = (n: number): number => (seed = (Math.imul(seed, 48271) % 2147483647) >>> 0) % n;
    for (let k = 0; k < 2000; k++) {
      const chars = [...valid];
      for (let m = 1 + rand(3); m > 0; m--) {
        const at = rand(chars.length);
        const r = rand(3);
        if (r === 0) chars.splice(at, 1);
        else if (r === 1) chars.splice(at, 0, alphabet[rand(alphabet.length)]!);
        else chars[at] = alphabet[rand(alphabet.length)]!;
      }
      const text = chars.join('');
      let ok = true;
      try {
        JSON.parse(text);
      } catch {
        ok = false;
      }
      expect([text, findJsonError(text) === undefined]).toEqual([text, ok]);
    }
  });

  it('refuses a run name that could escape the runs directory', () => {
    expect(errorFor(edit((x) => (x['name'] = '../evil')))).toMatch(/^\/name must be one path segment/);
    expect(errorFor(edit((x) => (x['name'] = 'a/b')))).toMatch(/^\/name must be one path segment/);
  });

  it('checks cross-field rules', () => {
    expect(errorFor(edit((x) => (section(x, 'model')['num_heads'] = 3)))).toBe('/model/hidden_dim 128 must be divisible by num_heads 3');
    expect(errorFor(edit((x) => (section(x, 'data')['size'] = 64)))).toMatch(/^\/data\/size 64 differs from \/model\/image_size_2d 28/);
    expect(errorFor(edit((x) => (section(x, 'data')['sampling'] = 'temperature')))).toMatch(/^missing \/data\/temperature/);
    expect(errorFor(edit((x) => (x['kind'] = 'ssl')))).toBe('missing required key /ssl');
    expect(errorFor(edit((x) => (section(x, 'data')['datasets'] = ['pathmnist', 'bloodmnist'])))).toMatch(
      /^kind "supervised" trains on one data set/,
    );
    expect(errorFor(edit((x) => (x['model'] = { preset: 'large' })))).toMatch(/^set \/training\/epochs or \/training\/max_steps/);
    expect(errorFor(edit((x) => (section(x, 'training')['warmup_epochs'] = 200)))).toMatch(/warmup_epochs 200 exceeds/);
  });

  it('accepts full ssl / finetune sections and fills their defaults', () => {
    const exp = validateExperiment(
      edit((x) => {
        x['kind'] = 'ssl';
        x['ssl'] = { expander: [1024, 1024, 1024], sim_coeff: 25, std_coeff: 25, cov_coeff: 1 };
        section(x, 'data')['augment'] = { flips: true, rotate: 0, randaugment: { n: 0, m: 0 }, intensity: false };
        section(x, 'training')['max_steps'] = 3500;
        section(x, 'training')['eval_every'] = 500;
      }),
      'inline',
    );
    expect(exp.ssl).toEqual({ expander: [1024, 1024, 1024], sim_coeff: 25, std_coeff: 25, cov_coeff: 1, cosine_coeff: 0 });
    expect(exp.training.eval_every).toBe(500);
    expect(exp.data.augment?.['2d'].rotate).toBe(0);
    const ft = validateExperiment(
      edit((x) => ((x['kind'] = 'finetune'), (x['finetune'] = { init: 'runs/ssl/checkpoint' }))),
      'inline',
    );
    expect(ft.finetune).toEqual({ init: 'runs/ssl/checkpoint', freeze_body: false, baseline: null });
  });

  it('takes each section only where its kind reads it', () => {
    // A section of another kind is an unknown key, not silently ignored.
    expect(errorFor(edit((x) => (x['finetune'] = { init: 'runs/ssl' })))).toMatch(/^unknown key \/finetune/);
    expect(errorFor(edit((x) => (x['ssl'] = { expander: [8], sim_coeff: 1, std_coeff: 1, cov_coeff: 1 })))).toMatch(/^unknown key \/ssl/);
    expect(errorFor(edit((x) => delete x['kind']))).toMatch(/^missing required key \/kind \(one of "supervised"/);
  });

  it('has one registered kind per name, each with a closed schema, and a union schema over all of them', () => {
    const names = RUN_KINDS.map((k) => k.kind);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual(['supervised', 'multitask', 'ssl', 'finetune', 'brainfuse-interp', 'brainage']);
    for (const k of RUN_KINDS) {
      expect(k.schema.additionalProperties).toBe(false);
      expect(k.schema.properties.kind).toMatchObject({ const: k.kind });
    }
    expect(ExperimentSchema.anyOf).toHaveLength(RUN_KINDS.length);
  });

  it('every shipped experiment file validates', () => {
    const dir = path.resolve(import.meta.dirname, '../../experiments');
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThan(70);
    for (const f of files) expect(load(path.join(dir, f)).settings.name).toBe(f.replace(/\.json$/, ''));
  });

  it('names a missing file', () => {
    expect(() => loadExperiment(path.join(tmp, 'missing.json'))).toThrow(/missing\.json: no such experiment file/);
  });
});

describe('presets and helpers', () => {
  it('copies the thesis model configs (src/report/thesis-tables.json, transcribed from the thesis)', () => {
    const ref = path.resolve(import.meta.dirname, '../../src/report/thesis-tables.json');
    const t = (
      JSON.parse(fs.readFileSync(ref, 'utf8')) as { thesis: { model_configs: Record<'small' | 'large', Record<string, unknown>> } }
    ).thesis;
    for (const name of ['small', 'large'] as const) {
      const printed = t.model_configs[name];
      for (const [k, v] of Object.entries(PRESETS[name].model)) {
        if (k === 'patch_size_3d') continue; // not printed; this project's choice
        expect([name, k, v]).toEqual([name, k, printed[k]]);
      }
      expect(PRESETS[name].training.lr).toBe(printed['lr']);
      expect(PRESETS[name].ssl_expander).toEqual(printed['ssl_expander']);
    }
  });

  it('resolveModelConfig applies overrides and checks them', () => {
    const m = resolveModelConfig('large', { num_layers: 2, dropout: 0.1 });
    expect(m).toMatchObject({ hidden_dim: 512, num_layers: 2, dropout: 0.1, patch_size_3d: 16, image_size_3d: 64 });
    expect(() => resolveModelConfig('small', { patch_size_2d: 5 })).toThrow(/image_size_2d 28 must be divisible by patch_size_2d 5/);
  });

  it('configHash ignores key order and the description, and sees real changes', () => {
    const a = validateExperiment(minimal(), 'a');
    const b = validateExperiment(
      { ...minimal(), description: 'same run', training: { warmup_epochs: 5, weight_decay: 1e-3, lr: 1e-3, batch_size: 128 } },
      'b',
    );
    expect(configHash(a)).toBe(configHash(b));
    const c = validateExperiment(
      edit((x) => (section(x, 'training')['lr'] = 2e-3)),
      'c',
    );
    expect(configHash(c)).not.toBe(configHash(a));
  });
});
