// `mf run` and missing MedMNIST files, end to end: without --download it stops before anything starts with one
// line naming the file, the way to fetch it (--download) and its size; offline (nothing listening where the files
// should come from) it stops at once naming every missing file and where to copy it; with --download it fetches the
// file from a local HTTP server ($MF_MEDMNIST_BASE_URL, serving the real breastmnist.npz of the shared data with
// its official MD5), says how much first, and trains (one step of a tiny model).
import fs from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { md5File } from '../../src/data/dataset.ts';
import { loadExperiment, validateExperiment } from '../../src/kinds/index.ts';
import { configHash } from '../../src/train/hash.ts';
import { SHARED_SKIP, sharedData } from '../data/helpers.ts';
import { exited, mf, mfAsync, tinyExperiment, tmpDir } from './helpers.ts';

const exp = tinyExperiment(
  tmpDir('dl-exp'),
  { name: 'dltiny', data: { datasets: ['breastmnist'], augment: false, train_limit: 16 } },
  { epochs: 1, batch_size: 8 },
);
const env = { LP_NUM_THREADS: '1' };

/** A base URL on which nothing listens (a port just freed). */
async function closedUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((done) => s.listen(0, '127.0.0.1', done));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((done) => s.close(() => done()));
  return `http://127.0.0.1:${port}`;
}

describe('mf run and missing data files', () => {
  it('data.download is an experiment setting left out of the config hash (it changes no number)', () => {
    const raw = JSON.parse(fs.readFileSync(exp, 'utf8')) as { data: Record<string, unknown> };
    const off = loadExperiment(exp);
    const on = validateExperiment({ ...raw, data: { ...raw.data, download: true } }, exp);
    expect((off.settings as unknown as { data: { download: boolean } }).data.download).toBe(false);
    expect((on.settings as unknown as { data: { download: boolean } }).data.download).toBe(true);
    expect(configHash(on.settings)).toBe(configHash(off.settings));
    expect(on.data()).toMatchObject({ download: true, files: [{ rec: { file: 'breastmnist.npz', bytes: 559_580 } }] });
    expect(() => validateExperiment({ ...raw, data: { ...raw.data, download: 'yes' } }, exp)).toThrow(/\/data\/download must be boolean/);
  });

  it('without --download, names the missing file, --download and its size in one line, and creates no run folder', () => {
    const root = tmpDir('dl-empty');
    const out = path.join(tmpDir('dl-out'), 'run');
    const r = mf(['run', exp, '--data-dir', root, '--out', out, '--quiet'], env);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`error: ${exp}: breastmnist.npz not in the data root ${root} (run with --download`);
    expect(r.stderr).toContain('to fetch 560 kB in 1 file from Zenodo');
    expect(fs.existsSync(out)).toBe(false);
  });

  it('offline, --download fails at once with one line naming the missing file and where to copy it', async () => {
    const root = tmpDir('dl-offline');
    const out = path.join(tmpDir('dl-out'), 'run');
    const started = Date.now();
    const r = mf(['run', exp, '--download', '--data-dir', root, '--out', out, '--quiet'], {
      ...env,
      MF_MEDMNIST_BASE_URL: await closedUrl(),
    });
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split('\n');
    // The announcement, then the error.
    expect(lines[0]).toBe(`${exp}: downloading 560 kB in 1 file into ${root}: breastmnist.npz`);
    expect(lines.slice(1)).toHaveLength(1);
    expect(lines[1]).toMatch(/^error: .*: cannot download \(could not reach http:\/\/127\.0\.0\.1:\d+\/breastmnist\.npz \(.*ECONNREFUSED/);
    expect(lines[1]).toContain(`missing from ${root}: breastmnist.npz (copy them into ${root} from https://zenodo.org/records/10519652`);
    expect(fs.readdirSync(root)).toEqual([]);
    expect(fs.existsSync(out)).toBe(false);
  });

  it.skipIf(!sharedData)(
    `--download fetches the file, MD5-checked, saying how much first, then trains${SHARED_SKIP}`,
    async () => {
      const body = fs.readFileSync(path.join(sharedData!, 'breastmnist.npz'));
      const served: string[] = [];
      const server = createServer((req, res) => {
        served.push(req.url ?? '');
        if (req.url !== '/breastmnist.npz') return void res.writeHead(404).end();
        res.writeHead(200, { 'content-length': body.length }).end(body);
      });
      await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const root = tmpDir('dl-root');
      const out = path.join(tmpDir('dl-out'), 'run');
      try {
        // Asynchronous: the server answers from this process while the child runs.
        const child = mfAsync(['run', exp, '--download', '--max-steps', '1', '--data-dir', root, '--out', out, '--quiet'], {
          ...env,
          MF_MEDMNIST_BASE_URL: base,
        });
        let stderr = '';
        child.stderr!.on('data', (d: Buffer) => {
          stderr += d.toString();
        });
        const code = await exited(child);
        expect(code, stderr).toBe(0);
        const lines = stderr.split('\n');
        const announced = lines.indexOf(`${exp}: downloading 560 kB in 1 file into ${root}: breastmnist.npz`);
        expect(announced, stderr).toBeGreaterThanOrEqual(0);
        expect(lines[announced + 1]).toMatch(/^ {2}breastmnist\.npz: downloaded, MD5 ok \(\d+\.\d s\)$/);
        expect(served).toEqual(['/breastmnist.npz']);
        expect(await md5File(path.join(root, 'breastmnist.npz'))).toBe('750601b1f35ba3300ea97c75c52ff8f6');
        expect(fs.readdirSync(root)).toEqual(['breastmnist.npz']);
        expect(Object.keys(JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8')))).toEqual(['breastmnist']);
        // The setting is not part of the config hash; the resolved config says what was asked.
        expect(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).data.download).toBe(false);
      } finally {
        await new Promise<void>((done) => server.close(() => done()));
      }
    },
    600_000,
  );
});
