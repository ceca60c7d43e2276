// Fine-tuning (kind "finetune"): start from an SSL or multi-task checkpoint, load every tensor whose name
// and shape match, say which were initialised fresh, optionally freeze the main body, then train as in
// the supervised case. With `baseline` naming a single-task run, the first step at which the validation
// AUC reaches that run's best is recorded (the thesis's "SSL Steps" column).
import fs from 'node:fs';
import path from 'node:path';
import { MfError } from '../errors.ts';
import { isBodyParam } from '../models/medformer.ts';
import { loadCheckpoint } from './checkpoint.ts';
import { readSafetensors } from './safetensors.ts';
import type { Experiment } from './config.ts';
import type { Session } from './session.ts';
import { asF32, trainSupervised } from './supervised.ts';

/** Weights from a run folder (its current checkpoint) or a .safetensors file. */
export function readInitWeights(init: string): Map<string, { shape: number[]; data: Float32Array }> {
  if (!fs.existsSync(init)) throw new MfError(`finetune.init ${init} does not exist`, 'point it at an SSL run folder (runs/<name>) or a .safetensors file');
  if (fs.statSync(init).isDirectory()) return asF32(loadCheckpoint(init).model);
  return asF32(readSafetensors(init).tensors);
}

function baselineAuc(dir: string): Record<string, number> {
  const file = path.join(dir, 'metrics.json');
  if (!fs.existsSync(file)) throw new MfError(`finetune.baseline: ${file} not found`, 'run the single-task baseline first, or drop "baseline"');
  const metrics = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, { val?: { auc?: number } }>;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(metrics)) if (typeof v.val?.auc === 'number') out[k] = v.val.auc;
  return out;
}

/** Everything a fine-tuning run reads before it starts, so bad inputs fail before any output. */
export function prepareFinetune(exp: Experiment): { weights: Map<string, { shape: number[]; data: Float32Array }>; baseline: Record<string, number> | undefined } {
  const ft = exp.finetune;
  if (!ft) throw new MfError(`${exp.source}: kind "finetune" needs a "finetune" section`, 'add {"init": "runs/<ssl run>"}');
  return { weights: readInitWeights(ft.init), baseline: ft.baseline ? baselineAuc(ft.baseline) : undefined };
}

export async function trainFinetune(session: Session, prepared: ReturnType<typeof prepareFinetune>): Promise<void> {
  const ft = session.exp.finetune!;
  const { weights } = prepared;
  await trainSupervised(session, {
    baselineAuc: prepared.baseline,
    init: async (store) => {
      const r = store.load(weights, { strict: false });
      session.say(`finetune: loaded ${r.loaded.length} tensors from ${ft.init}; initialised fresh: ${r.missing.length ? r.missing.join(', ') : 'none'}`);
      if (r.mismatched.length) session.say(`finetune: shape mismatch, kept fresh: ${r.mismatched.join(', ')}`);
      session.log({ event: 'init', from: ft.init, loaded: r.loaded, fresh: r.missing, mismatched: r.mismatched, ignored: r.unexpected });
      if (ft.freeze_body) {
        store.setTrainable((name) => !isBodyParam(name));
        session.say('finetune: main body frozen');
      }
    },
  });
}
