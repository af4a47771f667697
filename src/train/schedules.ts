/**
 * Learning-rate schedules as pure functions of the step, so a resumed run computes exactly the
 * rate an uninterrupted one would have.
 */
import { OptionError } from '../core/errors.js';

export type ScheduleName = 'constant' | 'exponential-step' | 'cosine' | 'one-cycle';
export const SCHEDULES: readonly ScheduleName[] = ['constant', 'exponential-step', 'cosine', 'one-cycle'];

export interface ScheduleOptions {
  name: ScheduleName;
  /** Peak (or base) learning rate. */
  lr: number;
  /** Linear warm-up from lr/warmupSteps to lr over this many steps (0 = none). */
  warmupSteps?: number;
  /** exponential-step: multiply by `decay` every `decayEpochs` epochs (paper: 0.94 every 2). */
  decay?: number;
  decayEpochs?: number;
  /** cosine / one-cycle: the floor the rate anneals to, as a fraction of lr. */
  minFraction?: number;
  /** one-cycle: fraction of the run spent rising to the peak (default 0.3) from lr/25. */
  rampFraction?: number;
}

export interface ScheduleContext {
  totalSteps: number;
  stepsPerEpoch: number;
}

export function validateSchedule(o: ScheduleOptions): void {
  if (!SCHEDULES.includes(o.name)) throw new OptionError(`unknown schedule '${o.name}' (known: ${SCHEDULES.join(', ')})`);
  if (!(o.lr > 0)) throw new OptionError(`learning rate must be positive, got ${o.lr}`);
  if (o.warmupSteps !== undefined && !(Number.isInteger(o.warmupSteps) && o.warmupSteps >= 0))
    throw new OptionError(`warmup steps must be a non-negative integer`);
  if (o.decay !== undefined && !(o.decay > 0 && o.decay <= 1)) throw new OptionError(`decay must be in (0, 1], got ${o.decay}`);
  if (o.decayEpochs !== undefined && !(o.decayEpochs > 0)) throw new OptionError(`decay epochs must be positive`);
  if (o.minFraction !== undefined && !(o.minFraction >= 0 && o.minFraction <= 1)) throw new OptionError(`minFraction must be in [0, 1]`);
  if (o.rampFraction !== undefined && !(o.rampFraction > 0 && o.rampFraction < 1)) throw new OptionError(`rampFraction must be in (0, 1)`);
}

/** The learning rate for update number `step` (0-based). */
export function learningRateAt(o: ScheduleOptions, step: number, ctx: ScheduleContext): number {
  const total = Math.max(1, ctx.totalSteps);
  const minLr = o.lr * (o.minFraction ?? 0);
  let lr: number;
  switch (o.name) {
    case 'constant':
      lr = o.lr;
      break;
    case 'exponential-step': {
      const epoch = step / Math.max(1, ctx.stepsPerEpoch);
      lr = o.lr * (o.decay ?? 0.94) ** Math.floor(epoch / (o.decayEpochs ?? 2));
      break;
    }
    case 'cosine': {
      const t = Math.min(1, step / total);
      lr = minLr + (o.lr - minLr) * 0.5 * (1 + Math.cos(Math.PI * t));
      break;
    }
    case 'one-cycle': {
      const ramp = Math.max(1, Math.round(total * (o.rampFraction ?? 0.3)));
      const start = o.lr / 25;
      if (step < ramp) {
        lr = start + (o.lr - start) * 0.5 * (1 - Math.cos((Math.PI * step) / ramp));
      } else {
        const t = Math.min(1, (step - ramp) / Math.max(1, total - ramp));
        const floor = o.minFraction !== undefined ? minLr : start / 1e4;
        lr = floor + (o.lr - floor) * 0.5 * (1 + Math.cos(Math.PI * t));
      }
      break;
    }
  }
  const warm = o.warmupSteps ?? 0;
  if (warm > 0 && step < warm) lr *= (step + 1) / warm;
  return lr;
}
