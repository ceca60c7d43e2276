// A training phase, the one loop every kind shares: AdamW over a parameter store, steps over
// (epoch, position) with a OneCycle (or multi-step) schedule, periodic loss read-back (the only GPU->CPU
// sync in a step), NaN/Inf policy, validation hooks, atomic checkpoints, Ctrl-C, and resume from the exact
// (epoch, position) of the last checkpoint. A kind with several phases (the brain-age study) names each one.
import { NumericalError } from '../errors.ts';
import type { ParameterStore } from '../nn/parameters.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { AdamW } from './adamw.ts';
import type { TrainingState } from './checkpoint.ts';
import type { RunContext } from './context.ts';
import { multiStep, oneCycle, warmupSteps } from './schedule.ts';
import type { TrainingSettings } from './schema.ts';

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
  stepsPerEpoch: number;
  /** Run one training step at (epoch, position): forward and backward, no optimizer update. */
  step(epoch: number, position: number): StepOutput;
  /** After each epoch (and when eval_every steps pass): validation. */
  validate?(epoch: number, step: number): Promise<void>;
  /** JSON state that checkpoints carry (best metrics ...); read it back from `phase.restored`. */
  extra?(): Record<string, unknown>;
}

export interface LoopResult {
  step: number;
  epoch: number;
  trainSeconds: number;
  interrupted: boolean;
  restored: TrainingState | null;
}

export interface PhaseOptions {
  store: ParameterStore;
  training: TrainingSettings;
  /** Names the phase in checkpoints and log records; null for a kind's single phase. */
  name?: string | null;
}

/** AdamW over `store` and the run folder's checkpoint of this phase, restored if there is one. */
export class TrainingPhase {
  readonly opt: AdamW;
  readonly restored: TrainingState | null;
  readonly name: string | null;

  constructor(
    private readonly ctx: RunContext,
    private readonly options: PhaseOptions,
  ) {
    const t = options.training;
    this.name = options.name ?? null;
    this.opt = new AdamW(options.store, { lr: t.lr, weightDecay: t.weight_decay, maxGradNorm: t.grad_clip ?? undefined });
    this.restored = ctx.checkpoints.restore(options.store, this.opt, this.name);
  }

  /** Trains to the end of the schedule; null when interrupted (a checkpoint is saved, exit status 130). */
  async run(spec: LoopSpec): Promise<LoopResult | null> {
    const r = await runLoop(this.ctx, this.options.store, this.opt, this.options.training, this.name, spec, this.restored);
    return r.interrupted ? null : r;
  }
}

async function runLoop(
  ctx: RunContext,
  store: ParameterStore,
  opt: AdamW,
  t: TrainingSettings,
  phase: string | null,
  spec: LoopSpec,
  restored: TrainingState | null,
): Promise<LoopResult> {
  const { stepsPerEpoch } = spec;
  const epochs = t.epochs ?? Math.ceil((t.max_steps ?? stepsPerEpoch) / stepsPerEpoch);
  const totalSteps = Math.min(epochs * stepsPerEpoch, t.max_steps ?? Infinity);
  const schedule = t.schedule
    ? multiStep({ lr: t.lr, milestones: t.schedule.milestones.map((e) => e * stepsPerEpoch), gamma: t.schedule.gamma })
    : oneCycle({
        maxLr: t.lr,
        totalSteps: Math.max(1, totalSteps),
        warmupSteps: Math.min(warmupSteps(t.warmup_epochs, stepsPerEpoch), Math.max(0, totalSteps - 1)),
      });

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
    await ctx.backend.sync();
    const t0 = Date.now();
    await fn();
    pausedMs += Date.now() - t0;
  };
  const validate = (epoch: number, step: number) => paused(async () => spec.validate?.(epoch, step));
  const checkpoint = async () => {
    await ctx.backend.sync();
    trainSeconds += (Date.now() - segmentStart - pausedMs) / 1000;
    const extra = { ...spec.extra?.(), ...(phase ? { phase } : {}), train_seconds: trainSeconds };
    await ctx.checkpoints.save(store, opt, { step, epoch, batch_position: position, rng: {}, extra });
    ctx.log({ event: 'checkpoint', step, ...(phase ? { phase } : {}) });
    segmentStart = Date.now();
    pausedMs = 0;
  };

  while (step < totalSteps && epoch < epochs && !ctx.interrupted) {
    ctx.startProgress(`epoch ${epoch + 1}/${epochs}`, stepsPerEpoch, position);
    while (position < stepsPerEpoch && step < totalSteps && !ctx.interrupted) {
      const lr = schedule.lr(step);
      // Fault injection for the reliability tests: lose the GPU device before this step.
      if (Number(process.env.MF_FAULT_LOSE_DEVICE_AT_STEP) === step + 1) ctx.backend.destroy();
      store.zeroGrad();
      const out = spec.step(epoch, position);
      const logNow = (step + 1) % t.log_every === 0 || step + 1 === totalSteps;
      let record: { loss: number; grad_norm: number; [term: string]: number } = { loss: Number.NaN, grad_norm: Number.NaN };
      if (logNow) {
        const v = await out.loss.item();
        const gradNorm = Number.isFinite(v) ? await opt.gradNorm() : NaN;
        if (!Number.isFinite(v) || !Number.isFinite(gradNorm)) {
          const what = Number.isFinite(v) ? `the gradient norm became ${gradNorm}` : `loss became ${v}`;
          out.loss.dispose();
          Object.values(out.terms ?? {}).forEach((x) => x.dispose());
          if (t.nan_policy !== 'skip') {
            throw new NumericalError(
              `${what} at step ${step + 1}`,
              `the last good checkpoint in ${ctx.outDir} is kept; lower training.lr or set training.grad_clip, then --resume`,
            );
          }
          ctx.say(`warning: ${what} at step ${step + 1}; update skipped (nan_policy "skip")`);
          ctx.log({ event: 'skip', step: step + 1, ...(phase ? { phase } : {}), loss: String(v), grad_norm: String(gradNorm) });
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
        ctx.log({ event: 'train', step, epoch, ...(phase ? { phase } : {}), ...out.tag, ...record, lr, samples_per_s: +sps.toFixed(2) });
        ctx.progress(position, { loss: lastLoss, lr, sps });
        if (ctx.plain) {
          ctx.say(`step ${step}/${totalSteps} loss ${lastLoss?.toFixed(4)} lr ${lr.toExponential(2)} ${sps.toFixed(1)} samples/s`);
        }
        samplesSinceLog = 0;
        lastLogTime = now;
      } else {
        ctx.progress(position, { loss: lastLoss, lr, sps: 0 });
      }
      if (typeof t.eval_every === 'number' && step % t.eval_every === 0) await validate(epoch, step);
      if (t.checkpoint_every && step % t.checkpoint_every === 0) await checkpoint();
    }
    ctx.endProgress();
    if (ctx.interrupted) break;
    const epochDone = position >= stepsPerEpoch;
    if (t.eval_every === 'epoch' && (epochDone || step >= totalSteps)) await validate(epoch, step);
    if (epochDone) {
      epoch++;
      position = 0;
    }
    await checkpoint();
  }

  if (ctx.interrupted) {
    await checkpoint();
    ctx.say(`interrupted: checkpoint saved at step ${step} in ${ctx.outDir}; continue with --resume`);
    process.exitCode = 130;
  }
  await ctx.backend.sync();
  trainSeconds += (Date.now() - segmentStart - pausedMs) / 1000;
  return { step, epoch, trainSeconds, interrupted: ctx.interrupted, restored };
}
