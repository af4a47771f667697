/**
 * Child process of test/train/steady-memory.test.ts: trains a small model on the native backend
 * for 2,000 steps the way the trainer does — batches from the DataLoader (augmented, prefetched),
 * an evaluation through compiled plans every 50 steps (a full and a partial batch: two plans) and
 * a checkpoint written every 100 steps — and prints the memory held early (steps 100–300) and late
 * (steps 1,800–2,000) as JSON. Memory is sampled after a full collection every 25 steps of the
 * whole run: sampled only every few hundred steps, dead buffers piled up between collections and
 * malloc kept the freed pages, so the figure wandered ±4% from sample to sample. Each window
 * reports its highest sample. Every kind of work has run before the first sample.
 * Run with a capped V8 young generation (--max-semi-space-size) so that RSS reflects native and
 * live JS memory rather than how far V8 chose to grow its nursery under allocation pressure.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { DataLoader } from '../../src/data/loader.js';
import { cachedCompiledInference, compiledFallbackReason } from '../../src/infer/auto.js';
import {
  backward,
  evaluate,
  ExponentialMovingAverage,
  type Model,
  Optimizer,
  ops,
  Random,
  tensor,
  tidy,
  tryBackend,
  xception,
} from '../../src/index.js';
import { type RunState, saveCheckpoint } from '../../src/train/checkpoint.js';

const STEPS = 2000;
const EVAL_EVERY = 50;
const CHECKPOINT_EVERY = 100;
const CLASSES = 4;
const MODEL_OPTIONS = {
  stem: 'small',
  inputShape: [8, 8, 1],
  classes: CLASSES,
  width: 1 / 16,
  middleBlocks: 0,
  dropout: 0.3,
} as const;

function collect(): void {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

interface MemorySample {
  rss: number;
  heapUsed: number;
  heapTotal: number;
}

function sample(): MemorySample {
  collect();
  const u = process.memoryUsage();
  return { rss: u.rss, heapUsed: u.heapUsed, heapTotal: u.heapTotal };
}

const held = (s: MemorySample) => s.rss - (s.heapTotal - s.heapUsed);
const SAMPLE_EVERY = 25;
const EARLY = [100, 300];
const LATE = [STEPS - 200, STEPS];

/** Keeps the sample with the most memory held. */
function higher(a: MemorySample | null, b: MemorySample): MemorySample {
  return a && held(a) >= held(b) ? a : b;
}

/** A small seeded image set: 8×8 grey images, labels cycling through the classes. */
function syntheticImages(name: string, count: number, seed: number) {
  const rng = new Random(seed);
  const images = Uint8Array.from({ length: count * 64 }, () => Math.floor(rng.uniform() * 256));
  const labels = Int32Array.from({ length: count }, (_, i) => i % CLASSES);
  return { name, images, labels, count, height: 8, width: 8, channels: 1, classes: CLASSES };
}

function runState(step: number, loader: DataLoader, ema: ExponentialMovingAverage): RunState {
  return {
    step,
    epochsDone: loader.epoch,
    loader: loader.getState(),
    modelRandom: new Random(0).getState(),
    optimizer: { name: 'sgd', step },
    ema: { decay: ema.decay, updates: step },
    wallSeconds: 0,
    history: [],
    config: {},
    model: { name: 'xception', options: { ...MODEL_OPTIONS } },
  };
}

async function main(): Promise<void> {
  const backend = tryBackend('native');
  if (!backend) {
    process.stdout.write(`${JSON.stringify({ skipped: 'native backend not built' })}\n`);
    return;
  }
  const m: Model = xception({ backend, ...MODEL_OPTIONS, inputShape: [...MODEL_OPTIONS.inputShape] });
  const opt = new Optimizer('sgd', { lr: 0.01, momentum: 0.9, nesterov: true });
  const ema = new ExponentialMovingAverage(0.99);
  const train = new DataLoader(syntheticImages('train', 64, 1), {
    batchSize: 8,
    seed: 3,
    augment: { randomCrop: { padding: 1 }, horizontalFlip: true },
  });
  const held = new DataLoader(syntheticImages('eval', 20, 2), { batchSize: 8, shuffle: false });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xception-steady-'));
  // Like the trainer, let the event loop turn between steps: that is when Node runs the
  // finalizers of the (already freed) native handles' small wrappers.
  const turn = () => new Promise((r) => setImmediate(r));
  let early: MemorySample | null = null;
  let late: MemorySample | null = null;
  let step = 0;
  try {
    while (step < STEPS) {
      for await (const b of train.epochBatches()) {
        tidy(() => {
          const x = tensor(b.x, b.shape, { backend });
          const l = ops.softmaxCrossEntropy(m.forward(x, { training: true, logits: true }), b.y, {
            labelSmoothing: 0.1,
          });
          backward(l);
          return l.item();
        });
        opt.apply(m.weights);
        ema.update(m.weights);
        step++;
        if (step % EVAL_EVERY === 0) await evaluate(m, held.epochBatches(), CLASSES);
        if (step % CHECKPOINT_EVERY === 0) saveCheckpoint(dir, m, opt, ema, runState(step, train, ema));
        await turn();
        if (step % SAMPLE_EVERY === 0) {
          const now = sample();
          if (step >= EARLY[0]! && step <= EARLY[1]!) early = higher(early, now);
          if (step >= LATE[0]! && step <= LATE[1]!) late = higher(late, now);
        }
        if (step === STEPS) break;
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // The evaluations must have gone through compiled plans, not the op-by-op fallback.
  const compiled = compiledFallbackReason(m) === null && cachedCompiledInference(m, 8, true) !== null;
  process.stdout.write(`${JSON.stringify({ early, late, steps: step, compiled })}\n`);
}

await main();
