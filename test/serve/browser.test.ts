// `mf serve`'s page in a real browser (headless Chromium, WebGPU on SwiftShader): the run list shows a tiny run
// trained here and its loss curve has one point per logged step; a run still writing gets its new steps on the
// page; the checkpoint scored in the page (the project's kernels on the browser's WebGPU) gives the probabilities
// `mf predict` gives for the same PNG and JPEG files; a browser without WebGPU gets a clear message.
// MF_SCREENSHOTS=1 also writes the README's screenshots (docs/serve-*.png).
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import jpeg from 'jpeg-js';
import type { Browser, Page } from 'playwright-core';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSplit } from '../../src/data/dataset.ts';
import { ROOT, tmpDir } from '../run/helpers.ts';
import {
  expectSamePredictions,
  holdLock,
  launchChromium,
  logRecords,
  noBrowser,
  predictJson,
  shownPredictions,
  startServer,
  trainTinyRun,
} from './helpers.ts';

const SIDE = 28;
let runs: string;
let run: string;
let env: Record<string, string>;
let app: FastifyInstance;
let url: string;
let browser: Browser | null = null;
let why = '';

beforeAll(async () => {
  ({ browser, why } = await launchChromium());
  if (!browser) return;
  ({ runs, run, env } = trainTinyRun('serve-page'));
  ({ app, url } = await startServer(runs));
});
afterAll(async () => {
  await browser?.close();
  await app?.close();
});

const pageErrors: string[] = [];

async function page(): Promise<Page> {
  if (!browser) noBrowser(why);
  const p = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  p.on('pageerror', (e) => pageErrors.push(e.message));
  return p;
}

/** Closes a page once it threw nothing uncaught. */
async function done(p: Page): Promise<void> {
  expect(pageErrors).toEqual([]);
  await p.close();
}

const points = (p: Page, chart: string) => p.getAttribute(chart, 'data-points').then(Number);

describe('mf serve (page)', () => {
  it('lists the trained run, and its loss and validation curves have one point per logged record', async () => {
    const p = await page();
    await p.goto(`${url}/`);
    const row = p.locator('#runs tr[data-run="tiny"]');
    await row.waitFor();
    expect(await row.getAttribute('data-status')).toBe('finished');
    expect((await row.locator('td').allTextContents()).slice(1, 5)).toEqual(['tiny', 'supervised', 'synthetic2d', 'finished']);

    const records = logRecords(run);
    const trainSteps = records.filter((r) => r.event === 'train').length;
    const vals = records.filter((r) => r.event === 'val').length;
    expect(trainSteps).toBeGreaterThan(2);
    await p.goto(`${url}/#/run/tiny`);
    await expect.poll(() => points(p, '#chart-loss')).toBe(trainSteps);
    expect(await points(p, '#chart-lr')).toBe(trainSteps);
    expect(await points(p, '#chart-val')).toBe(vals);
    expect(await p.locator('#metrics').textContent()).toContain('synthetic2d');
    await done(p);
  });

  it("shows a live run's new steps as its log grows", async () => {
    const p = await page();
    const lines = fs.readFileSync(path.join(run, 'log.jsonl'), 'utf8').trimEnd().split('\n');
    const train = lines.filter((l) => l.includes('"event":"train"'));
    const live = path.join(runs, 'live');
    fs.mkdirSync(live);
    const config = JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(live, 'config.json'), JSON.stringify({ ...config, name: 'live' }));
    fs.writeFileSync(path.join(live, 'log.jsonl'), `${train.slice(0, 2).join('\n')}\n`);
    holdLock(live);
    try {
      await p.goto(`${url}/`);
      const row = p.locator('#runs tr[data-run="live"]');
      await row.waitFor();
      expect(await row.getAttribute('data-status')).toBe('running');
      expect(await row.getAttribute('data-steps')).toBe('2');
      await p.goto(`${url}/#/run/live`);
      await expect.poll(() => points(p, '#chart-loss')).toBe(2);
      fs.appendFileSync(path.join(live, 'log.jsonl'), `${train.slice(2).join('\n')}\n`);
      await expect.poll(() => points(p, '#chart-loss'), { timeout: 15_000 }).toBe(train.length);
      await p.goto(`${url}/`);
      await expect
        .poll(() => p.getAttribute('#runs tr[data-run="live"]', 'data-steps'), { timeout: 15_000 })
        .toBe(String(JSON.parse(train.at(-1)!).step));
      expect(await p.locator('#runs tr[data-run="live"]').getAttribute('data-status')).toBe('running');
      // Both runs overlaid: every logged step of each.
      await p.goto(`${url}/#/compare/tiny,live`);
      await expect.poll(() => points(p, '#compare-loss')).toBe(2 * train.length);
      await p.goto(`${url}/`);
      await p.locator('#runs tr[data-run="live"]').waitFor();
      if (process.env.MF_SCREENSHOTS)
        await p.screenshot({ path: path.join(ROOT, 'docs/serve-runs.png'), clip: { x: 0, y: 0, width: 1280, height: 330 } });
    } finally {
      fs.rmSync(live, { recursive: true });
      await done(p);
    }
  });

  it('scores PNG and JPEG files in the page on WebGPU with the probabilities mf predict gives them (1e-4)', async () => {
    const p = await page();
    const test = loadSplit('synthetic2d', 'test', { root: env.MEDMNIST_ROOT!, size: SIDE });
    const sample = (i: number) => test.images.subarray(i * SIDE * SIDE, (i + 1) * SIDE * SIDE);
    const dir = tmpDir('serve-inputs');
    const files: string[] = [];
    // A gray PNG at the model's side, an RGB PNG of another size (resized, converted to gray), a JPEG.
    for (const [i, side, color] of [
      [3, SIDE, false],
      [7, 40, true],
    ] as const) {
      const png = new PNG({ width: side, height: side });
      const src = sample(i);
      for (let y = 0; y < side; y++)
        for (let x = 0; x < side; x++) {
          const v = src[Math.floor((y * SIDE) / side) * SIDE + Math.floor((x * SIDE) / side)]!;
          png.data.set(color ? [v, (v + 40) % 256, 255 - v, 255] : [v, v, v, 255], (y * side + x) * 4);
        }
      const file = path.join(dir, `sample-${i}.png`);
      fs.writeFileSync(file, PNG.sync.write(png, { colorType: color ? 2 : 0 }));
      files.push(file);
    }
    const rgba = new Uint8Array(SIDE * SIDE * 4);
    sample(11).forEach((v, j) => rgba.set([v, v, v, 255], j * 4));
    const jpg = path.join(dir, 'sample-11.jpg');
    fs.writeFileSync(jpg, jpeg.encode({ data: rgba, width: SIDE, height: SIDE }, 90).data);
    files.push(jpg);

    const expected = predictJson(run, files, env);

    await p.goto(`${url}/#/run/tiny`);
    await p.locator('#try-files').setInputFiles(files);
    await expect.poll(() => p.getAttribute('#try', 'data-state'), { timeout: 120_000 }).toMatch(/^(done|error|no-webgpu)$/);
    expect(await p.locator('#try-status').textContent()).toMatch(/scored .* on this page's WebGPU/);
    if (process.env.MF_SCREENSHOTS) {
      const box = (await p.locator('#try').boundingBox())!;
      // The box is where the viewport is scrolled to; the clip of a full-page shot is in page coordinates.
      const bottom = box.y + box.height + ((await p.evaluate('window.scrollY')) as number);
      await p.screenshot({
        path: path.join(ROOT, 'docs/serve-try-model.png'),
        fullPage: true,
        clip: { x: 0, y: 0, width: 1280, height: Math.ceil(bottom) + 16 },
      });
    }
    expectSamePredictions(await shownPredictions(p), expected);
    await done(p);
  });

  it('says so when the browser has no WebGPU', async () => {
    const p = await page();
    await p.addInitScript("Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined });");
    await p.goto(`${url}/#/run/tiny`);
    const png = path.join(tmpDir('serve-nogpu'), 'x.png');
    fs.writeFileSync(png, PNG.sync.write(new PNG({ width: SIDE, height: SIDE })));
    await p.locator('#try-files').setInputFiles([png]);
    await expect.poll(() => p.getAttribute('#try', 'data-state')).toBe('no-webgpu');
    expect(await p.locator('#try-status').textContent()).toMatch(/This browser has no WebGPU/);
    await done(p);
  });
});
