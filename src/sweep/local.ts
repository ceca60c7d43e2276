// `mf sweep <file> --local [--jobs N]`: the sweep on this machine, no queue. Up to N child `mf run`s at a time,
// each started once every run it waits for has finished; a run that fails skips the runs that wait for it.
// Run again, it keeps finished runs and resumes the others from their checkpoints.
import type { ChildProcess } from 'node:child_process';
import { MfError } from '../errors.ts';
import type { PlannedRun, SweepPlan } from './plan.ts';
import { clearForeignLock, preflight, runChild, type RunSpec, writeExperiment } from './runner.ts';

export type LocalOutcome =
  | { state: 'done'; wall_s: number; kept: boolean }
  | { state: 'failed'; error: string }
  | { state: 'skipped'; error: string };

export interface LocalOptions {
  jobs: number;
  dataDir?: string;
  backend?: string;
  say: (line: string) => void;
}

export const specOf = (plan: SweepPlan, run: PlannedRun): RunSpec => ({
  sweep: plan.name,
  run: run.id,
  output: plan.output,
  experiment: run.experiment,
});

export async function runLocal(plan: SweepPlan, opts: LocalOptions): Promise<Map<string, LocalOutcome>> {
  const outcomes = new Map<string, LocalOutcome>();
  const running = new Map<string, Promise<void>>();
  const children = new Set<ChildProcess>();
  let stopping = false;
  // Ctrl-C: each child checkpoints and stops (mf run's own SIGINT handling); nothing new starts.
  const onSignal = () => {
    stopping = true;
    for (const c of children) c.kill('SIGINT');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const one = async (run: PlannedRun): Promise<LocalOutcome> => {
    const spec = specOf(plan, run);
    const file = writeExperiment(spec);
    let state: Awaited<ReturnType<typeof preflight>>;
    try {
      state = await preflight(spec, file, opts);
    } catch (e) {
      if (e instanceof MfError) return { state: 'failed', error: e.message };
      throw e;
    }
    if (state === 'done') return { state: 'done', wall_s: 0, kept: true };
    clearForeignLock(`${plan.output}/${run.id}`);
    opts.say(`start ${run.id}${state === 'resumable' ? ' (resuming its checkpoint)' : ''}`);
    const r = await runChild(spec, file, state === 'resumable', {
      ...opts,
      onStart: (c) => {
        children.add(c);
        c.on('close', () => children.delete(c));
      },
    });
    return r.ok ? { state: 'done', wall_s: r.wall_s, kept: false } : { state: 'failed', error: r.error ?? 'failed' };
  };

  try {
    for (;;) {
      for (const run of plan.runs) {
        if (outcomes.has(run.id) || running.has(run.id)) continue;
        const blocked = run.after.find((d) => {
          const o = outcomes.get(d);
          return o !== undefined && o.state !== 'done';
        });
        if (blocked) {
          outcomes.set(run.id, { state: 'skipped', error: `waits for ${blocked}, which did not finish` });
          continue;
        }
        if (stopping || running.size >= opts.jobs || !run.after.every((d) => outcomes.get(d)?.state === 'done')) continue;
        running.set(
          run.id,
          one(run).then((o) => {
            outcomes.set(run.id, o);
            running.delete(run.id);
            opts.say(
              o.state === 'done' ? `done ${run.id}${o.kept ? ' (already finished)' : ` in ${o.wall_s} s`}` : `failed ${run.id}: ${o.error}`,
            );
          }),
        );
      }
      if (!running.size) break;
      await Promise.race(running.values());
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return outcomes;
}
