// Inflating untrusted deflate and gzip data with a hard cap on what comes out. fflate's one-shot inflate runs a
// whole stream before anyone can look at its size, and sizes its output from whatever it is told: a 2 MB zip
// member that inflates to 2 GiB costs 2 GiB and ~15 s before a size check can fail. Here the compressed bytes are
// fed in small pieces, so at most ~1032 × CHUNK bytes (deflate's best ratio) come out between two checks, and the
// inflate stops at the first piece that passes the cap. The cap may be lowered from the first bytes out (a .npy or
// NIfTI header tells the exact size to expect), and the output buffer is only ever as large as the cap allows.
import { Inflate } from 'fflate';
import { crc32 } from './crc32.ts';

/** Compressed bytes per push: bounds what one push can produce to ~16.5 MiB past the cap. */
const CHUNK = 16 * 1024;
/** Pieces while a header is still awaited: at most ~1 MiB out before the cap is known. */
const HEAD_CHUNK = 1024;
/** The most one compressed byte can become (two 1-bit codes per 258-byte match), plus block overhead. */
const DEFLATE_RATIO = 1032;

export interface InflateBounds {
  /** Most bytes the stream may produce; the first piece past it stops the inflate with `fail`. */
  max: number;
  /** What `max` is, for the message: "the 4096 bytes the zip directory declares". */
  maxWhat: string;
  /**
   * Lowers the cap from the first bytes out: a byte count and what it is; undefined while more bytes are needed;
   * null when the head gives no size (the caller's parser will say why). It may throw: a malformed header is
   * then reported before anything more is inflated.
   */
  limitFromHead?: (head: Uint8Array) => { max: number; what: string } | null | undefined;
  /** Throws the caller's error (a FileFormatError naming the file); `what` is one phrase. */
  fail: (what: string) => never;
}

/** Inflates raw deflate data within `bounds`; corrupt data and overflow both end in `bounds.fail`. */
export function inflateBounded(deflated: Uint8Array, bounds: InflateBounds): Uint8Array {
  let { max, maxWhat } = bounds;
  let refine = bounds.limitFromHead;
  // Never reserve more than the input could honestly inflate to, whatever a header claims; grow past it if need be.
  const reserve = () => Math.min(max, deflated.length * DEFLATE_RATIO + 65536);
  let out = new Uint8Array(refine ? Math.min(max, 4096) : reserve());
  let total = 0;
  let over = false;
  const resize = (size: number): void => {
    const next = new Uint8Array(size);
    next.set(out.subarray(0, total));
    out = next;
  };
  const strm = new Inflate((chunk) => {
    if (over || total + chunk.length > max) {
      over = true;
      return;
    }
    if (total + chunk.length > out.length) resize(Math.min(max, Math.max(total + chunk.length, out.length * 2)));
    out.set(chunk, total);
    total += chunk.length;
  });
  for (let at = 0; ; ) {
    // Small pieces until the head has given the size, so not even one piece inflates far past it.
    const end = Math.min(at + (refine ? HEAD_CHUNK : CHUNK), deflated.length);
    try {
      strm.push(deflated.subarray(at, end), end === deflated.length);
    } catch (e) {
      bounds.fail(`corrupt deflate data (${e instanceof Error ? e.message : String(e)})`);
    }
    if (refine) {
      const limit = refine(out.subarray(0, total));
      if (limit !== undefined) {
        refine = undefined;
        if (limit !== null && limit.max < max) ({ max, what: maxWhat } = limit);
        if (total > max) over = true;
        // The size is known now: reserve it once rather than growing by doubling.
        else if (out.length < reserve()) resize(reserve());
      }
    }
    if (over) bounds.fail(`inflates to more than ${maxWhat}`);
    if (end === deflated.length) break;
    at = end;
  }
  return total === out.length ? out : out.subarray(0, total);
}

/** Where the deflate data of a gzip member starts (RFC 1952 header), or a message saying why it is not gzip. */
function gzipDataStart(b: Uint8Array): number | string {
  if (b.length < 18 || b[0] !== 0x1f || b[1] !== 0x8b) return `gzip file of ${b.length} bytes is truncated`;
  if (b[2] !== 8) return `gzip compression method ${b[2]} is not deflate`;
  const flags = b[3]!;
  if (flags & 0xe0) return 'gzip header has reserved flags set';
  let at = 10;
  if (flags & 4) at += 2 + (b[10]! | (b[11]! << 8)); // FEXTRA
  for (const bit of [8, 16]) {
    // FNAME, FCOMMENT: zero-terminated
    if (!(flags & bit)) continue;
    while (at < b.length && b[at] !== 0) at++;
    at++;
  }
  if (flags & 2) at += 2; // FHCRC
  return at + 8 <= b.length ? at : 'gzip header runs past the end of the file';
}

/**
 * gunzip within `bounds`, with the checks fflate leaves out: the trailer's CRC-32 and length must match what came
 * out, so a flipped bit is an error rather than silently different data. The trailer is only ever compared,
 * never used to size anything: in a truncated file those bytes are whatever the cut left there.
 */
export function gunzipBounded(bytes: Uint8Array, bounds: InflateBounds): Uint8Array {
  const start = gzipDataStart(bytes);
  if (typeof start === 'string') return bounds.fail(start);
  const n = bytes.length;
  const out = inflateBounded(bytes.subarray(start, n - 8), bounds);
  const dv = new DataView(bytes.buffer, bytes.byteOffset + n - 8, 8);
  if (crc32(out) !== dv.getUint32(0, true) || out.length % 2 ** 32 !== dv.getUint32(4, true)) {
    // Multi-member gzip (bgzip) also lands here: only the first member is decoded.
    bounds.fail('corrupt gzip data (CRC-32 or length does not match the gzip trailer; multi-member gzip is not supported)');
  }
  return out;
}
