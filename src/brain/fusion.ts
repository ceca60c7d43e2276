// Fusing two volumes with a transition maker: the trained network (BrainFuse), a straight blend, or none
// (RawBrainFuse). Used by the brain-age study and `mf fuse`.
import { fuseVolumes, getSlice, type FusableVolume, type FusedVolume, type SliceInterpolator } from '../data/fuse.ts';
import type { Vec3 } from '../data/nifti.ts';
import { MfError } from '../errors.ts';
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
