// The training loop every kind of run shares: steps over (epoch, position) with a OneCycle schedule,
// periodic loss read-back (the only GPU->CPU sync in a step), NaN/Inf policy, validation hooks,
// atomic checkpoints, Ctrl-C, and resume from the exact (epoch, position) of the last checkpoint.
import { NumericalError } from '../errors.ts';
import type { ParameterStore } from '../nn/parameters.ts';
import type { Tensor } from '../tensor/tensor.ts';
import type { AdamW } from './adamw.ts';
import type { TrainingState } from './checkpoint.ts';
import { oneCycle, warmupSteps } from './schedule.ts';
import type { Session } from './session.ts';

export interface StepOutput {
  /** Scalar loss, already backpropagated into the store's gradients. */
  loss: Tensor;
  /** Extra scalars to log at logged steps (e.g. VICReg terms); disposed by the loop. */
  terms?: Record<string, Tensor>;
  samples: number;
  /** Extra fields for the log record (e.g. the task). */
  tag?: Record<string, unknown>;
}

export interface LoopSpec {
  session: Session;
  store: ParameterStore;
  opt: AdamW;
  stepsPerEpoch: number;
  /** Run one training step at (epoch, position): forward and backward, no optimizer update. */
  step(epoch: number, position: number): StepOutput;
  /** After each epoch (and when eval_every steps pass): validation. */
  validate?(epoch: number, step: number): Promise<void>;
  /** Restored JSON state (best metrics ...) and the hook that returns it for checkpoints. */
  extra(): Record<string, unknown>;
}

export interface LoopResult {
  step: number;
  epoch: number;
  trainSeconds: number;
  interrupted: boolean;
  restored: TrainingState | null;
}

export async function runLoop(spec: LoopSpec, restored: TrainingState | null): Promise<LoopResult> {
  const { session, store, opt, stepsPerEpoch } = spec;
  const t = session.exp.training;
  const epochs = t.epochs ?? Math.ceil((t.max_steps ?? stepsPerEpoch) / stepsPerEpoch);
  const totalSteps = Math.min(epochs * stepsPerEpoch, t.max_steps ?? Infinity);
  const schedule = oneCycle({ maxLr: t.lr, totalSteps: Math.max(1, totalSteps), warmupSteps: Math.min(warmupSteps(t.warmup_epochs, stepsPerEpoch), Math.max(0, totalSteps - 1)) });

  let step = restored?.step ?? 0;
  let epoch = restored?.epoch ?? 0;
  let position = restored?.batch_position ?? 0;
  let trainSeconds = Number(restored?.extra?.train_seconds ?? 0);
  let segmentStart = Date.now();
  let samplesSinceLog = 0;
  let lastLogTime = Date.now();
  let lastLoss: number | undefined;

  // Wall time of training alone: validation and checkpoint writing are left out of it. Steps are only
  // queued on the device, so the queue is drained first and its work counted as training.
  let pausedMs = 0;
  const paused = async (fn: () => Promise<void>) => {
    await session.backend.sync();
    const t0 = Date.now();
    await fn();
    pausedMs += Date.now() - t0;
  };
  const validate = (epoch: number, step: number) => paused(async () => spec.validate?.(epoch, step));
  const checkpoint = async () => {
    await session.backend.sync();
    trainSeconds += (Date.now() - segmentStart - pausedMs) / 1000;
    await session.saveCheckpoint(store, opt, { step, epoch, batch_position: position, rng: {}, extra: { ...spec.extra(), train_seconds: trainSeconds } });
    session.log({ event: 'checkpoint', step });
    segmentStart = Date.now();
    pausedMs = 0;
  };

  while (step < totalSteps && epoch < epochs && !session.interrupted) {
    session.startProgress(`epoch ${epoch + 1}/${epochs}`, stepsPerEpoch, position);
    while (position < stepsPerEpoch && step < totalSteps && !session.interrupted) {
      const lr = schedule.lr(step);
      // Fault injection for the reliability tests: lose the GPU device before this step.
      if (Number(process.env.MF_FAULT_LOSE_DEVICE_AT_STEP) === step + 1) session.backend.destroy();
      store.zeroGrad();
      const out = spec.step(epoch, position);
      const logNow = (step + 1) % t.log_every === 0 || step + 1 === totalSteps;
      let record: Record<string, number> = {};
      if (logNow) {
        const v = await out.loss.item();
        const gradNorm = Number.isFinite(v) ? await opt.gradNorm() : NaN;
        if (!Number.isFinite(v) || !Number.isFinite(gradNorm)) {
          const what = Number.isFinite(v) ? `the gradient norm became ${gradNorm}` : `loss became ${v}`;
          out.loss.dispose();
          Object.values(out.terms ?? {}).forEach((x) => x.dispose());
          if (t.nan_policy !== 'skip') {
            throw new NumericalError(`${what} at step ${step + 1}`, `the last good checkpoint in ${session.outDir} is kept; lower training.lr or set training.grad_clip, then --resume`);
          }
          session.say(`warning: ${what} at step ${step + 1}; update skipped (nan_policy "skip")`);
          session.log({ event: 'skip', step: step + 1, loss: String(v), grad_norm: String(gradNorm) });
          step++;
          position++;
          continue;
        }
        lastLoss = v;
        record = { loss: v, grad_norm: gradNorm };
        for (const [k, x] of Object.entries(out.terms ?? {})) record[k] = await x.item();
      }
      opt.step(lr);
      out.loss.dispose();
      Object.values(out.terms ?? {}).forEach((x) => x.dispose());
      step++;
      position++;
      samplesSinceLog += out.samples;
      if (logNow) {
        const now = Date.now();
        const sps = samplesSinceLog / Math.max(1e-3, (now - lastLogTime) / 1000);
        session.log({ event: 'train', step, epoch, ...out.tag, ...record, lr, samples_per_s: +sps.toFixed(2) });
        session.progress(position, { loss: lastLoss, lr, sps });
        if (session.opts.quiet || !process.stderr.isTTY) {
          session.say(`step ${step}/${totalSteps} loss ${lastLoss?.toFixed(4)} lr ${lr.toExponential(2)} ${sps.toFixed(1)} samples/s`);
        }
        samplesSinceLog = 0;
        lastLogTime = now;
      } else {
        session.progress(position, { loss: lastLoss, lr, sps: 0 });
      }
      if (typeof t.eval_every === 'number' && step % t.eval_every === 0) await validate(epoch, step);
      if (t.checkpoint_every && step % t.checkpoint_every === 0) await checkpoint();
    }
    session.endProgress();
    if (session.interrupted) break;
    const epochDone = position >= stepsPerEpoch;
    if (t.eval_every === 'epoch' && (epochDone || step >= totalSteps)) await validate(epoch, step);
    if (epochDone) {
      epoch++;
      position = 0;
    }
    await checkpoint();
  }

  if (session.interrupted) {
    await checkpoint();
    session.say(`interrupted: checkpoint saved at step ${step} in ${session.outDir}; continue with --resume`);
    process.exitCode = 130;
  }
  await session.backend.sync();
  trainSeconds += (Date.now() - segmentStart - pausedMs) / 1000;
  return { step, epoch, trainSeconds, interrupted: session.interrupted, restored };
}
