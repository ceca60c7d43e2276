// A training phase, the one loop every kind shares: AdamW over a parameter store, steps over
// (epoch, position) with a OneCycle (or multi-step) schedule, periodic loss read-back (the only GPU->CPU
// sync in a step), NaN/Inf policy, validation hooks, atomic checkpoints, Ctrl-C, and resume from the exact
// (epoch, position) of the last checkpoint. A kind with several phases (the brain-age study) names each one.
// Every step is guarded on the device (kernels/optimizer.wgsl `guard`): a NaN or Inf loss or gradient norm
// skips that step's update there, and the loop reads the guard's counters when it logs and before every
// checkpoint (the loop always ends with one), so "stop" names the first bad step and never checkpoints past it.
import { NumericalError } from '../errors.ts';
import { killPoint } from '../util/faults.ts';
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
  /** `__metadata__` for the checkpoints' model files: how to rebuild the model from the weights alone. */
  modelMetadata?: Readonly<Record<string, string>>;
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
  // The guard counts from this optimizer's first step: its n-th guarded step is step `guardBase + n`.
  const guardBase = step;
  let reportedBad = 0;
  const checkGuard = async () => {
    const h = await opt.health();
    if (h.bad === reportedBad) return;
    const first = guardBase + h.first;
    const last = guardBase + h.last;
    if (t.nan_policy !== 'skip') {
      throw new NumericalError(
        `the loss or the gradient norm became NaN/Inf at step ${first}${phase ? ` (phase ${phase})` : ''}; its update was not applied`,
        `the last good checkpoint in ${ctx.outDir} is kept; lower training.lr or set training.grad_clip, then --resume`,
      );
    }
    const skipped = h.bad - reportedBad;
    reportedBad = h.bad;
    ctx.say(
      `warning: ${skipped} step${skipped > 1 ? 's' : ''} with a NaN/Inf loss or gradient norm (the last at step ${last}); update${skipped > 1 ? 's' : ''} skipped (nan_policy "skip")`,
    );
    ctx.log({ event: 'skip', step: last, ...(phase ? { phase } : {}), skipped, total: h.bad, first_step: first });
  };
  const checkpoint = async () => {
    await checkGuard();
    await ctx.backend.sync();
    trainSeconds += (Date.now() - segmentStart - pausedMs) / 1000;
    const extra = { ...spec.extra?.(), ...(phase ? { phase } : {}), train_seconds: trainSeconds };
    await ctx.checkpoints.save(store, opt, { step, epoch, batch_position: position, rng: {}, extra }, spec.modelMetadata);
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
      // Fault injection for the reliability tests: a NaN gradient at this step (any step, logged or not).
      if (Number(process.env.MF_FAULT_NAN_AT_STEP) === step + 1) ctx.backend.write(store.buffers().grads, new Float32Array([Number.NaN]));
      opt.step(lr, out.loss.buffer);
      killPoint('step');
      const logNow = (step + 1) % t.log_every === 0 || step + 1 === totalSteps;
      step++;
      position++;
      samplesSinceLog += out.samples;
      if (logNow) {
        await checkGuard();
        const v = await out.loss.item();
        const gradNorm = await opt.lastGradNorm();
        // A bad logged step was just reported by the guard; a train record holds finite numbers only.
        if (Number.isFinite(v) && Number.isFinite(gradNorm)) {
          lastLoss = v;
          const record: { loss: number; grad_norm: number; [term: string]: number } = { loss: v, grad_norm: gradNorm };
          for (const [k, x] of Object.entries(out.terms ?? {})) record[k] = await x.item();
          const now = Date.now();
          const sps = samplesSinceLog / Math.max(1e-3, (now - lastLogTime) / 1000);
          ctx.log({ event: 'train', step, epoch, ...(phase ? { phase } : {}), ...out.tag, ...record, lr, samples_per_s: +sps.toFixed(2) });
          ctx.progress(position, { loss: lastLoss, lr, sps });
          if (ctx.plain) {
            ctx.say(`step ${step}/${totalSteps} loss ${lastLoss.toFixed(4)} lr ${lr.toExponential(2)} ${sps.toFixed(1)} samples/s`);
          }
          samplesSinceLog = 0;
          lastLogTime = now;
        }
      } else {
        ctx.progress(position, { loss: lastLoss, lr, sps: 0 });
      }
      out.loss.dispose();
      Object.values(out.terms ?? {}).forEach((x) => x.dispose());
      if (typeof t.eval_every === 'number' && step % t.eval_every === 0) await validate(epoch, step);
      // Not at an epoch's (or the run's) last step: the checkpoint after its validation follows, and one taken
      // before that validation would resume past it, so a kill during the validation would lose it.
      if (t.checkpoint_every && step % t.checkpoint_every === 0 && position < stepsPerEpoch && step < totalSteps) await checkpoint();
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
  // Every way out of the loop above passed through checkpoint(), which read the guard last.
  await ctx.backend.sync();
  trainSeconds += (Date.now() - segmentStart - pausedMs) / 1000;
  return { step, epoch, trainSeconds, interrupted: ctx.interrupted, restored };
}
