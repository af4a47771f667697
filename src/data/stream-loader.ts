/**
 * Batches streamed from image files: the folder is listed once (names, not pixels), and each batch
 * is read, resized and augmented just ahead of the step that uses it. Memory is bounded by the
 * prefetch depth and the decode concurrency, never by the folder's size.
 *
 * Decoding runs in sharp on libuv worker threads, so it overlaps the (synchronous, native)
 * training step on the main thread; `prefetch` batches are in flight while the consumer works.
 *
 * Determinism: every batch is a pure function of (seed, epoch, position). An epoch's order is a
 * permutation drawn from a Random seeded by (seed, epoch); a sample's augmentation comes from a
 * Random seeded by (seed, epoch, sample). Nothing carries over between batches, so the saved state
 * is just the position, and a resumed run sees exactly the batches of an uninterrupted one.
 */
import { OptionError } from '../core/errors.js';
import { Random } from '../core/random.js';
import { DatasetError } from './errors.js';
import { type ImageAugment, readImagePixels } from './image-file.js';
import type { ImagePreprocessing } from './image-preprocessing.js';
import type { Batch, BatchLoader, LoaderState, StreamLoaderState } from './loader.js';
import { preprocessingAffine, randomResizedCropBox, type RandomResizedCropOptions, writeScaledPixels } from './transforms.js';

/** Reads one file as HWC uint8 pixels of `shape` (readImagePixels; tests substitute their own). */
export type ReadPixels = (
  file: string,
  shape: readonly [number, number, number],
  prep: ImagePreprocessing,
  augment?: ImageAugment,
) => Promise<Uint8Array>;

export interface FileSamples {
  files: readonly string[];
  /** Class index per file. */
  labels: Int32Array;
}

export interface StreamAugment {
  /** Inception-style random-resized crop, chosen at the source image's resolution. */
  randomResizedCrop?: RandomResizedCropOptions | boolean;
  /** Mirror left–right with probability 1/2. */
  horizontalFlip?: boolean;
}

export interface StreamLoaderOptions {
  batchSize: number;
  /** [H, W, C] of every sample (C 1 or 3). */
  shape: readonly [number, number, number];
  /** Resize policy, interpolation and scaling (image-preprocessing.ts). */
  preprocessing: ImagePreprocessing;
  /** Reshuffle every epoch (default true). */
  shuffle?: boolean;
  /** Drop the last batch of an epoch if it is smaller than batchSize (default false). */
  dropLast?: boolean;
  seed?: number;
  /** Use only these samples (e.g. the train half of `splitIndices`); default all. */
  indices?: ArrayLike<number>;
  augment?: StreamAugment;
  /** Batches read ahead of the consumer (default 2). */
  prefetch?: number;
  /** Images decoded at once across all batches in flight (default 4). */
  concurrency?: number;
  /** Drop unreadable images from their batch and count them (default: a DatasetError naming the file). */
  skipBadImages?: boolean;
  /**
   * Batches left with fewer images (after skipping bad ones) are not handed out (default 1).
   * Training uses 2: batch normalization cannot normalize a single image's 1×1 features.
   */
  minBatch?: number;
  readPixels?: ReadPixels;
}

const OPTION_NAMES = new Set([
  'batchSize',
  'shape',
  'preprocessing',
  'shuffle',
  'dropLast',
  'seed',
  'indices',
  'augment',
  'prefetch',
  'concurrency',
  'skipBadImages',
  'minBatch',
  'readPixels',
]);

/** One 32-bit seed from several numbers (a multiply–xorshift mix per part), for per-epoch and per-sample generators. */
export function mixSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x9e3779b1) >>> 0;
    h = Math.imul(h ^ (h >>> 15), 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    h = Math.imul(h ^ Math.floor(p / 4294967296), 0xc2b2ae35) >>> 0;
  }
  return (h ^ (h >>> 16)) >>> 0;
}

/** Runs at most `limit` tasks at once; waiting tasks start in the order they asked (FIFO). */
class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active < this.limit) this.active++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next)
        next(); // hand the slot straight over
      else this.active--;
    }
  }
}

interface InFlight {
  epoch: number;
  batch: number;
  result: Promise<Batch>;
}

/** A batch with the files it could not read (when skipping bad images). */
type BuiltBatch = Batch & { skipped: string[] };

export class StreamLoader implements BatchLoader {
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly seed: number;
  readonly samples: number;
  readonly batchesPerEpoch: number;
  readonly sampleShape: [number, number, number];
  readonly prefetch: number;
  readonly skipBadImages: boolean;
  readonly minBatch: number;
  /** Images dropped because they could not be read, since this loader was made. */
  skippedImages = 0;
  /** The unreadable files met so far (each once). */
  readonly badFiles = new Set<string>();

  private readonly source: FileSamples;
  private readonly indices: Int32Array;
  private readonly preprocessing: ImagePreprocessing;
  private readonly augment: StreamAugment;
  private readonly readPixels: ReadPixels;
  private readonly limiter: Limiter;
  private readonly affine: { scale: number; offset: number };
  private epochIndex = 0;
  private batchIndex = 0;
  private order: { epoch: number; samples: Int32Array } | null = null;
  private ahead: InFlight[] = [];

  constructor(source: FileSamples, options: StreamLoaderOptions) {
    if (!options || typeof options !== 'object')
      throw new OptionError('StreamLoader needs options with at least batchSize, shape and preprocessing');
    for (const k of Object.keys(options)) if (!OPTION_NAMES.has(k)) throw new OptionError(`unknown StreamLoader option '${k}'`);
    if (source.files.length !== source.labels.length)
      throw new OptionError(`${source.files.length} files but ${source.labels.length} labels`);
    const positive = (name: string, v: unknown) => {
      if (!(Number.isInteger(v) && (v as number) > 0)) throw new OptionError(`${name} must be a positive integer, got ${v}`);
      return v as number;
    };
    this.batchSize = positive('batchSize', options.batchSize);
    this.prefetch = positive('prefetch', options.prefetch ?? 2);
    this.limiter = new Limiter(positive('concurrency', options.concurrency ?? 4));
    const [h, w, c] = options.shape;
    positive('height', h);
    positive('width', w);
    if (c !== 1 && c !== 3) throw new OptionError(`image channels must be 1 or 3, got ${c}`);
    this.sampleShape = [h, w, c];
    this.seed = options.seed ?? 0;
    if (!Number.isFinite(this.seed)) throw new OptionError(`seed must be a finite number, got ${this.seed}`);
    this.shuffle = options.shuffle ?? true;
    this.dropLast = options.dropLast ?? false;
    this.skipBadImages = options.skipBadImages ?? false;
    this.minBatch = positive('minBatch', options.minBatch ?? 1);
    this.source = source;
    this.indices = options.indices === undefined ? Int32Array.from(source.files, (_, i) => i) : Int32Array.from(options.indices);
    for (let i = 0; i < this.indices.length; i++) {
      const k = this.indices[i]!;
      if (!(k >= 0 && k < source.files.length)) throw new OptionError(`indices[${i}] = ${k} is out of range [0, ${source.files.length})`);
    }
    this.samples = this.indices.length;
    this.batchesPerEpoch = this.dropLast ? Math.floor(this.samples / this.batchSize) : Math.ceil(this.samples / this.batchSize);
    if (this.batchesPerEpoch === 0)
      throw new OptionError(`${this.samples} images make no batch of ${this.batchSize}${this.dropLast ? ' with dropLast' : ''}`);
    this.preprocessing = options.preprocessing;
    this.affine = preprocessingAffine(options.preprocessing.scaling);
    this.augment = options.augment ?? {};
    this.readPixels = options.readPixels ?? readImagePixels;
  }

  get epoch(): number {
    return this.epochIndex;
  }

  get position(): number {
    return this.batchIndex;
  }

  getState(): StreamLoaderState {
    return {
      version: 1,
      kind: 'stream',
      epoch: this.epochIndex,
      batch: this.batchIndex,
      samples: this.samples,
      batchSize: this.batchSize,
      shuffle: this.shuffle,
      dropLast: this.dropLast,
      seed: this.seed,
    };
  }

  setState(state: LoaderState): void {
    if (!state || !('kind' in state) || state.kind !== 'stream' || state.version !== 1) {
      throw new OptionError('loader state was not saved by a streaming image-file loader (expected kind "stream", version 1)');
    }
    const mismatch = (['samples', 'batchSize', 'shuffle', 'dropLast', 'seed'] as const).filter((k) => state[k] !== this[k]);
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
    this.epochIndex = state.epoch;
    this.batchIndex = state.batch;
    this.ahead = []; // their results are pure functions of position: nothing else to undo
  }

  /** The remaining batches of the current epoch, each read while the previous ones are in use. */
  async *epochBatches(): AsyncGenerator<Batch, void, undefined> {
    const e = this.epochIndex;
    while (this.epochIndex === e) {
      this.fillAhead();
      const next = this.ahead.shift()!;
      const batch = await next.result;
      this.batchIndex++;
      if (this.batchIndex >= this.batchesPerEpoch) {
        this.epochIndex++;
        this.batchIndex = 0;
      } else {
        this.fillAhead(); // keep `prefetch` batches in flight while the consumer works
      }
      if (batch.size >= this.minBatch) yield batch; // e.g. a batch of unreadable images only is no step
    }
  }

  [Symbol.asyncIterator](): AsyncGenerator<Batch, void, undefined> {
    return this.epochBatches();
  }

  /** Starts the batches from the consumer's position up to `prefetch` ahead (within the epoch). */
  private fillAhead(): void {
    const e = this.epochIndex;
    // After setState or an abandoned epoch, batches in flight may be for other positions.
    if (this.ahead.length > 0 && (this.ahead[0]!.epoch !== e || this.ahead[0]!.batch !== this.batchIndex)) this.ahead = [];
    const last = Math.min(this.batchIndex + this.prefetch, this.batchesPerEpoch) - 1;
    for (let b = this.batchIndex + this.ahead.length; b <= last; b++) {
      const result = this.build(e, b);
      result.catch(() => {}); // a batch dropped by setState must not become an unhandled rejection
      this.ahead.push({ epoch: e, batch: b, result });
    }
  }

  /** The samples of `epoch` in order: one seeded permutation per epoch, cached for the current one. */
  private orderOf(epoch: number): Int32Array {
    if (this.order?.epoch === epoch) return this.order.samples;
    let samples = this.indices;
    if (this.shuffle) {
      const perm = new Random(mixSeed(this.seed, epoch)).permutation(this.samples);
      samples = Int32Array.from(perm, (p) => this.indices[p]!);
    }
    this.order = { epoch, samples };
    return samples;
  }

  /** The augmentation of sample `k` in `epoch`, or undefined (the preprocessing's resize policy). */
  private augmentOf(epoch: number, k: number): ImageAugment | undefined {
    const { randomResizedCrop: rrc, horizontalFlip } = this.augment;
    if (!rrc && !horizontalFlip) return undefined;
    const rng = new Random(mixSeed(this.seed, epoch, k));
    const flip = horizontalFlip ? rng.next() < 0.5 : false; // drawn first: the crop draws later, when the size is known
    const options = typeof rrc === 'object' ? rrc : {};
    return { flip, ...(rrc ? { crop: (h: number, w: number) => randomResizedCropBox(h, w, rng, options) } : {}) };
  }

  private async build(epoch: number, batch: number): Promise<BuiltBatch> {
    const order = this.orderOf(epoch);
    const start = batch * this.batchSize;
    const size = Math.min(this.batchSize, this.samples - start);
    const [h, w, c] = this.sampleShape;
    const per = h * w * c;
    const x = new Float32Array(size * per);
    const ok = new Uint8Array(size);
    const skipped: string[] = [];
    await Promise.all(
      Array.from({ length: size }, (_, i) =>
        this.limiter.run(async () => {
          const k = order[start + i]!;
          const file = this.source.files[k]!;
          const pixels = await this.readSample(file, epoch, k);
          if (pixels === null) {
            skipped.push(file);
            return;
          }
          writeScaledPixels(pixels, this.affine, x, i * per);
          ok[i] = 1;
        }),
      ),
    );
    const labels = Int32Array.from({ length: size }, (_, i) => this.source.labels[order[start + i]!]!);
    if (skipped.length === 0) return { x, y: labels, size, shape: [size, h, w, c], skipped };
    this.skippedImages += skipped.length;
    for (const f of skipped) this.badFiles.add(f);
    return { ...compact(x, labels, ok, per), skipped, shape: [size - skipped.length, h, w, c] };
  }

  /** The file's pixels, or null when it is unreadable and bad images are skipped. */
  private async readSample(file: string, epoch: number, k: number): Promise<Uint8Array | null> {
    let pixels: Uint8Array;
    try {
      pixels = await this.readPixels(file, this.sampleShape, this.preprocessing, this.augmentOf(epoch, k));
    } catch (e) {
      if (!(e instanceof DatasetError)) throw e;
      if (this.skipBadImages) return null;
      throw new DatasetError(`${e.message} — fix or remove it, or pass --skip-bad-images to leave unreadable images out`, file);
    }
    const [h, w, c] = this.sampleShape;
    if (pixels.length !== h * w * c) throw new DatasetError(`read ${pixels.length} values, expected ${h}×${w}×${c}`, file);
    return pixels;
  }
}

/** Keeps the entries marked ok, in order. */
function compact(x: Float32Array, y: Int32Array, ok: Uint8Array, per: number): { x: Float32Array; y: Int32Array; size: number } {
  let n = 0;
  for (let i = 0; i < ok.length; i++) {
    if (!ok[i]) continue;
    if (n !== i) x.copyWithin(n * per, i * per, (i + 1) * per);
    y[n++] = y[i]!;
  }
  return { x: x.slice(0, n * per), y: y.slice(0, n), size: n };
}
