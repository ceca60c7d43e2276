// Kind "brainfuse-interp": the BrainFuse slice-interpolation network (thesis section 5.1), trained
// self-supervised on IXI T1 volumes; its weights are what `mf fuse` and the brain-age study's BrainFuse arms use.
import { brainPaths } from '../../brain/settings.ts';
import { loadBrainSubjects, splitSubjects } from '../../brain/subjects.ts';
import { defineKind } from '../kind.ts';
import { BrainfuseInterpSchema, INTERP_RENAMED, resolveInterp } from './schema.ts';
import { type InterpInputs, trainInterp } from './train.ts';

export const brainfuseInterpKind = defineKind({
  kind: 'brainfuse-interp',
  summary: 'BrainFuse slice interpolation: a 2D U-Net learns the middle slice between two slices of IXI T1 volumes',
  schema: BrainfuseInterpSchema,
  renamed: INTERP_RENAMED,
  resolve: resolveInterp,
  prepare(settings, opts): InterpInputs {
    const notes: string[] = [];
    const paths = brainPaths(settings.data, opts);
    const subjects = loadBrainSubjects(paths, settings.data.shape, { needAges: false, say: (l) => notes.push(l) });
    return { split: splitSubjects(subjects, settings.data.split), notes };
  },
  run: trainInterp,
});
