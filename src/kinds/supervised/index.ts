// Kind "supervised": Medformer trained on one MedMNIST data set (thesis Tables 4.2/4.3, 4.7/4.8).
import { ConfigError } from '../../errors.ts';
import { defineKind } from '../kind.ts';
import { CSA_SECTIONS, resolveChapter5 } from '../medformer/csa.ts';
import { medformerSchema, resolveMedformer } from '../medformer/schema.ts';
import { loadTasks, medformerData } from '../medformer/tasks.ts';
import { trainSupervised } from '../medformer/trainer.ts';

export const supervisedKind = defineKind({
  kind: 'supervised',
  summary: 'Medformer on one data set: per-epoch validation, the best checkpoint evaluated on test',
  schema: medformerSchema('supervised', CSA_SECTIONS),
  resolve(file, source) {
    const s = resolveMedformer(file, source);
    if (s.data.datasets.length !== 1) {
      throw new ConfigError(
        `${source}: kind "supervised" trains on one data set, /data/datasets lists ${s.data.datasets.length}`,
        'use kind "multitask" for several',
      );
    }
    return { ...s, ...resolveChapter5(file, source, s.training) };
  },
  data: (s, dataDir) => medformerData(s, dataDir),
  prepare: (s, opts) => loadTasks(s, opts.dataDir),
  run: (ctx, s, tasks) => trainSupervised(ctx, s, tasks),
});
