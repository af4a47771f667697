/**
 * Turns a dataset into batches: seeded shuffling per epoch, augmentation, preprocessing,
 * prefetching of the next batch, and a saveable position so a resumed run sees exactly the
 * batches it would have seen.
 *
 * Determinism: one Random drives everything. At the start of an epoch it draws the permutation;
 * then each batch draws its augmentations in sample order. The state stores the generator as it
 * was at the start of the epoch (to redraw the permutation) and as it is before the next batch.
 */
import { OptionError } from '../core/errors.js';
import { Random, type RandomState } from '../core/random.js';
import type { ImageDataset } from './dataset.js';
import {
  type AugmentOptions,
  buildSample,
  type Preprocessing,
  preprocessingAffine,
  type SamplePlan,
  validateAugment,
} from './transforms.js';

export interface Batch {
  /** Inputs, B·H·W·C float32 (NHWC). */
  x: Float32Array;
  /** Class indices (a multi-label dataset: each image's lowest class). */
  y: Int32Array;
  /** Multi-label data only: B·classes multi-hot targets (0 or 1). */
  targets?: Float32Array;
  /** B, the number of samples (smaller than batchSize for a kept last partial batch). */
  size: number;
  shape: [number, number, number, number];
}

export interface LoaderOptions {
  batchSize: number;
  /** Reshuffle every epoch (default true). */
  shuffle?: boolean;
  /** Drop the last batch of an epoch if it is smaller than batchSize (default false). */
  dropLast?: boolean;
  /** Seed of the shuffling and augmentation stream (default 0). */
  seed?: number;
  /** Use only these samples (e.g. the train half of `splitIndices`); default all. */
  indices?: ArrayLike<number>;
  augment?: AugmentOptions;
  /** Default 'xception' (x/127.5 − 1). */
  preprocessing?: Preprocessing;
  /** Output height and width (a number for square), resized bilinearly; default the dataset's. */
  size?: number | [number, number];
  /** Output channels: the dataset's, or 3 from a 1-channel dataset (replicated). */
  channels?: number;
  /** Build batch k+1 while batch k is being used (default true). */
  prefetch?: boolean;
}

/** The saved position of an in-memory DataLoader. */
export interface MemoryLoaderState {
  version: 1;
  /** Epoch of the next batch (0-based). */
  epoch: number;
  /** Index of the next batch within its epoch. */
  batch: number;
  /** Generator state at the start of `epoch`, from which its permutation is redrawn. */
  epochRandom: RandomState;
  /** Generator state before the next batch. */
  random: RandomState;
  /** Guards against restoring into a differently configured loader. */
  samples: number;
  batchSize: number;
  shuffle: boolean;
  dropLast: boolean;
}

/** The saved position of a streaming loader (stream-loader.ts): a position and its settings. */
export interface StreamLoaderState {
  version: 1;
  kind: 'stream';
  epoch: number;
  batch: number;
  samples: number;
  batchSize: number;
  shuffle: boolean;
  dropLast: boolean;
  seed: number;
}

/** What a checkpoint stores for either loader. */
export type LoaderState = MemoryLoaderState | StreamLoaderState;

/**
 * What the trainer and `evaluate` need from a source of batches: the in-memory DataLoader and
 * the streaming image-file loader both provide it, so training code treats them alike.
 */
export interface BatchLoader {
  readonly batchSize: number;
  /** Number of samples per epoch. */
  readonly samples: number;
  readonly batchesPerEpoch: number;
  /** [H, W, C] of each batch entry. */
  readonly sampleShape: [number, number, number];
  /** Epoch of the next batch the consumer will receive. */
  readonly epoch: number;
  /** Index within its epoch of the next batch the consumer will receive. */
  readonly position: number;
  /** Images left out because they could not be read (streaming loaders that skip bad images). */
  readonly skippedImages?: number;
  /** Those unreadable files, each once. */
  readonly badFiles?: ReadonlySet<string>;
  /** The remaining batches of the current epoch. */
  epochBatches(): AsyncGenerator<Batch, void, undefined>;
  getState(): LoaderState;
  setState(state: LoaderState): void;
}

/** Seconds a consumer spent waiting, e.g. for batches (see timedBatches). */
export interface WaitClock {
  seconds: number;
}

/** Passes `batches` through, adding the time each one took to arrive to `clock`. */
export async function* timedBatches(batches: AsyncIterator<Batch>, clock: WaitClock): AsyncGenerator<Batch, void, undefined> {
  let done = false;
  try {
    while (!done) {
      const t0 = process.hrtime.bigint();
      const next = await batches.next();
      clock.seconds += Number(process.hrtime.bigint() - t0) / 1e9;
      done = next.done === true;
      if (!done) yield next.value as Batch;
    }
  } finally {
    if (!done) await batches.return?.();
  }
}

interface Pending {
  stateBefore: MemoryLoaderState;
  result: Batch | null;
  timer: ReturnType<typeof setImmediate> | null;
}

export class DataLoader implements BatchLoader {
  readonly dataset: ImageDataset;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly prefetch: boolean;
  /** Number of samples per epoch. */
  readonly samples: number;
  readonly batchesPerEpoch: number;
  /** [H, W, C] of each batch entry. */
  readonly sampleShape: [number, number, number];

  private readonly indices: Int32Array;
  private readonly plan: SamplePlan;
  private readonly work: Float32Array;
  private readonly rng: Random;
  private epochIndex = 0;
  private batchIndex = 0;
  private order: Int32Array | null = null;
  private epochStart: RandomState;
  private pending: Pending | null = null;

  constructor(dataset: ImageDataset, options: LoaderOptions) {
    if (!options || typeof options !== 'object') throw new OptionError('DataLoader needs options with at least batchSize');
    const known = new Set([
      'batchSize',
      'shuffle',
      'dropLast',
      'seed',
      'indices',
      'augment',
      'preprocessing',
      'size',
      'channels',
      'prefetch',
    ]);
    for (const k of Object.keys(options)) if (!known.has(k)) throw new OptionError(`unknown DataLoader option '${k}'`);
    const { batchSize } = options;
    if (!Number.isInteger(batchSize) || batchSize <= 0) throw new OptionError(`batchSize must be a positive integer, got ${batchSize}`);
    const seed = options.seed ?? 0;
    if (!Number.isFinite(seed)) throw new OptionError(`seed must be a finite number, got ${seed}`);
    this.dataset = dataset;
    this.batchSize = batchSize;
    this.shuffle = options.shuffle ?? true;
    this.dropLast = options.dropLast ?? false;
    this.prefetch = options.prefetch ?? true;

    if (options.indices !== undefined) {
      const idx = Int32Array.from(options.indices);
      for (let i = 0; i < idx.length; i++) {
        if (!(idx[i]! >= 0 && idx[i]! < dataset.count))
          throw new OptionError(`indices[${i}] = ${idx[i]} is out of range [0, ${dataset.count})`);
      }
      this.indices = idx;
    } else {
      this.indices = new Int32Array(dataset.count).map((_, i) => i);
    }
    this.samples = this.indices.length;
    this.batchesPerEpoch = this.dropLast ? Math.floor(this.samples / batchSize) : Math.ceil(this.samples / batchSize);
    if (this.batchesPerEpoch === 0) {
      throw new OptionError(`${this.samples} samples make no batch of ${batchSize}${this.dropLast ? ' with dropLast' : ''}`);
    }

    validateAugment(options.augment);
    const size = options.size ?? [dataset.height, dataset.width];
    const [oh, ow] = typeof size === 'number' ? [size, size] : size;
    if (!Number.isInteger(oh) || !Number.isInteger(ow) || oh <= 0 || ow <= 0)
      throw new OptionError(`size must be positive integers, got ${JSON.stringify(size)}`);
    const oc = options.channels ?? dataset.channels;
    if (oc !== dataset.channels && !(dataset.channels === 1 && oc === 3)) {
      throw new OptionError(`channels ${oc} from a ${dataset.channels}-channel dataset: only equal channels or 1 → 3 are supported`);
    }
    const { scale, offset } = preprocessingAffine(options.preprocessing ?? 'xception');
    this.plan = {
      height: dataset.height,
      width: dataset.width,
      channels: dataset.channels,
      outHeight: oh,
      outWidth: ow,
      outChannels: oc,
      scale,
      offset,
      augment: options.augment ?? {},
    };
    this.sampleShape = [oh, ow, oc];
    this.work = new Float32Array(oh * ow * dataset.channels);
    this.rng = new Random(seed);
    this.epochStart = this.rng.getState();
  }

  /** Epoch of the next batch the consumer will receive. */
  get epoch(): number {
    return this.pending ? this.pending.stateBefore.epoch : this.epochIndex;
  }

  /** Index within its epoch of the next batch the consumer will receive. */
  get position(): number {
    return this.pending ? this.pending.stateBefore.batch : this.batchIndex;
  }

  /** The position of the consumer (batches already handed out), for a checkpoint. JSON-safe. */
  getState(): MemoryLoaderState {
    return this.pending ? structuredClone(this.pending.stateBefore) : this.liveState();
  }

  /** Restores a position saved by getState(); the following batches repeat the original run's. */
  setState(state: LoaderState): void {
    if (state && 'kind' in state)
      throw new OptionError(`loader state was saved by a streaming image-file loader, not an in-memory dataset loader`);
    if (state?.version !== 1) throw new OptionError(`unsupported loader state (version ${state?.version}), expected version 1`);
    const mismatch = (['samples', 'batchSize', 'shuffle', 'dropLast'] as const).filter((k) => state[k] !== this[k]);
    if (mismatch.length > 0) {
      throw new OptionError(
        `loader state was saved with a different configuration: ${mismatch.map((k) => `${k} ${state[k]} ≠ ${this[k]}`).join(', ')}`,
      );
    }
    if (
      !Number.isInteger(state.epoch) ||
      state.epoch < 0 ||
      !Number.isInteger(state.batch) ||
      state.batch < 0 ||
      state.batch >= this.batchesPerEpoch
    ) {
      throw new OptionError(
        `loader state position epoch ${state.epoch}, batch ${state.batch} is invalid (${this.batchesPerEpoch} batches per epoch)`,
      );
    }
    this.cancelPending();
    this.rng.setState(state.epochRandom);
    this.epochIndex = state.epoch;
    this.batchIndex = state.batch;
    this.epochStart = this.rng.getState();
    this.order = null;
    if (state.batch > 0) this.startEpoch(); // redraws the permutation from epochRandom
    this.rng.setState(state.random);
  }

  /**
   * The next batch, continuing into the next epoch after the last one (check `epoch`).
   * Synchronous; takes a prefetched batch if there is one.
   */
  nextBatch(): Batch {
    if (this.pending) return this.takePending();
    return this.build();
  }

  /** The remaining batches of the current epoch, building each next batch ahead of time. */
  async *epochBatches(): AsyncGenerator<Batch, void, undefined> {
    const e = this.epoch;
    while (this.epoch === e) {
      const batch = this.nextBatch();
      if (this.prefetch && this.epochIndex === e) this.schedule();
      yield batch;
    }
  }

  [Symbol.asyncIterator](): AsyncGenerator<Batch, void, undefined> {
    return this.epochBatches();
  }

  private liveState(): MemoryLoaderState {
    return {
      version: 1,
      epoch: this.epochIndex,
      batch: this.batchIndex,
      epochRandom: this.batchIndex === 0 ? this.rng.getState() : structuredClone(this.epochStart),
      random: this.rng.getState(),
      samples: this.samples,
      batchSize: this.batchSize,
      shuffle: this.shuffle,
      dropLast: this.dropLast,
    };
  }

  private startEpoch(): void {
    this.epochStart = this.rng.getState();
    const n = this.samples;
    if (this.shuffle) {
      const perm = this.rng.permutation(n);
      this.order = new Int32Array(n);
      for (let i = 0; i < n; i++) this.order[i] = this.indices[perm[i]!]!;
    } else {
      this.order = this.indices;
    }
  }

  private build(): Batch {
    if (this.order === null) this.startEpoch();
    const order = this.order!;
    const start = this.batchIndex * this.batchSize;
    const size = Math.min(this.batchSize, this.samples - start);
    const [oh, ow, oc] = this.sampleShape;
    const per = oh * ow * oc;
    const x = new Float32Array(size * per);
    const y = new Int32Array(size);
    const C = this.dataset.classes;
    const all = this.dataset.targets;
    const targets = all ? new Float32Array(size * C) : undefined;
    for (let i = 0; i < size; i++) {
      const k = order[start + i]!;
      buildSample(this.dataset.images, k, this.plan, this.rng, x, i * per, this.work);
      y[i] = this.dataset.labels[k]!;
      targets?.set(all!.subarray(k * C, (k + 1) * C), i * C);
    }
    this.batchIndex++;
    if (this.batchIndex >= this.batchesPerEpoch) {
      this.epochIndex++;
      this.batchIndex = 0;
      this.order = null;
    }
    return { x, y, size, shape: [size, oh, ow, oc], ...(targets ? { targets } : {}) };
  }

  /** Builds the next batch on the next turn of the event loop (when the consumer awaits). */
  private schedule(): void {
    const p: Pending = { stateBefore: this.liveState(), result: null, timer: null };
    p.timer = setImmediate(() => {
      p.timer = null;
      p.result = this.build();
    });
    this.pending = p;
  }

  private takePending(): Batch {
    const p = this.pending!;
    this.pending = null;
    if (p.timer !== null) {
      clearImmediate(p.timer);
      return this.build();
    }
    return p.result!;
  }

  private cancelPending(): void {
    if (this.pending?.timer) clearImmediate(this.pending.timer);
    this.pending = null;
  }
}
