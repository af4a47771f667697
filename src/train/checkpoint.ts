/**
 * Checkpoints. One file holds everything a resumed run needs — weights, optimizer slots, the
 * weight average, every generator's state and the position in the epoch — so that writing it
 * is one atomic rename: a crash at any moment leaves the previous checkpoint intact.
 * `weights.safetensors` beside it holds the model's weights alone, under their Keras names. It is
 * written first and the checkpoint last, naming the weights' SHA-256 (WEIGHTS_SHA256_KEY): the
 * checkpoint is the commit, and a weights file that does not match it (a crash between the two
 * renames) is detected and rewritten from it (syncWeightsFile).
 */
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { OptionError, ShapeError, XceptionError } from '../core/errors.js';
import type { RandomState } from '../core/random.js';
import { isReservedKey, recordFromMap } from '../core/safe-keys.js';
import type { ImagePreprocessing } from '../data/image-preprocessing.js';
import type { LoaderState } from '../data/loader.js';
import type { ModelRecord } from '../io/model-record.js';
import { weightsMetadata } from '../io/model-weights.js';
import { removeStaleTempFiles } from '../io/atomic.js';
import { readSafetensorsFileSync, readSafetensorsMetadataSync, tensorDataSha256, writeSafetensorsFileSync } from '../io/safetensors.js';
import type { NamedWeight } from '../io/weights.js';
import type { Model } from '../nn/model.js';
import type { ExponentialMovingAverage } from './ema.js';
import type { Optimizer, OptimizerState } from './optimizers.js';

export const CHECKPOINT_FILE = 'checkpoint.safetensors';
export const WEIGHTS_FILE = 'weights.safetensors';
export const CHECKPOINT_FORMAT = 'xception-checkpoint/1';
/** Checkpoint metadata: the SHA-256 of the tensor data of the weights.safetensors saved with it. */
export const WEIGHTS_SHA256_KEY = 'weights_sha256';

export class CheckpointError extends XceptionError {}

/** Everything about a run's progress that is not a tensor. */
export interface RunState {
  /** Updates applied so far. */
  step: number;
  /** Completed epochs. */
  epochsDone: number;
  loader: LoaderState;
  modelRandom: RandomState;
  optimizer: { name: OptimizerState['name']; step: number };
  ema: { decay: number; updates: number } | null;
  wallSeconds: number;
  /** Per-epoch records so far (for the curves of a resumed run). */
  history: Record<string, number>[];
  /** The run's configuration (a resumed run must use the same). */
  config: Record<string, unknown>;
  /** The model as built: registry name and every option (input shape and classes included). */
  model: { name: string; options: Record<string, unknown> };
  /** Every evaluation so far (see TrainConfig.evalsPerEpoch); absent in older checkpoints. */
  evalPoints?: Record<string, number>[];
  /** Seconds spent in training steps so far; absent in older checkpoints. */
  trainSeconds?: number;
  /** Transfer runs with a frozen base: the phase the optimizer state belongs to. */
  phase?: 'head' | 'fine-tune';
  /** Names of the classes, by index (the training data's); absent when the data has none. */
  classNames?: string[];
  /** How image files become inputs for this model; absent in older checkpoints. */
  preprocessing?: ImagePreprocessing;
}

export function modelWeights(model: Model): NamedWeight[] {
  return model.weights.map((v) => ({ name: v.name, shape: [...v.shape], data: v.value.data() }));
}

/**
 * Saves the run in `dir`: weights.safetensors, then the checkpoint naming its SHA-256 (the commit).
 * Temporary files of writes killed earlier are removed first.
 */
export function saveCheckpoint(
  dir: string,
  model: Model,
  optimizer: Optimizer,
  ema: ExponentialMovingAverage | null,
  state: RunState,
): void {
  const tensors: NamedWeight[] = modelWeights(model).map((w) => ({ ...w, name: `model/${w.name}` }));
  const shapes = new Map(model.weights.map((v) => [v.name, [...v.shape]]));
  const opt = optimizer.getState();
  for (const [name, slots] of Object.entries(opt.slots)) {
    slots.forEach((data, i) => tensors.push({ name: `optimizer/${i}/${name}`, shape: shapes.get(name)!, data }));
  }
  if (ema) {
    for (const [name, data] of Object.entries(ema.getState().shadow)) tensors.push({ name: `ema/${name}`, shape: shapes.get(name)!, data });
  }
  refuseNonFinite(tensors);
  const weights = modelWeights(model);
  removeStaleTempFiles(dir);
  writeWeightsFile(dir, weights, state);
  writeSafetensorsFileSync(join(dir, CHECKPOINT_FILE), tensors, {
    format: CHECKPOINT_FORMAT,
    state: JSON.stringify(state),
    [WEIGHTS_SHA256_KEY]: tensorDataSha256(weights),
  });
}

/** weights.safetensors describes itself: predict/eval/export rebuild the model from it alone. */
function writeWeightsFile(dir: string, weights: NamedWeight[], state: RunState): void {
  writeSafetensorsFileSync(join(dir, WEIGHTS_FILE), weights, {
    ...weightsMetadata(runRecord(state)),
    config: JSON.stringify(state.config),
  });
}

/**
 * Why weights.safetensors in `dir` is not the one saved with checkpoint `saved`, or null when it
 * is. Only checkpoints that record the weights' SHA-256 can tell; older ones are taken as matching.
 */
export function weightsFileMismatch(dir: string, saved: LoadedCheckpoint): string | null {
  if (saved.weightsSha256 === undefined) return null;
  let recorded: string | undefined;
  try {
    recorded = readSafetensorsFileSync(join(dir, WEIGHTS_FILE)).dataSha256;
  } catch (e) {
    return (e as Error).message;
  }
  return recorded === saved.weightsSha256
    ? null
    : `${WEIGHTS_FILE} is not the one saved with ${CHECKPOINT_FILE} (a save was interrupted between the two)`;
}

/**
 * For a reader of a run's weights.safetensors alone (predict, eval, export): why the file at
 * `path`, whose tensor data hashes to `dataSha256`, is not the one saved with the checkpoint beside
 * it, or null (it is, or there is no checkpoint that tells). Reads the checkpoint's header only.
 */
export function staleWeightsFile(path: string, dataSha256: string | undefined): string | null {
  const checkpoint = join(dirname(path), CHECKPOINT_FILE);
  if (basename(path) !== WEIGHTS_FILE || !existsSync(checkpoint)) return null;
  let recorded: string | undefined;
  try {
    const metadata = readSafetensorsMetadataSync(checkpoint);
    recorded = metadata['format'] === CHECKPOINT_FORMAT ? metadata[WEIGHTS_SHA256_KEY] : undefined;
  } catch {
    return null; // a damaged checkpoint says nothing about this file, which checked itself
  }
  if (recorded === undefined || recorded === dataSha256) return null;
  return (
    `not the weights saved with the ${CHECKPOINT_FILE} beside it (a save was interrupted between the two files, or is under way). ` +
    `Pass the run folder instead (its checkpoint is the last complete save), or continue the run with ` +
    `\`xception train --resume --out ${dirname(path)}\`, which rewrites this file`
  );
}

/**
 * Makes weights.safetensors match the checkpoint (the last complete save) after a crash between
 * the two renames, by rewriting it from the checkpoint's weights. Returns what was wrong, or null.
 */
export function syncWeightsFile(dir: string, saved: LoadedCheckpoint): string | null {
  const problem = weightsFileMismatch(dir, saved);
  if (problem === null) return null;
  const weights = [...saved.model].map(([name, data]) => ({ name, shape: saved.shapes.get(name)!, data }));
  writeWeightsFile(dir, weights, saved.state);
  return problem;
}

/** The model record of a run (model-record.ts), from its state. */
export function runRecord(state: RunState): ModelRecord {
  return {
    model: state.model.name,
    options: state.model.options,
    ...(state.classNames ? { classNames: state.classNames } : {}),
    ...(state.preprocessing ? { preprocessing: state.preprocessing } : {}),
  };
}

export interface LoadedCheckpoint {
  state: RunState;
  model: Map<string, Float32Array>;
  /** Shapes of the model's weights, by name. */
  shapes: Map<string, number[]>;
  /** Prototype-free records (see sortTensors): by weight name. */
  optimizerSlots: Record<string, Float32Array[]>;
  ema: Record<string, Float32Array>;
  /** SHA-256 of the tensor data of the weights.safetensors saved with it (absent in older checkpoints). */
  weightsSha256?: string;
}

export function hasCheckpoint(dir: string): boolean {
  return existsSync(join(dir, CHECKPOINT_FILE));
}

export function readCheckpoint(dir: string): LoadedCheckpoint {
  const file = join(dir, CHECKPOINT_FILE);
  if (!existsSync(file)) throw new CheckpointError(`no checkpoint in ${dir} (looked for ${CHECKPOINT_FILE})`);
  const { weights, metadata } = readSafetensorsFileSync(file);
  if (metadata?.['format'] !== CHECKPOINT_FORMAT || typeof metadata['state'] !== 'string') {
    throw new CheckpointError(`${file} is not an xception checkpoint (format ${JSON.stringify(metadata?.['format'])})`);
  }
  const weightsSha256 = metadata[WEIGHTS_SHA256_KEY];
  return {
    state: parseRunState(metadata['state'], file),
    ...sortTensors(weights, file),
    ...(weightsSha256 !== undefined ? { weightsSha256 } : {}),
  };
}

function parseRunState(text: string, file: string): RunState {
  let state: unknown;
  try {
    state = JSON.parse(text);
  } catch {
    throw new CheckpointError(`${file}: its run state is not valid JSON`);
  }
  const problem = runStateProblem(state);
  if (problem) throw new CheckpointError(`${file}: its run state is incomplete or damaged (${problem})`);
  return state as RunState;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isCount = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
const isSeconds = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isRecords = (v: unknown): boolean => Array.isArray(v) && v.every(isObject);

function isRandomState(v: unknown): boolean {
  return (
    isObject(v) &&
    Array.isArray(v['s']) &&
    v['s'].length === 4 &&
    v['s'].every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff) &&
    (v['spareNormal'] === null ||
      v['spareNormal'] === undefined ||
      (typeof v['spareNormal'] === 'number' && Number.isFinite(v['spareNormal'])))
  );
}

/**
 * What is wrong with a run state read from a file, or null. Checked here, at reading, so that a
 * damaged checkpoint is a CheckpointError rather than a TypeError somewhere inside a resume.
 */
function runStateProblem(s: unknown): string | null {
  if (!isObject(s)) return 'not an object';
  const checks: [string, boolean][] = [
    ['step', isCount(s['step'])],
    ['epochsDone', isCount(s['epochsDone'])],
    ['loader', isObject(s['loader'])],
    ['modelRandom', isRandomState(s['modelRandom'])],
    ['optimizer', isObject(s['optimizer']) && typeof s['optimizer']['name'] === 'string' && isCount(s['optimizer']['step'])],
    ['ema', s['ema'] === null || (isObject(s['ema']) && typeof s['ema']['decay'] === 'number' && isCount(s['ema']['updates']))],
    ['wallSeconds', isSeconds(s['wallSeconds'])],
    ['history', isRecords(s['history'])],
    ['config', isObject(s['config'])],
    ['model', isObject(s['model']) && typeof s['model']['name'] === 'string' && isObject(s['model']['options'])],
    ['evalPoints', s['evalPoints'] === undefined || isRecords(s['evalPoints'])],
    ['trainSeconds', s['trainSeconds'] === undefined || isSeconds(s['trainSeconds'])],
    ['phase', s['phase'] === undefined || s['phase'] === 'head' || s['phase'] === 'fine-tune'],
    [
      'classNames',
      s['classNames'] === undefined || (Array.isArray(s['classNames']) && s['classNames'].every((n) => typeof n === 'string')),
    ],
    ['preprocessing', s['preprocessing'] === undefined || isObject(s['preprocessing'])],
  ];
  const bad = checks.filter(([, ok]) => !ok).map(([name]) => name);
  return bad.length ? `bad or missing ${bad.join(', ')}` : null;
}

/** Slots per weight are few (Adam has two); a larger index is a corrupt name, not a slot. */
const MAX_OPTIMIZER_SLOTS = 16;

/**
 * The checkpoint's tensors by role. Names from the file are keys of Maps only; the two records
 * handed on (optimizer slots, EMA) are prototype-free and never hold a reserved name.
 */
function sortTensors(weights: readonly NamedWeight[], file: string): Omit<LoadedCheckpoint, 'state'> {
  const model = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  const slots = new Map<string, Float32Array[]>();
  const ema = new Map<string, Float32Array>();
  for (const w of weights) {
    const [kind, ...rest] = w.name.split('/');
    const isSlot = kind === 'optimizer';
    const name = rest.slice(isSlot ? 1 : 0).join('/');
    if (kind !== 'model' && kind !== 'ema' && !isSlot) throw new CheckpointError(`${file}: unexpected tensor '${w.name}'`);
    if (isReservedKey(name) || name === '') throw new CheckpointError(`${file}: tensor '${w.name}' has a reserved or empty weight name`);
    if (kind === 'model') {
      model.set(name, w.data);
      shapes.set(name, w.shape);
    } else if (kind === 'ema') ema.set(name, w.data);
    else {
      const slot = Number(rest[0]);
      if (!/^\d+$/.test(rest[0] ?? '') || slot >= MAX_OPTIMIZER_SLOTS)
        throw new CheckpointError(`${file}: tensor '${w.name}' has no valid optimizer slot index`);
      if (!slots.has(name)) slots.set(name, []);
      slots.get(name)![slot] = w.data;
    }
  }
  for (const [name, arrays] of slots) {
    // A missing slot would leave a hole that array methods skip over.
    if (Array.from(arrays).some((a) => a === undefined))
      throw new CheckpointError(`${file}: optimizer slots of '${name}' are not numbered 0, 1, …`);
  }
  return { model, shapes, optimizerSlots: recordFromMap(slots), ema: recordFromMap(ema) };
}

/** Copies named weights into the model; every weight must be present with its exact size. */
export function loadModelWeights(model: Model, weights: Map<string, Float32Array>, source: string): void {
  const missing = model.weights.filter((v) => !weights.has(v.name)).map((v) => v.name);
  if (missing.length)
    throw new CheckpointError(`${source} lacks ${missing.length} weight(s) of the model, e.g. ${missing.slice(0, 3).join(', ')}`);
  const extra = [...weights.keys()].filter((n) => !model.weights.some((v) => v.name === n));
  if (extra.length) throw new CheckpointError(`${source} has weight(s) the model lacks, e.g. ${extra.slice(0, 3).join(', ')}`);
  // Validate everything before changing anything: nothing is half-loaded.
  for (const v of model.weights) {
    const data = weights.get(v.name)!;
    if (data.length !== v.size)
      throw new ShapeError(
        `${source}: '${v.name}' has ${data.length} values, the model's weight ${v.size} (shape [${v.shape.join(', ')}])`,
      );
  }
  for (const v of model.weights) v.setData(weights.get(v.name)!);
}

export function checkResumable(saved: Record<string, unknown>, now: Record<string, unknown>, ignore: readonly string[]): void {
  const diffs: string[] = [];
  for (const k of new Set([...Object.keys(saved), ...Object.keys(now)])) {
    if (ignore.includes(k)) continue;
    if (JSON.stringify(saved[k]) !== JSON.stringify(now[k]))
      diffs.push(`${k}: checkpoint ${JSON.stringify(saved[k])}, now ${JSON.stringify(now[k])}`);
  }
  if (diffs.length) throw new OptionError(`cannot resume with different settings — ${diffs.join('; ')}`);
}

/**
 * A checkpoint never holds NaN or ±Inf (they would resume a diverged run as if it were good):
 * the first such tensor stops the write, before anything is written.
 */
function refuseNonFinite(tensors: readonly NamedWeight[]): void {
  for (const { name, data } of tensors) {
    for (let i = 0; i < data.length; i++) {
      // x − x is 0 for a finite x and NaN for NaN and ±Inf: one test per value.
      if (data[i]! - data[i]! !== 0)
        throw new CheckpointError(`refusing to write a checkpoint: ${name} holds ${data[i]} at index ${i}; nothing was written`);
    }
  }
}
