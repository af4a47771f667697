/**
 * The record that makes weights describe themselves: which registry model they belong to (and
 * its options), the names of its classes and how image files become its inputs. Written into
 * every file the project saves (safetensors metadata, Keras H5 root attributes, run state), and
 * checked strictly when read back — a file from elsewhere is untrusted.
 */
import { XceptionError } from '../core/errors.js';
import { validateImagePreprocessing, type ImagePreprocessing } from '../data/image-preprocessing.js';
import { optionSpec } from '../models/options.js';
import { getModelEntry } from '../models/registry.js';
import type { Model } from '../nn/model.js';
import { WeightFileError } from './errors.js';

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

/**
 * Caps on what a record may ask to build (an untrusted file must not make us allocate gigabytes):
 * the options schema's (models/options.ts), which every build checks, plus the class names'.
 */
export const RECORD_LIMITS = {
  classes: optionSpec('classes').max!,
  classNameLength: 1000,
  stringOption: optionSpec('name').max!,
  inputSide: optionSpec('inputShape').maxSide!,
  channels: optionSpec('inputShape').maxChannels!,
  middleBlocks: optionSpec('middleBlocks').max!,
} as const;

/** safetensors metadata keys of a record. */
export const RECORD_KEYS = { model: 'model_config', classNames: 'class_names', preprocessing: 'preprocessing' } as const;

/**
 * Keras H5 root attributes of a record. Keras's load_model takes a root `model_config` for a
 * Keras model description, so ours goes under another name; the class names are a list of
 * strings (split like Keras's layer_names when long), the rest JSON strings.
 */
export const RECORD_H5_ATTRIBUTES = { model: 'xception_model_config', classNames: 'class_names', preprocessing: 'preprocessing' } as const;

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
  let entry: ReturnType<typeof getModelEntry> | undefined;
  try {
    entry = getModelEntry(model);
  } catch {
    bad(`unknown model '${model.slice(0, 100)}'`);
  }
  const o = r['options'];
  if (o === null || typeof o !== 'object' || Array.isArray(o)) bad('options are not an object');
  const options: Record<string, unknown> = { ...(o as Record<string, unknown>) };
  if ('backend' in options) bad('options name a backend (a record never does)');
  try {
    entry!.resolveOptions(options); // the options schema, with its caps (models/options.ts)
  } catch (e) {
    bad(
      e instanceof XceptionError ? e.message.replace(`${model}: `, '') : `options the model does not accept (${String(e).slice(0, 200)})`,
    );
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

function validateClassNames(names: unknown, options: Record<string, unknown>, bad: (p: string) => never): string[] {
  if (!Array.isArray(names)) bad('class names are not a list');
  const list = names as unknown[];
  if (options['includeTop'] === false) bad('class names given for a model without a classifier');
  const classes = (options['classes'] as number | undefined) ?? 1000;
  if (list.length !== classes) bad(`${list.length} class names for ${classes} classes`);
  list.forEach((n, i) => {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
    if (typeof n !== 'string' || n.length === 0 || n.length > RECORD_LIMITS.classNameLength || /[\u0000-\u001f\u007f]/.test(n)) {
      bad(`class name ${i} must be a non-empty string of at most ${RECORD_LIMITS.classNameLength} characters without control characters`);
    }
  });
  return [...(list as string[])];
}

/** The record of a model built from the registry (its options as built, without the backend). */
export function modelRecordOf(
  model: Model,
  extra: { classNames?: readonly string[]; preprocessing?: ImagePreprocessing } = {},
): ModelRecord | null {
  const { model: name, backend: _backend, ...options } = model.config;
  if (typeof name !== 'string') return null;
  return {
    model: name,
    options,
    ...(extra.classNames ? { classNames: [...extra.classNames] } : {}),
    ...(extra.preprocessing ? { preprocessing: { ...extra.preprocessing } } : {}),
  };
}

/** A record as string metadata: model_config = JSON {model, ...options}, class_names, preprocessing. */
export function recordToMetadata(record: ModelRecord): Record<string, string> {
  const meta: Record<string, string> = { [RECORD_KEYS.model]: JSON.stringify({ model: record.model, ...record.options }) };
  if (record.classNames) meta[RECORD_KEYS.classNames] = JSON.stringify(record.classNames);
  if (record.preprocessing) meta[RECORD_KEYS.preprocessing] = JSON.stringify(record.preprocessing);
  return meta;
}

/** The record in safetensors metadata; null if the file records no model. */
export function recordFromMetadata(meta: Readonly<Record<string, string>>, file: string): ModelRecord | null {
  const config = meta[RECORD_KEYS.model];
  if (config === undefined) return null;
  const json = (key: string, text: string | undefined) => (text === undefined ? undefined : parseJson(file, `${key} metadata`, text));
  return parseRecord(
    file,
    `${RECORD_KEYS.model} metadata`,
    config,
    json(RECORD_KEYS.classNames, meta[RECORD_KEYS.classNames]),
    json(RECORD_KEYS.preprocessing, meta[RECORD_KEYS.preprocessing]),
  );
}

/** The record as Keras H5 root attributes (see RECORD_H5_ATTRIBUTES). */
export function recordToH5Attributes(record: ModelRecord): Record<string, string | string[]> {
  const meta = recordToMetadata(record);
  const attrs: Record<string, string | string[]> = { [RECORD_H5_ATTRIBUTES.model]: meta[RECORD_KEYS.model]! };
  if (record.classNames) attrs[RECORD_H5_ATTRIBUTES.classNames] = [...record.classNames];
  if (record.preprocessing) attrs[RECORD_H5_ATTRIBUTES.preprocessing] = meta[RECORD_KEYS.preprocessing]!;
  return attrs;
}

/** The record in Keras H5 root attributes (each read as a list of strings); null if none. */
export function recordFromH5Attributes(attrs: Readonly<Record<string, readonly string[]>>, file: string): ModelRecord | null {
  const { model: modelKey, classNames: namesKey, preprocessing: preKey } = RECORD_H5_ATTRIBUTES;
  const scalar = (key: string): string | undefined => {
    const list = attrs[key];
    if (list !== undefined && list.length !== 1) throw new WeightFileError(file, `its root attribute ${key} is not a single string`);
    return list?.[0];
  };
  const config = scalar(modelKey);
  if (config === undefined) return null;
  const pre = scalar(preKey);
  const names = attrs[namesKey];
  return parseRecord(
    file,
    `root attribute ${modelKey}`,
    config,
    names === undefined ? undefined : [...names],
    pre === undefined ? undefined : parseJson(file, `root attribute ${preKey}`, pre),
  );
}

function parseJson(file: string, what: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new WeightFileError(file, `its ${what} is not valid JSON`);
  }
}

/** A model config as JSON {model, ...options} plus the optional parts → a validated record. */
function parseRecord(file: string, what: string, configText: string, classNames: unknown, preprocessing: unknown): ModelRecord {
  const config = parseJson(file, what, configText);
  if (config === null || typeof config !== 'object' || Array.isArray(config))
    throw new WeightFileError(file, `its ${what} is not a JSON object`);
  checkKeys(config, what, file);
  const { model, ...options } = config as Record<string, unknown>;
  const raw: Record<string, unknown> = { model, options };
  if (classNames !== undefined) raw['classNames'] = classNames;
  if (preprocessing !== undefined) raw['preprocessing'] = preprocessing;
  return validateModelRecord(raw, file);
}

/**
 * A record is untrusted: one whose model would be far larger than the weights the file holds is
 * refused before anything is built (a genuine record's bound is within 1.5× its model + 1 M).
 */
export function checkRecordFitsFile(path: string, record: ModelRecord, fileElements: number): void {
  const bound = getModelEntry(record.model).paramsBound(record.options);
  if (bound > 4 * fileElements + 16_000_000) {
    throw new WeightFileError(
      path,
      `its model record describes a model of up to ${bound.toLocaleString('en-US')} parameters, but the file holds ` +
        `${fileElements.toLocaleString('en-US')} weight values: refusing to build it`,
    );
  }
}
