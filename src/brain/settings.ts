// The `data` section both brain kinds share: where the IXI volumes and their demographics CSV are, the
// preprocessing cache, the grid side and the subject-level split. Settings keep the paths as the file gives
// them (so the config hash does not depend on the working directory); `brainPaths` resolves them when the
// run is prepared.
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { type Static, type TProperties, Type } from '@sinclair/typebox';
import { PosInt, Strict } from '../train/schema.ts';

const Path = Type.String({ minLength: 1 });
const NonNegInt = Type.Integer({ minimum: 0 });

/** The keys of `data` every brain kind reads; a kind adds its own (`brainDataSchema(extra)`). */
export const BRAIN_DATA_PROPERTIES = {
  /** Folder with the IXI volumes (searched recursively) and usually ixi_subjects.csv. Default $IXI_ROOT, else data/brain. */
  data_dir: Type.Optional(Path),
  /** Demographics CSV. Default: data_dir/ixi_subjects.csv when it exists. */
  subjects_csv: Type.Optional(Path),
  /** Preprocessing cache; relative paths are under the run folder. Default ~/.cache/medformer/brain. */
  cache_dir: Type.Optional(Path),
  /** Side of the cubic preprocessing grid. Default 64. */
  shape: Type.Optional(Type.Integer({ minimum: 8, maximum: 256 })),
  /** Subject-level split: `test` and `val` subjects, drawn with `seed`. Default {seed 0, test 4, val 2}. */
  split: Type.Optional(Strict({ seed: Type.Optional(NonNegInt), test: Type.Optional(PosInt), val: Type.Optional(NonNegInt) })),
};

export const brainDataSchema = <P extends TProperties>(extra: P) => Strict({ ...BRAIN_DATA_PROPERTIES, ...extra });
const BaseDataSchema = brainDataSchema({});
export type BrainDataFile = Static<typeof BaseDataSchema>;

export interface BrainDataSettings {
  /** null: $IXI_ROOT, else data/brain (relative to the working directory). */
  data_dir: string | null;
  /** null: data_dir/ixi_subjects.csv when there is one (interpolation needs no ages). */
  subjects_csv: string | null;
  /** null: $XDG_CACHE_HOME/medformer/brain, else ~/.cache/medformer/brain. */
  cache_dir: string | null;
  shape: number;
  /** Key order matters: the interpolator's weights carry JSON.stringify(split), which the study compares. */
  split: { seed: number; test: number; val: number };
}

export function resolveBrainData(d: BrainDataFile | undefined): BrainDataSettings {
  return {
    data_dir: d?.data_dir ?? null,
    subjects_csv: d?.subjects_csv ?? null,
    cache_dir: d?.cache_dir ?? null,
    shape: d?.shape ?? 64,
    split: { seed: d?.split?.seed ?? 0, test: d?.split?.test ?? 4, val: d?.split?.val ?? 2 },
  };
}

/** $XDG_CACHE_HOME/medformer/brain, else ~/.cache/medformer/brain. */
export function defaultBrainCache(): string {
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'medformer', 'brain');
}

/** The IXI folder when neither the experiment nor --data-dir names one: $IXI_ROOT, else data/brain. */
export function defaultBrainDataDir(): string {
  return process.env.IXI_ROOT || 'data/brain';
}

export interface BrainPaths {
  dataDir: string;
  subjectsCsv: string | null;
  cacheDir: string;
}

/**
 * Absolute paths of the data section. The IXI folder: --data-dir, else data.data_dir, else $IXI_ROOT, else
 * data/brain (relative to the working directory). The cache: relative paths are under the run folder.
 */
export function brainPaths(d: BrainDataSettings, opts: { dataDir?: string; outDir: string }): BrainPaths {
  const dataDir = path.resolve(opts.dataDir ?? d.data_dir ?? defaultBrainDataDir());
  const csvDefault = path.join(dataDir, 'ixi_subjects.csv');
  const subjectsCsv = d.subjects_csv ? path.resolve(d.subjects_csv) : fs.existsSync(csvDefault) ? csvDefault : null;
  const cacheDir = d.cache_dir ? path.resolve(opts.outDir, d.cache_dir) : defaultBrainCache();
  return { dataDir, subjectsCsv, cacheDir };
}
