/**
 * One way to open weights from anywhere: a run folder written by `xception train`, a
 * safetensors file, or a Keras H5 file. What comes back says which model the weights belong to
 * (when the source records it), how many classes its classifier has, and loads the weights into
 * a model — all or nothing, optionally leaving some layers (a new classifier) alone.
 *
 * Records read from files are untrusted: they are checked completely (known model, options the
 * model accepts, sizes capped, class names sane, no prototype keys) before anything is built.
 */
import { statSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { noGrad } from '../core/engine.js';
import { OptionError, XceptionError } from '../core/errors.js';
import { validateImagePreprocessing, type ImagePreprocessing } from '../data/image-preprocessing.js';
import { buildModel, getModelEntry } from '../models/registry.js';
import type { Model } from '../nn/model.js';
import { CHECKPOINT_FILE, readCheckpoint, type LoadedCheckpoint } from '../train/checkpoint.js';
import { WeightFileError } from './errors.js';
import { readKerasH5, type KerasLayer } from './keras-h5.js';
import { assignByName, loadKerasLayers, notAWeightFile, sniffWeightFormat, type LoadMode, type LoadWeightsReport } from './model-weights.js';
import { readSafetensorsFile } from './safetensors.js';
import type { NamedWeight } from './weights.js';

/** Which model a set of weights belongs to, and how its inputs and outputs are meant. */
export interface ModelRecord {
  /** Registry name ('xception' | 'inception_v3'). */
  model: string;
  /** Build options, inputShape and classes included; never 'backend'. */
  options: Record<string, unknown>;
  /** Class names by index; length === classes when present. */
  classNames?: string[];
  preprocessing?: ImagePreprocessing;
}

export interface WeightsSource {
  path: string;
  kind: 'run' | 'safetensors' | 'keras-h5';
  /** null when the file records nothing (a Keras H5 from elsewhere). */
  record: ModelRecord | null;
  /** Outputs of the file's classifier layer 'predictions', null if it has none. */
  fileClasses: number | null;
  /** Builds the recorded model (overrides merged over its options); OptionError if no record. */
  buildModel(overrides?: Record<string, unknown>): Model;
  /**
   * All-or-nothing load; `except` = layer names left untouched on the model side and ignored in
   * the file (e.g. ['predictions'] for a new classifier); useEma (runs, default true).
   */
  loadInto(model: Model, options?: { mode?: LoadMode; except?: readonly string[]; useEma?: boolean }): Promise<LoadWeightsReport>;
}

/** Caps on what a record may ask to build (an untrusted file must not make us allocate gigabytes). */
export const RECORD_LIMITS = { classes: 100_000, classNameLength: 1000, inputSide: 8192, channels: 64, middleBlocks: 64 } as const;

/** safetensors metadata keys (and Keras H5 root attribute names) of a record. */
export const RECORD_KEYS = { model: 'model_config', classNames: 'class_names', preprocessing: 'preprocessing' } as const;

/** Opens weights: a run folder, its checkpoint.safetensors, any safetensors file or a Keras H5 file. */
export async function openWeights(source: string): Promise<WeightsSource> {
  let isDir: boolean;
  try {
    isDir = statSync(source).isDirectory();
  } catch {
    throw new WeightFileError(source, 'no such file or folder');
  }
  if (isDir) return openRun(source);
  const { head, size } = await readHead(source);
  if (isHdf5(head)) return openKerasH5(source);
  // A safetensors file starts with its header's length and then its JSON object (checked fully on reading).
  if (head.length >= 9 && head[8] === 0x7b /* { */) return openSafetensors(source);
  throw notAWeightFile(source, head, size);
}

async function readHead(path: string): Promise<{ head: Uint8Array; size: number }> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new WeightFileError(path, `cannot read file (${(e as Error).message})`);
  }
  try {
    const buf = Buffer.alloc(16);
    const { bytesRead } = await fh.read(buf, 0, 16, 0);
    return { head: buf.subarray(0, bytesRead), size: (await fh.stat()).size };
  } finally {
    await fh.close();
  }
}

function isHdf5(head: Uint8Array): boolean {
  return sniffWeightFormat(head) === 'keras-h5';
}

// ---------------------------------------------------------------------------------------------
// Records: validation and the metadata form

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Throws on a prototype-polluting key anywhere in a parsed JSON value. */
function checkKeys(value: unknown, where: string, file: string): void {
  if (value === null || typeof value !== 'object') return;
  for (const [k, v] of Object.entries(value)) {
    if (FORBIDDEN_KEYS.has(k)) throw new WeightFileError(file, `${where} has a forbidden key '${k}'`);
    checkKeys(v, where, file);
  }
}

/**
 * Checks a record from a file (untrusted) and returns a clean copy; any problem is a
 * WeightFileError naming the file. Nothing is built or allocated.
 */
export function validateModelRecord(raw: unknown, file: string): ModelRecord {
  const bad = (problem: string): never => {
    throw new WeightFileError(file, `its model record is invalid: ${problem}`);
  };
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) bad('not an object');
  checkKeys(raw, 'the record', file);
  const r = raw as Record<string, unknown>;
  if (typeof r['model'] !== 'string') bad('no model name');
  const model = r['model'] as string;
  let entry;
  try {
    entry = getModelEntry(model);
  } catch {
    bad(`unknown model '${model.slice(0, 100)}'`);
  }
  const o = r['options'];
  if (o === null || typeof o !== 'object' || Array.isArray(o)) bad('options are not an object');
  const options: Record<string, unknown> = { ...(o as Record<string, unknown>) };
  if ('backend' in options) bad("options name a backend (a record never does)");
  checkCaps(options, bad);
  try {
    entry!.checkOptions(options);
  } catch (e) {
    if (!(e instanceof XceptionError)) throw e;
    bad(e.message);
  }
  const record: ModelRecord = { model, options };
  if (r['classNames'] !== undefined) record.classNames = validateClassNames(r['classNames'], options, bad);
  if (r['preprocessing'] !== undefined) {
    try {
      record.preprocessing = validateImagePreprocessing(r['preprocessing'], 'preprocessing');
    } catch (e) {
      bad((e as Error).message);
    }
  }
  return record;
}

function checkCaps(o: Record<string, unknown>, bad: (p: string) => never): void {
  const classes = o['classes'];
  if (classes !== undefined && !(Number.isInteger(classes) && (classes as number) >= 1 && (classes as number) <= RECORD_LIMITS.classes)) {
    bad(`classes must be an integer in [1, ${RECORD_LIMITS.classes}], got ${JSON.stringify(classes)?.slice(0, 40)}`);
  }
  const shape = o['inputShape'];
  if (shape !== undefined) {
    const ok = Array.isArray(shape) && shape.length === 3 && shape.every((d) => Number.isInteger(d) && d >= 1) &&
      shape[0] <= RECORD_LIMITS.inputSide && shape[1] <= RECORD_LIMITS.inputSide && shape[2] <= RECORD_LIMITS.channels;
    if (!ok) bad(`inputShape must be [H, W, C] with H, W ≤ ${RECORD_LIMITS.inputSide} and C ≤ ${RECORD_LIMITS.channels}, got ${JSON.stringify(shape)?.slice(0, 60)}`);
  }
  const blocks = o['middleBlocks'];
  if (blocks !== undefined && !(Number.isInteger(blocks) && (blocks as number) >= 0 && (blocks as number) <= RECORD_LIMITS.middleBlocks)) {
    bad(`middleBlocks must be an integer in [0, ${RECORD_LIMITS.middleBlocks}], got ${JSON.stringify(blocks)?.slice(0, 40)}`);
  }
  const seed = o['seed'];
  if (seed !== undefined && !(Number.isSafeInteger(seed) && (seed as number) >= 0)) bad(`seed must be a non-negative integer`);
}

function validateClassNames(names: unknown, options: Record<string, unknown>, bad: (p: string) => never): string[] {
  if (!Array.isArray(names)) bad('class names are not a list');
  const list = names as unknown[];
  if (options['includeTop'] === false) bad('class names given for a model without a classifier');
  const classes = (options['classes'] as number | undefined) ?? 1000;
  if (list.length !== classes) bad(`${list.length} class names for ${classes} classes`);
  list.forEach((n, i) => {
    if (typeof n !== 'string' || n.length === 0 || n.length > RECORD_LIMITS.classNameLength) {
      bad(`class name ${i} must be a non-empty string of at most ${RECORD_LIMITS.classNameLength} characters`);
    }
  });
  return [...(list as string[])];
}

/** The record of a model built from the registry (its options as built, without the backend). */
export function modelRecordOf(model: Model, extra: { classNames?: readonly string[]; preprocessing?: ImagePreprocessing } = {}): ModelRecord | null {
  const { model: name, backend: _backend, ...options } = model.config;
  if (typeof name !== 'string') return null;
  return {
    model: name, options,
    ...(extra.classNames ? { classNames: [...extra.classNames] } : {}),
    ...(extra.preprocessing ? { preprocessing: { ...extra.preprocessing } } : {}),
  };
}

/** A record as string metadata: model_config = JSON {model, ...options}, class_names, preprocessing. */
export function recordToMetadata(record: ModelRecord): Record<string, string> {
  const meta: Record<string, string> = { [RECORD_KEYS.model]: JSON.stringify({ ...record.options, model: record.model }) };
  if (record.classNames) meta[RECORD_KEYS.classNames] = JSON.stringify(record.classNames);
  if (record.preprocessing) meta[RECORD_KEYS.preprocessing] = JSON.stringify(record.preprocessing);
  return meta;
}

/** The record in string metadata (safetensors metadata, H5 root attributes); null if none. */
export function recordFromMetadata(meta: Readonly<Record<string, string>>, file: string): ModelRecord | null {
  const text = meta[RECORD_KEYS.model];
  if (text === undefined) return null;
  const parse = (key: string, s: string): unknown => {
    try {
      return JSON.parse(s);
    } catch {
      throw new WeightFileError(file, `its ${key} metadata is not valid JSON`);
    }
  };
  const config = parse(RECORD_KEYS.model, text);
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new WeightFileError(file, `its ${RECORD_KEYS.model} metadata is not a JSON object`);
  checkKeys(config, RECORD_KEYS.model, file);
  const { model, ...options } = config as Record<string, unknown>;
  const raw: Record<string, unknown> = { model, options };
  const names = meta[RECORD_KEYS.classNames];
  if (names !== undefined) raw['classNames'] = parse(RECORD_KEYS.classNames, names);
  const pre = meta[RECORD_KEYS.preprocessing];
  if (pre !== undefined) raw['preprocessing'] = parse(RECORD_KEYS.preprocessing, pre);
  return validateModelRecord(raw, file);
}

// ---------------------------------------------------------------------------------------------
// Sources

function buildRecorded(path: string, record: ModelRecord | null, overrides: Record<string, unknown>): Model {
  if (!record) throw new OptionError(`${path} records no model: give the model flags (--model, --input-shape, --classes, …)`);
  const options = { ...record.options, ...overrides };
  return noGrad(() => buildModel(record.model, options));
}

function classesOf(weights: Iterable<{ name: string; shape: readonly number[] }>): number | null {
  for (const w of weights) if (w.name === 'predictions/bias' && w.shape.length === 1) return w.shape[0]!;
  return null;
}

function openRun(dir: string): WeightsSource {
  const abs = resolve(dir);
  let ck: LoadedCheckpoint;
  try {
    ck = readCheckpoint(abs);
  } catch (e) {
    if (e instanceof WeightFileError) throw e;
    throw new WeightFileError(dir, `not a run folder written by \`xception train\` (${(e as Error).message})`);
  }
  const label = `${dir}/${CHECKPOINT_FILE}`;
  const s = ck.state;
  const record = validateModelRecord({
    model: s.model.name, options: s.model.options,
    ...(s.classNames !== undefined ? { classNames: s.classNames } : {}),
    ...(s.preprocessing !== undefined ? { preprocessing: s.preprocessing } : {}),
  }, label);
  const shapes = [...ck.shapes].map(([name, shape]) => ({ name, shape }));
  return {
    path: dir, kind: 'run', record, fileClasses: classesOf(shapes),
    buildModel: (overrides = {}) => buildRecorded(dir, record, overrides),
    loadInto: async (model, options = {}) => {
      const useEma = (options.useEma ?? true) && Object.keys(ck.ema).length > 0;
      const weights: NamedWeight[] = [...ck.model].map(([name, data]) => ({
        name, shape: ck.shapes.get(name)!, data: (useEma ? ck.ema[name] : undefined) ?? data,
      }));
      const n = assignByName(model, weights, label, options.except ?? []);
      return { format: 'safetensors', mode: 'name', weights: n, metadata: {} };
    },
  };
}

async function openSafetensors(path: string): Promise<WeightsSource> {
  const { weights, metadata } = await readSafetensorsFile(path);
  if (metadata['format'] === 'xception-checkpoint/1') {
    if (basename(path) === CHECKPOINT_FILE) return openRun(dirname(path));
    throw new WeightFileError(path, 'a training checkpoint outside its run folder: pass the run folder, or the weights.safetensors beside it');
  }
  const record = recordFromMetadata(metadata, path);
  return {
    path, kind: 'safetensors', record, fileClasses: classesOf(weights),
    buildModel: (overrides = {}) => buildRecorded(path, record, overrides),
    loadInto: async (model, options = {}) => {
      const n = assignByName(model, weights, path, options.except ?? []);
      return { format: 'safetensors', mode: 'name', weights: n, metadata };
    },
  };
}

async function openKerasH5(path: string): Promise<WeightsSource> {
  const layers: KerasLayer[] = await readKerasH5(path);
  const classifier = layers.find((l) => l.name === 'predictions');
  const bias = classifier?.weights.find((w) => /(^|\/)bias(:0)?$/.test(w.name) && w.shape.length === 1);
  const record: ModelRecord | null = null;
  return {
    path, kind: 'keras-h5', record, fileClasses: bias ? bias.shape[0]! : null,
    buildModel: (overrides = {}) => buildRecorded(path, record, overrides),
    loadInto: async (model, options = {}) => loadKerasLayers(model, layers, path, options.mode ?? 'auto', options.except ?? []),
  };
}
