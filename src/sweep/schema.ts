// Sweep files (sweeps/*.json): many `mf run`s described as data. A sweep names experiment files (a list, a grid
// over data sets, seeds and overrides, or both), the output root every run writes under, and what each run waits
// for. Validated like experiment files: strict TypeBox schemas, one ConfigError line naming the file and the key.
import { type Static, Type } from '@sinclair/typebox';
import { ConfigError } from '../errors.ts';
import { check, RunName, Seed, Strict, TRAINING_LIMITS } from '../train/schema.ts';
import { readTextFile } from '../util/files.ts';
import { parseJsonText } from '../util/json.ts';

/** A partial experiment merged into a run's experiment (objects key by key, anything else replaced). */
const Patch = Type.Record(Type.String(), Type.Unknown(), { description: 'a partial experiment object' });

const Override = Strict(
  {
    name: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', description: 'appended to the run names: <experiment>-<name>' }),
    set: Patch,
  },
  'one variant of every grid experiment',
);

const Grid = Strict(
  {
    experiments: Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      description: 'experiment files; "{dataset}" in a path is replaced by each of `datasets`',
    }),
    datasets: Type.Optional(Type.Array(Type.String({ pattern: '^[a-z0-9]+$' }), { minItems: 1, uniqueItems: true })),
    seeds: Type.Optional(
      Type.Array(Seed, { minItems: 1, maxItems: TRAINING_LIMITS.seeds, uniqueItems: true, description: 'one run per seed: <run>-seed<s>' }),
    ),
    overrides: Type.Optional(Type.Array(Override, { minItems: 1 })),
  },
  'experiments x datasets x seeds x overrides',
);

export const SweepSchema = Strict({
  $schema: Type.Optional(Type.String()),
  name: RunName,
  description: Type.Optional(Type.String()),
  output: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'the output root: run <r> writes <output>/<r>/ (default runs/sweeps/<name>); on a shared filesystem for many machines',
    }),
  ),
  experiments: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'experiment files, each run once as it is' })),
  grid: Type.Optional(Grid),
  set: Type.Optional(Patch),
  after: Type.Optional(
    Type.Record(Type.String(), Type.Array(Type.String(), { minItems: 1 }), {
      description: 'run -> runs it waits for, besides those its finetune.init and finetune.baseline name',
    }),
  ),
  attempts: Type.Optional(
    Type.Integer({ minimum: 1, maximum: 100, description: 'queue: tries per run before it is marked failed (default 3)' }),
  ),
});
export type SweepFile = Static<typeof SweepSchema>;

/** Reads and validates a sweep file; every problem is one ConfigError line naming the file. */
export function loadSweepFile(file: string): SweepFile {
  const text = readTextFile(
    file,
    'a sweep file',
    'check the path (sweeps live in sweeps/)',
    () => new ConfigError(`${file}: no such sweep file; check the path (sweeps live in sweeps/)`),
    16 * 2 ** 20,
  );
  const raw = parseJsonText(text, { file, config: true });
  check(SweepSchema, raw, file);
  if (!raw.experiments?.length && !raw.grid) throw new ConfigError(`${file}: names no runs`, 'give "experiments", "grid" or both');
  return raw;
}
