/**
 * One way to open weights from anywhere: a run folder written by `xception train`, a
 * safetensors file, or a Keras H5 file. What comes back says which model the weights belong to
 * (when the source records it), how many classes its classifier has, and loads the weights into
 * a model — all or nothing, optionally leaving some layers (a new classifier) alone.
 *
 * Records read from files are untrusted: they are checked completely (known model, options the
 * model accepts, sizes capped, class names sane, no prototype keys) before anything is built.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { noGrad } from '../core/engine.js';
import { OptionError } from '../core/errors.js';
import { sizeOf } from '../core/tensor.js';
import { FASHION_MNIST_CLASS_NAMES, MNIST_CLASS_NAMES } from '../data/dataset.js';
import { parseDatasetSpec } from '../data/spec.js';
import { buildModel } from '../models/registry.js';
import type { Model } from '../nn/model.js';
import {
  CHECKPOINT_FILE,
  CHECKPOINT_FORMAT,
  readCheckpoint,
  runRecord,
  staleWeightsFile,
  type LoadedCheckpoint,
} from '../train/checkpoint.js';
import { WeightFileError } from './errors.js';
import { readKerasH5Contents } from './keras-h5.js';
import {
  checkRecordFitsFile,
  RECORD_H5_ATTRIBUTES,
  recordFromH5Attributes,
  recordFromMetadata,
  validateModelRecord,
  type ModelRecord,
} from './model-record.js';
import {
  assignByName,
  loadKerasLayers,
  notAWeightFile,
  sniffWeightFormat,
  type LoadMode,
  type LoadWeightsReport,
} from './model-weights.js';
import { readSafetensorsFile } from './safetensors.js';
import type { NamedWeight } from './weights.js';

export type { ModelRecord } from './model-record.js';

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

/** Opens weights: a run folder, its checkpoint.safetensors, any safetensors file or a Keras H5 file. */
export async function openWeights(source: string): Promise<WeightsSource> {
  const isDir = await stat(source).then(
    (st) => st.isDirectory(),
    () => {
      throw new WeightFileError(source, 'no such file or folder');
    },
  );
  if (isDir) return openRun(source);
  const { head, size } = await readHead(source);
  if (sniffWeightFormat(head) === 'keras-h5') return openKerasH5(source);
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

// ---------------------------------------------------------------------------------------------
// Sources

function buildRecorded(path: string, record: ModelRecord | null, overrides: Record<string, unknown>, fileElements: number): Model {
  if (!record) throw new OptionError(`${path} records no model: give the model flags (--model, --input-shape, --classes, …)`);
  checkRecordFitsFile(path, record, fileElements);
  const options = { ...record.options, ...overrides };
  return noGrad(() => buildModel(record.model, options));
}

const elementsOf = (weights: Iterable<{ shape: readonly number[] }>): number => {
  let n = 0;
  for (const w of weights) n += sizeOf(w.shape);
  return n;
};

function classesOf(weights: Iterable<{ name: string; shape: readonly number[] }>): number | null {
  for (const w of weights) if (w.name === 'predictions/bias' && w.shape.length === 1) return w.shape[0]!;
  return null;
}

/**
 * Runs from before class names were recorded: the names of the datasets that have official
 * ones and no names file (Fashion-MNIST, MNIST), from the run's dataset spec.
 */
function officialClassNames(spec: unknown): string[] | undefined {
  try {
    const kind = typeof spec === 'string' ? parseDatasetSpec(spec).kind : null;
    const names = kind === 'fashion-mnist' ? FASHION_MNIST_CLASS_NAMES : kind === 'mnist' ? MNIST_CLASS_NAMES : undefined;
    return names ? [...names] : undefined;
  } catch {
    return undefined; // not a spec this version knows: no names
  }
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
  const recorded = runRecord(ck.state);
  const official = recorded.classNames ? undefined : officialClassNames(ck.state.config['dataset']);
  if (official && official.length === recorded.options['classes']) recorded.classNames = official;
  const record = validateModelRecord(recorded, label);
  const shapes = [...ck.shapes].map(([name, shape]) => ({ name, shape }));
  return {
    path: dir,
    kind: 'run',
    record,
    fileClasses: classesOf(shapes),
    buildModel: (overrides = {}) => buildRecorded(dir, record, overrides, elementsOf(shapes)),
    loadInto: async (model, options = {}) => {
      const useEma = (options.useEma ?? true) && Object.keys(ck.ema).length > 0;
      const weights: NamedWeight[] = [...ck.model].map(([name, data]) => ({
        name,
        shape: ck.shapes.get(name)!,
        data: (useEma ? ck.ema[name] : undefined) ?? data,
      }));
      const n = assignByName(model, weights, label, options.except ?? []);
      return { format: 'safetensors', mode: 'name', weights: n, metadata: {} };
    },
  };
}

async function openSafetensors(path: string): Promise<WeightsSource> {
  const { weights, metadata, dataSha256 } = await readSafetensorsFile(path);
  const stale = staleWeightsFile(path, dataSha256);
  if (stale) throw new WeightFileError(path, stale);
  if (metadata['format'] === CHECKPOINT_FORMAT) {
    if (basename(path) === CHECKPOINT_FILE) return openRun(dirname(path));
    throw new WeightFileError(
      path,
      'a training checkpoint outside its run folder: pass the run folder, or the weights.safetensors beside it',
    );
  }
  const record = recordFromMetadata(metadata, path);
  return {
    path,
    kind: 'safetensors',
    record,
    fileClasses: classesOf(weights),
    buildModel: (overrides = {}) => buildRecorded(path, record, overrides, elementsOf(weights)),
    loadInto: async (model, options = {}) => {
      const n = assignByName(model, weights, path, options.except ?? []);
      return { format: 'safetensors', mode: 'name', weights: n, metadata };
    },
  };
}

async function openKerasH5(path: string): Promise<WeightsSource> {
  const { layers, attributes } = await readKerasH5Contents(path, { attributes: Object.values(RECORD_H5_ATTRIBUTES) });
  const record = recordFromH5Attributes(attributes, path);
  const classifier = layers.find((l) => l.name === 'predictions');
  const bias = classifier?.weights.find((w) => /(^|\/)bias(:0)?$/.test(w.name) && w.shape.length === 1);
  return {
    path,
    kind: 'keras-h5',
    record,
    fileClasses: bias ? bias.shape[0]! : null,
    buildModel: (overrides = {}) => buildRecorded(path, record, overrides, elementsOf(layers.flatMap((l) => l.weights))),
    loadInto: async (model, options = {}) => loadKerasLayers(model, layers, path, options.mode ?? 'auto', options.except ?? []),
  };
}
