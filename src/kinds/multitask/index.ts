// Kind "multitask": one Medformer over several MedMNIST data sets, one head per task (thesis section 4.7.5,
// Tables 4.4/4.9). "Each mini-batch contains samples from various tasks ... a single gradient step updates the
// shared backbone with contributions from multiple tasks": a step is `sub_batches` sub-batches drawn in turn
// from a combined shuffled index over every task's batches (grouped by data set, since 2D and 3D shapes and each
// set's latents differ), their mean loss one gradient step. Every task is reported from one checkpoint, the one
// with the best mean validation AUC over the tasks.
import { Type } from '@sinclair/typebox';
import { ConfigError } from '../../errors.ts';
import { PosInt, Strict } from '../../train/schema.ts';
import { defineKind } from '../kind.ts';
import { type Chapter5Settings, CSA_SECTIONS, resolveChapter5 } from '../medformer/csa.ts';
import { type MedformerSettings, medformerSchema, resolveMedformer } from '../medformer/schema.ts';
import { loadTasks, medformerData } from '../medformer/tasks.ts';
import { trainSupervised } from '../medformer/trainer.ts';

const MultitaskSchema = Strict({
  /** Sub-batches per step (each batch_size / sub_batches samples of one data set). */
  sub_batches: Type.Optional(PosInt),
  /** "mean": one checkpoint for every task, by mean validation AUC (the default); "per-task": each task's own best. */
  selection: Type.Optional(Type.Union([Type.Literal('mean'), Type.Literal('per-task')])),
});

interface MultitaskSettings extends MedformerSettings, Chapter5Settings {
  multitask: { sub_batches: number; selection: 'mean' | 'per-task' };
}

/**
 * The default number of sub-batches: as many as there are tasks, but no sub-batch under 8 samples, and a divisor
 * of the batch size so that every sub-batch has the same shape (no new kernel specialisations). This project's
 * choice; the thesis prints no sub-batch size.
 */
export function defaultSubBatches(tasks: number, batchSize: number): number {
  let k = Math.max(1, Math.min(tasks, Math.floor(batchSize / 8)));
  while (batchSize % k !== 0) k--;
  return k;
}

export const multitaskKind = defineKind({
  kind: 'multitask',
  summary: 'Medformer on several data sets at once: mixed mini-batches, one head per task, one checkpoint for all',
  schema: medformerSchema('multitask', { multitask: Type.Optional(MultitaskSchema), ...CSA_SECTIONS }),
  resolve(file, source): MultitaskSettings {
    const s = resolveMedformer(file, source);
    const b = s.training.batch_size;
    const k = file.multitask?.sub_batches ?? defaultSubBatches(s.data.datasets.length, b);
    if (b % k !== 0)
      throw new ConfigError(
        `${source}: /multitask/sub_batches ${k} must divide /training/batch_size ${b}`,
        'every sub-batch has the same size',
      );
    return {
      ...s,
      multitask: { sub_batches: k, selection: file.multitask?.selection ?? 'mean' },
      ...resolveChapter5(file, source, s.training),
    };
  },
  data: (s, dataDir) => medformerData(s, dataDir),
  prepare: (s, opts) => loadTasks(s, opts.dataDir),
  run: (ctx, s, tasks) => trainSupervised(ctx, s, tasks, { subBatches: s.multitask.sub_batches, select: s.multitask.selection }),
});
