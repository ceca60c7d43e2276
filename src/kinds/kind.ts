// A run kind is one plug-in: the schema of its experiment files, how defaults and cross-field checks turn a
// file into settings, what it reads before the device starts, and what it runs. `mf run` knows nothing else
// about a kind; adding one is a folder under src/kinds/ and a line in src/kinds/index.ts.
import type { Static, TObject } from '@sinclair/typebox';
import type { NeededFile } from '../data/download.ts';
import type { RunContext } from '../train/context.ts';
import { check, type TrainingSettings } from '../train/schema.ts';

/** What every kind's settings hold; configHash covers all of it but source, name and description. */
export interface RunSettings {
  /** Path of the experiment file it came from. */
  source: string;
  name: string;
  kind: string;
  description: string;
  training: TrainingSettings;
}

/** Command-line options a kind's `prepare` may need. */
export interface PrepareOptions {
  /** --data-dir: overrides the experiment's data root. */
  dataDir?: string;
  /** The run folder (relative settings such as cache folders resolve against it). */
  outDir: string;
}

/** The official data files a run reads, where, and whether its file lets `mf run` fetch the missing ones. */
export interface DataNeeds {
  root: string;
  files: NeededFile[];
  /** data.download of the experiment file (`mf run --download` asks for it from the command line). */
  download: boolean;
}

export interface RunKind<S extends TObject, Settings extends RunSettings, Inputs> {
  readonly kind: string;
  /** One line for `mf run --help` and the docs. */
  readonly summary: string;
  /** The experiment file of this kind, `kind` included. */
  readonly schema: S;
  /** Keys that older experiment files used (JSON pointer -> what to write instead); checked before the schema. */
  readonly renamed?: Readonly<Record<string, string>>;
  /** Defaults and the checks a schema cannot express, on a file that passed the schema; errors name `source`. */
  resolve(file: Static<S>, source: string): Settings;
  /** The downloadable data files `prepare` will read (absent: none); `dataDir` is --data-dir. */
  data?(settings: Settings, dataDir: string | undefined): DataNeeds;
  /** Reads and checks every input (data, weights) before the device starts or anything is written. */
  prepare(settings: Settings, opts: PrepareOptions): Inputs | Promise<Inputs>;
  run(ctx: RunContext, settings: Settings, inputs: Inputs): Promise<void>;
}

/** A kind with its types erased, as the registry holds it. */
export interface AnyRunKind {
  readonly kind: string;
  readonly summary: string;
  readonly schema: TObject;
  readonly renamed: Readonly<Record<string, string>>;
  /** Validated file -> settings, with the command line's training overrides (--epochs ...) applied last. */
  resolve(file: unknown, source: string, overrides?: Partial<TrainingSettings>): LoadedExperiment;
}

/** A validated experiment of some kind, ready to prepare and run. */
export interface LoadedExperiment {
  settings: RunSettings;
  /** The official data files it reads (null: a kind that reads none, such as the brain kinds). */
  data(dataDir?: string): DataNeeds | null;
  prepare(opts: PrepareOptions): Promise<(ctx: RunContext) => Promise<void>>;
}

export function defineKind<S extends TObject, Settings extends RunSettings, Inputs>(k: RunKind<S, Settings, Inputs>): AnyRunKind {
  return {
    kind: k.kind,
    summary: k.summary,
    schema: k.schema,
    renamed: k.renamed ?? {},
    resolve(file, source, overrides = {}) {
      check(k.schema, file, source);
      const resolved = k.resolve(file, source);
      const settings: Settings = { ...resolved, training: { ...resolved.training, ...overrides } };
      return {
        settings,
        data: (dataDir) => k.data?.(settings, dataDir) ?? null,
        async prepare(opts) {
          const inputs = await k.prepare(settings, opts);
          return (ctx) => k.run(ctx, settings, inputs);
        },
      };
    },
  };
}
