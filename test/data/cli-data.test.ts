import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dataDownload, dataList, dataVerify } from '../../src/cli/data.ts';
import { ConfigError, FileFormatError, MfError } from '../../src/errors.ts';
import { md5File } from '../../src/data/dataset.ts';
import { DATASETS } from '../../src/data/registry.ts';
import { ensureSynthetic } from '../../src/data/synthetic.ts';
import { SHARED_SKIP, sharedData, tempDir } from './helpers.ts';

const URL_BREAST = 'https://zenodo.org/records/10519652/files/breastmnist.npz?download=1';

/** A fetch stand-in that answers with `body` (or fails as told) and records the URL. */
function fakeFetch(opts: { body?: Uint8Array; status?: number; fail?: Error; breakAfter?: number }, calls: string[] = []): typeof fetch {
  return (async (input: string | URL | Request) => {
    calls.push(String(input));
    if (opts.fail) throw opts.fail;
    const body = opts.body ?? new Uint8Array(0);
    let pulls = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (pulls++ === 0) c.enqueue(opts.breakAfter === undefined ? body : body.subarray(0, opts.breakAfter));
        else if (opts.breakAfter !== undefined) c.error(new Error('socket hang up'));
        else c.close();
      },
    });
    return new Response(stream, { status: opts.status ?? 200, headers: { 'content-length': String(body.length) } });
  }) as typeof fetch;
}

const visible = (dir: string) => readdirSync(dir);

describe('mf data list / verify', () => {
  it('lists all datasets with presence per size', () => {
    const root = tempDir();
    ensureSynthetic(root, 'synthetic2d');
    const { rows, text } = dataList(root);
    expect(rows).toHaveLength(DATASETS.length);
    const syn = rows.find((r) => r.key === 'synthetic2d')!;
    expect(syn.sizes[28]).toBe('present');
    expect(syn.sizes[64]).toBe('n/a');
    const organ3d = rows.find((r) => r.key === 'organmnist3d')!;
    expect(organ3d.sizes).toEqual({ 28: 'missing', 64: 'missing', 128: 'n/a', 224: 'n/a' });
    expect(text).toContain('breastmnist');
    expect(text).toContain('1 file(s) present');
    // Sizes and the experiments that read each file (the project's experiments/).
    const breast = rows.find((r) => r.key === 'breastmnist')!.files.find((f) => f.size === 28)!;
    expect(breast).toMatchObject({ file: 'breastmnist.npz', bytes: 559_580, present: false });
    expect(breast.experiments).toEqual(expect.arrayContaining(['st-small-breastmnist', 'ssl-small', 'mt-small', 'resnet18-breastmnist']));
    expect(rows.find((r) => r.key === 'pathmnist')!.files.find((f) => f.size === 224)!.experiments).toContain('st-large-pathmnist');
    expect(rows.find((r) => r.key === 'organmnist3d')!.files.find((f) => f.size === 28)!.bytes).toBeNull();
    expect(text).toMatch(/^breastmnist\.npz +560 kB +- +.*ssl-small/m);
    expect(text).toMatch(/^organmnist3d\.npz +\? +- +/m);
    expect(text).not.toContain('not read:');
  });

  it('verifies present files and reports damaged, wrong and missing ones', async () => {
    const root = tempDir();
    expect((await dataVerify(root)).text).toMatch(/no dataset files/);
    const syn = ensureSynthetic(root, 'synthetic2d');
    const good = await dataVerify(root);
    expect(good.ok).toBe(true);
    expect(good.rows).toEqual([expect.objectContaining({ file: 'synthetic2d.npz', ok: true, counts: '512/128/128' })]);
    // A synthetic file under an official name: wrong MD5.
    copyFileSync(syn, join(root, 'breastmnist.npz'));
    // A truncated synthetic file.
    const bytes = readFileSync(syn);
    writeFileSync(join(root, 'synthetic3d.npz'), bytes.subarray(0, bytes.length - 100));
    const bad = await dataVerify(root);
    expect(bad.ok).toBe(false);
    const byFile = Object.fromEntries(bad.rows.map((r) => [r.file, r]));
    expect(byFile['breastmnist.npz']!.error).toMatch(/MD5 [0-9a-f]{32}, expected 750601b1f35ba3300ea97c75c52ff8f6/);
    expect(byFile['synthetic3d.npz']!.error).toMatch(/synthetic3d\.npz.*(truncated|not a zip)/);
    expect(byFile['synthetic2d.npz']!.ok).toBe(true);
    expect(bad.text).toContain('2 of 3 file(s) failed');
    const missing = await dataVerify(root, ['pathmnist']);
    expect(missing.rows[0]!.error).toMatch(/missing from .*mf data download pathmnist/);
    await expect(dataVerify(root, ['nope'])).rejects.toThrow(ConfigError);
  });
});

describe('mf data download', () => {
  it('says the URL could not be reached and to copy the file manually; leaves nothing behind', async () => {
    const root = tempDir();
    const calls: string[] = [];
    const fail = new TypeError('fetch failed', { cause: new Error('getaddrinfo ENOTFOUND zenodo.org') });
    const p = dataDownload('breastmnist', root, 28, { fetch: fakeFetch({ fail }, calls) });
    await expect(p).rejects.toThrow(MfError);
    await p.catch((e: Error) => {
      expect(e.message).toContain(`could not reach ${URL_BREAST}`);
      expect(e.message).toContain('ENOTFOUND');
      expect(e.message).toMatch(/copy breastmnist\.npz into .* manually/);
      expect(e.message).not.toContain('\n');
    });
    expect(calls).toEqual([URL_BREAST]);
    expect(visible(root)).toEqual([]);
  });

  it('rejects HTTP errors, broken streams and MD5 mismatches, leaving no partial file once the MD5 has failed', async () => {
    const root = tempDir();
    await expect(dataDownload('breastmnist', root, 28, { fetch: fakeFetch({ status: 404 }) })).rejects.toThrow(/HTTP 404/);
    const junk = new Uint8Array(5000).fill(7);
    await expect(dataDownload('breastmnist', root, 28, { fetch: fakeFetch({ body: junk, breakAfter: 1000 }) })).rejects.toThrow(
      /broke off after 1000 bytes/,
    );
    // The bytes that came are kept, hidden, for the next attempt to continue (src/data/download.ts).
    expect(visible(root)).toEqual([`.breastmnist.npz.${process.pid}.part`]);
    await expect(dataDownload('breastmnist', root, 28, { fetch: fakeFetch({ body: junk }) })).rejects.toThrow(FileFormatError);
    await expect(dataDownload('breastmnist', root, 28, { fetch: fakeFetch({ body: junk }) })).rejects.toThrow(
      /MD5 .*expected 750601b1f35ba3300ea97c75c52ff8f6/,
    );
    expect(visible(root)).toEqual([]);
    await expect(dataDownload('breastmnist', root, 100)).rejects.toThrow(/valid sizes: 28, 64, 128, 224/);
    await expect(dataDownload('mnist', root)).rejects.toThrow(ConfigError);
  });

  it('generates synthetic sets instead of downloading', async () => {
    const root = tempDir();
    const r = await dataDownload('synthetic2d', root);
    expect(r.downloaded).toBe(false);
    expect(visible(root)).toEqual(['synthetic2d.npz']);
  });

  it.skipIf(!sharedData)(`stores a verified download and skips an intact copy${SHARED_SKIP}`, async () => {
    const root = tempDir();
    const body = new Uint8Array(readFileSync(join(sharedData!, 'breastmnist.npz')));
    const progress: number[] = [];
    const r = await dataDownload('breastmnist', root, 28, { fetch: fakeFetch({ body }), onProgress: (b) => progress.push(b) });
    expect(r).toEqual({ path: join(root, 'breastmnist.npz'), md5: '750601b1f35ba3300ea97c75c52ff8f6', downloaded: true, resumedFrom: 0 });
    expect(await md5File(r.path)).toBe('750601b1f35ba3300ea97c75c52ff8f6');
    expect(progress.at(-1)).toBe(body.length);
    expect(visible(root)).toEqual(['breastmnist.npz']);
    const calls: string[] = [];
    const again = await dataDownload('breastmnist', root, 28, { fetch: fakeFetch({ body }, calls) });
    expect(again.downloaded).toBe(false);
    expect(calls).toEqual([]);
  });
});
