// The brain-age study is many training phases in one run folder: a Barlow Twins pre-training per seed, then
// every arm for every seed. Each phase is a TrainingPhase with its own name, so the run folder's checkpoint
// says which phase wrote it and is restored only into that one; study.json records the results of the
// finished phases. An interrupted study therefore resumes inside the phase it stopped in and does not
// repeat the finished ones. (One run and one device for the whole study: every new device would compile all
// the kernels again, which costs most of a minute on a CPU rasteriser.)
import fs from 'node:fs';
import path from 'node:path';
import { MfError } from '../../errors.ts';
import type { RunContext } from '../../train/context.ts';
import { readJsonFile, writeJsonAtomic } from '../../util/files.ts';
import { type Static, Type } from '@sinclair/typebox';

export const STUDY_FILE = 'study.json';

/** study.json: the subject split the study was started with (a resume under another split is refused) and the results of finished phases, by name. */
const StudyStateSchema = Type.Object({
  split: Type.Record(Type.String(), Type.Unknown()),
  phases: Type.Record(Type.String(), Type.Unknown()),
});
type StudyState = Static<typeof StudyStateSchema>;

export class Study {
  private constructor(
    private readonly ctx: RunContext,
    readonly file: string,
    private readonly state: StudyState,
  ) {}

  /** study.json of the run folder: a new study, or (with --resume) the one that was started with `split`. */
  static open(ctx: RunContext, split: Record<string, unknown>): Study {
    const file = path.join(ctx.outDir, STUDY_FILE);
    const exists = fs.existsSync(file);
    if (exists && !ctx.resume) {
      throw new MfError(`${ctx.outDir} already holds a brain-age study`, 'pass --resume to continue it, or --out for a new folder');
    }
    const previous = exists
      ? readJsonFile(file, StudyStateSchema, { what: 'the study state', fix: 'remove the run folder (or use --out) and start again' })
      : null;
    if (previous && JSON.stringify(previous.split) !== JSON.stringify(split)) {
      throw new MfError(
        `${file}: the study was started with another subject split`,
        'resume with the same data and settings, or use --out',
      );
    }
    const study = new Study(ctx, file, { split, phases: previous?.phases ?? {} });
    study.save();
    return study;
  }

  private save(): void {
    writeJsonAtomic(this.file, this.state);
  }

  /** The results of every finished phase, by name (in the order they finished). */
  get finished(): Readonly<Record<string, unknown>> {
    return this.state.phases;
  }

  /**
   * Runs phase `name` unless study.json says it finished (then returns its recorded result), and records its
   * result there. `body` trains a TrainingPhase named `name`. Null when the run was interrupted.
   */
  async phase<T>(name: string, body: () => Promise<T | null>): Promise<T | null> {
    if (name in this.state.phases) return this.state.phases[name] as T;
    if (this.ctx.interrupted) return null;
    this.ctx.say(`--- ${name}`);
    this.ctx.log({ event: 'phase', phase: name });
    const r = await body();
    if (r === null || this.ctx.interrupted) return null;
    this.state.phases[name] = r;
    this.save();
    return r;
  }
}
