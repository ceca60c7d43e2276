// The registry of run kinds, and reading an experiment file: JSON syntax, then `kind`, then renamed keys of
// older files, then that kind's schema, then its defaults and cross-field checks.
import { Type } from '@sinclair/typebox';
import { ConfigError } from '../errors.ts';
import type { TrainingSettings } from '../train/schema.ts';
import { readTextFile } from '../util/files.ts';
import { parseJsonText } from '../util/json.ts';
import { brainageKind } from './brainage/index.ts';
import { brainfuseInterpKind } from './brainfuse-interp/index.ts';
import { finetuneKind } from './finetune/index.ts';
import type { AnyRunKind, LoadedExperiment } from './kind.ts';
import { multitaskKind } from './multitask/index.ts';
import { sslKind } from './ssl/index.ts';
import { supervisedKind } from './supervised/index.ts';

export const RUN_KINDS: readonly AnyRunKind[] = [supervisedKind, multitaskKind, sslKind, finetuneKind, brainfuseInterpKind, brainageKind];

export function getKind(kind: string): AnyRunKind | undefined {
  return RUN_KINDS.find((k) => k.kind === kind);
}

/** Every experiment file's schema: a union discriminated on `kind` (for editors and `mf schema`). */
export const ExperimentSchema = Type.Union(
  RUN_KINDS.map((k) => k.schema),
  { $id: 'https://medformer.dev/experiment.schema.json', title: 'medformer experiment' },
);

/** The value at a JSON pointer such as /brainfuse/unet, or undefined. */
function at(obj: unknown, pointer: string): unknown {
  let v = obj;
  for (const key of pointer.split('/').slice(1)) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

/** Validates an already-parsed experiment object; `file` names it in errors. */
export function validateExperiment(raw: unknown, file: string, overrides: Partial<TrainingSettings> = {}): LoadedExperiment {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`${file}: an experiment must be a JSON object`);
  const kindName = (raw as { kind?: unknown }).kind;
  const names = RUN_KINDS.map((k) => JSON.stringify(k.kind)).join(', ');
  if (kindName === undefined) throw new ConfigError(`${file}: missing required key /kind (one of ${names})`);
  const kind = typeof kindName === 'string' ? getKind(kindName) : undefined;
  if (!kind) throw new ConfigError(`${file}: /kind must be one of ${names}`);
  for (const [pointer, instead] of Object.entries(kind.renamed)) {
    if (at(raw, pointer) !== undefined) throw new ConfigError(`${file}: ${pointer} is no longer read by kind "${kind.kind}": ${instead}`);
  }
  return kind.resolve(raw, file, overrides);
}

/** Reads, parses and validates an experiment file, filling in defaults. */
export function loadExperiment(file: string, overrides: Partial<TrainingSettings> = {}): LoadedExperiment {
  // A regular file of at most 16 MiB: a FIFO or a link to a device is refused unread, never waited on.
  const text = readTextFile(
    file,
    'an experiment file',
    'check the path (experiments live in experiments/)',
    () => new ConfigError(`${file}: no such experiment file; check the path (experiments live in experiments/)`),
    16 * 2 ** 20,
  );
  return validateExperiment(parseJsonText(text, { file, config: true }), file, overrides);
}
