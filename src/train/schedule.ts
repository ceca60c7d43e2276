// OneCycle learning-rate schedule, matching PyTorch's torch.optim.lr_scheduler.OneCycleLR with its defaults
// (anneal_strategy='cos', three_phase=False, div_factor=25, final_div_factor=1e4), as a pure function of the step.
// The thesis trains with "OneCycleLR with warmup"; the warm-up phase is OneCycle's first phase, so
// pct_start = warmup_steps / total_steps.
//
//   initial_lr = max_lr / div_factor            min_lr = initial_lr / final_div_factor
//   phase 1: steps 0 .. w-1       lr = cos_anneal(initial_lr -> max_lr, pct = step / (w - 1))
//   phase 2: steps w-1 .. T-1     lr = cos_anneal(max_lr -> min_lr, pct = (step - (w - 1)) / (T - 1 - (w - 1)))
//   cos_anneal(a -> b, pct) = b + (a - b) / 2 · (1 + cos(π · pct))
//
// PyTorch computes phase 1's end as float(pct_start · T) - 1; we use w - 1 directly, which is the same number
// without the round trip through w / T. Like PyTorch, step T (one past the last) is still defined (phase 2
// extrapolated slightly past pct = 1) and steps beyond T are an error. Where PyTorch divides by zero (w = 1, or
// w = T at step T) we take pct = 1, i.e. the phase's end value.
//
// PyTorch also cycles Adam's beta1 (cycle_momentum=True: max_momentum 0.95 -> base_momentum 0.85 in phase 1 and
// back in phase 2). `momentum(step)` gives that value; whether the optimizer uses it is the trainer's choice.

import { ConfigError, MfError } from '../errors.ts';

export interface OneCycleOptions {
  maxLr: number;
  totalSteps: number;
  warmupSteps: number;
  /** Default 25 (PyTorch's default). */
  divFactor?: number;
  /** Default 1e4 (PyTorch's default). */
  finalDivFactor?: number;
  /** Default 0.85 (PyTorch's default). */
  baseMomentum?: number;
  /** Default 0.95 (PyTorch's default). */
  maxMomentum?: number;
}

export interface OneCycle {
  readonly initialLr: number;
  readonly maxLr: number;
  readonly minLr: number;
  readonly totalSteps: number;
  readonly warmupSteps: number;
  /** Learning rate to use for optimizer step `step` (0-based). */
  lr(step: number): number;
  /** beta1 / momentum for step `step`, as PyTorch's cycle_momentum sets it. */
  momentum(step: number): number;
}

/** Warm-up steps for a warm-up given in (possibly fractional) epochs. */
export function warmupSteps(warmupEpochs: number, stepsPerEpoch: number): number {
  return Math.round(warmupEpochs * stepsPerEpoch);
}

function cosAnneal(start: number, end: number, pct: number): number {
  return end + ((start - end) / 2) * (Math.cos(Math.PI * pct) + 1);
}

export function oneCycle(opts: OneCycleOptions): OneCycle {
  const { maxLr, totalSteps, warmupSteps: w } = opts;
  const divFactor = opts.divFactor ?? 25;
  const finalDivFactor = opts.finalDivFactor ?? 1e4;
  const baseMomentum = opts.baseMomentum ?? 0.85;
  const maxMomentum = opts.maxMomentum ?? 0.95;
  if (!(Number.isFinite(maxLr) && maxLr > 0)) throw new ConfigError(`OneCycle: max lr ${maxLr} must be a positive number`);
  if (!Number.isSafeInteger(totalSteps) || totalSteps < 1) {
    throw new ConfigError(`OneCycle: total steps ${totalSteps} must be a positive integer; set training epochs or max_steps`);
  }
  if (!Number.isSafeInteger(w) || w < 0 || w > totalSteps) {
    throw new ConfigError(`OneCycle: warm-up steps ${w} must be an integer in 0..${totalSteps}; lower training.warmup_epochs`);
  }
  if (!(divFactor > 0) || !(finalDivFactor > 0)) throw new ConfigError('OneCycle: div factors must be positive');

  const initialLr = maxLr / divFactor;
  const minLr = initialLr / finalDivFactor;
  const end1 = w - 1; // last step of phase 1 (PyTorch: pct_start * total_steps - 1)
  const end2 = totalSteps - 1;

  // Returns [phase, pct]; shared by lr and momentum so they always agree on the phase.
  const locate = (step: number): [1 | 2, number] => {
    if (!Number.isInteger(step) || step < 0 || step > totalSteps) {
      throw new MfError(`OneCycle: step ${step} is outside 0..${totalSteps}; the schedule was built for ${totalSteps} steps`);
    }
    if (step <= end1) return [1, end1 > 0 ? step / end1 : 1];
    const span = end2 - end1;
    return [2, span > 0 ? (step - end1) / span : 1];
  };

  return {
    initialLr,
    maxLr,
    minLr,
    totalSteps,
    warmupSteps: w,
    lr(step: number): number {
      const [phase, pct] = locate(step);
      return phase === 1 ? cosAnneal(initialLr, maxLr, pct) : cosAnneal(maxLr, minLr, pct);
    },
    momentum(step: number): number {
      const [phase, pct] = locate(step);
      return phase === 1 ? cosAnneal(maxMomentum, baseMomentum, pct) : cosAnneal(baseMomentum, maxMomentum, pct);
    },
  };
}

// Step decay, as PyTorch's torch.optim.lr_scheduler.MultiStepLR stepped once per epoch (the MedMNIST v2 recipe:
// milestones at 50% and 75% of the epochs, gamma 0.1): the learning rate is lr · gamma^k during an epoch after k
// milestones have passed. Given in steps here, so the milestone epoch e starts at step e · steps_per_epoch.

export interface MultiStepOptions {
  lr: number;
  /** Steps at which the rate is multiplied by gamma, ascending. */
  milestones: readonly number[];
  gamma: number;
}

export interface MultiStep {
  readonly milestones: readonly number[];
  readonly gamma: number;
  /** Learning rate for optimizer step `step` (0-based). */
  lr(step: number): number;
}

export function multiStep(opts: MultiStepOptions): MultiStep {
  const { lr, gamma } = opts;
  const milestones = [...opts.milestones];
  if (!(Number.isFinite(lr) && lr > 0)) throw new ConfigError(`MultiStep: lr ${lr} must be a positive number`);
  if (!(Number.isFinite(gamma) && gamma > 0)) throw new ConfigError(`MultiStep: gamma ${gamma} must be a positive number`);
  if (milestones.some((m, i) => !Number.isSafeInteger(m) || m < 1 || (i > 0 && m <= milestones[i - 1]))) {
    throw new ConfigError(`MultiStep: milestones [${milestones.join(', ')}] must be ascending positive integers`);
  }
  return {
    milestones,
    gamma,
    lr(step: number): number {
      if (!Number.isInteger(step) || step < 0) throw new MfError(`MultiStep: step ${step} must be an integer >= 0`);
      let k = 0;
      while (k < milestones.length && step >= milestones[k]) k++;
      return lr * gamma ** k;
    },
  };
}
