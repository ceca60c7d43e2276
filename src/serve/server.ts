// `mf serve`'s web server (fastify): the page (built by bundle.ts), a JSON API over the runs folder, and the runs
// folder's own files. Read-only (GET only), and nothing outside the runs folder is ever served: every path is
// resolved to its real path and refused (404) unless it lies inside.
import fs from 'node:fs';
import path from 'node:path';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { buildTable, renderMarkdown } from '../cli/table.ts';
import { MfError } from '../errors.ts';
import { TABLE_IDS } from '../report/thesis.ts';
import { buildWeb, type WebAsset } from './bundle.ts';
import { pageModel } from './model.ts';
import { readLog, RunsFolder } from './runs.ts';

export interface ServeOptions {
  runs: string;
  /** The page's files; built with buildWeb() when absent. */
  assets?: WebAsset[];
}

const FILE_TYPES: Record<string, string> = {
  '.json': 'application/json; charset=utf-8',
  '.jsonl': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.csv': 'text/csv; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

const notFound = (reply: FastifyReply, what = 'not found') => reply.code(404).type('text/plain; charset=utf-8').send(what);

/** The server, routes registered, not yet listening. */
export async function createServer(opts: ServeOptions): Promise<FastifyInstance> {
  const runs = new RunsFolder(opts.runs);
  const assets = new Map((opts.assets ?? (await buildWeb()).assets).map((a) => [a.name, a]));
  const app = Fastify({ logger: false });

  const sendAsset = (name: string, reply: FastifyReply) => {
    const a = assets.get(name);
    if (!a) return notFound(reply);
    return reply.type(a.type).header('cache-control', 'no-cache').send(Buffer.from(a.bytes));
  };
  app.get('/', (_req, reply) => sendAsset('index.html', reply));
  app.get('/favicon.ico', (_req, reply) => reply.code(204).send());
  app.get<{ Params: { asset: string } }>('/:asset', (req, reply) => sendAsset(req.params.asset, reply));

  app.get('/api/runs', () => ({ root: runs.root, runs: runs.summaries() }));
  app.get<{ Params: { id: string } }>('/api/runs/:id', (req, reply) => {
    const detail = runs.detail(req.params.id);
    return detail ?? notFound(reply, `no run ${req.params.id}`);
  });
  app.get<{ Params: { id: string }; Querystring: { from?: string } }>('/api/runs/:id/log', (req, reply) => {
    const dir = runs.runDir(req.params.id);
    if (!dir) return notFound(reply, `no run ${req.params.id}`);
    return readLog(dir, Number(req.query.from ?? 0) || 0);
  });
  app.get<{ Params: { id: string } }>('/api/runs/:id/model', (req, reply) => {
    const dir = runs.runDir(req.params.id);
    if (!dir) return notFound(reply, `no run ${req.params.id}`);
    try {
      return pageModel(dir).model;
    } catch (e) {
      if (!(e instanceof MfError)) throw e;
      return reply.code(422).send({ error: e.message });
    }
  });
  app.get<{ Params: { id: string; task: string } }>('/api/runs/:id/weights/:task', (req, reply) => {
    const dir = runs.runDir(req.params.id);
    if (!dir) return notFound(reply, `no run ${req.params.id}`);
    let block: Float32Array | undefined;
    try {
      block = pageModel(dir).weights.get(req.params.task);
    } catch (e) {
      if (!(e instanceof MfError)) throw e;
      return reply.code(422).send({ error: e.message });
    }
    if (!block) return notFound(reply, `run ${req.params.id} has no head ${req.params.task}`);
    return reply.type('application/octet-stream').send(Buffer.from(block.buffer, block.byteOffset, block.byteLength));
  });

  app.get('/api/tables', () => ({ ids: TABLE_IDS }));
  app.get<{ Params: { id: string } }>('/api/tables/:id', (req, reply) => {
    try {
      const view = buildTable(req.params.id, runs.root);
      return { id: req.params.id, markdown: renderMarkdown(view), warnings: view.warnings };
    } catch (e) {
      if (!(e instanceof MfError)) throw e;
      return notFound(reply, e.message);
    }
  });

  // The runs folder's files (report.md, charts, config.json ...): inside it, regular files only.
  app.get<{ Params: { '*': string } }>('/files/*', (req, reply) => {
    const file = runs.resolve(req.params['*']);
    if (!file || !fs.statSync(file).isFile()) return notFound(reply);
    const type = FILE_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
    return reply.type(type).send(fs.createReadStream(file));
  });
  return app;
}
