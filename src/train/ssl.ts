// Self-supervised pre-training (kind "ssl"): VICReg on two augmented views of each image, through the
// input Adaptformer (with each data set's latents), the main body, mean pooling and the expander.
// No label is used. The checkpoint holds everything but task heads (there are none), plus the expander.
import path from 'node:path';
import { ConfigError } from '../errors.ts';
import { Expander } from '../nn/layers.ts';
import { Tensor, tidy } from '../tensor/tensor.ts';
import { AdamW } from './adamw.ts';
import { writeFileAtomic } from './checkpoint.ts';
import { runLoop } from './loop.ts';
import { lineChartSvg } from './report.ts';
import type { Session } from './session.ts';
import { batchIndexAt, epochOrder, loaderPosition, readLog, series, taskBatchCounts, trainLoaders } from './supervised.ts';
import { vicreg } from './vicreg.ts';

export async function trainSsl(session: Session): Promise<void> {
  const { exp } = session;
  const t = exp.training;
  const ssl = exp.ssl;
  if (!ssl) throw new ConfigError(`${exp.source}: kind "ssl" needs an "ssl" section`, 'add {"expander": [...], "sim_coeff": 25, "std_coeff": 25, "cov_coeff": 1}');
  if (!exp.data.augment) throw new ConfigError(`${exp.source}: SSL needs augmentation to make two views`, 'set data.augment to true');
  const tasks = session.tasks;
  const { model, store, extension } = session.buildModel(tasks, {
    withHeads: false,
    extend: (ps) => new Expander(ps, 'ssl.expander', exp.model.hidden_dim, ssl.expander),
  });
  const expander = extension!;
  const opt = new AdamW(store, { lr: t.lr, weightDecay: t.weight_decay, maxGradNorm: t.grad_clip ?? undefined });
  const view1 = trainLoaders(exp, tasks, 'view1');
  const view2 = trainLoaders(exp, tasks, 'view2');
  const counts = taskBatchCounts(view1.map((l) => l.batchesPerEpoch), exp.data.sampling, exp.data.temperature);
  const order = epochOrder(counts);
  const coeffs = { sim: ssl.sim_coeff, std: ssl.std_coeff, cov: ssl.cov_coeff, cosine: ssl.cosine_coeff };
  const restored = session.restore(store, opt);

  const result = await runLoop(
    {
      session,
      store,
      opt,
      stepsPerEpoch: order.length,
      step(epoch, position) {
        const ti = order[position];
        const at = loaderPosition(epoch, batchIndexAt(order, position), counts[ti], view1[ti].batchesPerEpoch);
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
      extra: () => ({}),
    },
    restored,
  );
  if (!result.interrupted) {
    const records = readLog(session.outDir);
    const terms = ['invariance', 'variance', 'covariance', 'cosine'].flatMap((f) => series(records, 'train', f));
    const enc = (s: string) => new TextEncoder().encode(s);
    writeFileAtomic(path.join(session.outDir, 'vicreg.svg'), enc(lineChartSvg('VICReg terms', 'step', terms, { logY: true })));
    writeFileAtomic(path.join(session.outDir, 'loss.svg'), enc(lineChartSvg('VICReg loss', 'step', series(records, 'train', 'loss'), { logY: true })));
    const last = records.filter((r) => r.event === 'train').at(-1) ?? {};
    const summary = { ssl: { steps: result.step, wall_s: +result.trainSeconds.toFixed(1), samples_per_s: +((result.step * t.batch_size) / Math.max(1e-3, result.trainSeconds)).toFixed(2), final: last } };
    writeFileAtomic(path.join(session.outDir, 'metrics.json'), enc(JSON.stringify(summary, null, 2) + '\n'));
    writeFileAtomic(
      path.join(session.outDir, 'report.md'),
      enc(`# ${exp.name}\n\n${exp.description}\n\nDevice: ${session.backend.describe()}\n\nVICReg self-supervised pre-training: ${result.step} steps in ${result.trainSeconds.toFixed(0)} s.\n\n![VICReg terms](vicreg.svg)\n\n![loss](loss.svg)\n`),
    );
    session.say(`ssl: ${result.step} steps; checkpoint in ${session.outDir} (use it as finetune.init)`);
  }
  store.dispose();
}
