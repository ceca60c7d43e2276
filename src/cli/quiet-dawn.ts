// Dawn's two "maxDynamic...BuffersPerPipelineLayout artificially reduced" warnings, kept off the terminal.
//
// Dawn clamps two adapter limits to its internal maximum (16) in NormalizeLimits (src/dawn/native/Limits.cpp) and
// says so with dawn::WarningLog, which native code writes straight to file descriptor 2. There is no toggle, instance
// option or limits request that avoids it: it happens while the first requestAdapter() of a GPU instance enumerates
// the adapters (on lavapipe, whose limits are 1000000), before any device exists. So the one call that prints them
// runs with descriptor 2 pointed at a temporary file, and whatever else it printed is passed on afterwards. The call
// is synchronous (measured: the lines appear before requestAdapter returns its promise), so nothing else of ours
// writes to stderr meanwhile. Where descriptor 2 cannot be reopened it is left alone and the lines still show: a
// socket (what a Node parent's child_process "pipe" is) and Windows.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { globals } from 'webgpu';

/** The two lines, as Dawn prints them. */
export const DAWN_LIMIT_WARNING =
  /^Warning: maxDynamic(?:Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.$/;

let installed = false;

/** From now on, every GPU instance's requestAdapter() drops Dawn's two limit warnings (and only those) from stderr. */
export function quietDawnLimitWarnings(): void {
  if (installed || (process.platform !== 'linux' && process.platform !== 'darwin')) return;
  const ctor = (globals as Record<string, unknown>).GPU;
  if (typeof ctor !== 'function') return;
  const proto = (ctor as { prototype: GPU }).prototype;
  const original = proto.requestAdapter;
  proto.requestAdapter = function requestAdapter(this: GPU, options?: GPURequestAdapterOptions) {
    return withStderrFiltered(() => original.call(this, options));
  };
  installed = true;
}

/** Runs `fn` (synchronous native code) with descriptor 2 captured; passes on what it printed but Dawn's two lines. */
function withStderrFiltered<T>(fn: () => T): T {
  // The descriptor juggling relies on open() taking the lowest free number, which is 2 only while 0 and 1 are open.
  const open = (fd: number) => {
    try {
      fs.fstatSync(fd);
      return true;
    } catch {
      return false;
    }
  };
  if (!open(0) || !open(1)) return fn();
  let saved: number;
  try {
    saved = fs.openSync('/dev/fd/2', 'a'); // a second description of the same terminal, pipe or file
  } catch {
    return fn();
  }
  const tmp = path.join(os.tmpdir(), `mf-dawn-${process.pid}-${crypto.randomBytes(4).toString('hex')}.log`);
  fs.closeSync(2);
  const capture = fs.openSync(tmp, 'w+', 0o600); // takes descriptor 2
  try {
    return fn();
  } finally {
    fs.closeSync(capture);
    const back = fs.openSync(`/dev/fd/${saved}`, 'a'); // takes descriptor 2 again
    fs.closeSync(saved);
    let text = '';
    try {
      text = fs.readFileSync(tmp, 'utf8');
      fs.rmSync(tmp, { force: true });
    } catch {
      // nothing captured to pass on
    }
    const rest = text.split('\n').filter((line, i, all) => !DAWN_LIMIT_WARNING.test(line) && !(i === all.length - 1 && line === ''));
    if (back === 2 && rest.length) process.stderr.write(`${rest.join('\n')}\n`);
  }
}
