/**
 * Refuses a batch size or replica count whose training memory cannot fit, before anything large
 * is allocated: past the machine's memory a run ends in the kernel's OOM killer (or swaps to a
 * crawl) minutes later, with no message about why.
 */
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { OptionError } from '../core/errors.js';
import { sizeOf } from '../core/tensor.js';
import type { Model } from '../nn/model.js';

/**
 * Bytes per float held per activation at the peak of a training step: every layer's output is
 * kept for the backward pass and receives a gradient of the same size (float32: 2 × 4 bytes).
 */
const ACTIVATION_BYTES_PER_FLOAT = 8;
/** Per weight and model copy: the value, its gradient and up to two optimizer slots (float32). */
const WEIGHT_BYTES_PER_FLOAT = 16;

export interface TrainingMemoryEstimate {
  bytes: number;
  activationBytes: number;
  weightBytes: number;
}

/** The peak training memory of `model` at this batch size, with `replicas` model copies besides the main thread's. */
export function estimateTrainingMemory(model: Model, batchSize: number, replicas: number): TrainingMemoryEstimate {
  let perImage = 0;
  for (const l of model.layers) perImage += sizeOf(l.output!.shape);
  const params = model.weights.reduce((a, v) => a + v.size, 0);
  const activationBytes = perImage * batchSize * ACTIVATION_BYTES_PER_FLOAT;
  const copies = replicas > 1 ? replicas + 1 : 1;
  const weightBytes = params * WEIGHT_BYTES_PER_FLOAT * copies;
  return { bytes: activationBytes + weightBytes, activationBytes, weightBytes };
}

function numberIn(file: string, pattern: RegExp): number {
  try {
    const m = pattern.exec(readFileSync(file, 'utf8'));
    const v = m ? Number(m[1]) : Number.NaN;
    return Number.isFinite(v) && v > 0 ? v : Number.POSITIVE_INFINITY;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

/**
 * What this process may use, in bytes, and what bounds it: RAM, the address-space limit
 * (ulimit -v), the cgroup's memory limit (v2, then v1) and XCEPTION_MEMORY_LIMIT_MB, whichever
 * is smallest (the native arena applies the same bound, native/arena.cc).
 */
export function usableMemory(): { bytes: number; bound: string } {
  const env = process.env.XCEPTION_MEMORY_LIMIT_MB;
  if (env !== undefined && !(Number(env) > 0 && Number.isFinite(Number(env)))) {
    throw new OptionError(`XCEPTION_MEMORY_LIMIT_MB must be a positive number of MiB, got '${env}'`);
  }
  const limits: Array<[string, number]> = [
    ['RAM', totalmem()],
    ['ulimit -v', numberIn('/proc/self/limits', /^Max address space\s+(\d+)/m)],
    ['cgroup memory.max', numberIn('/sys/fs/cgroup/memory.max', /^(\d+)/)],
    ['cgroup memory.limit_in_bytes', numberIn('/sys/fs/cgroup/memory/memory.limit_in_bytes', /^(\d+)/)],
    ['XCEPTION_MEMORY_LIMIT_MB', env === undefined ? Number.POSITIVE_INFINITY : Number(env) * 2 ** 20],
  ];
  const [bound, bytes] = limits.reduce((a, b) => (b[1] < a[1] ? b : a));
  return { bytes, bound };
}

const gb = (bytes: number) => `${(bytes / 1e9).toFixed(bytes < 1e10 ? 2 : 0)} GB`;

/** Throws OptionError, with the estimate, when training this batch on these replicas cannot fit. */
export function checkTrainingMemory(model: Model, batchSize: number, replicas: number, usable = usableMemory()): void {
  const e = estimateTrainingMemory(model, batchSize, replicas);
  if (e.bytes <= usable.bytes) return;
  throw new OptionError(
    `batch size ${batchSize}${replicas > 1 ? ` with ${replicas} replicas` : ''} needs about ${gb(e.bytes)} to train ` +
      `(activations ${gb(e.activationBytes)}, weights, gradients and optimizer state ${gb(e.weightBytes)}), ` +
      `but this process may use ${gb(usable.bytes)} (${usable.bound}); lower --batch-size or --replicas`,
  );
}
