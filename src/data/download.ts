// Fetching official MedMNIST files from Zenodo into the data root, for `mf data download` and for `mf run --download`
// (or `data.download: true`). A file arrives in a hidden partial file beside its final name, is MD5-checked from
// disk, and only then renamed into place, so the real name only ever holds a verified file. A download that breaks
// off keeps its partial file: the next attempt asks for the rest with an HTTP Range request and appends it when the
// server honours the range (a 206 reply starting at that byte), or starts the file again from byte 0 when it does
// not. A partial file whose owner process is still alive is left alone (that process is downloading it).
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, FileFormatError, MfError } from '../errors.ts';
import { md5File } from './dataset.ts';
import { type DataFile, type DatasetInfo, fileFor, getDataset } from './registry.ts';

/**
 * Replaces the Zenodo record's folder (https://zenodo.org/records/10519652/files) in download URLs: for tests that
 * serve files from a local HTTP server, or a mirror. The file name is appended as `<base>/<file>`.
 */
export const BASE_URL_ENV = 'MF_MEDMNIST_BASE_URL';
/** Where a person copies the files from when this machine cannot download them. */
export const RECORD_PAGE = 'https://zenodo.org/records/10519652';

/** The URL a file is fetched from: the registry's, or under $MF_MEDMNIST_BASE_URL when that is set. */
export function downloadUrl(rec: DataFile): string {
  const base = process.env[BASE_URL_ENV]?.trim();
  if (base) return `${base.replace(/\/+$/, '')}/${rec.file}`;
  if (!rec.url) throw new ConfigError(`${rec.file} is generated here, not downloaded`);
  return rec.url;
}

export interface FetchOptions {
  /** Injected for tests; defaults to the global fetch. */
  fetch?: typeof fetch;
  /** Give up when no byte arrives for this long, connecting included (default 60 s). */
  idleTimeoutMs?: number;
  /** Called as bytes arrive: bytes of the file so far (a resumed part included) and its size when known. */
  onProgress?: (bytes: number, total: number | null) => void;
}

export interface DownloadResult {
  path: string;
  md5: string | null;
  /** False when an intact copy was already there (or the set is synthetic and was generated). */
  downloaded: boolean;
  /** Bytes taken over from an earlier, broken-off attempt (0 when the file came in one go). */
  resumedFrom: number;
}

const isFile = (p: string): boolean => existsSync(p) && statSync(p).isFile();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0); // signal 0: existence check only
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `.<file>.<pid>.part`: the pid says whether the attempt that wrote it may still be running. */
const partName = (file: string, pid: number) => `.${file}.${pid}.part`;

/**
 * This process's partial file for `file`, taking over the largest one left by a process that is gone (a rename,
 * so two processes cannot both take it) and removing the other leftovers. Another live process's part is refused.
 */
function claimPart(root: string, file: string): string {
  const mine = join(root, partName(file, process.pid));
  const prefix = `.${file}.`;
  const parts = readdirSync(root)
    .map((name) => ({ name, m: name.startsWith(prefix) ? /^(\d+)\.part$/.exec(name.slice(prefix.length)) : null }))
    .filter((p): p is { name: string; m: RegExpExecArray } => p.m !== null)
    .map((p) => ({ path: join(root, p.name), pid: Number(p.m[1]) }));
  const busy = parts.find((p) => p.pid !== process.pid && pidAlive(p.pid));
  if (busy) {
    throw new MfError(`another mf process (pid ${busy.pid}) is downloading ${file} into ${root}`, 'wait for it to finish, then run again');
  }
  const size = (p: string) => (isFile(p) ? statSync(p).size : -1);
  const leftovers = parts.filter((p) => p.path !== mine).sort((a, b) => size(b.path) - size(a.path));
  const best = leftovers[0];
  if (best && size(best.path) > size(mine)) {
    try {
      renameSync(best.path, mine);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  for (const p of leftovers.slice(1)) rmSync(p.path, { force: true });
  return mine;
}

/** A fetch failure's root cause in a few words ("getaddrinfo ENOTFOUND zenodo.org"). */
export function causeOf(e: unknown): string {
  let err: unknown = e;
  while (err instanceof Error && err.cause !== undefined) err = err.cause;
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s+/g, ' ').slice(0, 160);
}

/** The server could not be reached at all (no reply): "offline", as opposed to a refused or broken download. */
export class UnreachableError extends MfError {
  constructor(
    /** What failed, without the hint: "could not reach <url> (<cause>)". */
    readonly reason: string,
    hint: string,
  ) {
    super(reason, hint);
  }
}

/**
 * Downloads one official file (`rec`, with its URL and MD5) into `root` as described at the top of this file; an
 * intact copy already there is kept. Every error says how to get the file by hand.
 */
export async function downloadFile(rec: DataFile, root: string, opts: FetchOptions = {}): Promise<DownloadResult> {
  if (!rec.md5) throw new ConfigError(`${rec.file} has no official MD5 to check a download against`);
  const url = downloadUrl(rec);
  const dest = join(root, rec.file);
  if (isFile(dest) && (await md5File(dest)) === rec.md5) return { path: dest, md5: rec.md5, downloaded: false, resumedFrom: 0 };

  const manual = `copy ${rec.file} into ${root} manually (from ${RECORD_PAGE} on a machine with internet access), then run \`mf data verify\``;
  try {
    mkdirSync(root, { recursive: true });
  } catch (e) {
    throw new MfError(
      `cannot create data root ${root} (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
      'pass a writable --data-dir or set MEDMNIST_ROOT',
    );
  }
  const part = claimPart(root, rec.file);
  let offset = isFile(part) ? statSync(part).size : 0;
  const idle = opts.idleTimeoutMs ?? 60_000;
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => abort.abort(new Error(`no data for ${Math.round(idle / 1000)} s`)), idle);
  };
  const get = async (from: number): Promise<Response> => {
    arm();
    try {
      return await (opts.fetch ?? fetch)(url, {
        signal: abort.signal,
        redirect: 'follow',
        headers: from > 0 ? { range: `bytes=${from}-` } : {},
      });
    } catch (e) {
      throw new UnreachableError(`could not reach ${url} (${causeOf(e)})`, manual);
    }
  };
  try {
    let res = await get(offset);
    if (offset > 0 && res.status === 416) {
      // The part is not a prefix the server can continue (larger than the file): start again.
      await res.body?.cancel();
      rmSync(part, { force: true });
      offset = 0;
      res = await get(0);
    }
    if (!res.ok || !res.body) throw new MfError(`download of ${url} failed: HTTP ${res.status}`, manual);
    let total = Number(res.headers.get('content-length')) || null;
    if (offset > 0) {
      const range = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
      if (res.status === 206 && range && Number(range[1]) === offset) {
        total = range[2] === '*' ? null : Number(range[2]);
      } else if (res.status === 206) {
        // Some other range than the one asked for: ask again for the whole file.
        await res.body.cancel();
        offset = 0;
        res = await get(0);
        if (!res.ok || !res.body || res.status === 206) throw new MfError(`download of ${url} failed: HTTP ${res.status}`, manual);
        total = Number(res.headers.get('content-length')) || null;
      } else {
        // The server sent the whole file (it ignores ranges): the part is dropped and the file starts over.
        offset = 0;
      }
    }
    const resumedFrom = offset;
    const fh = await open(part, offset > 0 ? 'a' : 'w');
    let bytes = offset;
    try {
      const reader = res.body.getReader();
      for (;;) {
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch (e) {
          throw new MfError(
            `download of ${url} broke off after ${bytes} bytes (${causeOf(e)})`,
            `run the same command again to continue it, or ${manual}`,
          );
        }
        if (chunk.done) break;
        arm();
        await fh.write(chunk.value);
        bytes += chunk.value.length;
        opts.onProgress?.(bytes, total);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    // Hashed from disk, not from the stream: what is renamed into place is exactly what was checked.
    const md5 = await md5File(part);
    if (md5 !== rec.md5) {
      rmSync(part, { force: true });
      throw new FileFormatError(
        `${url}: downloaded ${bytes} bytes${resumedFrom ? ` (continued from byte ${resumedFrom})` : ''} with MD5 ${md5}, expected ${rec.md5}; removed it`,
        `the download was damaged or the file changed upstream; run again to fetch it afresh, or ${manual}`,
      );
    }
    renameSync(part, dest);
    return { path: dest, md5, downloaded: true, resumedFrom };
  } finally {
    clearTimeout(timer);
  }
}

/** One official file an experiment reads: its data set and the registry's record of the file. */
export interface NeededFile {
  ds: DatasetInfo;
  rec: DataFile;
}

/** The file of data set `key` at `size`; null for a generated (synthetic) set, which is never downloaded. */
export function neededFile(key: string, size: number): NeededFile | null {
  const ds = getDataset(key);
  return ds.synthetic ? null : { ds, rec: fileFor(ds, size) };
}

/** "3.3 MB", "560 kB", "82.8 MB", "1.23 GB" (SI units, as Zenodo shows sizes). */
export function formatBytes(n: number): string {
  if (n < 1e3) return `${n} B`;
  const [unit, div] = n < 1e6 ? ['kB', 1e3] : n < 1e9 ? ['MB', 1e6] : ['GB', 1e9];
  const v = n / div;
  return `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)} ${unit}`;
}

/** "3.85 MB in 3 files" / "3.85 MB in 2 files, plus 1 of unknown size (organmnist3d.npz)". */
export function describeDownload(files: readonly NeededFile[]): string {
  const known = files.filter((f) => f.rec.bytes !== null);
  const unknown = files.filter((f) => f.rec.bytes === null);
  const sum = known.reduce((a, f) => a + f.rec.bytes!, 0);
  const plural = (n: number) => `${n} file${n === 1 ? '' : 's'}`;
  if (!unknown.length) return `${formatBytes(sum)} in ${plural(files.length)}`;
  const names = unknown.map((f) => f.rec.file).join(', ');
  if (!known.length) return `${plural(files.length)} of unknown size (${names})`;
  return `${formatBytes(sum)} in ${plural(known.length)}, plus ${unknown.length} of unknown size (${names})`;
}

export interface EnsureOptions extends FetchOptions {
  /** Fetch what is missing (data.download or --download); otherwise a missing file is an error saying how. */
  download: boolean;
  /** Who needs the files, for messages: the experiment file. */
  who: string;
  /** Progress lines (stderr for `mf run`). */
  say: (line: string) => void;
}

/**
 * Makes sure every file in `needs` is in `root` before anything reads it. Present files are left as they are (the
 * loader checks them). Missing ones are downloaded when `download` is set, after one line saying how much; without
 * it, or when the server cannot be reached, one error line names every missing file and where to copy it.
 */
export async function ensureDataFiles(needs: readonly NeededFile[], root: string, opts: EnsureOptions): Promise<void> {
  const missing = needs.filter((f) => !isFile(join(root, f.rec.file)));
  if (!missing.length) return;
  const names = missing.map((f) => f.rec.file).join(', ');
  const size = describeDownload(missing);
  if (!opts.download) {
    throw new MfError(
      `${opts.who}: ${names} not in the data root ${root}`,
      `run with --download (or set "data": {"download": true}) to fetch ${size} from Zenodo, or copy the files there (${RECORD_PAGE})`,
    );
  }
  opts.say(`${opts.who}: downloading ${size} into ${root}: ${names}`);
  for (const [i, f] of missing.entries()) {
    const started = Date.now();
    let shown = -1;
    const onProgress = (bytes: number, total: number | null) => {
      opts.onProgress?.(bytes, total);
      // A line every 25%: readable in a log file as well as a terminal.
      const quarter = total ? Math.floor((4 * bytes) / total) : -1;
      if (quarter > shown && quarter < 4 && total && total > 4e6) {
        shown = quarter;
        opts.say(`  ${f.rec.file}: ${formatBytes(bytes)} of ${formatBytes(total)}`);
      }
    };
    let r: DownloadResult;
    try {
      r = await downloadFile(f.rec, root, { ...opts, onProgress });
    } catch (e) {
      if (!(e instanceof UnreachableError)) throw e;
      const left = missing.slice(i).map((x) => x.rec.file);
      throw new MfError(
        `${opts.who}: cannot download (${e.reason}); missing from ${root}: ${left.join(', ')}`,
        `copy them into ${root} from ${RECORD_PAGE} on a machine with internet access, then run again`,
      );
    }
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    const resumed = r.resumedFrom ? `, continued from ${formatBytes(r.resumedFrom)}` : '';
    opts.say(`  ${f.rec.file}: ${r.downloaded ? `downloaded, MD5 ok (${secs} s${resumed})` : 'already there'}`);
  }
}
