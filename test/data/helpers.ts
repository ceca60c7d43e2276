// Shared bits for the data tests: temp folders and hand-made .npy/.npz bytes for corruption cases.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { afterAll } from 'vitest';

/** A fresh temp folder, removed after the test file finishes. */
export function tempDir(prefix = 'mf-data-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The real-data folder from MEDFORMER_SHARED_DATA, or undefined (tests then skip). */
export const sharedData: string | undefined = process.env.MEDFORMER_SHARED_DATA || undefined;
export const SHARED_SKIP = sharedData ? '' : ' (skipped: set MEDFORMER_SHARED_DATA to the shared data folder)';

/** A .npy file image with an arbitrary header text (padded like NumPy's) and payload. */
export function npyBytes(header: string, payload: Uint8Array, magic = '\x93NUMPY'): Uint8Array {
  let h = header;
  const total = Math.ceil((10 + h.length + 1) / 64) * 64;
  h = `${h.padEnd(total - 11, ' ')}\n`;
  const out = new Uint8Array(10 + h.length + payload.length);
  for (let i = 0; i < 6; i++) out[i] = magic.charCodeAt(i);
  out[6] = 1;
  out[7] = 0;
  out[8] = h.length & 0xff;
  out[9] = h.length >>> 8;
  for (let i = 0; i < h.length; i++) out[10 + i] = h.charCodeAt(i);
  out.set(payload, 10 + h.length);
  return out;
}

/** A zip of the given entries (names as given), stored or deflated. */
export function zipBytes(entries: Record<string, Uint8Array>, compress = false): Uint8Array {
  const files: Record<string, [Uint8Array, { level: 0 | 6 }]> = {};
  for (const [k, v] of Object.entries(entries)) files[k] = [v, { level: compress ? 6 : 0 }];
  return zipSync(files, { mtime: new Date(2000, 0, 1) });
}
