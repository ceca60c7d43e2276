// Kind "finetune": start from an SSL or multi-task checkpoint, load every tensor whose name and shape match,
// say which were initialised fresh, optionally freeze the main body, then train as in the supervised case. With
// `baseline` naming a single-task run, the first step at which the validation AUC reaches that run's best is
// recorded (the thesis's "SSL Steps" column, Tables 4.6/4.11).
import fs from 'node:fs';
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import { MfError } from '../../errors.ts';
import { isBodyParam } from '../../models/medformer.ts';
import { loadCheckpoint } from '../../train/checkpoint.ts';
import { asF32, assertFinite } from '../../train/context.ts';
import { MetricsSchemaFor, readJsonFile } from '../../train/records.ts';
import { readSafetensors } from '../../train/safetensors.ts';
import { Strict } from '../../train/schema.ts';
import { defineKind } from '../kind.ts';
import { type Chapter5Settings, CSA_SECTIONS, resolveChapter5 } from '../medformer/csa.ts';
import { type MedformerSettings, medformerSchema, resolveMedformer } from '../medformer/schema.ts';
import { loadTasks, medformerData } from '../medformer/tasks.ts';
import { trainSupervised } from '../medformer/trainer.ts';

const FinetuneSchema = Strict({
  init: Type.String({ minLength: 1 }),
  freeze_body: Type.Optional(Type.Boolean()),
  baseline: Type.Optional(Type.String({ minLength: 1 })),
});

interface FinetuneSettings extends MedformerSettings, Chapter5Settings {
  finetune: { init: string; freeze_body: boolean; baseline: string | null };
}

type Weights = Map<string, { shape: number[]; data: Float32Array }>;

/** Weights from a run folder (its current checkpoint) or a .safetensors file. */
export function readInitWeights(init: string): Weights {
  if (!fs.existsSync(init))
    throw new MfError(`finetune.init ${init} does not exist`, 'point it at an SSL run folder (runs/<name>) or a .safetensors file');
  const fix = 'fine-tune from a checkpoint of a run that did not diverge';
  if (fs.statSync(init).isDirectory()) {
    const ck = loadCheckpoint(init);
    const weights = asF32(ck.model);
    assertFinite(weights, ck.modelPath, fix);
    return weights;
  }
  const weights = asF32(readSafetensors(init).tensors);
  assertFinite(weights, init, fix);
  return weights;
}

function baselineAuc(dir: string): Record<string, number> {
  const file = path.join(dir, 'metrics.json');
  if (!fs.existsSync(file))
    throw new MfError(`finetune.baseline: ${file} not found`, 'run the single-task baseline first, or drop "baseline"');
  const metrics = readJsonFile(file, MetricsSchemaFor('supervised'), {
    what: "the baseline run's metrics",
    fix: 'point finetune.baseline at a finished single-task run',
  });
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(metrics)) if (typeof v.val.auc === 'number') out[k] = v.val.auc;
  return out;
}

export const finetuneKind = defineKind({
  kind: 'finetune',
  summary: 'Medformer from a pre-trained checkpoint (finetune.init), trained as in the supervised case',
  schema: medformerSchema('finetune', { finetune: FinetuneSchema, ...CSA_SECTIONS }),
  resolve(file, source): FinetuneSettings {
    const s = resolveMedformer(file, source);
    return {
      ...s,
      finetune: { init: file.finetune.init, freeze_body: file.finetune.freeze_body ?? false, baseline: file.finetune.baseline ?? null },
      ...resolveChapter5(file, source, s.training),
    };
  },
  data: (s, dataDir) => medformerData(s, dataDir),
  // Everything a fine-tuning run reads before it starts, so bad inputs fail before any output.
  prepare: (s, opts) => ({
    tasks: loadTasks(s, opts.dataDir),
    weights: readInitWeights(s.finetune.init),
    baseline: s.finetune.baseline ? baselineAuc(s.finetune.baseline) : undefined,
  }),
  async run(ctx, s, { tasks, weights, baseline }) {
    const ft = s.finetune;
    await trainSupervised(ctx, s, tasks, {
      baselineAuc: baseline,
      init: async (store) => {
        const r = store.load(weights, { strict: false });
        ctx.say(
          `finetune: loaded ${r.loaded.length} tensors from ${ft.init}; initialised fresh: ${r.missing.length ? r.missing.join(', ') : 'none'}`,
        );
        if (r.mismatched.length) ctx.say(`finetune: shape mismatch, kept fresh: ${r.mismatched.join(', ')}`);
        ctx.log({ event: 'init', from: ft.init, loaded: r.loaded, fresh: r.missing, mismatched: r.mismatched, ignored: r.unexpected });
        if (ft.freeze_body) {
          store.setTrainable((name) => !isBodyParam(name));
          ctx.say('finetune: main body frozen');
        }
      },
    });
  },
});
