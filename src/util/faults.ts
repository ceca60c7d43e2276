// Kill points for the crash-safety tests. Code that must survive `kill -9` anywhere marks the places in
// between its effects with `killPoint(name)`: between two file operations of a checkpoint, after a training
// step is queued, inside validation, between report files. In normal runs a kill point is one comparison.
//
// MF_FAULT_KILL_AT=N: the process SIGKILLs itself at the N-th kill point it reaches (counting from 1), so a
//   test can draw kill points from a seed and every draw lands exactly where it says.
// MF_FAULT_TRACE=<file>: append the name of every kill point reached, one per line, so that a test first learns
//   how many points an uninterrupted run passes (and which), then draws from them.
import fs from 'node:fs';

const killAt = Number(process.env.MF_FAULT_KILL_AT ?? 0);
const trace = process.env.MF_FAULT_TRACE;
let reached = 0;

/** A place where a SIGKILL must leave the run resumable to the same result. */
export function killPoint(name: string): void {
  if (!killAt && !trace) return;
  reached++;
  if (trace) fs.appendFileSync(trace, `${name}\n`);
  if (reached === killAt) process.kill(process.pid, 'SIGKILL');
}
