// Kind "ssl": VICReg self-supervised pre-training (thesis section 4.7.6) on two augmented views of each image,
// through the input Adaptformer (with each data set's latents), the main body, mean pooling and the expander.
// No label is used. The checkpoint holds everything but task heads (there are none), plus the expander.
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import { splitSource } from '../../data/provenance.ts';
import { ConfigError } from '../../errors.ts';
import { Expander } from '../../nn/layers.ts';
import { Tensor, tidy } from '../../tensor/tensor.ts';
import type { RunContext } from '../../train/context.ts';
import { TrainingPhase } from '../../train/phase.ts';
import { lineChartSvg, readLog, reportHeader, series } from '../../train/report.ts';
import { NonNegNumber, PosInt, Strict } from '../../train/schema.ts';
import type { SslMetrics } from '../../train/records.ts';
import { writeFileAtomic, writeJsonAtomic } from '../../util/files.ts';
import { defineKind } from '../kind.ts';
import { epochOrder, loaderPosition, occurrences, taskBatchCounts, trainLoaders } from '../medformer/sampling.ts';
import { type MedformerSettings, medformerSchema, resolveMedformer } from '../medformer/schema.ts';
import { buildMedformer, loadTasks, medformerData, type TaskData } from '../medformer/tasks.ts';
import { vicreg } from './vicreg.ts';

const SslSchema = Strict({
  expander: Type.Array(PosInt, { minItems: 1 }),
  sim_coeff: NonNegNumber,
  std_coeff: NonNegNumber,
  cov_coeff: NonNegNumber,
  cosine_coeff: Type.Optional(NonNegNumber),
});

interface SslSettings extends MedformerSettings {
  ssl: { expander: number[]; sim_coeff: number; std_coeff: number; cov_coeff: number; cosine_coeff: number };
}

export const sslKind = defineKind({
  kind: 'ssl',
  summary: 'VICReg self-supervised pre-training of the input Adaptformer and main body',
  schema: medformerSchema('ssl', { ssl: SslSchema }),
  resolve(file, source): SslSettings {
    const s = resolveMedformer(file, source);
    if (!s.data.augment) throw new ConfigError(`${source}: kind "ssl" needs augmentation to make two views`, 'set /data/augment to true');
    return { ...s, ssl: { ...file.ssl, expander: [...file.ssl.expander], cosine_coeff: file.ssl.cosine_coeff ?? 0 } };
  },
  data: (s, dataDir) => medformerData(s, dataDir),
  prepare: (s, opts) => loadTasks(s, opts.dataDir),
  run: trainSsl,
});

async function trainSsl(ctx: RunContext, s: SslSettings, tasks: TaskData[]): Promise<void> {
  const t = s.training;
  const { ssl } = s;
  const { model, store, extension } = buildMedformer((line) => ctx.say(line), s, tasks, {
    withHeads: false,
    extend: (ps) => new Expander(ps, 'ssl.expander', s.model.hidden_dim, ssl.expander),
  });
  const expander = extension as Expander;
  const phase = new TrainingPhase(ctx, { store, training: t });
  const view1 = trainLoaders(s, tasks, 'view1');
  const view2 = trainLoaders(s, tasks, 'view2');
  const counts = taskBatchCounts(
    view1.map((l) => l.batchesPerEpoch),
    s.data.sampling,
    s.data.temperature,
  );
  const order = epochOrder(counts);
  const batchIndex = occurrences(order);
  const coeffs = { sim: ssl.sim_coeff, std: ssl.std_coeff, cov: ssl.cov_coeff, cosine: ssl.cosine_coeff };

  const result = await phase.run({
    stepsPerEpoch: order.length,
    step(epoch, position) {
      const ti = order[position];
      const at = loaderPosition(epoch, batchIndex[position], counts[ti], view1[ti].batchesPerEpoch);
      const a = view1[ti].batchAt(at.epoch, at.index);
      const b = view2[ti].batchAt(at.epoch, at.index);
      const meta = tasks[ti].meta;
      return tidy(() => {
        const z1 = expander.forward(model.represent(Tensor.from(a.x, a.shape), meta));
        const z2 = expander.forward(model.represent(Tensor.from(b.x, b.shape), meta));
        const terms = vicreg(z1, z2, coeffs);
        terms.loss.backward();
        const logged: Record<string, Tensor> = { invariance: terms.invariance, variance: terms.variance, covariance: terms.covariance };
        if (terms.cosine) logged.cosine = terms.cosine;
        return { loss: terms.loss, terms: logged, samples: a.size, tag: { task: tasks[ti].ds.key } };
      });
    },
  });
  if (result) {
    const records = readLog(ctx.outDir);
    const terms = ['invariance', 'variance', 'covariance', 'cosine'].flatMap((f) => series(records, 'train', f));
    const enc = (x: string) => new TextEncoder().encode(x);
    writeFileAtomic(path.join(ctx.outDir, 'vicreg.svg'), enc(lineChartSvg('VICReg terms', 'step', terms, { logY: true })));
    writeFileAtomic(
      path.join(ctx.outDir, 'loss.svg'),
      enc(lineChartSvg('VICReg loss', 'step', series(records, 'train', 'loss'), { logY: true })),
    );
    const last = records.filter((r) => r.event === 'train').at(-1) ?? {};
    const sps = +((result.step * t.batch_size) / Math.max(1e-3, result.trainSeconds)).toFixed(2);
    const data_source = Object.fromEntries(tasks.map((task) => [task.ds.key, splitSource(task.train)]));
    const summary: SslMetrics = {
      ssl: { steps: result.step, wall_s: +result.trainSeconds.toFixed(1), samples_per_s: sps, final: last, data_source },
    };
    writeJsonAtomic(path.join(ctx.outDir, 'metrics.json'), summary);
    writeFileAtomic(
      path.join(ctx.outDir, 'report.md'),
      enc(
        [
          ...reportHeader(s.name, s.description, ctx.backend.describe()),
          `VICReg self-supervised pre-training: ${result.step} steps in ${result.trainSeconds.toFixed(0)} s.`,
          '',
          '![VICReg terms](vicreg.svg)',
          '',
          '![loss](loss.svg)',
          '',
        ].join('\n'),
      ),
    );
    ctx.say(`ssl: ${result.step} steps; checkpoint in ${ctx.outDir} (use it as finetune.init)`);
  }
  store.dispose();
}
