/**
 * The trainer: epochs of seeded, augmented batches; an optimizer with a learning-rate schedule;
 * evaluation each epoch; metrics, curves and atomic checkpoints in a run folder; exact resume.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '../core/backend.js';
import { getBackend, setBackend } from '../core/engine.js';
import { OptionError } from '../core/errors.js';
import {
  type ImagePreprocessing,
  RESIZE_INTERPOLATIONS,
  RESIZE_POLICIES,
  type ResizeInterpolation,
  type ResizePolicy,
  trainingPreprocessing,
} from '../data/image-preprocessing.js';
import { parseDatasetSpec } from '../data/spec.js';
import { type Batch, type BatchLoader, timedBatches } from '../data/loader.js';
import { openTrainingData, type TrainingData } from '../data/training-data.js';
import { removeStaleTempFiles, writeFileAtomicSync } from '../io/atomic.js';
import { type KillPoint, killPoint } from '../io/kill-point.js';
import { acquireRunLock } from '../io/run-lock.js';
import { openWeights, type WeightsSource } from '../io/weights-source.js';
import { makeOutputDir } from '../io/output-paths.js';
import { buildModel, getModelEntry, type ModelEntry } from '../models/registry.js';
import { checkTrainingMemory } from './memory-estimate.js';
import type { Model } from '../nn/model.js';
import {
  checkResumable,
  hasCheckpoint,
  type LoadedCheckpoint,
  loadModelWeights,
  readCheckpoint,
  saveCheckpoint,
  syncWeightsFile,
  type RunState,
  WEIGHTS_FILE,
} from './checkpoint.js';
import { writeCurves } from './curves.js';
import { ExponentialMovingAverage } from './ema.js';
import { evaluate, type EvalResult } from './metrics.js';
import { Optimizer, type OptimizerName, type OptimizerOptions, TrainingDivergedError } from './optimizers.js';
import { resolveMultiLabel } from './multilabel.js';
import { DataParallel } from './parallel/data-parallel.js';
import { Progress } from './progress.js';
import { SMALL_IMAGE_MODEL_OPTIONS, SMALL_IMAGE_XCEPTION_OPTIONS, trainingStep } from './step.js';
import {
  bf16HardwareOf,
  checkPrecisionResume,
  precisionOf,
  type TrainPrecision,
  useTrainPrecision,
  validatePrecision,
} from './precision.js';
import { learningRateAt, validateSchedule, type ScheduleName, type ScheduleOptions } from './schedules.js';
import {
  applyPhase,
  buildTransferModel,
  checkTransferResume,
  checkUnfreezeFrom,
  fineTuneLr,
  phaseOfEpoch,
  totalEpochs,
  transferChannels,
  transferImageSize,
  validateTransferConfig,
  type Phase,
  type TransferConfig,
} from './transfer.js';

export interface AugmentConfig {
  /** Random crop after zero padding by this many pixels (0 = off). */
  cropPadding: number;
  flip: boolean;
  /** Inception-style random-resized crop (image folders). */
  randomResizedCrop: boolean;
}

/** Transfer learning (`weights`, `freezeBase`, `fineTuneEpochs`, …): see transfer.ts. */
export interface TrainConfig extends TransferConfig {
  dataset: string;
  model: string;
  /**
   * Model options; inputShape and classes default to the dataset's. With `weights` whose source
   * records its model, only options that touch no loaded weight (dropout, bnMomentum, …); others
   * must agree with the source's.
   */
  modelOptions: Record<string, unknown>;
  epochs: number;
  batchSize: number;
  optimizer: OptimizerName;
  lr: number;
  momentum?: number;
  nesterov?: boolean;
  weightDecay: number;
  schedule: ScheduleName;
  warmupEpochs: number;
  /** exponential-step: decay factor and period in epochs (paper: 0.94 every 2). */
  decay?: number;
  decayEpochs?: number;
  labelSmoothing: number;
  /**
   * Multi-label training (sigmoid head, binary cross-entropy, MAP@100): default implied by
   * multi-label data (fashion-mosaic) or a sigmoid head; a softmax head on such data is an error.
   */
  multiLabel?: boolean;
  /** Decay of the weight average used for evaluation (0 = off; the paper used Polyak averaging). */
  ema: number;
  clipNorm: number;
  seed: number;
  augment: AugmentConfig;
  /** Resize images to this size (square) before the model; default the dataset's. */
  imageSize?: number;
  /** Hold out this fraction of the training set for per-epoch evaluation (0 = evaluate on test). */
  validationFraction: number;
  /** Use only the first N training / test images (quick runs; image folders: N spread over the classes). */
  limitTrain?: number;
  limitTest?: number;
  /** Image folders: leave unreadable images out of their batches (counted each epoch) instead of stopping. */
  skipBadImages?: boolean;
  /** Image folders: how a file meets the input (default 'center-crop') and its filter (default 'bilinear'); recorded with the weights. */
  resize?: ResizePolicy;
  interpolation?: ResizeInterpolation;
  /**
   * Evaluate this many times per epoch, at evenly spaced steps, the last at the epoch end
   * (default 1: only at epoch ends). Every evaluation is recorded in `evalPoints`.
   */
  evalsPerEpoch?: number;
  outDir: string;
  /**
   * Split every batch between this many replicas in worker threads, each with its share of the
   * cores (1 = off). Batch normalization then normalizes each shard with its own statistics.
   */
  replicas?: number;
  /**
   * 'fp32' (default) or 'bf16': mixed precision on the native backend — convolutions forward and
   * backward multiply in bfloat16 (float32 results); weights, optimizer state and batch-norm
   * statistics stay float32 (see precision.ts). Recorded with the run; resuming keeps it.
   */
  precision?: TrainPrecision;
}

/** Resolves on the event loop's next check phase, after pending I/O and signal callbacks. */
const turnOfEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * The model options a new run starts from, by its data: the main job's small network for the
 * built-in small-image datasets (fashion-mnist, mnist, cifar10, cifar100); none for an image
 * folder, i.e. the model as Keras builds it (Xception: stem 'imagenet', width 1, 8 middle blocks)
 * at the folder's image size. Either way the trainer picks stem 'small' when the input is below
 * the ImageNet stem's minimum and no stem is given.
 */
export function defaultModelOptions(model: string, dataset: string): Record<string, unknown> {
  if (['folder', 'multilabel'].includes(parseDatasetSpec(dataset).kind)) return {};
  return model === 'xception' ? { ...SMALL_IMAGE_XCEPTION_OPTIONS } : { ...SMALL_IMAGE_MODEL_OPTIONS };
}

/** The options, resolved, that say how big the model is: stem, width, middle blocks, input. */
export function describeModel(model: string, options: Record<string, unknown>): string {
  const o = getModelEntry(model).resolveOptions(options);
  const [h, w, c] = o['inputShape'] as number[];
  return (
    `${model}: stem ${String(o['stem'])}, width ${String(o['width'])}` +
    (o['middleBlocks'] !== undefined ? `, ${String(o['middleBlocks'])} middle blocks` : '') +
    `, input ${h}×${w}×${c}, ${String(o['classes'])} classes`
  );
}

export { trainingStep, type TrainingStepParts } from './step.js';

export const DEFAULT_TRAIN_CONFIG: TrainConfig = {
  dataset: 'fashion-mnist',
  model: 'xception',
  modelOptions: defaultModelOptions('xception', 'fashion-mnist'),
  epochs: 5,
  batchSize: 128,
  optimizer: 'sgd',
  lr: 0.1,
  momentum: 0.9,
  nesterov: true,
  weightDecay: 5e-5,
  schedule: 'one-cycle',
  warmupEpochs: 0,
  labelSmoothing: 0.1,
  ema: 0,
  clipNorm: 0,
  seed: 0,
  // No augmentation: in five epochs this network underfits (train ≈ test accuracy), and crop+flip
  // cost accuracy (measured, 1 thread: 93.00% without, 92.84% flip only, ~92.0% crop 2 + flip).
  augment: { cropPadding: 0, flip: false, randomResizedCrop: false },
  validationFraction: 0,
  outDir: 'runs/xception-fashion-mnist',
};

/**
 * The peak learning rate a run gets when none is given: for sgd the main job's 0.1 at batch 128,
 * scaled linearly with the batch (Goyal et al.'s rule: 0.1 at batch 16 made a from-scratch run on
 * 72 photos diverge, loss 1.2 → 18); for the adaptive optimizers Keras's 1e-3, whatever the batch.
 */
export function defaultLearningRate(optimizer: OptimizerName, batchSize: number): number {
  return optimizer === 'sgd' ? (DEFAULT_TRAIN_CONFIG.lr * batchSize) / DEFAULT_TRAIN_CONFIG.batchSize : 1e-3;
}

export interface RunOptions {
  resume?: boolean;
  /** Where progress goes (default stderr). */
  progress?: Progress;
  /** Polled after every step; true saves a checkpoint and returns (Ctrl-C). */
  shouldStop?: () => boolean;
  /** Also save a checkpoint every N steps (default: only at epoch ends and on stop). */
  checkpointEverySteps?: number;
  /** Backend name (default: the active backend). */
  backend?: string;
}

export interface EpochRecord {
  epoch: number;
  step: number;
  lr: number;
  trainLoss: number;
  trainTop1: number;
  evalLoss: number;
  evalTop1: number;
  evalTop5: number;
  /** Multi-label runs: MAP@100 of the evaluation (a fraction 0–1); evalTop1/evalTop5 are then null. */
  evalMap?: number;
  imagesPerSec: number;
  wallSeconds: number;
  /** Share of the epoch's step loop (steps + waiting) spent waiting for batches. */
  dataWait: number;
  /** Images left out this epoch because they could not be read (--skip-bad-images). */
  skippedImages: number;
  /** Transfer runs with --freeze-base: which phase the epoch belonged to. */
  phase?: Phase;
  /** What the convolutions multiplied in (absent in runs from before the option: fp32). */
  precision?: TrainPrecision;
}

/** One evaluation during training: where it happened (step, time) and what it measured. */
export interface EvalPoint {
  step: number;
  /** Fractional epochs done, e.g. 0.5 in the middle of the first epoch. */
  epoch: number;
  /** Seconds since the run started, evaluations included (summed over resumed sessions). */
  wallSeconds: number;
  /** Seconds spent in training steps only (summed over resumed sessions). */
  trainSeconds: number;
  evalLoss: number;
  evalTop1: number;
  evalTop5: number;
  /** Multi-label runs: MAP@100 (a fraction 0–1). */
  evalMap?: number;
}

export interface TrainResult {
  /** What the final figures below were measured on: 'test', 'validation', or null (no evaluation). */
  finalEvalName: 'test' | 'validation' | null;
  testTop1: number;
  testTop5: number;
  /** Multi-label runs: MAP@100 of the final evaluation (a fraction 0–1), with each class's AP@100. */
  testMap?: number;
  testPerClassAP?: number[];
  testLoss: number;
  epochs: number;
  wallSeconds: number;
  imagesPerSec: number;
  outDir: string;
  /** True when the run stopped early (Ctrl-C) after saving a checkpoint. */
  interrupted: boolean;
  history: EpochRecord[];
  /** Every evaluation (evalsPerEpoch per epoch), with step and time. */
  evalPoints: EvalPoint[];
  /** Optimizer steps done in total. */
  steps: number;
  /** Seconds spent in training steps in total (all sessions of a resumed run). */
  trainSeconds: number;
  backend: string;
  precision: TrainPrecision;
  /** bf16 runs: whether this CPU does bf16 natively or oneDNN emulates it (correct, not faster). */
  bf16Hardware?: 'native' | 'emulated';
}

export { TrainingDivergedError };
export { TRAIN_PRECISIONS, type TrainPrecision } from './precision.js';

/** Larger batches only exhaust memory (a batch of 299×299×3 floats is 1 MiB per image). */
export const MAX_BATCH_SIZE = 65_536;

// fineTuneEpochs: fine-tuning runs at a constant rate, so more of it continues exactly.
const RESUME_MAY_CHANGE = ['epochs', 'outDir', 'replicas', 'fineTuneEpochs'];

export function validateTrainConfig(c: TrainConfig): void {
  const posInt = (k: keyof TrainConfig) => {
    const v = c[k];
    if (!Number.isInteger(v) || (v as number) < 1) throw new OptionError(`${k} must be a positive integer, got ${JSON.stringify(v)}`);
  };
  posInt('epochs');
  posInt('batchSize');
  if (c.batchSize > MAX_BATCH_SIZE) throw new OptionError(`batchSize must be at most ${MAX_BATCH_SIZE}, got ${c.batchSize}`);
  if (!(c.labelSmoothing >= 0 && c.labelSmoothing < 1)) throw new OptionError(`labelSmoothing must be in [0, 1), got ${c.labelSmoothing}`);
  if (!(c.ema === 0 || (c.ema > 0 && c.ema < 1))) throw new OptionError(`ema must be 0 (off) or in (0, 1), got ${c.ema}`);
  if (!(c.validationFraction >= 0 && c.validationFraction < 1)) throw new OptionError(`validationFraction must be in [0, 1)`);
  if (!(c.warmupEpochs >= 0)) throw new OptionError(`warmupEpochs must be ≥ 0`);
  if (!(Number.isInteger(c.augment.cropPadding) && c.augment.cropPadding >= 0))
    throw new OptionError(`crop padding must be a non-negative integer`);
  for (const k of ['limitTrain', 'limitTest', 'imageSize', 'evalsPerEpoch', 'replicas'] as const) {
    const v = c[k];
    if (v !== undefined && !(Number.isInteger(v) && v > 0)) throw new OptionError(`${k} must be a positive integer, got ${v}`);
  }
  if (c.skipBadImages !== undefined && typeof c.skipBadImages !== 'boolean')
    throw new OptionError(`skipBadImages must be true or false, got ${JSON.stringify(c.skipBadImages)}`);
  validateResize(c);
  validatePrecision(c.precision);
  if ((c.replicas ?? 1) > c.batchSize) throw new OptionError(`replicas (${c.replicas}) cannot exceed the batch size (${c.batchSize})`);
  // More replicas than cores would share cores and crawl (and start slowly), looking hung.
  const cores = availableParallelism();
  if ((c.replicas ?? 1) > cores)
    throw new OptionError(
      `replicas (${c.replicas}) exceeds the ${cores} core(s) of this machine: each replica needs a core of its own; use at most ${cores}`,
    );
  getModelEntry(c.model);
  validateSchedule(scheduleOf(c));
  validateTransferConfig(c);
}

/** resize and interpolation: known values, and only where images are read from files. */
function validateResize(c: TrainConfig): void {
  if (c.resize !== undefined && !RESIZE_POLICIES.includes(c.resize))
    throw new OptionError(`resize must be one of ${RESIZE_POLICIES.join(', ')}, got ${JSON.stringify(c.resize)}`);
  if (c.interpolation !== undefined && !RESIZE_INTERPOLATIONS.includes(c.interpolation)) {
    throw new OptionError(`interpolation must be one of ${RESIZE_INTERPOLATIONS.join(', ')}, got ${JSON.stringify(c.interpolation)}`);
  }
  if ((c.resize ?? c.interpolation) !== undefined && parseDatasetSpec(c.dataset).kind !== 'folder') {
    throw new OptionError(`resize and interpolation apply to image folders (folder:DIR), not to ${c.dataset}`);
  }
}

function scheduleOf(c: TrainConfig): ScheduleOptions {
  return { name: c.schedule, lr: c.lr, decay: c.decay, decayEpochs: c.decayEpochs };
}

/** Stem 'small' for inputs the ImageNet stem cannot take (e.g. 28×28), else nothing (the model's default). */
function smallStemBelowMinimum(entry: ModelEntry, size: number): { stem?: 'small' } {
  return size < entry.minInput('imagenet') ? { stem: 'small' } : {};
}

/**
 * Trains a model as the config says, in `config.outDir`, or continues the run there (`run.resume`).
 * The run folder is locked for the whole run: a second process writing it is refused.
 */
export async function train(config: TrainConfig, run: RunOptions = {}): Promise<TrainResult> {
  validateTrainConfig(config);
  if (run.backend) setBackend(run.backend);
  const outDir = makeOutputDir(config.outDir, 'outDir');
  const release = acquireRunLock(outDir);
  try {
    return await trainInLockedFolder(config, run, outDir);
  } finally {
    release();
  }
}

/**
 * The outline: the run folder, the data, the model, a session that owns the optimizer and the
 * run's counters, its replicas, then the epochs.
 */
async function trainInLockedFolder(config: TrainConfig, run: RunOptions, outDir: string): Promise<TrainResult> {
  const restorePrecision = useTrainPrecision(getBackend(), precisionOf(config));
  try {
    return await trainWithPrecision(config, run, outDir);
  } finally {
    restorePrecision();
  }
}

async function trainWithPrecision(config: TrainConfig, run: RunOptions, outDir: string): Promise<TrainResult> {
  const backend = getBackend();
  const progress = run.progress ?? new Progress(process.stderr);
  const saved = openRunFolder(config, outDir, run.resume ?? false, progress);
  const { data, source, imagePreprocessing } = await openData(config, saved, progress);
  const { model, modelOptions } = await runModel(config, saved?.state ?? null, source, data, backend, progress);
  checkModelFitsData(model, data, config.dataset);
  checkTrainingMemory(model, config.batchSize, config.replicas ?? 1);
  const multiLabel = runIsMultiLabel(config, data, modelOptions, model);
  const session = new TrainingSession(
    { config, run, backend, progress, outDir, data, imagePreprocessing, model, modelOptions, multiLabel },
    saved,
  );
  if (saved) session.restore(saved);
  writeFileAtomicSync(
    join(outDir, 'config.json'),
    new TextEncoder().encode(`${JSON.stringify({ ...config, backend: backend.name }, null, 2)}\n`),
  );
  session.startClock();
  await session.startReplicas();
  session.announce();
  try {
    await session.runEpochs();
    return await session.result();
  } finally {
    await session.close();
  }
}

/**
 * The run folder's checkpoint when resuming, checked against the config. Temporary files a killed
 * process left are removed, and a weights file left behind by a save killed half-way is rewritten.
 */
function openRunFolder(config: TrainConfig, outDir: string, resuming: boolean, progress: Progress): LoadedCheckpoint | null {
  removeStaleTempFiles(outDir);
  if (!resuming && hasCheckpoint(outDir)) {
    throw new OptionError(`${outDir} already holds a run; pass --resume to continue it or choose another --out`);
  }
  const saved = resuming ? readCheckpoint(outDir) : null;
  if (resuming && !saved) throw new OptionError(`nothing to resume in ${outDir}`);
  if (saved) {
    const was = saved.state.config as { precision?: TrainPrecision };
    checkPrecisionResume(was, config);
    // Absent (a run from before the option) and 'fp32' are the same setting.
    const normal = (c: object) => ({ ...c, precision: precisionOf(c as { precision?: TrainPrecision }) });
    checkResumable(normal(saved.state.config), normal(config), RESUME_MAY_CHANGE);
  }
  if (saved) checkTransferResume(saved.state.config as unknown as TrainConfig, config);
  const repaired = saved ? syncWeightsFile(outDir, saved) : null;
  if (repaired) progress.line(`${repaired}; rewrote ${WEIGHTS_FILE} from the checkpoint`);
  return saved;
}

/** The run's data, the weights source of a new transfer run, and how image files become inputs. */
async function openData(
  config: TrainConfig,
  saved: LoadedCheckpoint | null,
  progress: Progress,
): Promise<{ data: TrainingData; source: WeightsSource | null; imagePreprocessing: ImagePreprocessing }> {
  const entry = getModelEntry(config.model);
  progress.line(`loading ${config.dataset} …`);
  // Transfer: the source's record decides the model, and its images' channels.
  const source = config.weights !== undefined && !saved ? await openWeights(config.weights) : null;
  // An input shape given with the model decides the images' size and channels.
  const requested = config.modelOptions['inputShape'] as readonly number[] | undefined;
  const resumedShape = saved?.state.model.options['inputShape'] as readonly number[] | undefined;
  const imageSize = config.imageSize ?? requested?.[0];
  // Image folders have no size of their own: a transfer run takes its weights' (a run at 64×64
  // continued at 299×299 with the small stem needed 33 GB).
  const folderImageSize = source ? transferImageSize(source) : undefined;
  const channels = source
    ? transferChannels(source, config.modelOptions)
    : config.weights !== undefined
      ? resumedShape?.[2]
      : requested?.[2];
  // How image files become inputs; recorded with the weights (built-in data: what predict should do).
  const imagePreprocessing: ImagePreprocessing = {
    ...trainingPreprocessing(entry.preprocessing),
    ...(config.resize ? { resize: config.resize } : {}),
    ...(config.interpolation ? { interpolation: config.interpolation } : {}),
  };
  const data = await openTrainingData({
    dataset: config.dataset,
    scaling: entry.preprocessing,
    augment: config.augment,
    validationFraction: config.validationFraction,
    seed: config.seed,
    batchSize: config.batchSize,
    skipBadImages: config.skipBadImages ?? false,
    preprocessing: imagePreprocessing,
    ...(imageSize !== undefined ? { imageSize } : {}),
    ...(folderImageSize !== undefined ? { folderImageSize } : {}),
    ...(channels !== undefined ? { channels } : {}),
    ...(config.limitTrain !== undefined ? { limitTrain: config.limitTrain } : {}),
    ...(config.limitTest !== undefined ? { limitTest: config.limitTest } : {}),
  });
  progress.line(data.description);
  for (const note of data.notes) progress.line(note);
  return { data, source, imagePreprocessing };
}

/** resolveMultiLabel for this run (the model is disposed on refusal). */
function runIsMultiLabel(config: TrainConfig, data: TrainingData, modelOptions: Record<string, unknown>, model: Model): boolean {
  try {
    const activation = getModelEntry(config.model).resolveOptions(modelOptions)['classifierActivation'];
    const multiLabel = resolveMultiLabel(config.multiLabel, data.multiLabel, activation);
    return multiLabel;
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** The model must take the data's square images and give one output per class. */
function checkModelFitsData(model: Model, data: DataShape, dataset: string): void {
  const [h, w, ch] = model.inputShape as [number, number, number];
  const classes = model.outputShape[0]!;
  if (classes !== data.classes) throw new OptionError(`the model has ${classes} outputs but ${dataset} has ${data.classes} classes`);
  if (h !== w) throw new OptionError(`training needs a square model input, got ${h}×${w}`);
  if (ch !== data.sampleShape[2]) throw new OptionError(`the model takes ${ch} channels but the data gives ${data.sampleShape[2]}`);
}

/** What train() has opened before the session starts. */
interface RunSetup {
  config: TrainConfig;
  run: RunOptions;
  backend: Backend;
  progress: Progress;
  outDir: string;
  data: TrainingData;
  imagePreprocessing: ImagePreprocessing;
  model: Model;
  modelOptions: Record<string, unknown>;
  multiLabel: boolean;
}

/** One epoch's running figures, for its progress lines and its record. */
interface EpochStats {
  lossSum: number;
  correct: number;
  seen: number;
  lr: number;
  started: bigint;
  /** Seconds spent waiting for batches (filled in by timedBatches and the event-loop turns). */
  wait: { seconds: number };
  stepSeconds: number;
  skippedBefore: number;
}

const NO_EVALUATION: EvalResult = { loss: NaN, top1: NaN, top5: NaN, count: 0 };

/** The batches, passing a crash test's kill point before each (see io/kill-point.ts). */
async function* withKillPoint<T>(batches: AsyncIterable<T>, point: KillPoint): AsyncGenerator<T> {
  for await (const b of batches) {
    killPoint(point);
    yield b;
  }
}

/** Seconds since `from`. */
const secondsSince = (from: bigint): number => Number(process.hrtime.bigint() - from) / 1e9;

/**
 * A run in progress: the optimizer (one per transfer phase), the weight average, the replicas,
 * and the counters a checkpoint saves (step, epochs, history, evaluations, time).
 */
class TrainingSession {
  private readonly config: TrainConfig;
  private readonly progress: Progress;
  private readonly model: Model;
  private readonly loader: BatchLoader;
  private readonly evalLoader: BatchLoader | null;
  private readonly classes: number;
  private readonly epochsInAll: number;
  private readonly stepsPerEpoch: number;
  private readonly schedule: ScheduleOptions & { warmupSteps: number };
  private readonly optimizerOptions: OptimizerOptions;
  private readonly ema: ExponentialMovingAverage | null;
  /** Steps within an epoch after which to evaluate mid-epoch (the epoch end is always evaluated). */
  private readonly midEpochEvals = new Set<number>();
  private optimizer: Optimizer;
  /** Transfer runs with a frozen base have phases; each starts with a fresh optimizer state. */
  private phase: Phase | null;
  private dp: DataParallel | null = null;
  private step = 0;
  private epochsDone = 0;
  private history: EpochRecord[] = [];
  private evalPoints: EvalPoint[] = [];
  /** Time of the sessions before a resume. */
  private wallBefore = 0;
  private trainSecondsBefore = 0;
  private started = process.hrtime.bigint();
  private trainSeconds = 0;
  private trainImages = 0;
  private interrupted = false;
  private stopAfterEpoch = false;
  /** This session's last epoch-end evaluation (its per-class AP is not in the epoch record). */
  private lastEval: EvalResult | null = null;

  constructor(
    private readonly setup: RunSetup,
    saved: LoadedCheckpoint | null,
  ) {
    const { config, model, data } = setup;
    this.config = config;
    this.progress = setup.progress;
    this.model = model;
    this.loader = data.train;
    this.evalLoader = data.evaluation;
    this.classes = model.outputShape[0]!;
    this.optimizerOptions = {
      lr: config.lr,
      momentum: config.momentum,
      nesterov: config.nesterov,
      weightDecay: config.weightDecay,
      clipNorm: config.clipNorm,
    };
    this.epochsInAll = totalEpochs(config);
    this.phase = phaseOfEpoch(config, saved?.state.epochsDone ?? 0);
    this.optimizer = this.optimizerFor(this.phase);
    if (this.phase) this.progress.line(applyPhase(model, config, this.phase));
    this.ema = config.ema > 0 ? new ExponentialMovingAverage(config.ema) : null;
    this.stepsPerEpoch = this.loader.batchesPerEpoch;
    this.schedule = { ...scheduleOf(config), warmupSteps: Math.round(config.warmupEpochs * this.stepsPerEpoch) };
    const evalsPerEpoch = Math.min(config.evalsPerEpoch ?? 1, this.stepsPerEpoch);
    for (let k = 1; k < evalsPerEpoch; k++) this.midEpochEvals.add(Math.round((k * this.stepsPerEpoch) / evalsPerEpoch));
  }

  private optimizerFor(p: Phase | null): Optimizer {
    return new Optimizer(
      this.config.optimizer,
      p === 'fine-tune' ? { ...this.optimizerOptions, lr: fineTuneLr(this.config) } : this.optimizerOptions,
    );
  }

  /** Continues from a checkpoint: weights, optimizer, average, data order, randomness, counters. */
  restore(saved: LoadedCheckpoint): void {
    const { model, optimizer, ema } = this;
    loadModelWeights(model, saved.model, join(this.setup.outDir, 'checkpoint.safetensors'));
    // A checkpoint from the end of the head phase holds that phase's optimizer state: not wanted.
    if ((saved.state.phase ?? null) === this.phase) {
      optimizer.setState(
        { name: saved.state.optimizer.name, step: saved.state.optimizer.step, slots: saved.optimizerSlots },
        model.weights,
      );
    }
    if (ema && saved.state.ema) ema.setState({ updates: saved.state.ema.updates, shadow: saved.ema }, model.weights);
    this.loader.setState(saved.state.loader);
    model.rng.setState(saved.state.modelRandom);
    this.step = saved.state.step;
    this.epochsDone = saved.state.epochsDone;
    this.wallBefore = saved.state.wallSeconds;
    this.history = saved.state.history as unknown as EpochRecord[];
    this.evalPoints = (saved.state.evalPoints ?? []) as unknown as EvalPoint[];
    this.trainSecondsBefore = saved.state.trainSeconds ?? 0;
    this.progress.line(`resuming ${this.setup.outDir} at epoch ${this.epochsDone + 1}, step ${this.step}`);
  }

  /** This session's wall time starts here (replica start-up included). */
  startClock(): void {
    this.started = process.hrtime.bigint();
  }

  private wall(): number {
    return this.wallBefore + secondsSince(this.started);
  }

  /**
   * Data-parallel: the replicas train; this thread's model, optimizer and average are brought up
   * to date from replica 0 before every evaluation and checkpoint.
   */
  async startReplicas(): Promise<void> {
    const replicas = this.config.replicas ?? 1;
    if (replicas <= 1) return;
    this.progress.line(`starting ${replicas} training replicas …`);
    const { model, optimizer, ema, config } = this;
    this.dp = await DataParallel.start(
      {
        replicas,
        model: config.model,
        modelOptions: this.setup.modelOptions,
        onReplicaReady: (ready, total) => this.progress.line(`replica ${ready}/${total} ready`),
        optimizer: { name: optimizer.name, options: this.optimizerOptions },
        labelSmoothing: config.labelSmoothing,
        multiLabel: this.setup.multiLabel,
        ema: config.ema,
        precision: precisionOf(config),
      },
      { model, optimizer, ema },
    );
  }

  announce(): void {
    const { config, model, dp } = this;
    this.progress.line(
      `model ${describeModel(config.model, this.setup.modelOptions)} (${model.countParams().toLocaleString('en-US')} parameters)`,
    );
    this.progress.line(
      `training on ${this.setup.data.name}: ` +
        `${this.loader.samples} images, ${this.epochsInAll} epochs of ${this.stepsPerEpoch} steps, backend ${backendLabel(this.setup.backend)}` +
        (dp ? `, ${dp.replicas} replicas × ${dp.threadsPerReplica} thread(s)` : '') +
        (precisionOf(config) === 'bf16' ? `, bf16 mixed precision (${bf16HardwareOf(this.setup.backend)} on this CPU)` : ''),
    );
  }

  private runState(): RunState {
    const { config, ema } = this;
    return {
      step: this.step,
      epochsDone: this.epochsDone,
      loader: this.loader.getState(),
      modelRandom: this.model.rng.getState(),
      optimizer: { name: this.optimizer.name, step: this.optimizer.step },
      ema: ema ? { decay: ema.decay, updates: ema.updates } : null,
      wallSeconds: this.wall(),
      history: this.history as unknown as Record<string, number>[],
      config: config as unknown as Record<string, unknown>,
      model: { name: config.model, options: this.setup.modelOptions },
      ...(this.phase ? { phase: this.phase } : {}),
      // What predict/eval/export need to use the weights with no flags (see io/model-record.ts).
      ...(this.setup.data.classNames ? { classNames: [...this.setup.data.classNames] } : {}),
      preprocessing: this.setup.imagePreprocessing,
      evalPoints: this.evalPoints as unknown as Record<string, number>[],
      trainSeconds: this.trainSecondsBefore + this.trainSeconds,
    };
  }

  private async pull(withOptimizer: boolean): Promise<void> {
    if (this.dp) await this.dp.pullInto({ model: this.model, optimizer: this.optimizer, ema: this.ema }, withOptimizer);
  }

  private async save(): Promise<void> {
    await this.pull(true);
    saveCheckpoint(this.setup.outDir, this.model, this.optimizer, this.ema, this.runState());
  }

  /** Evaluation uses the weight average when there is one. */
  private async evaluateOn(loader: BatchLoader): Promise<EvalResult> {
    await this.pull(false);
    const { model, ema } = this;
    const run = () =>
      evaluate(model, withKillPoint(loader.epochBatches(), 'eval-batch'), this.classes, { multiLabel: this.setup.multiLabel });
    return ema && ema.updates > 0 ? ema.withAveraged(run) : run();
  }

  private async evalNow(): Promise<EvalResult> {
    return this.evalLoader ? this.evaluateOn(this.evalLoader) : NO_EVALUATION;
  }

  private recordEval(ev: EvalResult): void {
    this.evalPoints.push({
      step: this.step,
      epoch: this.step / this.stepsPerEpoch,
      wallSeconds: this.wall(),
      trainSeconds: this.trainSecondsBefore + this.trainSeconds,
      evalLoss: ev.loss,
      evalTop1: ev.top1,
      evalTop5: ev.top5,
      ...(ev.map !== undefined ? { evalMap: ev.map } : {}),
    });
  }

  /** A model trained from scratch warms batch norm's statistics up by the run's step (ForwardOptions.statisticsStep). */
  private statisticsStep(): number | undefined {
    return this.config.weights === undefined ? this.step : undefined;
  }

  /** One step in this thread (see trainingStep). */
  private localStep(batch: Batch): { loss: number; correct: number } {
    const { model, optimizer, ema, config } = this;
    return trainingStep(
      {
        model,
        optimizer,
        ema,
        labelSmoothing: config.labelSmoothing,
        classes: this.classes,
        backend: this.setup.backend,
        multiLabel: this.setup.multiLabel,
        statisticsStep: this.statisticsStep(),
      },
      batch,
    );
  }

  async runEpochs(): Promise<void> {
    for (let epoch = this.epochsDone; epoch < this.epochsInAll && !this.interrupted; epoch++) {
      this.enterPhase(epoch);
      const stats = await this.runEpochSteps(epoch);
      if (this.interrupted) break;
      await this.endEpoch(epoch, stats);
    }
  }

  /** A transfer run's next phase starts with a fresh optimizer and the base frozen or not. */
  private enterPhase(epoch: number): void {
    const epochPhase = phaseOfEpoch(this.config, epoch);
    if (epochPhase === this.phase) return;
    this.optimizer.disposeSlots();
    this.optimizer = this.optimizerFor(epochPhase);
    this.phase = epochPhase;
    this.progress.line(applyPhase(this.model, this.config, epochPhase!));
  }

  private skippedSoFar(): number {
    return (this.loader.skippedImages ?? 0) + (this.evalLoader?.skippedImages ?? 0);
  }

  /** The epoch's steps; a stop request mid-epoch saves a checkpoint and sets `interrupted`. */
  private async runEpochSteps(epoch: number): Promise<EpochStats> {
    const stats: EpochStats = {
      lossSum: 0,
      correct: 0,
      seen: 0,
      lr: this.optimizer.lr,
      started: process.hrtime.bigint(),
      wait: { seconds: 0 },
      stepSeconds: 0,
      skippedBefore: this.skippedSoFar(),
    };
    for await (const batch of timedBatches(this.loader.epochBatches(), stats.wait)) {
      await this.trainStep(batch, epoch, stats);
      killPoint('step');
      if (await this.afterStep(epoch, stats.wait)) break;
    }
    return stats;
  }

  /** One optimizer step at the scheduled rate, here or on the replicas, and its progress line. */
  private async trainStep(batch: Batch, epoch: number, stats: EpochStats): Promise<void> {
    const { config, dp } = this;
    const t0 = process.hrtime.bigint();
    const lr =
      this.phase === 'fine-tune'
        ? fineTuneLr(config)
        : learningRateAt(this.schedule, this.step, {
            totalSteps: this.stepsPerEpoch * config.epochs,
            stepsPerEpoch: this.stepsPerEpoch,
          });
    stats.lr = lr;
    this.optimizer.lr = lr;
    let step: { loss: number; correct: number };
    try {
      step = dp ? await dp.step(batch, lr, this.model.rng.nextUint32(), this.statisticsStep()) : this.localStep(batch);
    } catch (e) {
      if (e instanceof TrainingDivergedError) throw this.diverged(e.message, epoch, lr);
      throw e;
    }
    const { loss, correct } = step;
    // (Replicas report a non-finite loss; this thread's step throws.)
    if (!Number.isFinite(loss)) throw this.diverged(`the loss became ${loss}`, epoch, lr);
    this.step++;
    stats.lossSum += loss * batch.size;
    stats.correct += correct;
    stats.seen += batch.size;
    const dt = secondsSince(t0);
    this.trainSeconds += dt;
    stats.stepSeconds += dt;
    this.trainImages += batch.size;
    const rate = stats.seen / Math.max(secondsSince(stats.started), 1e-9);
    const stepsLeft = this.stepsPerEpoch * this.epochsInAll - this.step;
    this.progress.step({
      epoch: epoch + 1,
      epochs: this.epochsInAll,
      batch: this.loader.position === 0 ? this.stepsPerEpoch : this.loader.position,
      batches: this.stepsPerEpoch,
      loss: stats.lossSum / stats.seen,
      accuracy: stats.correct / stats.seen,
      imagesPerSec: rate,
      etaSeconds: (stepsLeft * config.batchSize) / rate,
      lr,
    });
  }

  /** The error that stops a diverged run: what, where, and whether a good checkpoint is kept. */
  private diverged(what: string, epoch: number, lr: number): TrainingDivergedError {
    return new TrainingDivergedError(
      `${what} at epoch ${epoch + 1}, step ${this.step + 1} (learning rate ${lr.toPrecision(3)}); training stopped. ` +
        (hasCheckpoint(this.setup.outDir)
          ? `The last good checkpoint in ${this.setup.outDir} is kept.`
          : 'No checkpoint had been written yet.') +
        ' Try a lower --lr or --clip-norm.',
    );
  }

  /** Mid-epoch evaluation, a turn of the event loop, then stop or checkpoint requests; true = stop now. */
  private async afterStep(epoch: number, wait: { seconds: number }): Promise<boolean> {
    // Before the stop check, so that a run stopped right here still has this point on resume.
    if (this.evalLoader && this.midEpochEvals.has(this.step - epoch * this.stepsPerEpoch)) this.recordEval(await this.evalNow());
    // A real turn of the event loop: awaiting the batch generator only runs microtasks, so
    // without this, signal handlers (Ctrl-C), the loader's prefetch and the finalizers of
    // freed tensors would all wait for the end of training.
    // Counted as data wait: prefetched images finish decoding in callbacks run here.
    const turn = process.hrtime.bigint();
    await turnOfEventLoop();
    wait.seconds += secondsSince(turn);
    // After an epoch's last step, stopping and checkpointing wait for the epoch's end (in
    // endEpoch): a checkpoint is never between the last step and the epoch's evaluation, which a
    // resumed run could not redo.
    // (The loader's epoch, not a step count: a streamed epoch can hand out fewer batches.)
    const epochDone = this.loader.epoch !== epoch;
    const { shouldStop, checkpointEverySteps } = this.setup.run;
    if (shouldStop?.()) {
      this.stopAfterEpoch = true;
      if (epochDone) return false;
      await this.save();
      this.progress.line(this.stoppedLine(epoch));
      this.interrupted = true;
      return true;
    }
    if (checkpointEverySteps && this.step % checkpointEverySteps === 0 && !epochDone) await this.save();
    return false;
  }

  private stoppedLine(epoch: number): string {
    return `stopped at epoch ${epoch + 1}, step ${this.step}; checkpoint saved — continue with --resume --out ${this.config.outDir}`;
  }

  /** The epoch's evaluation, record, checkpoint, metrics and curves; then a pending stop. */
  private async endEpoch(epoch: number, stats: EpochStats): Promise<void> {
    const ev = await this.evalNow();
    this.lastEval = ev;
    if (this.evalLoader) this.recordEval(ev);
    this.epochsDone = epoch + 1;
    const skipped = this.skippedSoFar() - stats.skippedBefore;
    const record: EpochRecord = {
      epoch: this.epochsDone,
      step: this.step,
      lr: stats.lr,
      trainLoss: stats.lossSum / Math.max(1, stats.seen),
      trainTop1: stats.correct / Math.max(1, stats.seen),
      evalLoss: ev.loss,
      evalTop1: ev.top1,
      evalTop5: ev.top5,
      ...(ev.map !== undefined ? { evalMap: ev.map } : {}),
      imagesPerSec: this.trainImages / Math.max(this.trainSeconds, 1e-9),
      wallSeconds: this.wall(),
      dataWait: stats.wait.seconds / Math.max(stats.wait.seconds + stats.stepSeconds, 1e-9),
      skippedImages: skipped,
      ...(this.phase ? { phase: this.phase } : {}),
      precision: precisionOf(this.config),
    };
    this.history.push(record);
    await this.save();
    const outDir = this.setup.outDir;
    writeFileAtomicSync(
      join(outDir, 'metrics.jsonl'),
      new TextEncoder().encode(`${this.history.map((r) => JSON.stringify(r)).join('\n')}\n`),
    );
    await writeCurves(outDir, this.history, this.evalLoader ? this.setup.data.evalName : null);
    this.reportEpoch(record, skipped);
    if (this.stopAfterEpoch && this.epochsDone < this.epochsInAll) {
      this.progress.line(this.stoppedLine(epoch));
      this.interrupted = true;
    }
  }

  private reportEpoch(record: EpochRecord, skipped: number): void {
    const { evalLoader, phase } = this;
    this.progress.line(
      `epoch ${this.epochsDone}/${this.epochsInAll}${phase ? ` (${phase})` : ''}: train loss ${record.trainLoss.toFixed(4)} acc ${(100 * record.trainTop1).toFixed(2)}%  ` +
        (evalLoader ? `${this.setup.data.evalName} loss ${record.evalLoss.toFixed(4)} ${evalFigures(record)}  ` : '') +
        `(${record.imagesPerSec.toFixed(record.imagesPerSec < 10 ? 1 : 0)} img/s, data wait ${(100 * record.dataWait).toFixed(1)}%, ${record.wallSeconds.toFixed(0)} s)`,
    );
    if (skipped > 0) {
      const first = [...(this.loader.badFiles ?? []), ...(evalLoader?.badFiles ?? [])][0];
      this.progress.line(
        `skipped ${skipped} unreadable image${skipped === 1 ? '' : 's'} this epoch (--skip-bad-images)${first ? `, e.g. ${first}` : ''}`,
      );
    }
  }

  /** The final figures: the test split when it is separate from the per-epoch evaluation, else the last epoch's. */
  async result(): Promise<TrainResult> {
    const { evalLoader, history, interrupted } = this;
    const data = this.setup.data;
    let final: EvalResult;
    let finalEvalName: TrainResult['finalEvalName'] = evalLoader ? data.evalName : null;
    if (!interrupted && data.test) {
      final = await this.evaluateOn(data.test);
      finalEvalName = 'test';
    } else {
      const last = history.at(-1);
      final =
        last && evalLoader
          ? {
              loss: last.evalLoss,
              top1: last.evalTop1,
              top5: last.evalTop5,
              count: evalLoader.samples,
              ...(last.evalMap !== undefined ? { map: last.evalMap } : {}),
              ...(this.lastEval?.perClassAP ? { perClassAP: this.lastEval.perClassAP } : {}),
            }
          : NO_EVALUATION;
    }
    return {
      finalEvalName,
      testTop1: final.top1,
      testTop5: final.top5,
      ...(final.map !== undefined ? { testMap: final.map } : {}),
      ...(final.perClassAP !== undefined ? { testPerClassAP: final.perClassAP } : {}),
      testLoss: final.loss,
      epochs: this.epochsDone,
      wallSeconds: this.wall(),
      imagesPerSec: this.trainImages / Math.max(this.trainSeconds, 1e-9),
      outDir: this.setup.outDir,
      interrupted,
      history,
      backend: this.setup.backend.name,
      precision: precisionOf(this.config),
      ...this.bf16HardwareField(),
      evalPoints: this.evalPoints,
      steps: this.step,
      trainSeconds: this.trainSecondsBefore + this.trainSeconds,
    };
  }

  private bf16HardwareField(): { bf16Hardware?: 'native' | 'emulated' } {
    const hw = precisionOf(this.config) === 'bf16' ? bf16HardwareOf(this.setup.backend) : null;
    return hw === 'native' || hw === 'emulated' ? { bf16Hardware: hw } : {};
  }

  async close(): Promise<void> {
    await this.dp?.close();
    this.optimizer.disposeSlots();
    this.ema?.dispose();
    this.model.dispose();
  }
}

/** An evaluation's figures for a progress line: top-1/top-5, or MAP@100 for multi-label runs. */
function evalFigures(r: Pick<EpochRecord, 'evalTop1' | 'evalTop5' | 'evalMap'>): string {
  if (r.evalMap !== undefined) return `MAP@100 ${(100 * r.evalMap).toFixed(2)}%`;
  return `top-1 ${(100 * r.evalTop1).toFixed(2)}% top-5 ${(100 * r.evalTop5).toFixed(2)}%`;
}

/** What the run's data says about the model: its input and its classes. */
type DataShape = Pick<TrainingData, 'sampleShape' | 'classes' | 'classNames' | 'multiLabel'>;

/**
 * The run's model and the options it was built with: from the flags, or from a weights source
 * (transfer learning), or — resuming a transfer run — from the checkpoint, which holds every
 * weight, so the source is not read again.
 */
async function runModel(
  config: TrainConfig,
  saved: RunState | null,
  source: WeightsSource | null,
  data: DataShape,
  backend: Backend,
  progress: Progress,
): Promise<{ model: Model; modelOptions: Record<string, unknown> }> {
  let built: { model: Model; modelOptions: Record<string, unknown> };
  if (source === null) {
    const defaults = {
      inputShape: data.sampleShape,
      classes: data.classes,
      seed: config.seed,
      ...smallStemBelowMinimum(getModelEntry(config.model), data.sampleShape[0]),
      // Multi-label data implies a sigmoid head unless the flags say otherwise.
      ...(data.multiLabel ? { classifierActivation: 'sigmoid' } : {}),
    };
    const modelOptions = config.weights === undefined ? { ...defaults, ...config.modelOptions } : saved!.model.options;
    built = { model: buildModel(config.model, { ...modelOptions, backend }), modelOptions };
  } else {
    const [size, , channels] = data.sampleShape;
    const target = {
      model: config.model,
      modelOptions: config.modelOptions,
      seed: config.seed,
      size,
      channels,
      classes: data.classes,
      ...(data.classNames ? { classNames: data.classNames } : {}),
    };
    const t = await buildTransferModel(source, target, backend);
    for (const line of t.lines) progress.line(line);
    built = t;
  }
  try {
    checkUnfreezeFrom(built.model, config);
  } catch (e) {
    built.model.dispose();
    throw e;
  }
  return built;
}

/** The backend's name, and for wasm which build runs on how many threads ("wasm (relaxed SIMD, 2 threads)"). */
function backendLabel(b: Backend): string {
  const wasm = b as Backend & { simd?: () => string; threads?: () => number };
  if (b.name !== 'wasm' || typeof wasm.simd !== 'function' || typeof wasm.threads !== 'function') return b.name;
  const n = wasm.threads();
  return `wasm (${wasm.simd()} SIMD, ${n} thread${n === 1 ? '' : 's'})`;
}
