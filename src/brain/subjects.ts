// The subjects of a brain run: IXI volumes (with ages when a demographics CSV is there), one per modality,
// preprocessed through the cache, and their subject-level split.
import fs from 'node:fs';
import path from 'node:path';
import { gridCentreMm, preprocessBrain } from '../data/brain.ts';
import { findIxiVolumes, ixiModality, loadIxiSubjects, siblingModalityFile, subjectSplit, type IxiSubject } from '../data/ixi.ts';
import type { Vec3 } from '../data/nifti.ts';
import { ConfigError } from '../errors.ts';
import type { BrainDataSettings, BrainPaths } from './settings.ts';

export interface BrainSubject {
  id: string;
  /** Age in years; null when no demographics CSV names it. */
  age: number | null;
  /** The first modality's file (the CSV's, or the one found by id). */
  file: string;
  /** Preprocessed (RAS, [0, 1], shape³) volumes of the modalities, channel after channel, x fastest. */
  volume: Float32Array;
}

/**
 * The file of `modality` for a subject whose first modality is `first`: the same name with the modality
 * swapped (IXI's layout keeps a session's T1, T2 and PD side by side), else the one found by id under the
 * data folder. A missing one is an error naming the file looked for.
 */
function modalityFile(id: string, first: string, modality: string, dataDir: string, index: () => Map<string, string>): string {
  const sibling = siblingModalityFile(first, modality);
  if (sibling && fs.existsSync(sibling)) return sibling;
  const found = index().get(id);
  if (found) return found;
  throw new ConfigError(
    `${id}: no ${modality} volume: ${sibling ?? `${id}-…-${modality}.nii.gz`} does not exist and none is under ${dataDir}`,
    `put the subject's ${modality} file beside its T1 (IXI names end in -${modality}.nii.gz), or remove "${modality}" from data.modalities`,
  );
}

/**
 * Reads the subjects (with ages when a CSV is there) and preprocesses their volumes through the cache: the
 * first modality (default T1) as usual, every further one on the first one's grid (same centre in world
 * coordinates, same spacing), so the channels line up.
 */
export function loadBrainSubjects(
  p: BrainPaths,
  side: number,
  opts: { needAges: boolean; modalities?: readonly string[]; say?: (line: string) => void },
): BrainSubject[] {
  const modalities = opts.modalities ?? ['T1'];
  if (!fs.existsSync(p.dataDir) || !fs.statSync(p.dataDir).isDirectory()) {
    throw new ConfigError(
      `IXI data folder ${p.dataDir} does not exist`,
      'set data.data_dir (or --data-dir, or $IXI_ROOT) to the folder holding the IXI T1 .nii.gz files (e.g. $MEDFORMER_SHARED_DATA/brain)',
    );
  }
  let found: Map<string, string> | null = null;
  const volumes = () => (found ??= findIxiVolumes(p.dataDir, modalities[0]));
  const others = new Map<string, Map<string, string>>();
  const indexOf = (m: string) => () => {
    if (!others.has(m)) others.set(m, findIxiVolumes(p.dataDir, m));
    return others.get(m)!;
  };
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
  // Every file is looked up before any is preprocessed, so a missing modality fails at once.
  const files = withFile.map((x) =>
    modalities.map((m) =>
      (ixiModality(path.basename(x.file)) ?? 'T1') === m ? x.file : modalityFile(x.id, x.file, m, p.dataDir, indexOf(m)),
    ),
  );
  const V = side ** 3;
  const out = withFile.map((x, i) => {
    const first = preprocessBrain(files[i]![0]!, { shape, cacheDir: p.cacheDir });
    const volume = modalities.length === 1 ? first.data : new Float32Array(modalities.length * V);
    if (modalities.length > 1) volume.set(first.data);
    if (!first.cached) computed++;
    const centreMm = gridCentreMm(first);
    files[i]!.slice(1).forEach((f, c) => {
      const v = preprocessBrain(f, { shape, cacheDir: p.cacheDir, centreMm });
      if (!v.cached) computed++;
      volume.set(v.data, (c + 1) * V);
    });
    return { id: x.id, age: x.age, file: files[i]![0]!, volume };
  });
  opts.say?.(
    `brain data: ${out.length} subjects (${modalities.join(', ')}) from ${p.dataDir} at ${side}³ (${computed} volumes preprocessed in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${out.length * modalities.length - computed} from the cache ${p.cacheDir})`,
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
