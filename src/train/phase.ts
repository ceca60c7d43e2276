// A training phase, the one loop every kind shares: AdamW (or plain SGD, training.optimizer) over a parameter
// store, steps over (epoch, position) with a OneCycle (or multi-step) schedule, periodic loss read-back (the only
// GPU->CPU sync in a step), NaN/Inf policy, validation hooks, an optional stopping rule, atomic checkpoints,
// Ctrl-C, and resume from the exact (epoch, position) of the last checkpoint. A kind with several phases (the
// brain-age study, a CSA cascade) names each one. Under training.update "backforward" a step is one pass and
// one update per layer group (backforwardStep).
// Every step is guarded on the device (kernels/optimizer.wgsl `guard`): a NaN or Inf loss or gradient norm
// skips that step's update there, and the loop reads the guard's counters when it logs and before every
// checkpoint (the loop always ends with one), so "stop" names the first bad step and never checkpoints past it.
import { ConfigError, MfError, NumericalError } from '../errors.ts';
import { killPoint } from '../util/faults.ts';
import type { ParameterStore } from '../nn/parameters.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { AdamW } from './adamw.ts';
import { Sgd } from './sgd.ts';
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
  /**
   * A stopping rule besides the epoch budget (e.g. patience on a validation metric), asked before every step: true
   * ends the phase after a checkpoint. It must follow from state the checkpoints carry (`extra`), so that a resumed
   * phase that had stopped stays stopped.
   */
  done?(): boolean;
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
  /**
   * The model's layer groups from the input side, each the names of its parameters: what training.update
   * "backforward" updates one at a time (each Linear of an MLP, each block of Medformer). Needed only for it.
   */
  layerGroups?: readonly (readonly string[])[];
}

/** AdamW over `store` and the run folder's checkpoint of this phase, restored if there is one. */
export class TrainingPhase {
  readonly opt: AdamW;
  readonly restored: TrainingState | null;
  readonly name: string | null;
  /** training.update "backforward": the layer groups, input side first; null for backprop. */
  private readonly groups: ReadonlySet<string>[] | null;

  constructor(
    private readonly ctx: RunContext,
    private readonly options: PhaseOptions,
  ) {
    const t = options.training;
    this.name = options.name ?? null;
    this.opt = freshOptimizer(options.store, t);
    // Checked here, before a resume restores anything: a model without layer groups cannot train backforward.
    this.groups = t.update === 'backforward' ? backforwardGroups(options.store, options.layerGroups) : null;
    this.restored = ctx.checkpoints.restore(options.store, this.opt, this.name);
  }

  /** Trains to the end of the schedule; null when interrupted (a checkpoint is saved, exit status 130). */
  async run(spec: LoopSpec): Promise<LoopResult | null> {
    const r = await runLoop(this.ctx, this.options.store, this.opt, this.options.training, this.name, spec, this.restored, this.groups);
    return r.interrupted ? null : r;
  }
}

/**
 * The optimizer a phase starts with: step 0 and zero moments. The moments live in the store, so a phase that follows
 * another on the same store (a cascade stage, a compare_updates arm) would otherwise inherit them while its step
 * count, bias correction and schedule restart; its own checkpoint, when it resumes, then restores them.
 */
export function freshOptimizer(store: ParameterStore, t: TrainingSettings): AdamW {
  store.resetMoments();
  const opts = { lr: t.lr, weightDecay: t.weight_decay, maxGradNorm: t.grad_clip ?? undefined };
  return t.optimizer === 'sgd' ? new Sgd(store, { ...opts, momentum: t.momentum, nesterov: t.nesterov }) : new AdamW(store, opts);
}

async function runLoop(
  ctx: RunContext,
  store: ParameterStore,
  opt: AdamW,
  t: TrainingSettings,
  phase: string | null,
  spec: LoopSpec,
  restored: TrainingState | null,
  groups: readonly ReadonlySet<string>[] | null,
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
  // The guard counts from this optimizer's first update: its n-th guarded update is in step `guardBase + ⌈n / U⌉`,
  // U the updates per step (1; the layer groups under backforward).
  const guardBase = step;
  const updatesPerStep = groups?.length ?? 1;
  let reportedBad = 0;
  const checkGuard = async () => {
    const h = await opt.health();
    if (h.bad === reportedBad) return;
    const first = guardBase + Math.ceil(h.first / updatesPerStep);
    const last = guardBase + Math.ceil(h.last / updatesPerStep);
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

  const stopped = () => spec.done?.() ?? false;
  while (step < totalSteps && epoch < epochs && !ctx.interrupted && !stopped()) {
    ctx.startProgress(`epoch ${epoch + 1}/${epochs}`, stepsPerEpoch, position);
    while (position < stepsPerEpoch && step < totalSteps && !ctx.interrupted && !stopped()) {
      const lr = schedule.lr(step);
      // Fault injection for the reliability tests: lose the GPU device before this step.
      if (Number(process.env.MF_FAULT_LOSE_DEVICE_AT_STEP) === step + 1) ctx.backend.destroy();
      const pipelinesBefore = ctx.backend.stats().pipelines;
      let out: StepOutput;
      if (groups) out = backforwardStep(store, opt, lr, groups, () => spec.step(epoch, position));
      else {
        store.zeroGrad();
        out = spec.step(epoch, position);
        // Fault injection for the reliability tests: a NaN gradient at this step (any step, logged or not).
        if (Number(process.env.MF_FAULT_NAN_AT_STEP) === step + 1) ctx.backend.write(store.buffers().grads, new Float32Array([Number.NaN]));
        opt.step(lr, out.loss.buffer);
      }
      killPoint('step');
      // A step that created kernel pipelines (the first ones) waits here, the bar saying why it sits still.
      await ctx.awaitCompiles(pipelinesBefore);
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

/**
 * The layer groups of a backforward phase as sets of parameter names, checked against the store: every group
 * non-empty, no parameter in two groups, every trainable parameter in one (a parameter in none would never train).
 */
function backforwardGroups(store: ParameterStore, layerGroups: PhaseOptions['layerGroups']): ReadonlySet<string>[] {
  if (!layerGroups?.length) {
    throw new ConfigError('training.update "backforward": this model defines no layer groups', 'use update "backprop" for it');
  }
  const seen = new Set<string>();
  const groups = layerGroups.map((g, i) => {
    if (!g.length) throw new MfError(`backforward: layer group ${i} is empty`);
    for (const name of g) {
      if (!store.has(name)) throw new MfError(`backforward: layer group ${i} names ${name}, which the model does not have`);
      if (seen.has(name)) throw new MfError(`backforward: ${name} is in two layer groups`);
      seen.add(name);
    }
    return new Set(g);
  });
  const left = store.names().filter((n) => store.info(n).trainable && !seen.has(n));
  if (left.length) throw new MfError(`backforward: trainable parameters in no layer group: ${left.slice(0, 5).join(', ')}`);
  return groups;
}

/**
 * One backforward step (thesis 5.3): for each layer group from the input side, a fresh forward and backward
 * through the layers already updated, then an update of that group alone (the others are made untrainable for the
 * pass, so backward skips them and the optimiser leaves them as they are). Returns the last pass's output; the
 * earlier passes' losses are disposed. The store's own trainable set is restored afterwards.
 */
export function backforwardStep(
  store: ParameterStore,
  opt: AdamW,
  lr: number,
  groups: readonly ReadonlySet<string>[],
  pass: () => StepOutput,
): StepOutput {
  const trainable = new Set(store.names().filter((n) => store.info(n).trainable));
  let out: StepOutput | null = null;
  try {
    for (const group of groups) {
      store.setTrainable((name) => trainable.has(name) && group.has(name));
      store.zeroGrad();
      if (out) {
        out.loss.dispose();
        Object.values(out.terms ?? {}).forEach((x) => x.dispose());
      }
      out = pass();
      opt.step(lr, out.loss.buffer);
    }
  } finally {
    store.setTrainable((name) => trainable.has(name));
  }
  return out!;
}
