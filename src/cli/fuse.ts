// `mf fuse`: make BrainFuse volumes. Two or more volumes (NIfTI paths or IXI subject ids) are fused along
// an axis: the first k slices of the first, then transition slices made by the trained interpolation
// network (BrainFuse), a straight blend (--linear) or nothing (--raw, RawBrainFuse), then the second's
// slices, and so on. The label is the slice-weighted mean age of the sources. Each seam is scored by the
// plausibility filter. `--count N` instead makes N random fusions of pairs of subjects from a data folder,
// keeping those that pass the filter. Writes NIfTI, a JSON sidecar with the label, and a PNG montage.
import fs from 'node:fs';
import path from 'node:path';
import { initEngine } from '../backend/index.ts';
import { fuseChain, sourceShares, type TransitionMaker } from '../brain/fusion.ts';
import { loadInterpolator, type LoadedInterpolator } from '../brain/interpolator.ts';
import { defaultBrainCache, defaultBrainDataDir } from '../brain/settings.ts';
import { preprocessBrain } from '../data/brain.ts';
import { midSliceMontagePng, transitionSmoothness, type FusableVolume, type FusedVolume } from '../data/fuse.ts';
import { findIxiVolumes, ixiId, loadIxiSubjects } from '../data/ixi.ts';
import { readNifti, writeNifti, type Vec3 } from '../data/nifti.ts';
import { ConfigError, MfError } from '../errors.ts';
import { readJsonFile, writeJsonAtomic } from '../util/files.ts';
import { Type } from '@sinclair/typebox';
import { hashSeed, Rng } from '../util/rng.ts';

/** The part of a fused volume's JSON sidecar that `mf fuse` reads back: how many fusions deep it is. */
const SidecarSchema = Type.Object({ generation: Type.Optional(Type.Integer({ minimum: 0 })) });

export interface FuseFlags {
  axis?: string;
  k?: string;
  transition?: string;
  checkpoint?: string;
  raw?: boolean;
  linear?: boolean;
  out?: string;
  png?: string | false;
  dataDir?: string;
  shape?: string;
  cacheDir?: string;
  asIs?: boolean;
  count?: string;
  seed?: string;
  threshold?: string;
  ages?: string;
  maxGeneration?: string;
  backend?: string;
  json?: boolean;
}

interface Source {
  name: string;
  id: string | null;
  file: string;
  age: number | null;
  vol: FusableVolume & { spacing?: Vec3; affine?: number[] };
}

export interface FuseOutcome {
  file: string;
  sources: { name: string; file: string; age: number | null; share: number }[];
  axis: number;
  k: number[];
  transition: number;
  mode: 'BrainFuse' | 'BrainFuse-linear' | 'RawBrainFuse';
  /** Slice-weighted mean age; null when a source's age is unknown. */
  age: number | null;
  generation: number;
  smoothness: number[];
  plausible: boolean;
  threshold: number;
}

function int(name: string, v: string | undefined, def: number, min = 0): number {
  if (v === undefined) return def;
  const x = Number(v);
  if (!Number.isInteger(x) || x < min) throw new ConfigError(`--${name} must be an integer >= ${min}, got ${v}`);
  return x;
}

function num(name: string, v: string | undefined, def: number): number {
  if (v === undefined) return def;
  const x = Number(v);
  if (!Number.isFinite(x) || x <= 0) throw new ConfigError(`--${name} must be a number > 0, got ${v}`);
  return x;
}

const sidecarOf = (file: string) => `${file.replace(/\.nii(\.gz)?$/i, '')}.json`;

/** Ages by IXI id from the data folder's CSV (when there is one). */
function agesFrom(dataDir: string): Map<string, number> {
  const csv = path.join(dataDir, 'ixi_subjects.csv');
  const out = new Map<string, number>();
  if (fs.existsSync(csv)) for (const s of loadIxiSubjects(csv, { dataRoot: dataDir })) out.set(s.id, s.age);
  return out;
}

function loadSources(inputs: readonly string[], flags: FuseFlags, dataDir: string, shape: number, cacheDir: string): Source[] {
  const ages = agesFrom(dataDir);
  const extraAges = flags.ages ? flags.ages.split(',').map((a) => Number(a)) : [];
  if (extraAges.some((a) => !Number.isFinite(a) || a < 0))
    throw new ConfigError(`--ages ${flags.ages} must be comma-separated numbers of years`);
  let found: Map<string, string> | null = null;
  return inputs.map((input, i) => {
    let file: string;
    if (fs.existsSync(input)) file = input;
    else {
      const id = ixiId(input);
      if (!id) throw new ConfigError(`${input}: no such file, and not an IXI subject id`);
      if (!fs.existsSync(dataDir))
        throw new ConfigError(
          `${input}: subject ids need the IXI folder, and ${dataDir} does not exist`,
          'pass --data-dir or set $IXI_ROOT',
        );
      found ??= findIxiVolumes(dataDir);
      const f = found.get(id);
      if (!f) throw new ConfigError(`${input}: no volume of ${id} under ${dataDir}`);
      file = f;
    }
    const id = ixiId(path.basename(file));
    const age = extraAges[i] ?? (id ? ages.get(id) : undefined) ?? null;
    let generation = 0;
    const side = sidecarOf(file);
    if (fs.existsSync(side)) {
      const meta = readJsonFile(side, SidecarSchema, {
        what: 'a fused volume sidecar',
        fix: 'delete it or rewrite it with mf fuse',
        maxBytes: 2 ** 20,
      });
      generation = meta.generation ?? 0;
    }
    const vol = flags.asIs ? readNifti(file) : preprocessBrain(file, { shape: [shape, shape, shape], cacheDir });
    return { name: input, id, file, age, vol: { shape: vol.shape, data: vol.data, spacing: vol.spacing, affine: vol.affine, generation } };
  });
}

async function transitionMaker(
  flags: FuseFlags,
): Promise<{ maker: TransitionMaker; interp: LoadedInterpolator | null; mode: FuseOutcome['mode'] }> {
  if (flags.raw && flags.linear) throw new ConfigError('--raw and --linear exclude each other');
  if (flags.raw) return { maker: { kind: 'raw' }, interp: null, mode: 'RawBrainFuse' };
  if (flags.linear) return { maker: { kind: 'linear' }, interp: null, mode: 'BrainFuse-linear' };
  const where = flags.checkpoint ?? 'runs/brainfuse-interp';
  if (!fs.existsSync(where)) {
    throw new MfError(
      `no interpolation checkpoint at ${where}`,
      'train one with `mf run experiments/brainfuse-interp.json`, pass --checkpoint, or use --raw (RawBrainFuse) / --linear',
    );
  }
  await initEngine({ backend: (flags.backend ?? 'auto') as 'auto' | 'webgpu' | 'cpu' });
  const interp = loadInterpolator(where);
  return { maker: { kind: 'network', model: interp.model }, interp, mode: 'BrainFuse' };
}

function writeOutcome(file: string, fused: FusedVolume, first: Source, outcome: FuseOutcome): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  writeNifti(
    file,
    { shape: fused.shape, data: fused.data, spacing: first.vol.spacing, affine: first.vol.affine },
    { description: `${outcome.mode} gen ${outcome.generation}` },
  );
  writeJsonAtomic(sidecarOf(file), outcome);
}

function seamScores(fused: FusedVolume, axis: 0 | 1 | 2, ks: readonly number[], t: number): number[] {
  return ks.map((k) => +transitionSmoothness(fused, axis, k, t).toFixed(4));
}

export async function fuseCommand(inputs: string[], flags: FuseFlags): Promise<void> {
  const axis = int('axis', flags.axis, 2);
  if (axis > 2) throw new ConfigError(`--axis ${axis} must be 0, 1 or 2`);
  const ax = axis as 0 | 1 | 2;
  const transition = int('transition', flags.transition, 7);
  const threshold = num('threshold', flags.threshold, 3);
  const shape = int('shape', flags.shape, 64, 8);
  const maxGeneration = int('max-generation', flags.maxGeneration, 0);
  const dataDir = path.resolve(flags.dataDir ?? defaultBrainDataDir());
  const cacheDir = flags.cacheDir ? path.resolve(flags.cacheDir) : defaultBrainCache();
  const count = flags.count === undefined ? null : int('count', flags.count, 1, 1);
  if (count === null && inputs.length < 2) throw new ConfigError('mf fuse needs two or more volumes (paths or IXI ids), or --count N');
  if (count !== null && inputs.length > 0 && inputs.length < 2)
    throw new ConfigError('--count draws pairs: give no volumes (all subjects of --data-dir) or at least two');
  const { maker, interp, mode } = await transitionMaker(flags);
  const t = maker.kind === 'raw' ? 0 : transition;
  const say = (line: string) => {
    if (!flags.json) console.log(line);
  };
  try {
    if (count === null) {
      const sources = loadSources(inputs, flags, dataDir, shape, cacheDir);
      const n = sources[0]!.vol.shape[ax]!;
      if (sources.some((s) => s.vol.shape.some((d, i) => d !== sources[0]!.vol.shape[i]))) {
        throw new ConfigError(
          `the volumes have different shapes (${sources.map((s) => `[${s.vol.shape.join(', ')}]`).join(', ')})`,
          'drop --as-is to preprocess them onto one grid',
        );
      }
      const ks = flags.k
        ? flags.k.split(',').map((x) => Number(x))
        : Array.from({ length: sources.length - 1 }, (_, i) => Math.round(((i + 1) * n) / sources.length - t / 2));
      if (ks.length !== sources.length - 1)
        throw new ConfigError(`--k needs ${sources.length - 1} seam position(s) for ${sources.length} volumes, got ${ks.length}`);
      const fused = await fuseChain(
        sources.map((s) => s.vol),
        { axis: ax, ks, transition, maxGeneration },
        maker,
      );
      const shares = sourceShares(n, ks, t);
      const ages = sources.map((s) => s.age);
      const age = ages.every((a): a is number => a !== null) ? ages.reduce((acc, a, i) => acc + (a * shares[i]!) / n, 0) : null;
      const smoothness = seamScores(fused, ax, ks, t);
      const out = path.resolve(flags.out ?? 'fused.nii.gz');
      const outcome: FuseOutcome = {
        file: out,
        sources: sources.map((s, i) => ({ name: s.name, file: path.resolve(s.file), age: s.age, share: +(shares[i]! / n).toFixed(4) })),
        axis,
        k: ks,
        transition: t,
        mode,
        age: age === null ? null : +age.toFixed(3),
        generation: fused.generation,
        smoothness,
        plausible: smoothness.every((x) => x <= threshold),
        threshold,
      };
      writeOutcome(out, fused, sources[0]!, outcome);
      const png = flags.png === false ? null : path.resolve(flags.png ?? `${out.replace(/\.nii(\.gz)?$/i, '')}.png`);
      if (png) midSliceMontagePng([...sources.map((s) => s.vol), fused], png);
      if (flags.json) console.log(JSON.stringify(outcome, null, 2));
      say(
        `${mode}: ${out} (age ${outcome.age === null ? 'unknown' : outcome.age.toFixed(1)}; seam smoothness ${smoothness.join(', ')}; ${outcome.plausible ? 'plausible' : `NOT plausible (threshold ${threshold})`})${png ? `; montage ${png}` : ''}`,
      );
      return;
    }

    // --count: random pairs of subjects from the data folder.
    const seed = int('seed', flags.seed, 0);
    let names = inputs;
    if (names.length === 0) {
      if (!fs.existsSync(dataDir))
        throw new ConfigError(`--count needs the IXI folder, and ${dataDir} does not exist`, 'pass --data-dir or set $IXI_ROOT');
      names = [...findIxiVolumes(dataDir).values()];
    }
    if (names.length < 2) throw new ConfigError(`--count needs at least two volumes, found ${names.length} in ${dataDir}`);
    const sources = loadSources(names, flags, dataDir, shape, cacheDir);
    const n = sources[0]!.vol.shape[ax]!;
    const outDir = path.resolve(flags.out ?? 'fused');
    fs.mkdirSync(outDir, { recursive: true });
    const rng = new Rng(hashSeed(seed, 'mf-fuse'));
    const kept: { outcome: FuseOutcome; fused: FusedVolume }[] = [];
    let proposed = 0;
    let rejected = 0;
    while (kept.length < count && proposed < 10 * count) {
      proposed++;
      const a = rng.int(sources.length);
      const b = (a + 1 + rng.int(sources.length - 1)) % sources.length;
      const k = Math.max(1, Math.min(n - 2 - t, Math.round(rng.uniform(0.3, 0.7) * n)));
      const pair = [sources[a]!, sources[b]!];
      const fused = await fuseChain(
        pair.map((s) => s.vol),
        { axis: ax, ks: [k], transition, maxGeneration },
        maker,
      );
      const smoothness = seamScores(fused, ax, [k], t);
      if (!smoothness.every((x) => x <= threshold)) {
        rejected++;
        continue;
      }
      const shares = sourceShares(n, [k], t);
      const file = path.join(outDir, `fused-${String(kept.length).padStart(3, '0')}.nii.gz`);
      const age = pair[0]!.age !== null && pair[1]!.age !== null ? (pair[0]!.age * shares[0]! + pair[1]!.age * shares[1]!) / n : null;
      const outcome: FuseOutcome = {
        file,
        sources: pair.map((s, i) => ({
          name: s.id ?? s.name,
          file: path.resolve(s.file),
          age: s.age,
          share: +(shares[i]! / n).toFixed(4),
        })),
        axis,
        k: [k],
        transition: t,
        mode,
        age: age === null ? null : +age.toFixed(3),
        generation: fused.generation,
        smoothness,
        plausible: true,
        threshold,
      };
      writeOutcome(file, fused, pair[0]!, outcome);
      kept.push({ outcome, fused });
    }
    const png = flags.png === false ? null : path.resolve(flags.png ?? path.join(outDir, 'montage.png'));
    if (png && kept.length)
      midSliceMontagePng(
        kept.slice(0, 8).map((x) => x.fused),
        png,
      );
    const summary = {
      mode,
      seed,
      axis,
      transition: t,
      threshold,
      proposed,
      kept: kept.length,
      rejected,
      files: kept.map((x) => ({
        file: x.outcome.file,
        age: x.outcome.age,
        sources: x.outcome.sources.map((s) => s.name),
        k: x.outcome.k[0],
        smoothness: x.outcome.smoothness[0],
      })),
    };
    writeJsonAtomic(path.join(outDir, 'summary.json'), summary);
    if (flags.json) console.log(JSON.stringify(summary, null, 2));
    say(
      `${mode}: ${kept.length} fusions kept, ${rejected} rejected by the plausibility filter (threshold ${threshold}), ${proposed} proposed -> ${outDir}${png && kept.length ? ` (montage ${png})` : ''}`,
    );
    if (kept.length < count)
      process.stderr.write(
        `warning: only ${kept.length} of ${count} fusions passed the filter in ${proposed} proposals; raise --threshold or add a transition\n`,
      );
  } finally {
    interp?.dispose();
  }
}
