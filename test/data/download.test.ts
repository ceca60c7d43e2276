// Downloads of official data files against a local HTTP server (node:http on a loopback port, reached through
// $MF_MEDMNIST_BASE_URL): a small synthetic .npz and its MD5 stand in for a Zenodo file. Checked: a verified file
// lands under its name and an intact copy is not fetched again; an MD5 mismatch leaves nothing behind; a download
// cut off mid-file continues with a Range request (or starts over when the server ignores ranges); a partial file
// of a live process is left alone and one of a dead process taken over; offline, one line names every missing
// file and where to copy it; without download, the error says --download and how much it is.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASE_URL_ENV, downloadFile, ensureDataFiles, formatBytes, type NeededFile } from '../../src/data/download.ts';
import { encodeNpy } from '../../src/data/npz.ts';
import { type DataFile, getDataset } from '../../src/data/registry.ts';
import { FileFormatError, MfError } from '../../src/errors.ts';
import { tempDir, zipBytes } from './helpers.ts';

/** How the server answers the next requests: honour Range, ignore it, or cut the body off half-way (once). */
type Mode = 'range' | 'no-range' | 'cut';

interface FileServer {
  url: string;
  /** Every request: file name and its Range header. */
  requests: { file: string; range: string | undefined }[];
  mode: Mode;
  close(): Promise<void>;
}

/** Serves `files` (name -> bytes) under http://127.0.0.1:<port>/, 404 for anything else. */
async function fileServer(files: ReadonlyMap<string, Uint8Array>): Promise<FileServer> {
  const state = { requests: [] as FileServer['requests'], mode: 'range' as Mode };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const name = decodeURIComponent((req.url ?? '/').slice(1).split('?')[0]!);
    const range = req.headers.range;
    state.requests.push({ file: name, range });
    const body = files.get(name);
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    const m = /^bytes=(\d+)-$/.exec(range ?? '');
    if (m && state.mode === 'range') {
      const from = Number(m[1]);
      if (from >= body.length) {
        res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
        return;
      }
      res.writeHead(206, { 'content-length': body.length - from, 'content-range': `bytes ${from}-${body.length - 1}/${body.length}` });
      res.end(body.subarray(from));
      return;
    }
    res.writeHead(200, { 'content-length': body.length });
    if (state.mode === 'cut') {
      state.mode = 'range';
      res.write(body.subarray(0, Math.floor(body.length / 2)), () => setTimeout(() => res.socket?.destroy(), 50));
      return;
    }
    res.end(body);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((done) => server.close(() => done())),
  });
}

/** A small .npz in the MedMNIST layout (random bytes, so it does not compress) and its registry-like record. */
function tinyNpz(file: string, seed: number): { bytes: Uint8Array; rec: DataFile } {
  const pixels = new Uint8Array(6 * 28 * 28).map((_, i) => (i * 2654435761 + seed * 97) >>> 24);
  const labels = new Uint8Array([0, 1, 0, 1, 1, 0]);
  const npy = (a: Uint8Array, shape: number[]) => encodeNpy({ dtype: '|u1', shape, data: a });
  const bytes = zipBytes({ 'train_images.npy': npy(pixels, [6, 28, 28]), 'train_labels.npy': npy(labels, [6, 1]) });
  const md5 = createHash('md5').update(bytes).digest('hex');
  return { bytes, rec: { size: 28, file, url: null, md5, bytes: bytes.length } };
}

const one = tinyNpz('tinymnist.npz', 1);
const two = tinyNpz('tinymnist_64.npz', 2);
const breast = getDataset('breastmnist');
const need = (rec: DataFile): NeededFile => ({ ds: breast, rec });
const hidden = (dir: string) => readdirSync(dir).filter((f) => f.startsWith('.'));

let server: FileServer;
const before = process.env[BASE_URL_ENV];
beforeAll(async () => {
  server = await fileServer(
    new Map([
      [one.rec.file, one.bytes],
      [two.rec.file, two.bytes],
    ]),
  );
  process.env[BASE_URL_ENV] = server.url;
});
afterAll(async () => {
  if (before === undefined) delete process.env[BASE_URL_ENV];
  else process.env[BASE_URL_ENV] = before;
  await server.close();
});

describe('downloadFile', () => {
  it('stores a verified file under its name, reports progress, and leaves an intact copy alone', async () => {
    const root = tempDir();
    server.mode = 'range';
    const seen: number[] = [];
    const r = await downloadFile(one.rec, root, { onProgress: (b) => seen.push(b) });
    expect(r).toEqual({ path: join(root, one.rec.file), md5: one.rec.md5, downloaded: true, resumedFrom: 0 });
    expect(new Uint8Array(readFileSync(r.path))).toEqual(one.bytes);
    expect(seen.at(-1)).toBe(one.bytes.length);
    expect(readdirSync(root)).toEqual([one.rec.file]);
    const n = server.requests.length;
    expect((await downloadFile(one.rec, root)).downloaded).toBe(false);
    expect(server.requests.length).toBe(n);
  });

  it('refuses a file whose MD5 is not the official one and leaves nothing behind', async () => {
    const root = tempDir();
    server.mode = 'range';
    const wrong = { ...one.rec, md5: '0'.repeat(32) };
    const p = downloadFile(wrong, root);
    await expect(p).rejects.toThrow(FileFormatError);
    await expect(p).rejects.toThrow(new RegExp(`downloaded ${one.bytes.length} bytes with MD5 ${one.rec.md5}, expected 0{32}; removed it`));
    expect(readdirSync(root)).toEqual([]);
  });

  it('continues a download that broke off with a Range request, taking over the part a dead process left', async () => {
    const root = tempDir();
    server.mode = 'cut';
    const half = Math.floor(one.bytes.length / 2);
    await expect(downloadFile(one.rec, root)).rejects.toThrow(
      new RegExp(`broke off after ${half} bytes.*run the same command again to continue it`),
    );
    const [part] = hidden(root);
    expect(part).toBe(`.${one.rec.file}.${process.pid}.part`);
    expect(statSync(join(root, part!)).size).toBe(half);
    // As if an earlier mf process (now gone) had written it.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    const orphan = `.${one.rec.file}.${dead}.part`;
    writeFileSync(join(root, orphan), readFileSync(join(root, part!)));
    writeFileSync(join(root, part!), new Uint8Array(0));
    server.requests.length = 0;
    const r = await downloadFile(one.rec, root);
    expect(r.resumedFrom).toBe(half);
    expect(server.requests).toEqual([{ file: one.rec.file, range: `bytes=${half}-` }]);
    expect(new Uint8Array(readFileSync(r.path))).toEqual(one.bytes);
    expect(readdirSync(root)).toEqual([one.rec.file]);
  });

  it('starts over cleanly when the server ignores the range', async () => {
    const root = tempDir();
    server.mode = 'cut';
    await expect(downloadFile(one.rec, root)).rejects.toThrow(/broke off/);
    expect(hidden(root)).toHaveLength(1);
    server.mode = 'no-range';
    const r = await downloadFile(one.rec, root);
    expect(r.resumedFrom).toBe(0);
    expect(new Uint8Array(readFileSync(r.path))).toEqual(one.bytes);
    expect(readdirSync(root)).toEqual([one.rec.file]);
    server.mode = 'range';
  });

  it('leaves the partial file of a live process alone', async () => {
    const root = tempDir();
    const busy = `.${one.rec.file}.${process.ppid}.part`;
    writeFileSync(join(root, busy), one.bytes.subarray(0, 10));
    await expect(downloadFile(one.rec, root)).rejects.toThrow(
      new RegExp(`another mf process \\(pid ${process.ppid}\\) is downloading ${one.rec.file}`),
    );
    expect(readdirSync(root)).toEqual([busy]);
  });
});

describe('ensureDataFiles', () => {
  const both = [need(one.rec), need(two.rec)];
  const size = formatBytes(one.bytes.length + two.bytes.length);

  it('says how much it will download before it starts, then fetches only what is missing', async () => {
    const root = tempDir();
    server.mode = 'range';
    writeFileSync(join(root, one.rec.file), one.bytes);
    const lines: string[] = [];
    server.requests.length = 0;
    await ensureDataFiles(both, root, { download: true, who: 'tiny.json', say: (l) => lines.push(l) });
    expect(lines[0]).toBe(`tiny.json: downloading ${formatBytes(two.bytes.length)} in 1 file into ${root}: ${two.rec.file}`);
    expect(lines[1]).toMatch(new RegExp(`^ {2}${two.rec.file.replace('.', '\\.')}: downloaded, MD5 ok \\(\\d+\\.\\d s\\)$`));
    expect(server.requests.map((r) => r.file)).toEqual([two.rec.file]);
    expect(new Uint8Array(readFileSync(join(root, two.rec.file)))).toEqual(two.bytes);
  });

  it('without download, names the missing files and says --download and how much', async () => {
    const root = tempDir();
    const p = ensureDataFiles(both, root, { download: false, who: 'tiny.json', say: () => {} });
    await expect(p).rejects.toThrow(MfError);
    await p.catch((e: Error) => {
      expect(e.message).toBe(
        `tiny.json: ${one.rec.file}, ${two.rec.file} not in the data root ${root} (run with --download (or set "data": {"download": true}) to fetch ${size} in 2 files from Zenodo, or copy the files there (https://zenodo.org/records/10519652))`,
      );
    });
    expect(readdirSync(root)).toEqual([]);
  });

  it('offline, fails at once with one line naming every missing file and where to copy them', async () => {
    const root = tempDir();
    const closed = await fileServer(new Map());
    await closed.close(); // nothing listens on its port any more
    process.env[BASE_URL_ENV] = closed.url;
    const started = Date.now();
    try {
      const p = ensureDataFiles(both, root, { download: true, who: 'tiny.json', say: () => {} });
      await expect(p).rejects.toThrow(MfError);
      await p.catch((e: Error) => {
        expect(e.message).not.toContain('\n');
        expect(e.message).toMatch(
          /^tiny\.json: cannot download \(could not reach http:\/\/127\.0\.0\.1:\d+\/tinymnist\.npz \(.*ECONNREFUSED.*\)\)/,
        );
        expect(e.message).toContain(`missing from ${root}: ${one.rec.file}, ${two.rec.file}`);
        expect(e.message).toContain(`copy them into ${root} from https://zenodo.org/records/10519652 on a machine with internet access`);
      });
    } finally {
      process.env[BASE_URL_ENV] = server.url;
    }
    expect(Date.now() - started).toBeLessThan(5000);
    expect(readdirSync(root)).toEqual([]);
  });
});
