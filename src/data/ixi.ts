// IXI subjects: ids, the demographics CSV (this project's ixi_subjects.csv or an export of IXI.xls), finding the
// volumes under a folder, and the deterministic subject-level train/val/test split.
import { type Dirent, existsSync, readdirSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { ConfigError, FileFormatError } from '../errors.ts';
import { readTextFile } from '../util/files.ts';
import { hashSeed, Rng } from '../util/rng.ts';

export interface IxiSubject {
  /** 'IXI057': the IXI id, zero-padded to 3 digits as in the file names. */
  id: string;
  /** Age in years at the scan. */
  age: number;
  sex?: 'M' | 'F';
  /** Absolute path of the subject's volume, when the CSV names one that exists. */
  file?: string;
}

/** 'IXI57', '57', 'IXI057-Guys-...' → 'IXI057'; null when there is no id. */
export function ixiId(s: string): string | null {
  const m = /^(?:.*?IXI)?0*(\d{1,4})(?:\D|$)/i.exec(s.trim());
  return m ? `IXI${m[1]!.padStart(3, '0')}` : null;
}

function parseCsv(text: string): string[][] {
  // RFC 4180 enough for a spreadsheet export: quoted fields with "" escapes, CRLF or LF.
  const rows: string[][] = [];
  let row: string[] = [];
  let f = '';
  let q = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (q) {
      if (c === '"' && text[i + 1] === '"') (f += '"'), i++;
      else if (c === '"') q = false;
      else f += c;
    } else if (c === '"') q = true;
    else if (c === ',') row.push(f), (f = '');
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(f), rows.push(row), (row = []), (f = '');
    } else f += c;
  }
  if (f !== '' || row.length > 0) row.push(f), rows.push(row);
  return rows.filter((r) => r.some((x) => x.trim() !== ''));
}

/**
 * Subjects with an age from an IXI demographics CSV: this project's `ixi_subjects.csv` (ixi_id, sex,
 * age_years, file) or a CSV export of the official IXI sheet (IXI_ID, SEX_ID 1=M 2=F, AGE). Rows without an
 * age are skipped (brain age needs one); the same id twice must agree on the age. A `file` column is resolved
 * against `dataRoot`, then the CSV's folder, then its parent (the shared layout), and kept where it exists.
 */
export function loadIxiSubjects(csvPath: string, opts: { dataRoot?: string } = {}): IxiSubject[] {
  // A regular file only: a FIFO or a device named as the CSV is refused unread, never waited on.
  const text = readTextFile(csvPath, 'the IXI subjects CSV', 'check --data-dir');
  const rows = parseCsv(text.replace(/^\uFEFF/, ''));
  const head = (rows[0] ?? []).map((h) => h.trim().toLowerCase());
  const col = (...names: string[]) => head.findIndex((h) => names.includes(h));
  const iId = col('ixi_id', 'id', 'subject_id');
  const iAge = col('age_years', 'age');
  const iSex = col('sex', 'sex_id');
  const iFile = col('file', 'path');
  if (iId < 0 || iAge < 0) {
    throw new FileFormatError(
      `${csvPath}: needs an id column (ixi_id) and an age column (age_years or AGE); found ${head.join(', ') || 'no header'}`,
    );
  }
  const roots = [opts.dataRoot, dirname(csvPath), dirname(dirname(csvPath))].filter((r): r is string => !!r);
  const byId = new Map<string, IxiSubject>();
  rows.slice(1).forEach((r, k) => {
    const line = k + 2;
    const id = ixiId(r[iId] ?? '');
    if (!id) throw new FileFormatError(`${csvPath}:${line}: '${r[iId]}' is not an IXI id`);
    const ageText = (r[iAge] ?? '').trim();
    if (ageText === '') return;
    const age = Number(ageText);
    if (!Number.isFinite(age) || age < 0 || age > 130)
      throw new FileFormatError(`${csvPath}:${line}: age '${ageText}' is not a number of years`);
    const sexText = iSex >= 0 ? (r[iSex] ?? '').trim().toUpperCase() : '';
    const sex = sexText === 'M' || sexText === '1' ? 'M' : sexText === 'F' || sexText === '2' ? 'F' : undefined;
    const rel = iFile >= 0 ? (r[iFile] ?? '').trim() : '';
    const file = rel === '' ? undefined : isAbsolute(rel) ? rel : roots.map((root) => resolve(root, rel)).find((p) => existsSync(p));
    const prev = byId.get(id);
    if (prev) {
      // IXI.xls repeats some ids; repeats are harmless when they agree.
      if (Math.abs(prev.age - age) > 1e-6)
        throw new FileFormatError(`${csvPath}:${line}: ${id} appears twice with ages ${prev.age} and ${age}`, 'remove the wrong row');
      return;
    }
    byId.set(id, { id, age, ...(sex ? { sex } : {}), ...(file ? { file } : {}) });
  });
  return [...byId.values()];
}

/**
 * The modality an IXI file name ends in ('IXI002-Guys-0828-T2.nii.gz' → 'T2'), upper-cased; null when the
 * name has none (the last dash-separated part must start with a letter, so a scanner number is not one).
 */
export function ixiModality(fileName: string): string | null {
  const m = /-([A-Za-z][A-Za-z0-9]*)\.(nii|nii\.gz|hdr)$/i.exec(fileName);
  return m ? m[1]!.toUpperCase() : null;
}

/**
 * The file of another modality of the same scan session, by IXI's naming: the T1 file's name with its
 * modality replaced ('…/IXI002-Guys-0828-T1.nii.gz' → '…/IXI002-Guys-0828-T2.nii.gz'); null when the name
 * carries no modality. The file may not exist.
 */
export function siblingModalityFile(file: string, modality: string): string | null {
  const m = /-([A-Za-z][A-Za-z0-9]*)(\.(?:nii|nii\.gz|hdr))$/i.exec(file);
  return m ? `${file.slice(0, m.index)}-${modality}${m[2]}` : null;
}

/**
 * Every NIfTI file under `dir` (recursively) whose name holds an IXI id and ends in `modality` (default
 * T1; files without a modality in their name count as T1), as id → path.
 */
export function findIxiVolumes(dir: string, modality = 'T1'): Map<string, string> {
  const want = modality.toUpperCase();
  const found = new Map<string, string>();
  const walk = (d: string) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      throw new ConfigError(`cannot list ${d}`, 'give the folder holding the IXI .nii.gz files');
    }
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/^IXI\d+.*\.(nii|nii\.gz|hdr)$/i.test(e.name) && (ixiModality(e.name) ?? 'T1') === want) {
        const id = ixiId(e.name)!;
        const prev = found.get(id);
        if (prev)
          throw new ConfigError(
            `${id} has two volumes: ${prev} and ${p}`,
            'point at one processing folder (e.g. ixi_t1_skullstripped) or remove one',
          );
        found.set(id, p);
      }
    }
  };
  walk(dir);
  return found;
}

/** Pairs subjects with volumes by IXI id: those with a file, and the ids of those without. */
export function matchSubjects(
  subjects: readonly IxiSubject[],
  volumes: ReadonlyMap<string, string>,
): { matched: (IxiSubject & { file: string })[]; missing: string[] } {
  const matched: (IxiSubject & { file: string })[] = [];
  const missing: string[] = [];
  for (const s of subjects) {
    const file = volumes.get(s.id);
    if (file) matched.push({ ...s, file });
    else missing.push(s.id);
  }
  return { matched, missing };
}

/**
 * A deterministic subject-level split: all entries with one IXI id go to one split, so no subject's scans
 * are in both training and test. The result depends only on the seed and the set of ids, not their order.
 */
export function subjectSplit<S extends { id: string }>(
  subjects: readonly S[],
  opts: { seed: number; test: number; val: number },
): { train: S[]; val: S[]; test: S[] } {
  const ids = [...new Set(subjects.map((s) => s.id))].sort();
  const { test, val, seed } = opts;
  if (!Number.isInteger(test) || !Number.isInteger(val) || test < 0 || val < 0 || test + val >= ids.length) {
    throw new ConfigError(`cannot split ${ids.length} subjects into test ${test} + val ${val} and a non-empty train set`, 'lower test/val');
  }
  new Rng(hashSeed(seed, 'subject-split')).shuffle(ids);
  const where = new Map<string, 'train' | 'val' | 'test'>();
  ids.forEach((id, i) => where.set(id, i < test ? 'test' : i < test + val ? 'val' : 'train'));
  const out = { train: [] as S[], val: [] as S[], test: [] as S[] };
  for (const s of subjects) out[where.get(s.id)!].push(s);
  return out;
}
