// `mf run <experiment.json>`: validate the experiment, open the run folder, dispatch on its kind.
import { ConfigError } from '../errors.ts';
import { loadExperiment, type Experiment } from './config.ts';
import { Session, type RunOptions } from './session.ts';
import { prepareFinetune, trainFinetune } from './finetune.ts';
import { trainSsl } from './ssl.ts';
import { trainSupervised } from './supervised.ts';

export interface RunFlags extends RunOptions {
  epochs?: number;
  maxSteps?: number;
  batchSize?: number;
  seed?: number;
}

function positiveInt(name: string, v: number | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v <= 0) throw new ConfigError(`${name} must be a positive integer, got ${v}`);
  return v;
}

export function applyFlags(exp: Experiment, flags: RunFlags): Experiment {
  const t = { ...exp.training };
  const epochs = positiveInt('--epochs', flags.epochs);
  const maxSteps = positiveInt('--max-steps', flags.maxSteps);
  const batch = positiveInt('--batch-size', flags.batchSize);
  if (epochs !== undefined) t.epochs = epochs;
  if (maxSteps !== undefined) t.max_steps = maxSteps;
  if (batch !== undefined) t.batch_size = batch;
  if (flags.seed !== undefined) {
    if (!Number.isInteger(flags.seed) || flags.seed < 0) throw new ConfigError(`--seed must be a non-negative integer, got ${flags.seed}`);
    t.seed = flags.seed;
  }
  return { ...exp, training: t };
}

export async function runCommand(file: string, flags: RunFlags): Promise<void> {
  const exp = applyFlags(loadExperiment(file), flags);
  const finetune = exp.kind === 'finetune' ? prepareFinetune(exp) : null;
  // The brain kinds read IXI volumes (brainfuse.data_dir), not the MedMNIST files named in data.datasets.
  const session = await Session.open(exp.kind === 'brainfuse-interp' || exp.kind === 'brainage' ? { ...exp, data: { ...exp.data, datasets: [] } } : exp, flags);
  try {
    session.say(`${exp.name} (${exp.kind}) on ${session.backend.describe()} -> ${session.outDir}`);
    switch (exp.kind) {
      case 'supervised':
      case 'multitask':
        await trainSupervised(session);
        break;
      case 'ssl':
        await trainSsl(session);
        break;
      case 'finetune':
        await trainFinetune(session, finetune!);
        break;
      case 'brainfuse-interp': {
        const { trainBrainfuseInterp } = await import('./brainfuse.ts');
        await trainBrainfuseInterp(session);
        break;
      }
      case 'brainage': {
        const { trainBrainAge } = await import('./brainage.ts');
        await trainBrainAge(session);
        break;
      }
      default:
        throw new ConfigError(`${file}: kind "${exp.kind}" is not implemented yet`, 'use supervised, multitask, ssl or finetune');
    }
  } finally {
    session.close();
  }
}
