// `mf sweep --queue` and `mf worker` on a real redis-server (its own, on a free loopback port): two workers share
// a sweep with a dependency and do each run exactly once; a run without its data fails at once, without retries,
// and `mf sweep status` says why; a worker SIGKILLed mid-run loses its job to the other worker, which resumes it
// from its checkpoint to the same final weights as an uninterrupted run; a Redis restart mid-sweep is ridden out.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planSweep } from '../../src/sweep/plan.ts';
import { type RunStatus, sweepStatus } from '../../src/sweep/queue.ts';
import { loadCheckpoint } from '../../src/train/checkpoint.ts';
import { exited, mf, tmpDir } from '../run/helpers.ts';
import { freePort, hasRedis, mfBackground, RedisServer, requireRedis, starts, tinyRun, until, writeSweep } from './helpers.ts';

// Seconds: a dead worker's job is taken over within a few seconds. Not lower: a worker busy checking a run's data
// on a loaded machine must still renew its locks in time.
const LOCK = '5';
const dir = tmpDir('sweep-queue');
const env = { MEDMNIST_ROOT: path.join(dir, 'data') };
let redis: RedisServer | null = null;
const workers: ChildProcess[] = [];

beforeAll(async () => {
  if (hasRedis) redis = await RedisServer.start();
});
afterAll(async () => {
  for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
  await redis?.down();
});

function worker(url: string): { child: ChildProcess; output: () => string } {
  const w = mfBackground(['worker', '--queue', url, '--lock-seconds', LOCK], env);
  workers.push(w.child);
  return w;
}

interface Status {
  runs: RunStatus[];
}
/** The queue's view of the sweep, read in this process (a `mf sweep status` per poll would starve the runs of CPU). */
async function status(sweep: string, url: string): Promise<Status> {
  return { runs: await sweepStatus(planSweep(sweep), url) };
}
const settled = (s: Status) => s.runs.every((r) => r.state === 'done' || r.state === 'failed');

async function stop(w: { child: ChildProcess }): Promise<void> {
  if (w.child.exitCode !== null || w.child.signalCode !== null) return;
  w.child.kill('SIGTERM');
  await exited(w.child);
}

/** The final weights of two run folders, tensor by tensor, byte for byte. */
function expectSameWeights(a: string, b: string): void {
  const x = loadCheckpoint(a).model;
  const y = loadCheckpoint(b).model;
  expect([...y.keys()]).toEqual([...x.keys()]);
  for (const [k, t] of x) {
    const u = y.get(k)!;
    const bytes = (v: typeof t) => Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength);
    expect(bytes(u).equals(bytes(t)), k).toBe(true);
  }
}

describe('mf sweep --queue with mf worker', () => {
  it('names an unreachable Redis in one line', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const sweep = writeSweep(dir, { name: 'nowhere', experiments: [tinyRun(dir, 'unsent', 2)] });
    const r = mf(['sweep', sweep, '--queue', url], env);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(
      new RegExp(`^error: cannot reach Redis at ${url}: .*ECONNREFUSED.*\\(start redis-server there, or fix --queue\\)$`),
    );
  });

  it('two workers do every run once, in order; a run without its data fails at once and status says why', async () => {
    requireRedis();
    const url = redis!.url;
    tinyRun(dir, 'st', 4);
    tinyRun(dir, 'ft', 4, { kind: 'finetune', finetune: { init: 'runs/st', baseline: 'runs/st' } });
    tinyRun(dir, 'nodata', 4, { data: { datasets: ['breastmnist'], augment: false } });
    tinyRun(dir, 'ft-nodata', 4, { kind: 'finetune', finetune: { init: 'runs/nodata' } });
    // A second fine-tuning of st: st sits under ft in the flow tree, so ft2 waits for it by polling its state.
    tinyRun(dir, 'ft2', 4, { kind: 'finetune', finetune: { init: 'runs/st' } });
    const out = path.join(dir, 'two');
    const names = ['st', 'ft', 'nodata', 'ft-nodata', 'ft2'];
    const sweep = writeSweep(dir, { name: 'two', output: out, experiments: names.map((n) => path.join(dir, `${n}.json`)) });
    const w = [worker(url), worker(url)];
    const started = Date.now();
    const q = mf(['sweep', sweep, '--queue', url], env);
    expect(q.status, q.stderr).toBe(0);
    expect(q.stderr).toContain('queued 5 runs');
    let s: Status = { runs: [] };
    await until(async () => settled((s = await status(sweep, url))), 150_000, 'the sweep to finish', 500);
    const wall = (Date.now() - started) / 1000;
    const by = new Map(s.runs.map((r) => [r.run, r]));
    expect(by.get('st')!.state).toBe('done');
    expect(by.get('ft')!.state).toBe('done');
    expect(by.get('ft2')).toMatchObject({ state: 'done', attempts: 1 });
    expect(by.get('nodata')).toMatchObject({ state: 'failed', attempts: 1 });
    expect(by.get('nodata')!.error).toMatch(/breastmnist/);
    for (const run of ['st', 'ft', 'ft2']) {
      expect(starts(out, run), run).toHaveLength(1);
      expect(fs.existsSync(path.join(out, run, 'metrics.json')), run).toBe(true);
    }
    // The run that waits for it fails with it, never started.
    expect(by.get('ft-nodata')!.state).toBe('failed');
    for (const run of ['nodata', 'ft-nodata']) expect(starts(out, run), run).toHaveLength(0);
    for (const run of ['ft', 'ft2'])
      expect(fs.statSync(path.join(out, run, 'config.json')).mtimeMs, run).toBeGreaterThan(
        fs.statSync(path.join(out, 'st', 'metrics.json')).mtimeMs,
      );
    // The human-readable status names the failure and its line.
    const text = mf(['sweep', 'status', sweep, '--queue', url], env);
    expect(text.stdout).toMatch(/^failed +nodata +.*breastmnist/m);
    expect(text.stdout).toContain('3 done, 0 running, 0 waiting, 2 failed of 5');
    const retries = s.runs.reduce((a, r) => a + Math.max(0, r.attempts - 1) + r.stalled, 0);
    process.stderr.write(`queue sweep, 2 workers: 5 runs (3 trained, 2 failed at once) in ${wall.toFixed(1)} s, ${retries} retries\n`);
    await Promise.all(w.map(stop));
  });

  it('resumes the job of a SIGKILLed worker on the other worker, to the weights of an uninterrupted run', async () => {
    requireRedis();
    const url = redis!.url;
    const file = tinyRun(dir, 'long', 16);
    const out = path.join(dir, 'kill');
    const sweep = writeSweep(dir, { name: 'kill', output: out, experiments: [file] });
    const w = [worker(url), worker(url)];
    const q = mf(['sweep', sweep, '--queue', url], env);
    expect(q.status, q.stderr).toBe(0);
    const run = path.join(out, 'long');
    await until(() => fs.existsSync(path.join(run, 'checkpoint.json')), 120_000, 'the first checkpoint');
    // The worker that holds the job is the one whose pid its log's first start line names.
    const pid = Number(/pid (\d+):/.exec(starts(out, 'long')[0]!)![1]);
    const victim = w.find((x) => x.child.pid === pid)!;
    expect(victim, `worker pid ${pid}`).toBeDefined();
    victim.child.kill('SIGKILL');
    await exited(victim.child);
    const killed = Date.now();
    let s: Status = { runs: [] };
    await until(async () => settled((s = await status(sweep, url))), 150_000, 'the resumed run to finish', 500);
    expect(s.runs[0]).toMatchObject({ run: 'long', state: 'done' });
    expect(s.runs[0]!.stalled + s.runs[0]!.attempts).toBeGreaterThan(1);
    process.stderr.write(
      `SIGKILLed worker: its run taken over and finished ${((Date.now() - killed) / 1000).toFixed(1)} s later (stalled ${s.runs[0]!.stalled}, tries ${s.runs[0]!.attempts})\n`,
    );
    const tries = starts(out, 'long');
    expect(tries).toHaveLength(2);
    expect(tries[1]).toContain('mf run --resume');
    expect(tries[1]).not.toContain(`pid ${pid}:`);
    expect(fs.readFileSync(path.join(out, '.sweep', 'long.log'), 'utf8')).toMatch(/resume: continuing from step [1-9]/);
    // An uninterrupted run of the same experiment ends with the same weights.
    const straight = path.join(dir, 'straight');
    const r = mf(['run', path.join(out, '.sweep', 'long.json'), '--out', straight, '--quiet'], env);
    expect(r.status, r.stderr).toBe(0);
    expectSameWeights(straight, run);
    await Promise.all(w.map(stop));
  });

  it('rides out a Redis restart mid-sweep: the worker reconnects and the sweep finishes', async () => {
    requireRedis();
    const durable = await RedisServer.start(true);
    try {
      const url = durable.url;
      const file = tinyRun(dir, 'through', 10);
      const out = path.join(dir, 'restart');
      const sweep = writeSweep(dir, { name: 'restart', output: out, experiments: [file] });
      const w = worker(url);
      const q = mf(['sweep', sweep, '--queue', url], env);
      expect(q.status, q.stderr).toBe(0);
      await until(() => fs.existsSync(path.join(out, 'through', 'checkpoint.json')), 120_000, 'the first checkpoint');
      await durable.down();
      await new Promise((r) => setTimeout(r, 1500));
      await durable.up();
      let s: Status = { runs: [] };
      await until(async () => settled((s = await status(sweep, url))), 150_000, 'the sweep to finish after the restart', 500);
      expect(s.runs[0]).toMatchObject({ run: 'through', state: 'done' });
      expect(fs.existsSync(path.join(out, 'through', 'metrics.json'))).toBe(true);
      expect(w.output()).toMatch(/queue: .*\(retrying\)/);
      await stop(w);
    } finally {
      await durable.down();
    }
  });
});
