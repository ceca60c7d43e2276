// The subjects of a brain run: IXI volumes (with ages when a demographics CSV is there), preprocessed
// through the cache, and their subject-level split.
import fs from 'node:fs';
import { preprocessBrain } from '../data/brain.ts';
import { findIxiVolumes, loadIxiSubjects, subjectSplit, type IxiSubject } from '../data/ixi.ts';
import type { Vec3 } from '../data/nifti.ts';
import { ConfigError } from '../errors.ts';
import type { BrainDataSettings, BrainPaths } from './settings.ts';

export interface BrainSubject {
  id: string;
  /** Age in years; null when no demographics CSV names it. */
  age: number | null;
  file: string;
  /** Preprocessed (RAS, [0, 1], shape³) volume, x fastest. */
  volume: Float32Array;
}

/** Reads the subjects (with ages when a CSV is there) and preprocesses their volumes through the cache. */
export function loadBrainSubjects(p: BrainPaths, side: number, opts: { needAges: boolean; say?: (line: string) => void }): BrainSubject[] {
  if (!fs.existsSync(p.dataDir) || !fs.statSync(p.dataDir).isDirectory()) {
    throw new ConfigError(
      `IXI data folder ${p.dataDir} does not exist`,
      'set data.data_dir (or --data-dir, or $IXI_ROOT) to the folder holding the IXI T1 .nii.gz files (e.g. $MEDFORMER_SHARED_DATA/brain)',
    );
  }
  let found: Map<string, string> | null = null;
  const volumes = () => (found ??= findIxiVolumes(p.dataDir));
  let listed: { id: string; age: number | null; file: string | undefined }[];
  if (p.subjectsCsv) {
    listed = loadIxiSubjects(p.subjectsCsv, { dataRoot: p.dataDir }).map((x: IxiSubject) => ({ id: x.id, age: x.age, file: x.file }));
  } else {
    if (opts.needAges)
      throw new ConfigError(
        `no demographics CSV in ${p.dataDir}`,
        'brain age needs ages: set data.subjects_csv (ixi_subjects.csv or a CSV export of IXI.xls)',
      );
    listed = [...volumes()].map(([id, file]) => ({ id, age: null, file }));
  }
  const withFile = listed
    .map((x) => ({ ...x, file: x.file ?? volumes().get(x.id) }))
    .filter((x): x is { id: string; age: number | null; file: string } => !!x.file);
  if (withFile.length === 0)
    throw new ConfigError(`no IXI volume found for the subjects in ${p.subjectsCsv ?? p.dataDir}`, 'check data.data_dir');
  const shape: Vec3 = [side, side, side];
  let computed = 0;
  const t0 = Date.now();
  const out = withFile.map((x) => {
    const v = preprocessBrain(x.file, { shape, cacheDir: p.cacheDir });
    if (!v.cached) computed++;
    return { id: x.id, age: x.age, file: x.file, volume: v.data };
  });
  opts.say?.(
    `brain data: ${out.length} subjects from ${p.dataDir} at ${side}³ (${computed} preprocessed in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${out.length - computed} from the cache ${p.cacheDir})`,
  );
  return out;
}

export interface SubjectSplit<S> {
  train: S[];
  val: S[];
  test: S[];
  /** One line describing the split, for the log and reports. */
  text: string;
}

/** The subject-level split, and a one-line description of it for reports. */
export function splitSubjects<S extends { id: string }>(subjects: readonly S[], split: BrainDataSettings['split']): SubjectSplit<S> {
  const parts = subjectSplit(subjects, split);
  const ids = (xs: S[]) => xs.map((x) => x.id).join(', ') || 'none';
  const text = `subject-level split (seed ${split.seed}): train ${parts.train.length} (${ids(parts.train)}); val ${parts.val.length} (${ids(parts.val)}); test ${parts.test.length} (${ids(parts.test)})`;
  return { ...parts, text };
}
