// `mf serve`'s server without a browser: the run list from a tiny run trained here, the log read incrementally
// (never half a line), the thesis tables exactly as `mf table` renders them, nothing outside the runs folder
// served (raw `..`, encoded `..`, absolute paths, a symbolic link out), GET only, and 127.0.0.1 by default.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTable, renderMarkdown } from '../../src/cli/table.ts';
import { exited, mf, mfAsync, tmpDir } from '../run/helpers.ts';
import { logRecords, startServer, trainTinyRun } from './helpers.ts';

let runs: string;
let run: string;
let app: FastifyInstance;
let url: string;

beforeAll(async () => {
  ({ runs, run } = trainTinyRun('serve'));
  ({ app, url } = await startServer(runs));
});
afterAll(async () => {
  await app?.close();
});

/** A request sent as written: no client normalises its `..` away. */
function rawGet(pathname: string, method = 'GET'): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, path: pathname, method }, (res) => {
      let body = '';
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const getJson = async <T>(p: string): Promise<T> => {
  const r = await rawGet(p);
  expect(r.status, `${p}: ${r.body}`).toBe(200);
  return JSON.parse(r.body) as T;
};

describe('mf serve (server)', () => {
  it('lists the run with its kind, data set, status, steps, best validation AUC, test scores and wall time', async () => {
    const { runs: list } = await getJson<{ runs: Record<string, unknown>[] }>('/api/runs');
    const records = logRecords(run) as { event: string; step?: number; auc?: number; t: number }[];
    const metrics = JSON.parse(fs.readFileSync(path.join(run, 'metrics.json'), 'utf8')).synthetic2d;
    expect(list).toHaveLength(1);
    expect(list[0]).toEqual({
      id: 'tiny',
      name: 'tiny',
      kind: 'supervised',
      datasets: ['synthetic2d'],
      status: 'finished',
      steps: Math.max(...records.filter((r) => r.event === 'train').map((r) => r.step!)),
      best_val: { synthetic2d: Math.max(...records.filter((r) => r.event === 'val').map((r) => r.auc!)) },
      test: { synthetic2d: metrics.test },
      wall_s: records[records.length - 1]!.t,
    });
    const detail = await getJson<{ confusion: { task: string; labels: string[]; rows: number[][] }[]; config: { name: string } }>(
      '/api/runs/tiny',
    );
    expect(detail.config.name).toBe('tiny');
    expect(detail.confusion[0]!.labels).toEqual(['disc', 'square', 'cross', 'ring']);
    // The test split's confusion matrix counts every test sample once.
    expect(detail.confusion[0]!.rows.flat().reduce((a, b) => a + b, 0)).toBe(128);
  });

  it('reads the log from where the last poll stopped, and never half a line', async () => {
    const lines = fs.readFileSync(path.join(run, 'log.jsonl'), 'utf8').trimEnd().split('\n');
    const first = await getJson<{ records: unknown[]; next: number; skipped: number }>('/api/runs/tiny/log');
    expect(first.records).toHaveLength(lines.length);
    expect(first.skipped).toBe(0);
    const copy = path.join(runs, 'growing');
    fs.mkdirSync(copy);
    fs.copyFileSync(path.join(run, 'config.json'), path.join(copy, 'config.json'));
    fs.writeFileSync(path.join(copy, 'log.jsonl'), `${lines.slice(0, 3).join('\n')}\n${lines[3]!.slice(0, 20)}`);
    const a = await getJson<{ records: unknown[]; next: number }>('/api/runs/growing/log?from=0');
    expect(a.records).toHaveLength(3);
    fs.appendFileSync(path.join(copy, 'log.jsonl'), `${lines[3]!.slice(20)}\n${lines[4]}\n`);
    const b = await getJson<{ records: unknown[]; next: number }>(`/api/runs/growing/log?from=${a.next}`);
    expect(b.records).toEqual(lines.slice(3, 5).map((l) => JSON.parse(l)));
    const { runs: list } = await getJson<{ runs: { id: string; status: string }[] }>('/api/runs');
    expect(list.find((r) => r.id === 'growing')?.status).toBe('stopped');
    fs.rmSync(copy, { recursive: true });
  });

  it('hands the page the model mf predict rebuilds, its weights in the listed order, and says why an SSL run has none', async () => {
    const model = await getJson<{
      heads: { key: string; labels: string[]; want: unknown; weights: { file: string; tensors: { name: string; shape: number[] }[] } }[];
    }>('/api/runs/tiny/model');
    expect(model.heads.map((h) => h.key)).toEqual(['synthetic2d']);
    const head = model.heads[0]!;
    expect(head.labels).toEqual(['disc', 'square', 'cross', 'ring']);
    expect(head.want).toEqual({ dim: 2, channels: 1, size: 28 });
    expect(head.weights.file).toBe('best-synthetic2d.safetensors');
    const { hostname, port } = new URL(url);
    const weights = await fetch(`http://${hostname}:${port}/api/runs/tiny/weights/synthetic2d`);
    expect(weights.status).toBe(200);
    const block = new Float32Array(await weights.arrayBuffer());
    expect(block.length).toBe(head.weights.tensors.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0));
    expect((await rawGet('/api/runs/tiny/weights/pathmnist')).status).toBe(404);

    const ssl = path.join(runs, 'pretrain');
    fs.mkdirSync(ssl);
    fs.writeFileSync(path.join(ssl, 'config.json'), JSON.stringify({ name: 'pretrain', kind: 'ssl' }));
    try {
      const r = await rawGet('/api/runs/pretrain/model');
      expect(r.status).toBe(422);
      expect(JSON.parse(r.body).error).toMatch(/self-supervised \(ssl\) run: its encoder has no task heads/);
    } finally {
      fs.rmSync(ssl, { recursive: true });
    }
  });

  it('gives the thesis tables exactly as mf table renders them', async () => {
    const t = await getJson<{ markdown: string }>('/api/tables/4.2');
    expect(t.markdown).toBe(renderMarkdown(buildTable('4.2', fs.realpathSync(runs))));
    expect(t.markdown).toContain('|');
    expect((await rawGet('/api/tables/9.9')).status).toBe(404);
  });

  it('serves files inside the runs folder and 404s everything outside it', async () => {
    const inside = await rawGet('/files/tiny/config.json');
    expect(inside.status).toBe(200);
    expect(inside.body).toBe(fs.readFileSync(path.join(run, 'config.json'), 'utf8'));

    const outside = path.join(tmpDir('serve-outside'), 'secret.txt');
    fs.writeFileSync(outside, 'secret');
    fs.symlinkSync(path.dirname(outside), path.join(runs, 'link-out'));
    const rel = path.relative(runs, outside).split(path.sep).join('/');
    const attempts = [
      '/files/../../../../etc/passwd',
      `/files/${rel}`,
      `/files/tiny/../${rel}`,
      '/files/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
      '/files/..%2f..%2f..%2f..%2fetc%2fpasswd',
      `/files/${encodeURIComponent(`../${rel}`)}`,
      `/files/${outside}`,
      `/files/${encodeURIComponent(outside)}`,
      '/files//etc/passwd',
      '/files/link-out/secret.txt',
      '/api/runs/..',
      '/api/runs/%2e%2e/log',
      `/api/runs/${encodeURIComponent('../tiny')}`,
      '/../etc/passwd',
      '/%2e%2e/etc/passwd',
    ];
    for (const a of attempts) {
      const r = await rawGet(a);
      expect(r.status, a).toBe(404);
      expect(r.body, a).not.toMatch(/secret|root:/);
    }
  });

  it('is read-only: anything but GET is refused', async () => {
    for (const method of ['POST', 'PUT', 'DELETE']) expect((await rawGet('/files/tiny/config.json', method)).status, method).toBe(404);
    expect(fs.existsSync(path.join(run, 'config.json'))).toBe(true);
  });

  it('mf serve binds 127.0.0.1 by default and names a missing runs folder in one line', async () => {
    const child = mfAsync(['serve', runs, '--port', '0']);
    const first = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('\n')) resolve(out);
      });
      child.on('exit', (code) => reject(new Error(`mf serve exited ${code}`)));
    });
    expect(first).toMatch(/^mf serve: http:\/\/127\.0\.0\.1:\d+\//);
    const port = Number(/:(\d+)\//.exec(first)![1]);
    const r = await fetch(`http://127.0.0.1:${port}/api/runs`);
    expect(((await r.json()) as { runs: unknown[] }).runs.length).toBeGreaterThanOrEqual(1);
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);

    const missing = mf(['serve', path.join(runs, 'nope'), '--port', '0']);
    expect(missing.status).toBe(1);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toMatch(/nope: no such runs folder/);
  });
});
