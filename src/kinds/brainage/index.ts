// Kind "brainage": the BrainFuse brain-age study (thesis section 5.1), every arm of the thesis's table for
// every seed, in one run folder (study.ts).
import { readInterpolator, type InterpolatorFile } from '../../brain/interpolator.ts';
import { brainPaths } from '../../brain/settings.ts';
import { loadBrainSubjects, splitSubjects } from '../../brain/subjects.ts';
import { ConfigError } from '../../errors.ts';
import { defineKind } from '../kind.ts';
import { BRAINAGE_RENAMED, BrainAgeSchema, parseArm, resolveBrainAge } from './schema.ts';
import { type BrainAgeInputs, runStudy } from './study.ts';

export const brainageKind = defineKind({
  kind: 'brainage',
  summary: 'BrainFuse brain-age study: a 3D ResNet over IXI age bins, arms NT, +BT, +BrainFuse, +RawBrainFuse, +ConsistencyReg',
  schema: BrainAgeSchema,
  renamed: BRAINAGE_RENAMED,
  resolve: resolveBrainAge,
  prepare(settings, opts): BrainAgeInputs {
    const notes: string[] = [];
    const n = settings.data.shape;
    const subjects = loadBrainSubjects(brainPaths(settings.data, opts), n, {
      needAges: true,
      modalities: settings.data.modalities,
      say: (l) => notes.push(l),
    });
    const split = splitSubjects(subjects, settings.data.split);
    const arms = settings.study.arms.map(parseArm);
    if (arms.some((a) => a.bt) && Math.min(settings.training.batch_size, split.train.length) < 2) {
      throw new ConfigError('Barlow Twins needs a batch of at least 2 volumes', 'raise training.batch_size or use more training subjects');
    }
    // The interpolator's weights are read and checked now; its network is built on the device when fusing
    // (for the BrainFuse arms and for the Barlow Twins stage's fused volumes).
    const where = settings.fusion.interp_run;
    const fusesForBt = settings.bt.fused_per_real > 0 && arms.some((a) => a.bt);
    let interpolator: InterpolatorFile | null = null;
    if (where !== null && (fusesForBt || arms.some((a) => a.fusion === 'interp'))) {
      interpolator = readInterpolator(where);
      if (interpolator.shape !== n) {
        throw new ConfigError(
          `the interpolator in ${where} was trained at ${interpolator.shape}³, the study preprocesses at ${n}³`,
          'make data.shape equal in both experiments',
        );
      }
    }
    return { split, interpolator, notes };
  },
  run: runStudy,
});
