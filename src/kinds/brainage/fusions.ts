// The study's fused training volumes: BrainFuse (transition slices by the trained interpolator, or a linear
// blend) and RawBrainFuse (plain concatenation), from the same proposals, filtered for plausible seams.
import { buildInterpolator, type InterpolatorFile, type LoadedInterpolator } from '../../brain/interpolator.ts';
import { fusePair, type TransitionMaker } from '../../brain/fusion.ts';
import { fusedAge, transitionSmoothness, type FusableVolume } from '../../data/fuse.ts';
import type { Vec3 } from '../../data/nifti.ts';
import { hashSeed, Rng } from '../../util/rng.ts';
import type { Sample } from './arms.ts';
import type { BrainAgeSettings } from './schema.ts';

export interface FusedSet {
  mode: 'interp' | 'raw';
  transition: string;
  samples: (Sample & { a: string; b: string; axis: number; k: number; smoothness: number })[];
  proposed: number;
  kept: number;
  rejected: number;
}

/**
 * Fused training volumes from pairs of training subjects. The same list of proposals (pair, axis, seam) is
 * tried for every mode, so BrainFuse and RawBrainFuse differ only in the transition; proposals whose seam
 * fails the plausibility filter are dropped until `per_subject · subjects` are kept.
 */
export async function makeFusions(
  train: readonly Sample[],
  n: number,
  s: BrainAgeSettings,
  modes: ReadonlySet<'interp' | 'raw'>,
  interpolator: InterpolatorFile | null,
  say: (l: string) => void,
): Promise<FusedSet[]> {
  const f = s.fusion;
  const wanted = f.per_subject * train.length;
  const rng = new Rng(hashSeed(f.seed, 'fusion-proposals'));
  const proposals = Array.from({ length: wanted * f.attempts }, () => {
    const a = rng.int(train.length);
    const b = (a + 1 + rng.int(train.length - 1)) % train.length;
    const axis: 0 | 1 | 2 = f.axes[rng.int(f.axes.length)]!;
    const k = Math.max(1, Math.min(n - 2 - f.transition, Math.round(rng.uniform(f.k_range[0], f.k_range[1]) * n)));
    return { a, b, axis, k };
  });
  const shape: Vec3 = [n, n, n];
  const out: FusedSet[] = [];
  for (const mode of ['interp', 'raw'] as const) {
    if (!modes.has(mode)) continue;
    let maker: TransitionMaker = { kind: 'raw' };
    let interp: LoadedInterpolator | null = null;
    let transition = 'none (concatenation)';
    if (mode === 'interp') {
      if (interpolator === null) {
        maker = { kind: 'linear' };
        transition = 'linear blend (fusion.interp_run is null)';
      } else {
        interp = buildInterpolator(interpolator);
        if (interp.split && JSON.stringify(interp.split) !== JSON.stringify(s.data.split)) {
          say(
            `warning: the interpolator was trained with split ${JSON.stringify(interp.split)}, this study uses ${JSON.stringify(s.data.split)}: it may have seen test subjects' images`,
          );
        }
        maker = { kind: 'network', model: interp.model };
        transition = `network (${interp.file})`;
      }
    }
    const set: FusedSet = { mode, transition, samples: [], proposed: 0, kept: 0, rejected: 0 };
    const t0 = Date.now();
    try {
      for (const p of proposals) {
        if (set.kept >= wanted) break;
        set.proposed++;
        const A = train[p.a]!;
        const B = train[p.b]!;
        const va: FusableVolume = { shape, data: A.volume };
        const vb: FusableVolume = { shape, data: B.volume };
        const t = mode === 'raw' ? 0 : f.transition;
        const fused = await fusePair(va, vb, { axis: p.axis, k: p.k, transition: t }, maker);
        const smoothness = transitionSmoothness(fused, p.axis, p.k, t);
        if (!(smoothness <= f.threshold)) {
          set.rejected++;
          continue;
        }
        set.kept++;
        set.samples.push({
          id: `${A.id}+${B.id}`,
          age: fusedAge(A.age, B.age, fused.fractionA),
          volume: fused.data,
          a: A.id,
          b: B.id,
          axis: p.axis,
          k: p.k,
          smoothness,
        });
      }
    } finally {
      interp?.dispose();
    }
    say(
      `fusion ${mode === 'interp' ? 'BrainFuse' : 'RawBrainFuse'} (transition: ${transition}): ${set.kept} kept, ${set.rejected} rejected by the plausibility filter (seam ≤ ${f.threshold}× a typical slice step), ${set.proposed} proposed, ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
    out.push(set);
  }
  return out;
}
