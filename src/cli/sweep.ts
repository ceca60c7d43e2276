// `mf sweep` and `mf worker`: many `mf run`s from a sweep file (src/sweep/), here on this machine (--local), on a
// BullMQ queue over Redis (--queue, then `mf worker` on each machine) or as a Slurm submission script (--slurm).
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, MfError } from '../errors.ts';
import { runLocal, type LocalOutcome } from '../sweep/local.ts';
import { planSweep, type SweepPlan } from '../sweep/plan.ts';
import { runFolder, runState } from '../sweep/runner.ts';
import { slurmScript } from '../sweep/slurm.ts';
import { writeFileAtomic } from '../util/files.ts';

const say = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

function positiveInt(flag: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const v = /^\d{1,6}$/.test(raw.trim()) ? Number(raw) : Number.NaN;
  if (!(v >= 1)) throw new ConfigError(`${flag} ${JSON.stringify(raw)} is not a whole number of at least 1`, `e.g. ${flag} 2`);
  return v;
}

export interface SweepFlags {
  local?: boolean;
  jobs?: string;
  queue?: string;
  slurm?: boolean;
  out?: string;
  dataDir?: string;
  backend?: string;
  json?: boolean;
  sbatch?: string[];
}

function describePlan(plan: SweepPlan): string {
  const waveCount = Math.max(0, ...plan.runs.map((r) => r.wave)) + 1;
  return `${plan.name}: ${plan.runs.length} runs in ${waveCount} waves -> ${plan.output}`;
}

export async function sweepCommand(file: string, flags: SweepFlags): Promise<void> {
  const modes = [flags.local, flags.queue !== undefined, flags.slurm].filter(Boolean).length;
  if (modes !== 1) throw new ConfigError('mf sweep: give exactly one of --local, --queue redis://host:port, --slurm');
  const plan = planSweep(file, flags.out);
  say(describePlan(plan));
  if (flags.slurm) {
    const script = path.join(plan.output, '.sweep', 'slurm-submit.sh');
    fs.mkdirSync(path.dirname(script), { recursive: true });
    writeFileAtomic(
      script,
      new TextEncoder().encode(slurmScript(plan, { sweepFile: path.resolve(file), repo: process.cwd(), sbatch: flags.sbatch })),
    );
    fs.chmodSync(script, 0o755);
    console.log(script);
    say(`submit with: bash ${script}`);
    return;
  }
  if (flags.queue !== undefined) {
    const { enqueue } = await import('../sweep/queue.ts');
    const n = await enqueue(plan, flags.queue);
    say(`queued ${n} runs on ${flags.queue}; start workers with: mf worker --queue ${flags.queue}`);
    return;
  }
  const jobs = positiveInt('--jobs', flags.jobs, 1);
  const started = Date.now();
  const outcomes = await runLocal(plan, { jobs, dataDir: flags.dataDir, backend: flags.backend, say });
  printOutcomes(plan, outcomes, (Date.now() - started) / 1000, flags.json);
}

function printOutcomes(plan: SweepPlan, outcomes: Map<string, LocalOutcome>, wall: number, json?: boolean): void {
  const rows = plan.runs.map((r) => {
    const o = outcomes.get(r.id);
    return { run: r.id, state: o?.state ?? 'not started', error: o && o.state !== 'done' ? o.error : null };
  });
  if (json) console.log(JSON.stringify({ sweep: plan.name, output: plan.output, wall_s: +wall.toFixed(1), runs: rows }, null, 2));
  else {
    for (const row of rows) console.log(`${row.state.padEnd(11)} ${row.run}${row.error ? `  ${row.error}` : ''}`);
    const done = rows.filter((r) => r.state === 'done').length;
    console.log(
      `${done} of ${rows.length} runs done in ${wall.toFixed(1)} s; results in ${plan.output} (mf table <id> --runs ${plan.output})`,
    );
  }
  if (rows.some((r) => r.state !== 'done')) process.exitCode = 1;
}

export async function sweepStatusCommand(file: string, flags: { queue?: string; out?: string; json?: boolean }): Promise<void> {
  if (!flags.queue) throw new ConfigError('mf sweep status: give --queue redis://host:port');
  const plan = planSweep(file, flags.out);
  const { sweepStatus } = await import('../sweep/queue.ts');
  const rows = await sweepStatus(plan, flags.queue);
  if (flags.json) {
    console.log(JSON.stringify({ sweep: plan.name, output: plan.output, runs: rows }, null, 2));
    return;
  }
  for (const r of rows) {
    const tries = r.attempts > 1 || r.stalled ? ` (${r.attempts} tries${r.stalled ? `, taken over ${r.stalled}x` : ''})` : '';
    console.log(`${r.state.padEnd(10)} ${r.run}${tries}${r.error ? `  ${r.error}` : ''}`);
  }
  const count = (s: string) => rows.filter((r) => r.state === s).length;
  console.log(
    `${count('done')} done, ${count('running')} running, ${count('waiting')} waiting, ${count('failed')} failed of ${rows.length}`,
  );
}

export interface WorkerFlags {
  queue?: string;
  sweep?: string;
  run?: string;
  concurrency?: string;
  lockSeconds?: string;
  dataDir?: string;
  backend?: string;
}

export async function workerCommand(flags: WorkerFlags): Promise<void> {
  if (flags.queue !== undefined) {
    if (flags.sweep || flags.run) throw new ConfigError('mf worker: --queue takes its runs from the queue; drop --sweep/--run');
    const lock = flags.lockSeconds === undefined ? 30 : Number(flags.lockSeconds);
    if (!(lock >= 0.5 && lock <= 3600))
      throw new ConfigError(`--lock-seconds ${flags.lockSeconds} is not a number of seconds in [0.5, 3600]`);
    const { runWorker } = await import('../sweep/queue.ts');
    await runWorker(flags.queue, {
      concurrency: positiveInt('--concurrency', flags.concurrency, 1),
      lockSeconds: lock,
      dataDir: flags.dataDir,
      backend: flags.backend,
      say,
    });
    return;
  }
  // One run of a sweep file with no queue (a Slurm array task): its dependencies must have finished.
  if (!flags.sweep || !flags.run) throw new ConfigError('mf worker: give --queue redis://host:port, or --sweep <file> --run <run>');
  const plan = planSweep(flags.sweep);
  const run = plan.runs.find((r) => r.id === flags.run);
  if (!run) throw new ConfigError(`${flags.sweep}: no run ${flags.run}`, `runs: ${plan.runs.map((r) => r.id).join(', ')}`);
  const unfinished = run.after.filter((d) => runState(runFolder({ output: plan.output, run: d })) !== 'done');
  if (unfinished.length) throw new MfError(`${run.id} waits for ${unfinished.join(', ')}, not finished in ${plan.output}`);
  const outcome = (
    await runLocal({ ...plan, runs: [{ ...run, after: [] }] }, { jobs: 1, dataDir: flags.dataDir, backend: flags.backend, say })
  ).get(run.id);
  if (outcome?.state !== 'done') throw new MfError(`${run.id}: ${outcome ? outcome.error : 'not run'}`);
}
