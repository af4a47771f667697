/** Timing of a repeated step: warm-up, then the median of several timed repeats. */

export interface TimingOptions {
  /** Untimed steps first (primitive creation, page faults, optimizer state, thread start). */
  warmup: number;
  /** Timed repeats; the median is reported. */
  repeats: number;
  /** Each repeat runs enough steps to last at least this long (from the last warm-up step). */
  minSeconds: number;
}

export interface Timing {
  /** Median seconds per step. */
  secondsPerStep: number;
  /** Seconds per step of every repeat, in the order run. */
  repeatSeconds: number[];
  stepsPerRepeat: number;
}

const now = (): number => Number(process.hrtime.bigint()) / 1e9;

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError('median of nothing');
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Times `step` (sync or async). */
export async function timeSteps(step: () => unknown, o: TimingOptions): Promise<Timing> {
  let last = 0;
  for (let i = 0; i < Math.max(1, o.warmup); i++) {
    const t0 = now();
    await step();
    last = now() - t0;
  }
  const stepsPerRepeat = Math.max(1, Math.min(10_000, Math.ceil(o.minSeconds / Math.max(last, 1e-6))));
  const repeatSeconds: number[] = [];
  for (let r = 0; r < o.repeats; r++) {
    const t0 = now();
    for (let i = 0; i < stepsPerRepeat; i++) await step();
    repeatSeconds.push((now() - t0) / stepsPerRepeat);
  }
  return { secondsPerStep: median(repeatSeconds), repeatSeconds, stepsPerRepeat };
}
