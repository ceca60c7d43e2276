// The study's fused volumes. For the arms: BrainFuse (transition slices by the trained interpolator, or a
// linear blend) and RawBrainFuse (plain concatenation) from the same proposals of pairs of training subjects;
// BrainFuse keeps only plausible seams, RawBrainFuse keeps every proposal unless fusion.filter_raw. For the
// Barlow Twins pre-training: unlabelled chains of several brains, which may re-fuse earlier fusions up to
// bt.max_generation. Volumes have one channel per modality; every channel is fused at the same seams.
import { buildInterpolator, type InterpolatorFile, type LoadedInterpolator } from '../../brain/interpolator.ts';
import { fuseChain, sourceShares, type TransitionMaker } from '../../brain/fusion.ts';
import { transitionSmoothness, type FusableVolume } from '../../data/fuse.ts';
import type { Vec3 } from '../../data/nifti.ts';
import { hashSeed, Rng } from '../../util/rng.ts';
import type { Sample } from './arms.ts';
import type { BrainAgeSettings } from './schema.ts';

/** Side and channel count of the volumes being fused ([channels, n, n, n], x fastest). */
export interface Geometry {
  n: number;
  channels: number;
}

export interface FusedSet {
  mode: 'interp' | 'raw';
  transition: string;
  /** Whether proposals with an implausible seam were dropped. */
  filtered: boolean;
  samples: (Sample & { a: string; b: string; axis: number; k: number; smoothness: number })[];
  proposed: number;
  kept: number;
  rejected: number;
  /** Kept volumes whose seam fails the plausibility threshold (only an unfiltered set has any). */
  implausible: number;
}

/** A fused volume of several sources, every channel fused at the same seams. */
interface Fused {
  volume: Float32Array;
  generation: number;
  /** Each source's share of the slices along the fused axis. */
  shares: number[];
  /** The worst seam over seams and channels (transitionSmoothness: 1 looks like anatomy). */
  smoothness: number;
}

/** Fuses `vols` ([channels, n³] each) in order along `axis` at seams `ks`; see fuseChain. */
async function fuseChannels(
  vols: readonly { volume: Float32Array; generation: number }[],
  g: Geometry,
  opts: { axis: 0 | 1 | 2; ks: readonly number[]; transition: number; maxGeneration: number },
  maker: TransitionMaker,
): Promise<Fused> {
  const V = g.n ** 3;
  const shape: Vec3 = [g.n, g.n, g.n];
  const t = maker.kind === 'raw' ? 0 : opts.transition;
  const volume = new Float32Array(g.channels * V);
  let generation = 0;
  let smoothness = 0;
  for (let c = 0; c < g.channels; c++) {
    const channel = vols.map((v): FusableVolume => ({ shape, data: v.volume.subarray(c * V, (c + 1) * V), generation: v.generation }));
    const f = await fuseChain(channel, opts, maker);
    volume.set(f.data, c * V);
    generation = f.generation;
    for (const k of opts.ks) smoothness = Math.max(smoothness, transitionSmoothness(f, opts.axis, k, t));
  }
  return { volume, generation, shares: sourceShares(g.n, opts.ks, t).map((x) => x / g.n), smoothness };
}

/**
 * The BrainFuse transition maker for `body`: the trained interpolator's network, or a linear blend when
 * fusion.interp_run is null. The network is built on the device for `body` and disposed after it.
 */
export async function withBrainFuseMaker<T>(
  interpolator: InterpolatorFile | null,
  s: BrainAgeSettings,
  say: (l: string) => void,
  body: (maker: TransitionMaker, transition: string) => Promise<T>,
): Promise<T> {
  if (interpolator === null) return body({ kind: 'linear' }, 'linear blend (fusion.interp_run is null)');
  const interp: LoadedInterpolator = buildInterpolator(interpolator);
  try {
    if (interp.split && JSON.stringify(interp.split) !== JSON.stringify(s.data.split)) {
      say(
        `warning: the interpolator was trained with split ${JSON.stringify(interp.split)}, this study uses ${JSON.stringify(s.data.split)}: it may have seen test subjects' images`,
      );
    }
    return await body({ kind: 'network', model: interp.model }, `network (${interp.file})`);
  } finally {
    interp.dispose();
  }
}

/**
 * Fused training volumes from pairs of training subjects. The same list of proposals (pair, axis, seam) is
 * tried for every mode, so BrainFuse and RawBrainFuse differ only in the transition and the filter: a
 * filtered mode drops proposals whose seam fails the plausibility threshold until `per_subject · subjects`
 * are kept; an unfiltered one keeps the first that many.
 */
export async function makeFusions(
  train: readonly Sample[],
  g: Geometry,
  s: BrainAgeSettings,
  modes: ReadonlySet<'interp' | 'raw'>,
  brainfuse: { maker: TransitionMaker; transition: string },
  say: (l: string) => void,
): Promise<FusedSet[]> {
  const f = s.fusion;
  const n = g.n;
  const wanted = f.per_subject * train.length;
  const rng = new Rng(hashSeed(f.seed, 'fusion-proposals'));
  const proposals = Array.from({ length: wanted * f.attempts }, () => {
    const a = rng.int(train.length);
    const b = (a + 1 + rng.int(train.length - 1)) % train.length;
    const axis: 0 | 1 | 2 = f.axes[rng.int(f.axes.length)]!;
    const k = Math.max(1, Math.min(n - 2 - f.transition, Math.round(rng.uniform(f.k_range[0], f.k_range[1]) * n)));
    return { a, b, axis, k };
  });
  const out: FusedSet[] = [];
  for (const mode of ['interp', 'raw'] as const) {
    if (!modes.has(mode)) continue;
    const maker: TransitionMaker = mode === 'raw' ? { kind: 'raw' } : brainfuse.maker;
    const transition = mode === 'raw' ? 'none (concatenation)' : brainfuse.transition;
    const filtered = mode === 'interp' || f.filter_raw;
    const set: FusedSet = { mode, transition, filtered, samples: [], proposed: 0, kept: 0, rejected: 0, implausible: 0 };
    const t0 = Date.now();
    for (const p of proposals) {
      if (set.kept >= wanted) break;
      set.proposed++;
      const A = train[p.a]!;
      const B = train[p.b]!;
      const fused = await fuseChannels(
        [
          { volume: A.volume, generation: 0 },
          { volume: B.volume, generation: 0 },
        ],
        g,
        { axis: p.axis, ks: [p.k], transition: f.transition, maxGeneration: 0 },
        maker,
      );
      const plausible = fused.smoothness <= f.threshold;
      if (!plausible && filtered) {
        set.rejected++;
        continue;
      }
      if (!plausible) set.implausible++;
      set.kept++;
      set.samples.push({
        id: `${A.id}+${B.id}`,
        age: fused.shares[0]! * A.age + fused.shares[1]! * B.age,
        volume: fused.volume,
        a: A.id,
        b: B.id,
        axis: p.axis,
        k: p.k,
        smoothness: fused.smoothness,
      });
    }
    const filterText = filtered
      ? `${set.rejected} rejected by the plausibility filter (seam ≤ ${f.threshold}× a typical slice step)`
      : `unfiltered (fusion.filter_raw false): ${set.implausible} of them fail the plausibility threshold ${f.threshold}`;
    say(
      `fusion ${mode === 'interp' ? 'BrainFuse' : 'RawBrainFuse'} (transition: ${transition}): ${set.kept} kept, ${filterText}, ${set.proposed} proposed, ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
    out.push(set);
  }
  return out;
}

/** An unlabelled fused volume for Barlow Twins, and how it was made. */
export interface SslFusion {
  id: string;
  volume: Float32Array;
  /** Ids of its sources in order: real subjects, or earlier fusions (`fused-<i>`). */
  sources: string[];
  generation: number;
  axis: 0 | 1 | 2;
  ks: number[];
  smoothness: number;
}

export interface SslFusionSettings {
  /** How many to make. */
  count: number;
  /** [fewest, most] sources of one fused volume. */
  chain: readonly [number, number];
  /** Highest generation of a fused volume (1: fuse real scans only). */
  max_generation: number;
  axes: readonly (0 | 1 | 2)[];
  transition: number;
  seed: number;
}

/**
 * Seams of a chain of `L` brains over `n` slices: seam i near i·n/L (less half the transition), jittered by
 * up to a quarter of a segment, clamped so every brain keeps at least one slice and every transition fits.
 */
export function chainSeams(n: number, L: number, t: number, rng: Rng): number[] {
  const ks: number[] = [];
  let lo = 1;
  for (let i = 1; i < L; i++) {
    const hi = n - 1 - t - (L - 1 - i) * (t + 1);
    const target = Math.round((i * n) / L - t / 2 + rng.uniform(-0.25, 0.25) * (n / L));
    const k = Math.min(hi, Math.max(lo, target));
    ks.push(k);
    lo = k + t + 1;
  }
  return ks;
}

/**
 * Fused volumes for the self-supervised stage, `count` of them: each a chain of 2..L brains (bt.chain)
 * along one of fusion.axes, drawn from the real volumes and the fusions made so far whose generation is
 * below `max_generation`, so later volumes re-fuse earlier ones up to that limit ("heavily fused"). No
 * plausibility filter: the labels are not used, and the views only need to look like brains. Deterministic
 * for a seed.
 */
export async function makeSslFusions(
  real: readonly { id: string; volume: Float32Array }[],
  g: Geometry,
  cfg: SslFusionSettings,
  maker: TransitionMaker,
): Promise<SslFusion[]> {
  const rng = new Rng(hashSeed(cfg.seed, 'ssl-fusions'));
  const pool: { id: string; volume: Float32Array; generation: number }[] = real.map((r) => ({ ...r, generation: 0 }));
  const out: SslFusion[] = [];
  for (let i = 0; i < cfg.count; i++) {
    const eligible = pool.map((p, j) => [p, j] as const).filter(([p]) => p.generation < cfg.max_generation);
    const L = Math.min(eligible.length, cfg.chain[0] + rng.int(cfg.chain[1] - cfg.chain[0] + 1));
    const picks = rng.shuffle(eligible.map(([, j]) => j)).slice(0, L);
    const axis = cfg.axes[rng.int(cfg.axes.length)]!;
    const ks = chainSeams(g.n, L, cfg.transition, rng);
    const sources = picks.map((j) => pool[j]!);
    const fused = await fuseChannels(sources, g, { axis, ks, transition: cfg.transition, maxGeneration: cfg.max_generation - 1 }, maker);
    const item: SslFusion = {
      id: `fused-${i}`,
      volume: fused.volume,
      sources: sources.map((x) => x.id),
      generation: fused.generation,
      axis,
      ks,
      smoothness: fused.smoothness,
    };
    pool.push({ id: item.id, volume: item.volume, generation: item.generation });
    out.push(item);
  }
  return out;
}

/** How often each value occurs, by value in ascending order: [1, 2, 1] -> {"1": 2, "2": 1}. */
export function countBy(xs: readonly number[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of [...xs].sort((a, b) => a - b)) out[String(x)] = (out[String(x)] ?? 0) + 1;
  return out;
}

/**
 * Everything a study fuses, with one interpolator on the device: the arms' pairs for `modes`, and
 * `sslCount` chains for Barlow Twins. Nothing is built when nothing is wanted.
 */
export async function makeStudyFusions(
  train: readonly Sample[],
  g: Geometry,
  s: BrainAgeSettings,
  wanted: { modes: ReadonlySet<'interp' | 'raw'>; sslCount: number },
  interpolator: InterpolatorFile | null,
  say: (l: string) => void,
): Promise<{ fusions: FusedSet[]; ssl: SslFusion[] }> {
  const { modes, sslCount } = wanted;
  if (modes.size === 0 && sslCount === 0) return { fusions: [], ssl: [] };
  return withBrainFuseMaker(interpolator, s, say, async (maker, transition) => {
    const fusions = modes.size ? await makeFusions(train, g, s, modes, { maker, transition }, say) : [];
    if (sslCount === 0) return { fusions, ssl: [] };
    const t0 = Date.now();
    const cfg = { ...s.bt, count: sslCount, axes: s.fusion.axes, transition: s.fusion.transition, seed: s.fusion.seed };
    const ssl = await makeSslFusions(train, g, cfg, maker);
    say(
      `fusion for Barlow Twins (transition: ${transition}): ${ssl.length} unlabelled volumes, chains of ${s.bt.chain.join('–')} brains, by generation ${JSON.stringify(countBy(ssl.map((x) => x.generation)))}, ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
    return { fusions, ssl };
  });
}
