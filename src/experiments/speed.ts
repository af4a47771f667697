/**
 * Training speed of an experiment's variants, measured side by side: every variant is built once,
 * then the rounds interleave them (A, B, C, A, B, C, …) so that whatever else the machine is doing
 * weighs on all of them alike. Each round times a few full training steps (forward, backward,
 * optimizer) on a fixed random batch at the experiment's input size; a variant's figure is its
 * median round. The runs' own steps/s come from hours apart and carry the load of their moment;
 * this is the figure the report compares.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { backward } from '../core/autograd.js';
import { getBackend, tidy } from '../core/engine.js';
import { tensor } from '../core/creation.js';
import { softmaxCrossEntropy } from '../core/ops/loss.js';
import { Random } from '../core/random.js';
import { writeFileAtomicSync } from '../io/atomic.js';
import { buildModel } from '../models/registry.js';
import type { Model } from '../nn/model.js';
import { Optimizer } from '../train/optimizers.js';
import { DEFAULT_TRAIN_CONFIG } from '../train/trainer.js';
import type { Variant } from './recipes.js';

export const SPEED_FILE = 'speed.json';

export interface VariantSpeed {
  variant: string;
  /** Median over rounds of steps per second (one step = forward + backward + optimizer). */
  stepsPerSec: number;
  imagesPerSec: number;
  /** Every round's steps/s, in order. */
  rounds: number[];
}

export interface SpeedReport {
  format: 'xception-speed/1';
  batchSize: number;
  inputShape: [number, number, number];
  classes: number;
  stepsPerRound: number;
  backend: string;
  /** OpenMP threads the measurement ran with (OMP_NUM_THREADS, or 'default'). */
  threads: string;
  variants: VariantSpeed[];
}

export interface SpeedOptions {
  batchSize: number;
  inputShape: [number, number, number];
  classes: number;
  rounds?: number;
  stepsPerRound?: number;
  /** Untimed steps per variant first (primitive creation, memory pools). */
  warmupSteps?: number;
  /** Called after each timed round (progress). */
  onRound?: (round: number, rounds: number) => void;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Measures every variant's training steps per second, interleaved round by round. */
export function measureSpeed(variants: readonly Variant[], o: SpeedOptions): SpeedReport {
  const rounds = o.rounds ?? 5,
    steps = o.stepsPerRound ?? 3,
    warmup = o.warmupSteps ?? 2;
  if (!(Number.isInteger(rounds) && rounds >= 1 && Number.isInteger(steps) && steps >= 1 && Number.isInteger(warmup) && warmup >= 0)) {
    throw new RangeError(
      `measureSpeed: rounds and stepsPerRound must be positive integers, warmupSteps ≥ 0 (got ${rounds}, ${steps}, ${warmup})`,
    );
  }
  const [h, w, c] = o.inputShape;
  const rng = new Random(12345);
  const x = tensor(
    Float32Array.from({ length: o.batchSize * h * w * c }, () => rng.uniform(-1, 1)),
    [o.batchSize, h, w, c],
  );
  const labels = Array.from({ length: o.batchSize }, (_, i) => i % o.classes);
  const d = DEFAULT_TRAIN_CONFIG;
  const built: Array<{ v: Variant; model: Model; opt: Optimizer; times: number[] }> = [];
  try {
    for (const v of variants) {
      const model = buildModel(v.model, { ...v.options, inputShape: o.inputShape, classes: o.classes });
      built.push({ v, model, opt: new Optimizer(d.optimizer, { lr: 1e-4, momentum: d.momentum, nesterov: d.nesterov }), times: [] });
    }
    const step = (b: (typeof built)[number]) => {
      tidy(() => {
        const loss = softmaxCrossEntropy(b.model.forward(x, { training: true, logits: true }), labels);
        const value = loss.item();
        backward(loss, { release: true });
        return value;
      });
      b.opt.apply(b.model.weights);
    };
    for (const b of built) for (let i = 0; i < warmup; i++) step(b);
    for (let r = 0; r < rounds; r++) {
      for (const b of built) {
        const t0 = performance.now();
        for (let i = 0; i < steps; i++) step(b);
        b.times.push((steps * 1000) / (performance.now() - t0));
      }
      o.onRound?.(r + 1, rounds);
    }
    return {
      format: 'xception-speed/1',
      batchSize: o.batchSize,
      inputShape: o.inputShape,
      classes: o.classes,
      stepsPerRound: steps,
      backend: getBackend().name,
      threads: process.env['OMP_NUM_THREADS'] ?? 'default',
      variants: built.map((b) => {
        const s = median(b.times);
        return { variant: b.v.name, stepsPerSec: s, imagesPerSec: s * o.batchSize, rounds: b.times };
      }),
    };
  } finally {
    for (const b of built) b.model.dispose();
    x.dispose();
  }
}

export function writeSpeed(experimentDir: string, report: SpeedReport): void {
  writeFileAtomicSync(join(experimentDir, SPEED_FILE), new TextEncoder().encode(`${JSON.stringify(report, null, 2)}\n`));
}

/** The experiment's side-by-side speed measurement, or null if it has none (or an unreadable one). */
export function readSpeed(experimentDir: string): SpeedReport | null {
  const file = join(experimentDir, SPEED_FILE);
  if (!existsSync(file)) return null;
  try {
    const r = JSON.parse(readFileSync(file, 'utf8')) as SpeedReport;
    return r.format === 'xception-speed/1' && Array.isArray(r.variants) ? r : null;
  } catch {
    return null;
  }
}
