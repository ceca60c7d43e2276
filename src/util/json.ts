// JSON text, parsed once for the whole project: experiment files a user writes (ConfigError) and files the project
// writes and reads back (FileFormatError, via parseJson in ./files.ts). Syntax errors carry a line and column;
// nesting is bounded, so a hostile file cannot overflow the stack later (schema checks, JSON.stringify,
// canonical() all recurse). Also the canonical form (sorted keys) used for hashing, so key order does not matter.
import { ConfigError, FileFormatError } from '../errors.ts';

/**
 * Deepest nesting of arrays and objects accepted. The deepest file the project reads (thesis tables, metrics) is
 * under 10 levels; 100 leaves room and keeps every recursive walk of a parsed value far from the stack limit.
 */
export const MAX_JSON_DEPTH = 100;

/** Line and column (1-based) of a character offset, for JSON syntax errors. */
function lineCol(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const col = offset - before.lastIndexOf('\n');
  return `line ${line}, column ${col}`;
}

/** Offset of the bracket that opens level MAX_JSON_DEPTH + 1, or undefined. A loop, not recursion: any input is safe. */
function tooDeepAt(text: string): number | undefined {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // skip a string, escapes included; an unterminated one ends the scan (the parser reports it)
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_JSON_DEPTH) return i;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return undefined;
}

/**
 * Offset and description of the first JSON syntax error in `text`, or undefined if it is valid. Node 20's
 * JSON.parse messages often carry no position ("Unexpected token '}', ... is not valid JSON"), so syntax errors are
 * located by this small scanner of the JSON grammar; JSON.parse still does the actual parsing. It recurses once per
 * nesting level, so it is only run on text whose depth tooDeepAt has bounded.
 */
export function findJsonError(text: string): { at: number; what: string } | undefined {
  const deep = tooDeepAt(text);
  if (deep !== undefined) return { at: deep, what: `nested deeper than ${MAX_JSON_DEPTH} levels` };
  let i = 0;
  const fail = (what: string): never => {
    throw { at: i, what: i >= text.length ? 'unexpected end of file' : what };
  };
  const ws = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const str = (): void => {
    i++; // opening quote
    while (i < text.length && text[i] !== '"') {
      if (text.charCodeAt(i) < 0x20) fail('control character in string');
      if (text[i] === '\\') {
        i++;
        if (text[i] === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail('bad \\u escape');
          i += 4;
        } else if (!'"\\/bfnrt'.includes(text[i] ?? 'x')) fail('bad escape');
      }
      i++;
    }
    if (i >= text.length) fail('unterminated string');
    i++;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a "quoted" key');
        str();
        ws();
        if (text[i] !== ':') fail("expected ':' after the key");
        i++;
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') return void i++;
        else fail("expected ',' or '}'");
      }
    } else if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (;;) {
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') return void i++;
        else fail("expected ',' or ']'");
      }
    } else if (c === '"') {
      str();
    } else {
      const m = /^(-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
      if (!m) fail('expected a value');
      i += m![0].length;
    }
  };
  try {
    value();
    ws();
    if (i < text.length) fail('unexpected text after the end');
    return undefined;
  } catch (e) {
    // Only our own { at, what } is thrown above; anything else (a RangeError) must not pass as a position.
    if (e !== null && typeof e === 'object' && 'at' in e && 'what' in e) return e as { at: number; what: string };
    throw e;
  }
}

/** Where JSON text came from, for its error message. */
export interface JsonOrigin {
  file: string;
  /** A label for JSON held inside the file (`training_state` in a safetensors header). */
  at?: string;
  /** What to do, appended to the message. */
  fix?: string;
  /** A file the user writes (experiment, sweep): a ConfigError `invalid JSON at …`. Otherwise a FileFormatError. */
  config?: boolean;
}

const oneLine = (text: string) => text.replace(/\s+/g, ' ').trim();

/**
 * The one JSON parser: strips a byte-order mark (Windows editors add one), refuses nesting past MAX_JSON_DEPTH and
 * reports a syntax error as one line with its line and column. The depth is checked before JSON.parse so that a
 * value that parses is also safe to walk recursively.
 */
export function parseJsonText(text: string, origin: JsonOrigin): unknown {
  const body = text.replace(/^\uFEFF/, '');
  let parseMessage = '';
  if (tooDeepAt(body) === undefined) {
    try {
      return JSON.parse(body);
    } catch (e) {
      parseMessage = oneLine(e instanceof Error ? e.message : String(e));
    }
  }
  // Too deep, or a syntax error: the scanner gives the position (it agrees with JSON.parse on what is valid).
  const found = findJsonError(body);
  const where = found ? `${lineCol(body, found.at)}: ${found.what}` : parseMessage;
  const label = origin.at ? `${origin.at} is ` : '';
  const fix = origin.fix ? `; ${origin.fix}` : '';
  if (origin.config) throw new ConfigError(`${origin.file}: ${label}invalid JSON at ${where}${fix}`);
  throw new FileFormatError(`${origin.file}: ${label}not valid JSON (${where})${fix}`);
}

/** Canonical JSON (sorted keys) of a value; used for hashing so key order in the file does not matter. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonical(x)}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}
