// Files the project writes and reads back. Writes are crash-safe: readers see the old contents or the new, never
// a torn file. JSON is read back checked against a TypeBox schema (src/train/records.ts has the run files'):
// the first problem becomes one line `<file>: <JSON pointer> is <value>, not <expected>; <fix>`, where
// <expected> is the failing schema's `description` or a phrase made from its type. Every failure is one MfError
// line naming the path and what to do.
//
// All file I/O goes through the default `fs` export (not named imports) so tests can inject failures with spies.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Kind, type Static, type TSchema } from '@sinclair/typebox';
import { Value, type ValueError, ValueErrorType } from '@sinclair/typebox/value';
import { FileFormatError, MfError } from '../errors.ts';
import { parseJsonText } from './json.ts';
import { killPoint } from './faults.ts';

/** One line naming the path and the fix, from a Node fs error (an MfError passes through). */
export function writeError(file: string, e: unknown): MfError {
  if (e instanceof MfError) return e;
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new MfError(`disk full writing ${file}: free space and rerun with --resume`);
    case 'EACCES':
    case 'EPERM':
      return new MfError(`cannot write ${file}: permission denied; fix the directory's permissions or pick another --out`);
    case 'EROFS':
      return new MfError(`cannot write ${file}: the file system is read-only; pick another --out`);
    case 'ENOENT':
    case 'ENOTDIR':
      return new MfError(`cannot write ${file}: ${path.dirname(file)} is not an existing directory; create it or pick another --out`);
    default:
      return new MfError(`cannot write ${file}: ${err.code ?? ''} ${err.message ?? String(e)}`.replace(/\s+/g, ' ').trim());
  }
}

function fsyncDir(dir: string): void {
  // Makes the rename itself durable. Some platforms cannot fsync a directory (EISDIR/EINVAL/EPERM on Windows and
  // some network file systems); only an I/O error is worth failing the save for.
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EIO') throw writeError(dir, e);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Writes `bytes` to `file` so that readers see either the old contents or the new, never a torn file:
 * temp file in the same directory, fsync, rename over `file`, fsync the directory.
 * On failure the temp file is removed and an MfError names `file`.
 */
export function writeFileAtomic(file: string, bytes: Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx', 0o644);
    let off = 0;
    // Half the bytes, then a kill point: a torn temp file is one of the states a crash can leave.
    const half = bytes.length >> 1;
    while (off < half) off += fs.writeSync(fd, bytes, off, half - off);
    killPoint('write:partial');
    while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    killPoint('write:before-rename');
    fs.renameSync(tmp, file);
    killPoint('write:renamed');
  } catch (e) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // already failing; the original error is the one to report
      }
    }
    fs.rmSync(tmp, { force: true });
    throw writeError(file, e);
  }
  fsyncDir(path.dirname(file));
}

/**
 * Writes `value` as JSON (2-space indent, trailing newline: the form of every JSON file the project writes)
 * atomically (see writeFileAtomic). NaN and ±Infinity become null, as JSON.stringify makes them.
 */
export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`));
}

// ---------------------------------------------------------------------------------------------------------------
// Reading JSON back

/** Where a value came from, for error messages: the file, a JSON pointer prefix, and what to do about it. */
export interface JsonSource {
  file: string;
  /** What to do, appended to every message: "restore it from git". */
  fix: string;
  /** JSON pointer of `value` inside a larger document ('/breastmnist'), or a label ('training_state'). */
  at?: string;
}

const escapeKey = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');
/** A JSON pointer to `key` under `at`. */
export const pointer = (at: string, key: string | number): string => `${at}/${escapeKey(String(key))}`;

/** `value` in a few words: a scalar as JSON (shortened), a container by its kind. */
function shown(value: unknown): string {
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (value !== null && typeof value === 'object') return 'an object';
  const s = JSON.stringify(value) ?? String(value);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** What a schema accepts, in words: its description, else a phrase from its kind. */
export function expectedOf(schema: TSchema): string {
  if (typeof schema.description === 'string') return schema.description;
  const s = schema as TSchema & Record<string, unknown>;
  const range = () => {
    const lo = s.minimum ?? s.exclusiveMinimum;
    const hi = s.maximum ?? s.exclusiveMaximum;
    return lo !== undefined && hi !== undefined ? ` in [${lo}, ${hi}]` : lo !== undefined ? ` ≥ ${lo}` : hi !== undefined ? ` ≤ ${hi}` : '';
  };
  switch (schema[Kind]) {
    case 'Number':
      return `a number${range()}`;
    case 'Integer':
      return `an integer${range()}`;
    case 'String':
      return typeof s.pattern === 'string' ? `a string matching /${s.pattern}/` : 'a string';
    case 'Boolean':
      return 'true or false';
    case 'Null':
      return 'null';
    case 'Literal':
      return JSON.stringify(s.const);
    case 'Object':
    case 'Record':
      return 'an object';
    case 'Array':
      return 'a list';
    case 'Tuple':
      return `a list of ${(s.items as unknown[] | undefined)?.length ?? 0}`;
    case 'Union': {
      const options = (s.anyOf as TSchema[]).map(expectedOf);
      return options.length <= 3 ? options.join(' or ') : `one of ${options.join(', ')}`;
    }
    default:
      return 'valid';
  }
}

/** One phrase for a validation error: `<path> is <value>, not <expected>` or `<path> is missing (...)`. */
function describe(e: ValueError, at: string): string {
  const where = `${at}${e.path}` || 'the top level';
  const expected = expectedOf(e.schema);
  if (e.type === ValueErrorType.ObjectRequiredProperty || e.value === undefined) return `${where} is missing (expected ${expected})`;
  if (e.type === ValueErrorType.ObjectAdditionalProperties) return `${where} is not an allowed key`;
  return `${where} is ${shown(e.value)}, not ${expected}`;
}

/** The first problem of `value` against `schema` in words, or undefined when it conforms. */
export function jsonProblem(schema: TSchema, value: unknown, at = ''): string | undefined {
  if (Value.Check(schema, value)) return undefined;
  const e = Value.Errors(schema, value).First();
  return e ? describe(e, at) : `${at || 'the top level'} is invalid`;
}

/** Checks an already-parsed value; the first problem is a FileFormatError `<file>: <path> is …, not …; <fix>`. */
export function checkJson<S extends TSchema>(schema: S, value: unknown, source: JsonSource): Static<S> {
  const problem = jsonProblem(schema, value, source.at);
  if (problem !== undefined) throw new FileFormatError(`${source.file}: ${problem}; ${source.fix}`);
  return value as Static<S>;
}

/** Parses JSON text (a file's, or a string inside one; see parseJsonText for depth and positions) and checks it. */
export function parseJson<S extends TSchema>(text: string, schema: S, source: JsonSource): Static<S> {
  return checkJson(schema, parseJsonText(text, source), source);
}

// ---------------------------------------------------------------------------------------------------------------
// Reading files: regular files only, with a size limit

/** The largest text file read whole (JSON, log.jsonl of a long run with log_every 1 stays far below it). */
export const MAX_TEXT_BYTES = 256 * 1024 * 1024;
/** The largest binary file read whole (safetensors, NIfTI): what one typed array of a run can hold. */
export const MAX_BINARY_BYTES = 2 ** 31 - 1;

export interface ReadFileOptions {
  /** What the file is, for errors: "the checkpoint pointer". */
  what: string;
  /** What to do, appended to every message. */
  fix: string;
  /** Larger files are refused before anything is read. */
  maxBytes: number;
  /** The error for a file that does not exist (default: `<file>: no such file (<what>); <fix>`). */
  missing?: () => MfError;
}

const KIND_OF = (st: fs.Stats): string =>
  st.isDirectory()
    ? 'a directory'
    : st.isFIFO()
      ? 'a named pipe (FIFO)'
      : st.isCharacterDevice()
        ? 'a character device'
        : st.isBlockDevice()
          ? 'a block device'
          : st.isSocket()
            ? 'a socket'
            : 'not a regular file';

/**
 * Opens `file` for reading if it is a regular file of at most `maxBytes`; returns the descriptor and size. A FIFO,
 * a device (a link to /dev/zero) or a directory is refused before it is opened, and the open itself does not block
 * (O_NONBLOCK), so a pipe swapped in meanwhile cannot hang the run; fstat then checks what was really opened.
 * Failures are FileFormatErrors naming the file and the fix (`missing` makes the ENOENT one).
 */
export function openRegularFile(file: string, opts: ReadFileOptions): { fd: number; size: number } {
  const refuse = (why: string) => new FileFormatError(`${file}: ${why} (${opts.what}); ${opts.fix}`);
  const check = (st: fs.Stats): void => {
    if (!st.isFile()) throw refuse(`is ${KIND_OF(st)}, not a regular file`);
    if (st.size > opts.maxBytes) throw refuse(`is ${st.size} bytes, more than the ${opts.maxBytes}-byte limit`);
  };
  let fd: number | undefined;
  try {
    check(fs.statSync(file));
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
    const st = fs.fstatSync(fd);
    check(st);
    return { fd, size: st.size };
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    if (e instanceof MfError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw opts.missing ? opts.missing() : refuse('no such file');
    throw refuse(`cannot be read (${code ?? String(e)})`);
  }
}

/** A regular file's bytes (see openRegularFile), in a fresh buffer of exactly the size fstat gave. */
export function readRegularFile(file: string, opts: ReadFileOptions): Uint8Array {
  const { fd, size } = openRegularFile(file, opts);
  try {
    const out = new Uint8Array(size);
    let got = 0;
    while (got < size) {
      const n = fs.readSync(fd, out, got, size - got, got);
      if (n === 0) break; // shrank while reading: what was read is all there is
      got += n;
    }
    return got === size ? out : out.subarray(0, got);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FileFormatError(`${file}: cannot be read (${opts.what}; ${code ?? String(e)}); ${opts.fix}`);
  } finally {
    fs.closeSync(fd);
  }
}

/** A text file's contents (UTF-8, at most `maxBytes`); failures are one FileFormatError line naming the file. */
export function readTextFile(file: string, what: string, fix: string, missing?: () => MfError, maxBytes = MAX_TEXT_BYTES): string {
  const bytes = readRegularFile(file, { what, fix, maxBytes, ...(missing ? { missing } : {}) });
  return new TextDecoder().decode(bytes);
}

export interface ReadJsonOptions {
  /** What the file is, for read errors: "the checkpoint pointer". */
  what: string;
  /** What to do, appended to every message. */
  fix: string;
  /** The error for a file that does not exist (default: `<file>: no such file (<what>); <fix>`). */
  missing?: () => MfError;
  /** Larger files are refused unread (default MAX_TEXT_BYTES). */
  maxBytes?: number;
}

/**
 * Reads a JSON file and checks it against `schema`. A file that cannot be read, is not JSON (or nests past
 * MAX_JSON_DEPTH) or does not conform is a FileFormatError; every message is one line naming the file and ending
 * in `fix`.
 */
export function readJsonFile<S extends TSchema>(file: string, schema: S, opts: ReadJsonOptions): Static<S> {
  const text = readTextFile(file, opts.what, opts.fix, opts.missing, opts.maxBytes);
  return parseJson(text, schema, { file, fix: opts.fix });
}
