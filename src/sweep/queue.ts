// The sweep on a job queue: BullMQ over Redis. `mf sweep --queue` adds every run as a job; `mf worker` on each
// machine takes jobs and trains each in a child `mf run` (src/sweep/runner.ts).
//
// Order: BullMQ flows are trees (a job has one parent, which starts once its children succeed), so each run is
// the child of the first run that waits for it, and a job's remaining dependencies (an SSL run that 18
// fine-tunings wait for) are checked when it starts: until they have succeeded it goes back to the delayed set
// (moveToDelayed + DelayedError, which uses no attempt). A failed child fails its parent (failParentOnFailure).
// Retries: `attempts` per run; a worker that dies stops renewing its job's lock and another worker's stalled
// check puts the job back, so it runs again, from its checkpoint (mf run --resume). What no retry can fix (the
// experiment, its data) is checked before the child starts and fails the job at once (UnrecoverableError).
import type { ChildProcess } from 'node:child_process';
import { DelayedError, type FlowJob, FlowProducer, Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { ConfigError, MfError } from '../errors.ts';
import { dependents, type SweepPlan } from './plan.ts';
import { specOf } from './local.ts';
import { clearForeignLock, preflight, runChild, runFolder, type RunSpec, writeExperiment } from './runner.ts';

export const QUEUE_NAME = 'medformer-runs';
/** How often a job waiting for a run outside its flow tree looks again. */
const WAIT_POLL_MS = 2000;

interface JobData {
  spec: RunSpec;
  /** Runs it waits for that are not its children in the flow tree. */
  waitFor: string[];
  attempts: number;
}

export const jobId = (sweep: string, run: string): string => `${sweep}/${run}`;

function parseQueueUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigError(`--queue ${url} is not a URL`, 'give redis://host:port');
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new ConfigError(`--queue ${url}: not a redis:// URL`, 'give redis://host:port');
  return u;
}

/**
 * A connection for BullMQ (maxRetriesPerRequest null: commands wait through a Redis restart and ioredis
 * reconnects), after checking once that the server answers, so a wrong address is one error line at start.
 */
export async function connect(url: string): Promise<Redis> {
  parseQueueUrl(url);
  const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 5000 });
  // The socket's own error (ECONNREFUSED ...) says more than the "Connection is closed" that connect() rejects with.
  let cause: Error | null = null;
  probe.on('error', (e: Error) => {
    cause ??= e;
  });
  try {
    await probe.connect();
    await probe.ping();
  } catch (e) {
    const why = (cause ?? (e as Error)).message;
    throw new MfError(`cannot reach Redis at ${url}: ${why}`, 'start redis-server there, or fix --queue');
  } finally {
    probe.disconnect();
  }
  const redis = new Redis(url, { maxRetriesPerRequest: null, retryStrategy: (times) => Math.min(200 * times, 2000) });
  redis.on('error', () => {}); // reported by the Worker's 'error' event; ioredis keeps reconnecting
  return redis;
}

/** The flow trees of a plan: each run under the first run that waits for it. */
export function flowTrees(plan: SweepPlan): FlowJob[] {
  const treeParent = new Map(plan.runs.map((r) => [r.id, dependents(plan, r.id)[0]?.id ?? null]));
  const node = (id: string): FlowJob => {
    const run = plan.runs.find((r) => r.id === id);
    if (!run) throw new Error(`flowTrees: no run ${id}`);
    const children = plan.runs.filter((r) => treeParent.get(r.id) === id).map((r) => node(r.id));
    const data: JobData = {
      spec: specOf(plan, run),
      waitFor: run.after.filter((d) => treeParent.get(d) !== id),
      attempts: plan.attempts,
    };
    return {
      name: run.id,
      queueName: QUEUE_NAME,
      data,
      opts: {
        jobId: jobId(plan.name, run.id),
        attempts: plan.attempts,
        backoff: { type: 'fixed', delay: 1000 },
        failParentOnFailure: true,
      },
      ...(children.length ? { children } : {}),
    };
  };
  return plan.runs.filter((r) => treeParent.get(r.id) === null).map((r) => node(r.id));
}

/** Adds the sweep's runs to the queue (runs already there, by job id, are left as they are). */
export async function enqueue(plan: SweepPlan, url: string): Promise<number> {
  const connection = await connect(url);
  const flow = new FlowProducer({ connection });
  try {
    await flow.addBulk(flowTrees(plan));
    return plan.runs.length;
  } finally {
    await flow.close();
    connection.disconnect();
  }
}

export interface RunStatus {
  run: string;
  state: 'done' | 'running' | 'waiting' | 'failed' | 'not queued';
  /** Tries started (BullMQ attemptsMade) and times a dead worker's hold was taken back (stalled). */
  attempts: number;
  stalled: number;
  error: string | null;
}

export async function sweepStatus(plan: SweepPlan, url: string): Promise<RunStatus[]> {
  const connection = await connect(url);
  const queue = new Queue(QUEUE_NAME, { connection });
  try {
    const out: RunStatus[] = [];
    for (const run of plan.runs) {
      const job = await Job.fromId(queue, jobId(plan.name, run.id));
      if (!job) {
        out.push({ run: run.id, state: 'not queued', attempts: 0, stalled: 0, error: null });
        continue;
      }
      const s = await job.getState();
      const state = s === 'completed' ? 'done' : s === 'active' ? 'running' : s === 'failed' ? 'failed' : 'waiting';
      const error = state === 'failed' || (state !== 'done' && job.failedReason) ? (job.failedReason?.split('\n')[0] ?? null) : null;
      out.push({ run: run.id, state, attempts: job.attemptsMade, stalled: job.stalledCounter ?? 0, error });
    }
    return out;
  } finally {
    await queue.close();
    connection.disconnect();
  }
}

export interface WorkerOptions {
  concurrency: number;
  /** Seconds a job's lock lasts without renewal: how soon a dead worker's job is taken over. */
  lockSeconds: number;
  dataDir?: string;
  backend?: string;
  say: (line: string) => void;
}

/** Takes and trains jobs until SIGINT/SIGTERM; then interrupts its runs (each checkpoints) and stops. */
export async function runWorker(url: string, opts: WorkerOptions): Promise<void> {
  const connection = await connect(url);
  const queue = new Queue(QUEUE_NAME, { connection });
  const children = new Map<string, ChildProcess>();
  const lockDuration = Math.round(opts.lockSeconds * 1000);

  const processJob = async (job: Job<JobData>, token?: string): Promise<{ wall_s: number; resumed: boolean; kept: boolean }> => {
    const { spec, waitFor } = job.data;
    for (const dep of waitFor) {
      const depJob = await Job.fromId(queue, jobId(spec.sweep, dep));
      const state = depJob ? await depJob.getState() : 'missing';
      if (state === 'completed') continue;
      if (state === 'failed' || state === 'missing')
        throw new UnrecoverableError(`waits for ${dep}, which ${state === 'failed' ? 'failed' : 'is not on the queue'}`);
      await job.moveToDelayed(Date.now() + WAIT_POLL_MS, token);
      throw new DelayedError();
    }
    const file = writeExperiment(spec);
    let state: Awaited<ReturnType<typeof preflight>>;
    try {
      state = await preflight(spec, file, opts);
    } catch (e) {
      if (e instanceof MfError) throw new UnrecoverableError(e.message);
      throw e;
    }
    if (state === 'done') return { wall_s: 0, resumed: false, kept: true };
    const dir = runFolder(spec);
    const foreign = clearForeignLock(dir);
    if (foreign) opts.say(`${spec.run}: removed the run lock of host ${foreign}, whose worker lost the job`);
    const resumed = state === 'resumable';
    opts.say(`start ${spec.run} (try ${job.attemptsMade + 1} of ${job.data.attempts}${resumed ? ', resuming from its checkpoint' : ''})`);
    const r = await runChild(spec, file, resumed, {
      ...opts,
      onStart: (c) => children.set(job.id ?? spec.run, c),
    });
    children.delete(job.id ?? spec.run);
    if (!r.ok) throw new Error(r.error ?? 'mf run failed');
    return { wall_s: r.wall_s, resumed, kept: false };
  };

  const worker = new Worker<JobData>(QUEUE_NAME, processJob, {
    connection,
    concurrency: opts.concurrency,
    lockDuration,
    stalledInterval: lockDuration,
    maxStalledCount: 10,
  });
  let lastError = '';
  worker.on('error', (e) => {
    if (e.message !== lastError) opts.say(`queue: ${e.message} (retrying)`);
    lastError = e.message;
  });
  worker.on('ready', () => {
    if (lastError) opts.say('queue: connected');
    lastError = '';
  });
  worker.on('completed', (job, r) => opts.say(`done ${job.data.spec.run}${r.kept ? ' (already finished)' : ` in ${r.wall_s} s`}`));
  worker.on('failed', (job, err) => {
    if (!job || err instanceof DelayedError) return;
    const final = err instanceof UnrecoverableError || job.attemptsMade >= job.data.attempts;
    opts.say(`failed ${job.data.spec.run}: ${err.message}${final ? '' : ' (will retry)'}`);
  });
  // A job whose lock could not be renewed may already be another worker's: stop its run (it checkpoints).
  worker.on('lockRenewalFailed', (ids) => {
    for (const id of ids) children.get(id)?.kill('SIGTERM');
  });
  opts.say(`worker: taking jobs from ${url} (queue ${QUEUE_NAME}, ${opts.concurrency} at a time)`);

  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      opts.say('worker: stopping; interrupting its runs (each saves a checkpoint)');
      for (const c of children.values()) c.kill('SIGTERM');
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await worker.close();
  await queue.close();
  connection.disconnect();
}
