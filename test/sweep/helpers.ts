// Helpers for the sweep tests: a private redis-server per test file, tiny experiments and sweep files, and
// polling until a condition holds.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { TestRunner } from 'vitest';
import { exited, MF, ROOT, tinyExperiment, tmpDir } from '../run/helpers.ts';

export const hasRedis = spawnSync('redis-server', ['--version']).status === 0;

/** Under CI a missing redis-server fails the test; elsewhere the test is skipped with the reason. */
export function requireRedis(): void {
  if (hasRedis) return;
  if (process.env.CI) throw new Error('redis-server is not installed in CI: bash scripts/setup.sh --test installs it');
  TestRunner.getCurrentTest()?.context.skip('redis-server is not installed (Debian: apt-get install redis-server)');
  throw new Error('no redis-server, and no current test to skip');
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A redis-server on a free loopback port in its own folder; `persist` keeps its data over a restart (AOF). */
export class RedisServer {
  private proc: ChildProcess | null = null;
  readonly dir = tmpDir('redis');
  private constructor(
    readonly port: number,
    private readonly persist: boolean,
  ) {}

  static async start(persist = false): Promise<RedisServer> {
    const r = new RedisServer(await freePort(), persist);
    await r.up();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async up(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', ''];
    args.push(...(this.persist ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']));
    this.proc = spawn('redis-server', args, { stdio: 'ignore' });
    await until(() => canConnect(this.port), 10_000, 'redis-server to accept connections');
  }

  async down(): Promise<void> {
    if (!this.proc) return;
    const p = this.proc;
    this.proc = null;
    p.kill('SIGTERM');
    await exited(p);
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string, everyMs = 100): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A tiny supervised experiment on the synthetic set (test/run's tinyExperiment): `steps` steps, a checkpoint every 2. */
export function tinyRun(dir: string, name: string, steps: number, over: Record<string, unknown> = {}): string {
  const data = { datasets: ['synthetic2d'], augment: false, train_limit: 32 };
  return tinyExperiment(dir, { name, data, ...over }, { epochs: 1, max_steps: steps, batch_size: 8 });
}

export function writeSweep(dir: string, sweep: Record<string, unknown>): string {
  const file = path.join(dir, `${sweep.name as string}.sweep.json`);
  fs.writeFileSync(file, JSON.stringify(sweep, null, 2));
  return file;
}

/** `mf <args>` in the background, its stderr collected. */
export function mfBackground(args: string[], env: Record<string, string> = {}): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [MF, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return { child, output: () => out };
}

/** The `mf run` starts recorded in a run's sweep log: one header line each. */
export function starts(output: string, run: string): string[] {
  const log = path.join(output, '.sweep', `${run}.log`);
  if (!fs.existsSync(log)) return [];
  return fs
    .readFileSync(log, 'utf8')
    .split('\n')
    .filter((l) => /^--- \d{4}-\S+ .* pid \d+: mf run/.test(l));
}
