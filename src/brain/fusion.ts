// Fusing two volumes, or a chain of several, with a transition maker: the trained network (BrainFuse), a
// straight blend, or none (RawBrainFuse). Used by the brain-age study and `mf fuse`.
import { fuseVolumes, getSlice, type FusableVolume, type FusedVolume, type SliceInterpolator } from '../data/fuse.ts';
import type { Vec3 } from '../data/nifti.ts';
import { ConfigError, MfError } from '../errors.ts';
import type { SliceUNet } from '../models/brainfuse.ts';
import { synthesizeSlices } from './interpolator.ts';

/** How transition slices are made: the trained network (BrainFuse), a straight blend, or none (RawBrainFuse). */
export type TransitionMaker = { kind: 'network'; model: SliceUNet } | { kind: 'linear' } | { kind: 'raw' };

/** Width and height of a slice along `axis` (getSlice's layout: the lower remaining axis runs fastest). */
export function sliceDims(shape: Vec3, axis: 0 | 1 | 2): { W: number; H: number } {
  const [u, v] = [0, 1, 2].filter((a) => a !== axis) as [number, number];
  return { W: shape[u]!, H: shape[v]! };
}

/** fuseVolumes with the transition made by `maker` (the network's slices are computed first, on the device). */
export async function fusePair(
  a: FusableVolume,
  b: FusableVolume,
  opts: { axis: 0 | 1 | 2; k: number; transition: number; maxGeneration?: number },
  maker: TransitionMaker,
): Promise<FusedVolume> {
  const { axis, k } = opts;
  if (maker.kind === 'raw') return fuseVolumes(a, b, { axis, k, transition: 0, mode: 'raw', maxGeneration: opts.maxGeneration });
  const t = opts.transition;
  let interpolate: SliceInterpolator | undefined;
  if (maker.kind === 'network' && t > 0 && k >= 1 && k + t < a.shape[axis]! && b.shape[axis] === a.shape[axis]) {
    const { W, H } = sliceDims(a.shape, axis);
    interpolate = precomputed(await synthesizeSlices(maker.model, getSlice(a, axis, k - 1), getSlice(b, axis, k + t), t, W, H));
  }
  return fuseVolumes(a, b, { axis, k, transition: t, mode: 'interp', interpolate, maxGeneration: opts.maxGeneration });
}

/**
 * fuseVolumes takes a synchronous interpolator but the network's output has to be read back from the
 * device, so transitions are made first and handed over through this.
 */
export function precomputed(slices: Float32Array[]): SliceInterpolator {
  return (_before, _after, count) => {
    if (count !== slices.length) throw new MfError(`precomputed transition has ${slices.length} slices, ${count} wanted`);
    return slices;
  };
}

/** Slice shares of each source of a chain along the fused axis (transition slices split evenly between neighbours). */
export function sourceShares(n: number, ks: readonly number[], transition: number): number[] {
  const bounds = [0, ...ks.map((k) => k + transition / 2), n];
  return bounds.slice(1).map((b, i) => b - bounds[i]!);
}

/**
 * Fuses `vols` in order along `axis`: volume i's slices end at seam ks[i], then the transition, then volume
 * i + 1's. The result is one generation above its newest source; sources above `maxGeneration` are refused.
 * `fractionA` is the first source's share of the slices.
 */
export async function fuseChain(
  vols: readonly FusableVolume[],
  opts: { axis: 0 | 1 | 2; ks: readonly number[]; transition: number; maxGeneration: number },
  maker: TransitionMaker,
): Promise<FusedVolume> {
  const { axis, ks } = opts;
  if (vols.length < 2 || ks.length !== vols.length - 1)
    throw new ConfigError(`a chain of ${vols.length} volumes needs ${Math.max(0, vols.length - 1)} seams, got ${ks.length}`);
  const n = vols[0]!.shape[axis]!;
  const t = maker.kind === 'raw' ? 0 : opts.transition;
  for (let i = 0; i < ks.length; i++) {
    const lo = i === 0 ? 1 : ks[i - 1]! + t + 1;
    if (!Number.isInteger(ks[i]) || ks[i]! < lo || ks[i]! + t > n - 1) {
      throw new ConfigError(
        `seam ${i + 1} at k ${ks[i]} must leave at least one slice of every volume: k in ${lo}..${n - 1 - t} along axis ${axis} (${n} slices, transition ${t})`,
      );
    }
  }
  const gen = Math.max(...vols.map((v) => v.generation ?? 0));
  if (gen > opts.maxGeneration) {
    throw new ConfigError(
      `refusing to fuse a generation-${gen} volume (max generation ${opts.maxGeneration}): re-fusing fused volumes compounds seams and blurs the age label`,
      'fuse real scans, or raise the generation limit deliberately',
    );
  }
  let f: FusableVolume = { ...vols[0]!, generation: gen };
  let out: FusedVolume | null = null;
  for (let i = 0; i < ks.length; i++) {
    out = await fusePair(f, vols[i + 1]!, { axis, k: ks[i]!, transition: t, maxGeneration: gen }, maker);
    // An intermediate of the chain is not a re-fusion: keep the sources' generation until the end.
    f = { ...out, generation: gen };
  }
  return { ...out!, generation: gen + 1, fractionA: sourceShares(n, ks, t)[0]! / n };
}
