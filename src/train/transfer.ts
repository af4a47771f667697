/**
 * Transfer learning and fine-tuning, Keras's recipe in one training run: start from pretrained
 * weights (a run folder, a safetensors or a Keras H5 file), replace the classifier when the
 * classes differ, train the new head on a frozen base whose batch norms run in inference mode,
 * then optionally unfreeze the base (or its top from a named layer) and fine-tune everything at
 * a low learning rate — batch norm still in inference mode, so that a small dataset's batch
 * statistics do not overwrite what the base learned.
 *
 * @example
 * ```ts
 * import { train, DEFAULT_TRAIN_CONFIG } from 'xception';
 * // 2 epochs of head training on a frozen base, then 2 epochs of fine-tuning at 1e-5 (Adam).
 * const result = await train({
 *   ...DEFAULT_TRAIN_CONFIG,
 *   dataset: 'folder:photos',          // photos/train/<class>/*.jpg, photos/test/<class>/*.jpg
 *   modelOptions: {},                  // with `weights`: only what differs from the source's model
 *   optimizer: 'adam', nesterov: false, lr: 1e-3, schedule: 'constant', epochs: 2,
 *   weights: 'runs/base',              // or 'base.safetensors', 'xception_weights_tf_dim_ordering_tf_kernels_notop.h5'
 *   freezeBase: true,
 *   fineTuneEpochs: 2, fineTuneLr: 1e-5, // optional; unfreezeFrom: 'block13_sepconv1' unfreezes only the top
 *   outDir: 'runs/photos',
 * });
 * ```
 * Phase 1 ('head') runs `epochs` epochs on the run's schedule; phase 2 ('fine-tune') runs
 * `fineTuneEpochs` more at the constant rate `fineTuneLr` with a fresh optimizer state. Both
 * phases checkpoint and resume exactly; every epoch record names its phase.
 */
import { OptionError } from '../core/errors.js';
import type { Backend } from '../core/backend.js';
import { noGrad } from '../core/engine.js';
import { openWeights, type WeightsSource } from '../io/weights-source.js';
import { buildModel } from '../models/registry.js';
import type { Model } from '../nn/model.js';

/** The transfer-learning part of a training configuration (all optional: off by default). */
export interface TransferConfig {
  /** Start from these weights: a run folder, a .safetensors or a Keras .h5 file. */
  weights?: string;
  /** Train only the classifier; the base is frozen and its batch norms run in inference mode. */
  freezeBase?: boolean;
  /** After the head epochs, fine-tune the base for this many epochs (needs freezeBase). */
  fineTuneEpochs?: number;
  /** Learning rate of the fine-tuning phase, constant (default: the run's lr ÷ 100). */
  fineTuneLr?: number;
  /** Fine-tune only from this layer on (Keras layer order); the layers before stay frozen. */
  unfreezeFrom?: string;
}

export type Phase = 'head' | 'fine-tune';

const CLASSIFIER = 'predictions';
/** The optional fully connected layers between the pooling and the classifier (models/common.ts). */
const FIRST_FC = 'fc1';

/** Model options a run may change relative to its source: they touch no loaded weight. */
const MAY_DIFFER_FROM_SOURCE = new Set([
  'inputShape',
  'classes',
  'includeTop',
  'pooling',
  'classifierActivation',
  'fcLayers',
  'dropout',
  'bnMomentum',
  'seed',
  'name',
]);

interface TransferRunConfig extends TransferConfig {
  epochs: number;
  lr: number;
  replicas?: number;
}

/** Checks the transfer options against each other, before anything is loaded. */
export function validateTransferConfig(c: TransferRunConfig): void {
  if (c.weights !== undefined && (typeof c.weights !== 'string' || c.weights === ''))
    throw new OptionError('weights must be a file or run folder path');
  if (c.freezeBase && c.weights === undefined) {
    throw new OptionError('--freeze-base needs --weights FILE|RUN_DIR: a randomly initialized base has nothing to keep');
  }
  if (c.fineTuneEpochs !== undefined) {
    if (!(Number.isInteger(c.fineTuneEpochs) && c.fineTuneEpochs > 0))
      throw new OptionError(`fineTuneEpochs must be a positive integer, got ${c.fineTuneEpochs}`);
    if (!c.freezeBase) {
      throw new OptionError(
        '--fine-tune-epochs continues after training the head on a frozen base: give --weights FILE|RUN_DIR --freeze-base (without them, train everything with --epochs)',
      );
    }
  }
  for (const [key, flag] of [
    ['fineTuneLr', '--fine-tune-lr'],
    ['unfreezeFrom', '--unfreeze-from'],
  ] as const) {
    if (c[key] !== undefined && c.fineTuneEpochs === undefined)
      throw new OptionError(`${flag} applies to the fine-tuning phase: give --fine-tune-epochs N too`);
  }
  if (c.fineTuneLr !== undefined && !(c.fineTuneLr > 0 && Number.isFinite(c.fineTuneLr)))
    throw new OptionError(`fineTuneLr must be a positive number, got ${c.fineTuneLr}`);
  if (c.freezeBase && (c.replicas ?? 1) > 1)
    throw new OptionError('--freeze-base does not work with --replicas yet (the replicas would train the frozen layers): drop --replicas');
}

/** A two-phase run resumes with its head epochs: they say where fine-tuning starts. */
export function checkTransferResume(saved: TransferRunConfig, now: TransferRunConfig): void {
  if (now.fineTuneEpochs !== undefined && saved.epochs !== now.epochs) {
    throw new OptionError(
      `cannot resume with --epochs ${now.epochs}: in this run --epochs counts the head-training epochs (${saved.epochs}) before fine-tuning; change --fine-tune-epochs instead`,
    );
  }
}

/** Epochs of the whole run: the head (or only) phase plus fine-tuning. */
export function totalEpochs(c: TransferRunConfig): number {
  return c.epochs + (c.fineTuneEpochs ?? 0);
}

/** The phase of 0-based epoch `epoch`; null for runs without a frozen-base phase. */
export function phaseOfEpoch(c: TransferRunConfig, epoch: number): Phase | null {
  if (!c.freezeBase) return null;
  return epoch < c.epochs ? 'head' : 'fine-tune';
}

/** The constant learning rate of the fine-tuning phase. */
export function fineTuneLr(c: TransferRunConfig): number {
  return c.fineTuneLr ?? c.lr / 100;
}

/**
 * Sets what trains in `phase`: 'head' freezes everything before the classifier; 'fine-tune'
 * unfreezes everything, or the layers from `unfreezeFrom` on. In both, every batch norm runs
 * in inference mode (moving statistics used and kept). Returns a line describing it.
 */
export function applyPhase(model: Model, c: TransferRunConfig, phase: Phase): string {
  model.unfreeze();
  model.setBatchNormInference(true);
  // The head is the whole top: the fully connected layers too, when the model has them.
  const head = model.layers.some((l) => l.name === FIRST_FC) ? FIRST_FC : CLASSIFIER;
  const firstTrained = phase === 'head' ? head : (c.unfreezeFrom ?? null);
  if (firstTrained !== null) {
    const index = model.layers.findIndex((l) => l.name === firstTrained);
    if (index < 0) throw unknownLayer(model, firstTrained);
    if (index > 0) model.freeze(model.layers[index - 1]!.name);
  }
  const trainable = model.trainableWeights.reduce((a, w) => a + w.size, 0);
  const from = firstTrained === null ? 'every layer' : `layers from ${firstTrained} on`;
  return phase === 'head'
    ? `${c.fineTuneEpochs ? 'phase 1/2 (head)' : 'head training'}: training ${head === CLASSIFIER ? CLASSIFIER : `${head} … ${CLASSIFIER}`} only (${trainable.toLocaleString('en-US')} parameters); the base is frozen, batch norm in inference mode`
    : `phase 2/2 (fine-tune): training ${from} (${trainable.toLocaleString('en-US')} parameters) at ${fineTuneLr(c)}, fresh optimizer state; batch norm stays in inference mode`;
}

/** Checks `unfreezeFrom` names a layer of the model (before the first step). */
export function checkUnfreezeFrom(model: Model, c: TransferConfig): void {
  if (c.unfreezeFrom !== undefined && !model.layers.some((l) => l.name === c.unfreezeFrom)) throw unknownLayer(model, c.unfreezeFrom);
}

function unknownLayer(model: Model, name: string): OptionError {
  // Suggest the named (not auto-numbered) layers of the same block, else each block's first layer.
  const named = model.layers.map((l) => l.name).filter((n) => !/_\d+$/.test(n));
  const block = (n: string) => n.split('_')[0]!;
  let some = named.filter((n) => block(n) === block(name));
  if (some.length === 0) {
    const firstOfBlock = new Map<string, string>();
    for (const n of named) if (!firstOfBlock.has(block(n))) firstOfBlock.set(block(n), n);
    const firsts = [...firstOfBlock.values()];
    some = firsts.length > 6 ? [...firsts.slice(0, 2), '…', ...firsts.slice(-4)] : firsts;
  }
  return new OptionError(
    `--unfreeze-from: model '${model.name}' has no layer '${name}'; layers include ${some.slice(0, 8).join(', ')} (\`xception summary\` lists them all)`,
  );
}

/** What the training data asks of the model. */
export interface TransferTarget {
  model: string;
  /** Options given for this run (with a recorded source: only those that may differ). */
  modelOptions: Record<string, unknown>;
  /** Input side (square) and channels of the training images. */
  size: number;
  channels: number;
  classes: number;
  classNames?: readonly string[];
  seed: number;
}

export interface TransferModel {
  model: Model;
  /** The options the model was built with (what a checkpoint records; no backend). */
  modelOptions: Record<string, unknown>;
  /** Lines for the run's log: where the weights came from, what was loaded and replaced. */
  lines: string[];
}

/**
 * Builds the run's model from a weights source and loads it: the recorded model (or, for a
 * source that records none, `target.model` with its options) at the data's size and classes;
 * the classifier is replaced by a fresh one when the classes differ from the source's.
 */
export async function buildTransferModel(source: string | WeightsSource, target: TransferTarget, backend: Backend): Promise<TransferModel> {
  const src = typeof source === 'string' ? await openWeights(source) : source;
  const modelOptions = transferModelOptions(src, target);
  const model = noGrad(() => buildModel(target.model, { ...modelOptions, backend }));
  try {
    checkContradictions(src, target, model);
    const fc = fcLayersChange(src, model);
    const replace = classifierReason(src, target) ?? (fc ? `its inputs changed with ${fc.reason}` : null);
    const except = [...(fc?.names ?? []), ...(replace ? [CLASSIFIER] : [])];
    const report = await src.loadInto(model, except.length > 0 ? { except } : {});
    const layers = model.layersWithWeights.filter((l) => !except.includes(l.name)).length;
    const lines = [
      `weights: loaded ${layers} layers (${report.weights} of the model's ${model.weights.length} weights) from ${src.path} (${src.kind})`,
    ];
    if (fc) lines.push(fc.line);
    lines.push(
      replace
        ? `weights: replaced ${CLASSIFIER} with a freshly initialized classifier for ${target.classes} classes (${replace})`
        : `weights: kept ${CLASSIFIER} (the same ${target.classes} classes)`,
    );
    return { model, modelOptions, lines };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/**
 * The image channels a transfer run should read its data with: the input channels the source
 * records, else those given with the model options; undefined to keep the dataset's own.
 */
/** The square input side the source records (a run's or a recorded file's), for image folders' default size. */
export function transferImageSize(src: WeightsSource): number | undefined {
  const shape = src.record?.options['inputShape'] as number[] | undefined;
  return shape && shape[0] === shape[1] ? shape[0] : undefined;
}

export function transferChannels(src: WeightsSource, modelOptions: Record<string, unknown>): number | undefined {
  const given = (modelOptions['inputShape'] as number[] | undefined)?.[2];
  return given ?? (src.record?.options['inputShape'] as number[] | undefined)?.[2];
}

function transferModelOptions(src: WeightsSource, t: TransferTarget): Record<string, unknown> {
  const given = t.modelOptions;
  const shape = (given['inputShape'] as number[] | undefined) ?? [t.size, t.size, t.channels];
  const run: Record<string, unknown> = {
    ...given,
    inputShape: shape,
    classes: t.classes,
    includeTop: true,
    seed: (given['seed'] as number | undefined) ?? t.seed,
  };
  delete run.pooling; // only for models without a classifier
  if (!src.record) return run;
  if (src.record.model !== t.model) {
    throw new OptionError(`${src.path} holds a ${src.record.model} model, not ${t.model}: drop --model (the weights record their model)`);
  }
  const recordedChannels = (src.record.options['inputShape'] as number[] | undefined)?.[2] ?? 3;
  if (recordedChannels !== shape[2]) {
    throw new OptionError(
      `${src.path} takes ${recordedChannels}-channel images but the training images have ${shape[2]} channels; use data with ${recordedChannels} channel(s)`,
    );
  }
  const { pooling: _pooling, ...recorded } = src.record.options;
  // Other given options are not applied but checked against the built model (checkContradictions).
  const mayDiffer = Object.fromEntries(Object.entries(run).filter(([k]) => MAY_DIFFER_FROM_SOURCE.has(k)));
  return { ...recorded, ...mayDiffer };
}

/** A flag given for a recorded source must agree with the source's model. */
function checkContradictions(src: WeightsSource, t: TransferTarget, model: Model): void {
  if (!src.record) return;
  const wrong = Object.keys(t.modelOptions).filter(
    (k) => !MAY_DIFFER_FROM_SOURCE.has(k) && JSON.stringify(t.modelOptions[k]) !== JSON.stringify(model.config[k]),
  );
  if (wrong.length > 0) {
    const said = wrong.map((k) => `${k} ${JSON.stringify(t.modelOptions[k])} (the weights' model has ${JSON.stringify(model.config[k])})`);
    throw new OptionError(`${src.path} records its model; these options contradict it: ${said.join('; ')}. Drop them`);
  }
}

/**
 * When the run's fully connected layers differ from the source's: every fc layer on either side
 * is left out of the load (the run's are freshly initialized), with the line that says so.
 */
function fcLayersChange(src: WeightsSource, model: Model): { names: string[]; reason: string; line: string } | null {
  const wanted = (model.config['fcLayers'] as readonly number[] | undefined) ?? [];
  // A source that records no model (a Keras H5) has Keras's head: no fc layers.
  const had = (src.record?.options['fcLayers'] as readonly number[] | undefined) ?? [];
  if (JSON.stringify(wanted) === JSON.stringify(had)) return null;
  const show = (units: readonly number[]) => (units.length === 0 ? 'none' : `[${units.join(', ')}]`);
  const reason = `fcLayers ${show(wanted)} where the source has ${show(had)}`;
  const fcNames = (units: readonly number[]) => units.map((_, i) => `fc${i + 1}`);
  const names = [...new Set([...fcNames(wanted), ...fcNames(had)])];
  const line =
    wanted.length > 0
      ? `weights: replaced ${fcNames(wanted).join(', ')} with freshly initialized fully connected layers (${reason})`
      : `weights: left out the source's fully connected layers ${fcNames(had).join(', ')} (${reason})`;
  return { names, reason, line };
}

/** Why the classifier must be replaced, or null to load it. */
function classifierReason(src: WeightsSource, t: TransferTarget): string | null {
  if (src.fileClasses === null) return 'the source has no classifier';
  if (src.fileClasses !== t.classes) return `the source's has ${src.fileClasses} outputs`;
  const names = src.record?.classNames;
  if (names && t.classNames && names.some((n, i) => n !== t.classNames![i]))
    return `the source was trained on other classes: ${names.slice(0, 3).join(', ')}${names.length > 3 ? ', …' : ''}`;
  return null;
}
