// What the `mf serve` tests share: a tiny run trained once per file into a runs folder, the server on a free port,
// and headless Chromium with WebGPU (SwiftShader) for the page.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { type Browser, chromium } from 'playwright-core';
import { TestRunner } from 'vitest';
import { createServer } from '../../src/serve/server.ts';
import { mf, tinyExperiment, tmpDir } from '../run/helpers.ts';

/** A runs folder holding one finished tiny run, `tiny` (two epochs of synthetic2d, logging every step). */
export function trainTinyRun(prefix: string): { runs: string; run: string; env: Record<string, string> } {
  const runs = tmpDir(`${prefix}-runs`);
  const env = { MEDMNIST_ROOT: tmpDir(`${prefix}-data`), LP_NUM_THREADS: '1' };
  const run = path.join(runs, 'tiny');
  const r = mf(['run', tinyExperiment(tmpDir(`${prefix}-exp`), { name: 'tiny' }), '--out', run, '--quiet'], env);
  if (r.status !== 0) throw new Error(`training the tiny run failed: ${r.stderr}`);
  return { runs, run, env };
}

export async function startServer(runs: string): Promise<{ app: FastifyInstance; url: string }> {
  const app = await createServer({ runs });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, url };
}

/** The lines of a run's log.jsonl, parsed. */
export const logRecords = (run: string): { event: string; step?: number; t: number }[] =>
  fs
    .readFileSync(path.join(run, 'log.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));

/** A run.lock naming this process, so that a folder reads as a run still writing. */
export function holdLock(dir: string): void {
  const lock = { pid: process.pid, hostname: os.hostname(), started: new Date().toISOString(), token: 'test' };
  fs.writeFileSync(path.join(dir, 'run.lock'), JSON.stringify(lock));
}

/**
 * Flags under which headless Chromium offers a WebGPU adapter without a GPU: WebGPU on (it is off on Linux by
 * default), and Vulkan, which its SwiftShader adapter runs on; root needs --no-sandbox.
 */
export const CHROMIUM_FLAGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-webgpu-adapter=swiftshader'];

/** Headless Chromium (MF_CHROMIUM, else Debian's /usr/bin/chromium); null when it cannot start. */
export async function launchChromium(): Promise<{ browser: Browser | null; why: string }> {
  const executablePath = process.env.MF_CHROMIUM ?? '/usr/bin/chromium';
  if (!fs.existsSync(executablePath)) return { browser: null, why: `${executablePath} is missing: run bash scripts/setup.sh --test` };
  const args = [...CHROMIUM_FLAGS, ...(process.getuid?.() === 0 ? ['--no-sandbox'] : [])];
  try {
    return { browser: await chromium.launch({ executablePath, args, headless: true }), why: '' };
  } catch (e) {
    return { browser: null, why: `${executablePath} does not start: ${(e as Error).message.split('\n')[0]}` };
  }
}

/** What a browser test does without Chromium: fail under CI, otherwise mark the current test skipped. */
export function noBrowser(why: string): never {
  if (process.env.CI) throw new Error(`no headless Chromium in CI (${why}): scripts/setup.sh --test installs it`);
  TestRunner.getCurrentTest()?.context.skip(`no headless Chromium: ${why}`);
  throw new Error('no headless Chromium, and no current test to skip');
}
