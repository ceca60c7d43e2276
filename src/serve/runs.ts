// What `mf serve` reads of a runs folder: the run folders directly under it (those holding config.json), each
// summarised for the run list from its config.json, log.jsonl, metrics.json and run.lock, and the files of one run
// for its page. Everything is read, nothing written; a run folder that cannot be read becomes a `problem` in its
// summary, never an error of the server.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import { MfError } from '../errors.ts';
import {
  checkLogRecord,
  isMetricsKind,
  LockInfoSchema,
  type LogRecord,
  MetricsSchemaFor,
  readJsonFile,
  type SupervisedMetrics,
} from '../train/records.ts';
import { parseJsonText } from '../util/json.ts';

/** The part of config.json the run list needs; the rest is shown as it is. */
const ConfigHeadSchema = Type.Object({ name: Type.String(), kind: Type.String() });

export type RunStatus = 'running' | 'finished' | 'stopped';

/** One row of the run list. */
export interface RunSummary {
  /** The folder's name under the runs folder: the run's address in URLs. */
  id: string;
  name: string;
  kind: string;
  datasets: string[];
  status: RunStatus;
  /** Optimizer steps logged so far (the last train record's step). */
  steps: number;
  /** Per task, the best validation AUC logged so far (supervised, multitask, finetune). */
  best_val: Record<string, number>;
  /** Per task, the test scores of metrics.json (supervised, multitask, finetune). */
  test: Record<string, { auc: number | null; acc: number | null }>;
  /** Seconds from the log's opening to its last record. */
  wall_s: number;
  /** Why part of the folder could not be read, if it could not. */
  problem?: string;
}

export interface LogChunk {
  records: LogRecord[];
  /** The byte offset after the last complete line read: where the next poll starts. */
  next: number;
  /** Lines that are not log records (skipped). */
  skipped: number;
}

/** A run's confusion matrix of its test split, as its report.md prints it. */
export interface Confusion {
  task: string;
  labels: string[];
  rows: number[][];
}

export interface RunDetail {
  summary: RunSummary;
  config: unknown;
  metrics: unknown;
  confusion: Confusion[];
  /** Files of the run folder (for links), without checkpoints' training state. */
  files: string[];
}

const NAME = /^[^/\\\0]+$/;

/** The runs folder, resolved once; every file served is checked to lie inside it. */
export class RunsFolder {
  readonly root: string;

  constructor(dir: string) {
    let real: string;
    try {
      real = fs.realpathSync(dir);
    } catch {
      throw new MfError(`${dir}: no such runs folder`, 'pass the folder mf run writes to (default runs/), or train a run first');
    }
    if (!fs.statSync(real).isDirectory()) throw new MfError(`${dir}: not a folder`, 'pass the runs folder');
    this.root = real;
  }

  /**
   * The real path of `rel` inside the runs folder, or null when it names nothing there: a `..` that climbs out, an
   * absolute path, a symbolic link pointing outside, a missing file.
   */
  resolve(rel: string): string | null {
    if (rel.includes('\0')) return null;
    let real: string;
    try {
      real = fs.realpathSync(path.resolve(this.root, rel));
    } catch {
      return null;
    }
    const inside = path.relative(this.root, real);
    if (inside.startsWith('..') || path.isAbsolute(inside)) return null;
    return real;
  }

  /** The folder of run `id` (a folder directly under the runs folder with a config.json), or null. */
  runDir(id: string): string | null {
    if (!NAME.test(id) || id === '.' || id === '..') return null;
    const dir = this.resolve(id);
    if (!dir || path.dirname(dir) !== this.root) return null;
    return fs.existsSync(path.join(dir, 'config.json')) ? dir : null;
  }

  /** The run folders, newest log first. */
  ids(): string[] {
    const entries = fs.readdirSync(this.root, { withFileTypes: true }).filter((e) => e.isDirectory() && this.runDir(e.name));
    const touched = (id: string) => {
      for (const f of ['log.jsonl', 'config.json']) {
        try {
          return fs.statSync(path.join(this.root, id, f)).mtimeMs;
        } catch {}
      }
      return 0;
    };
    return entries.map((e) => e.name).sort((a, b) => touched(b) - touched(a) || a.localeCompare(b));
  }

  summaries(): RunSummary[] {
    return this.ids().map((id) => this.summary(id));
  }

  summary(id: string): RunSummary {
    const dir = path.join(this.root, id);
    const out: RunSummary = { id, name: id, kind: '?', datasets: [], status: 'stopped', steps: 0, best_val: {}, test: {}, wall_s: 0 };
    try {
      const config = readJsonFile(path.join(dir, 'config.json'), ConfigHeadSchema, { what: 'the run config', fix: 'check the run folder' });
      out.name = config.name;
      out.kind = config.kind;
      const data = (config as { data?: { datasets?: unknown } }).data;
      if (Array.isArray(data?.datasets)) out.datasets = data.datasets.map(String);
      const log = readLog(dir, 0);
      for (const r of log.records) {
        if (r.t > out.wall_s) out.wall_s = r.t;
        if (r.event === 'train') out.steps = Math.max(out.steps, r.step);
        if (r.event === 'val' && r.task !== undefined && typeof r.auc === 'number') {
          out.best_val[r.task] = Math.max(out.best_val[r.task] ?? Number.NEGATIVE_INFINITY, r.auc);
        }
      }
      const metrics = readMetrics(dir, config.kind);
      if (metrics !== null) {
        out.status = 'finished';
        if (config.kind === 'supervised' || config.kind === 'multitask' || config.kind === 'finetune') {
          for (const [task, m] of Object.entries(metrics as SupervisedMetrics)) out.test[task] = m.test;
        }
      } else if (lockHeld(dir)) out.status = 'running';
    } catch (e) {
      if (!(e instanceof MfError)) throw e;
      out.problem = e.message;
    }
    return out;
  }

  detail(id: string): RunDetail | null {
    const dir = this.runDir(id);
    if (!dir) return null;
    const summary = this.summary(id);
    const read = (file: string): unknown => {
      try {
        return parseJsonText(fs.readFileSync(path.join(dir, file), 'utf8'), { file: path.join(dir, file) });
      } catch {
        return null;
      }
    };
    let report = '';
    try {
      report = fs.readFileSync(path.join(dir, 'report.md'), 'utf8');
    } catch {}
    const files = fs
      .readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isFile() && !/^state-.*\.safetensors$/.test(e.name) && e.name !== 'run.lock')
      .map((e) => e.name)
      .sort();
    return { summary, config: read('config.json'), metrics: read('metrics.json'), confusion: confusionMatrices(report), files };
  }
}

/**
 * The log records from byte `from` up to the last complete line (a writer may be halfway through one). A line that
 * is not a record is counted in `skipped`: the page shows what it can.
 */
export function readLog(dir: string, from: number): LogChunk {
  const file = path.join(dir, 'log.jsonl');
  let bytes: Buffer;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const start = Math.min(Math.max(0, from), size);
      bytes = Buffer.alloc(size - start);
      fs.readSync(fd, bytes, 0, bytes.length, start);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return { records: [], next: from, skipped: 0 };
  }
  const end = bytes.lastIndexOf(0x0a) + 1;
  const records: LogRecord[] = [];
  let skipped = 0;
  bytes
    .subarray(0, end)
    .toString('utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.trim() === '') return;
      try {
        records.push(checkLogRecord(JSON.parse(line), file, i + 1));
      } catch {
        skipped++;
      }
    });
  return { records, next: from + end, skipped };
}

function readMetrics(dir: string, kind: string): unknown {
  const file = path.join(dir, 'metrics.json');
  if (!fs.existsSync(file) || !isMetricsKind(kind)) return null;
  return readJsonFile(file, MetricsSchemaFor(kind), { what: 'the run metrics', fix: 'check the run folder' });
}

/** Whether run.lock names a live process of this host: the run is still writing. */
function lockHeld(dir: string): boolean {
  const file = path.join(dir, 'run.lock');
  if (!fs.existsSync(file)) return false;
  try {
    const lock = readJsonFile(file, LockInfoSchema, { what: 'the run lock', fix: 'delete it if no run is writing' });
    if (lock.hostname !== os.hostname()) return true;
    process.kill(lock.pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The confusion matrices of report.md ("## <task>: test split", then the matrix table the trainer writes). */
export function confusionMatrices(report: string): Confusion[] {
  const out: Confusion[] = [];
  const lines = report.split('\n');
  let task: string | null = null;
  for (let i = 0; i < lines.length; i++) {
    const heading = /^## (.+): test split$/.exec(lines[i]!);
    if (heading) task = heading[1]!;
    if (task === null || !lines[i]!.startsWith('| true \\ predicted |')) continue;
    const cells = (line: string) =>
      line
        .slice(1, line.endsWith('|') ? -1 : undefined)
        .split('|')
        .map((c) => c.trim());
    const labels = cells(lines[i]!).slice(1);
    const rows: number[][] = [];
    for (let j = i + 2; j < lines.length && lines[j]!.startsWith('|'); j++) rows.push(cells(lines[j]!).slice(1).map(Number));
    out.push({ task, labels, rows });
    task = null;
  }
  return out;
}
