// What the `mf serve` tests share: a tiny run trained once per file into a runs folder, the server on a free port,
// and headless Chromium with WebGPU (SwiftShader) for the page.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { type Browser, chromium, type Page } from 'playwright-core';
import { expect, TestRunner } from 'vitest';
import { createServer } from '../../src/serve/server.ts';
import { mf, tinyExperiment, tmpDir } from '../run/helpers.ts';

/** What changes a tiny run: tinyExperiment's `over` and `training`, and flags of `mf run`. */
export interface TinyRunOptions {
  name?: string;
  over?: Record<string, unknown>;
  training?: Record<string, unknown>;
  flags?: string[];
}

/**
 * A runs folder holding one finished tiny run, by default `tiny` (two epochs of synthetic2d, logging every step).
 */
export function trainTinyRun(prefix: string, opts: TinyRunOptions = {}): { runs: string; run: string; env: Record<string, string> } {
  const name = opts.name ?? 'tiny';
  const runs = tmpDir(`${prefix}-runs`);
  const env = { MEDMNIST_ROOT: tmpDir(`${prefix}-data`), LP_NUM_THREADS: '1' };
  const run = path.join(runs, name);
  const exp = tinyExperiment(tmpDir(`${prefix}-exp`), { name, ...opts.over }, opts.training);
  const r = mf(['run', exp, '--out', run, '--quiet', ...(opts.flags ?? [])], env);
  if (r.status !== 0) throw new Error(`training the tiny run ${name} failed: ${r.stderr}`);
  return { runs, run, env };
}

/** One prediction as `mf predict --out x.json` writes it and as the page's table shows it. */
export interface ShownPrediction {
  input: string;
  predicted: string;
  probabilities: Record<string, number>;
}

/** `mf predict <run> <files...>`'s predictions (its --out JSON). */
export function predictJson(run: string, files: string[], env: Record<string, string>): ShownPrediction[] {
  const out = path.join(tmpDir('serve-predict'), 'predictions.json');
  const r = mf(['predict', run, ...files, '--out', out], env);
  if (r.status !== 0) throw new Error(`mf predict failed: ${r.stderr}`);
  return JSON.parse(fs.readFileSync(out, 'utf8')) as ShownPrediction[];
}

/** The page's predictions are mf predict's, input for input (by file name), label for label within `tol`. */
export function expectSamePredictions(shown: ShownPrediction[], expected: ShownPrediction[], tol = 1e-4): void {
  expect(shown.map((r) => r.input)).toEqual(expected.map((e) => path.basename(e.input)));
  shown.forEach((row, i) => {
    const want = expected[i]!;
    expect(row.predicted, row.input).toBe(want.predicted);
    expect(Object.keys(row.probabilities)).toEqual(Object.keys(want.probabilities));
    for (const [label, v] of Object.entries(want.probabilities))
      expect(Math.abs(row.probabilities[label]! - v), `${row.input} ${label}`).toBeLessThanOrEqual(tol);
  });
}

/** The rows of the page's predictions table (#predictions), as the page computed them. */
export const shownPredictions = (p: Page): Promise<ShownPrediction[]> =>
  p.locator('#predictions tbody tr').evaluateAll((trs) =>
    trs.map((tr) => ({
      input: tr.getAttribute('data-input')!,
      predicted: tr.children[1]!.textContent!,
      probabilities: JSON.parse(tr.getAttribute('data-probabilities')!) as Record<string, number>,
    })),
  );

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
