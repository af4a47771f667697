/**
 * A model's weights to and from files: Keras legacy H5 (the official Xception weight files, and
 * what Keras's `model.load_weights` reads back) and safetensors (the project's own format).
 *
 * Loading reads and checks the whole file against the model first — every layer, every shape —
 * and assigns only when everything fits: a failed load leaves the model exactly as it was.
 *
 * Names. A model weight is `<layer>/<weight>` (`block1_conv1/kernel`, Variable.name). Keras H5
 * files list per layer names like `block1_conv1/kernel:0` (TensorFlow's variable names); they
 * are written that way and read in Keras's manner: layers in order or by name, weights within a
 * layer in order. safetensors files hold one tensor per weight under `<layer>/<weight>`.
 */
import * as fsp from 'node:fs/promises';
import { extname } from 'node:path';
import type { Model } from '../nn/model.js';
import { WeightFileError } from './errors.js';
import { readKerasH5, writeKerasH5, type KerasLayer } from './keras-h5.js';
import { modelToKerasLayers, modelWeightSpec } from './keras-model.js';
import { matchKerasWeights, type KerasMatchMode, type ModelLayerWeights } from './keras-match.js';
import { modelRecordOf, recordToH5Attributes, type ModelRecord } from './model-record.js';
import { readSafetensors, writeSafetensorsFile } from './safetensors.js';
import { shapeText } from './weights.js';
import { assignAll, assignByName, namedWeightsOf, sameShape, weightsMetadata } from './named-weights.js';

export { assignByName, namedWeightsOf, WEIGHTS_FORMAT_TAG, weightsMetadata } from './named-weights.js';

export type WeightFormat = 'keras-h5' | 'safetensors';
export type LoadMode = 'order' | 'name' | 'auto';

export interface LoadWeightsOptions {
  /**
   * Keras H5 only. 'order' (Keras's default): the i-th layer with weights in the file goes to
   * the i-th layer with weights in the model, names ignored — this is how the official files'
   * auto-named residual layers (`conv2d_1`, `batch_normalization_1`, …) reach their places.
   * 'name' (Keras's by_name=True): every layer by its name. 'auto' (default): by name when the
   * file's layers with weights are exactly the model's by name, otherwise in order.
   */
  mode?: LoadMode;
  /** Expected format; by default it is recognized from the file's first bytes. */
  format?: WeightFormat;
  /**
   * Layers left as they are: skipped on the model side and ignored in the file (e.g.
   * ['predictions'] to keep a new classifier while loading everything else).
   */
  except?: readonly string[];
}

export interface LoadWeightsReport {
  format: WeightFormat;
  /** How H5 layers were paired ('name' for safetensors). */
  mode: KerasMatchMode;
  /** Weights assigned. */
  weights: number;
  /** safetensors metadata (empty for H5). */
  metadata: Record<string, string>;
}

const HDF5_SIGNATURE = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];

/** Which weight format `bytes` are, from the content: HDF5 signature, or a safetensors header. */
export function sniffWeightFormat(bytes: Uint8Array): WeightFormat | null {
  if (bytes.length >= 8 && HDF5_SIGNATURE.every((b, i) => bytes[i] === b)) return 'keras-h5';
  if (bytes.length >= 9) {
    const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
    if (n > 0n && n <= BigInt(bytes.length - 8) && bytes[8] === 0x7b /* { */) return 'safetensors';
  }
  return null;
}

/** The error for a file in no weight format; `head` = its first bytes, `size` = its length. */
export function notAWeightFile(path: string, head: Uint8Array, size: number): WeightFileError {
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) {
    return new WeightFileError(
      path,
      'a zip archive (a Keras 3 .keras model?): not supported; give legacy Keras H5 weights (what Keras 2 model.save_weights("w.h5") writes, like the official weight files) or safetensors',
    );
  }
  return new WeightFileError(
    path,
    `not a weight file: neither HDF5 (Keras .h5) nor safetensors (${size} bytes, starting ${hexPrefix(head)})`,
  );
}

/** The format a path's extension names (.h5/.hdf5/.keras-h5 → keras-h5, .safetensors), or null. */
export function weightFormatFromPath(path: string): WeightFormat | null {
  const ext = extname(path).toLowerCase();
  if (ext === '.h5' || ext === '.hdf5') return 'keras-h5';
  if (ext === '.safetensors') return 'safetensors';
  return null;
}

/** Loads a weight file into `model`; all-or-nothing. */
export async function loadWeights(model: Model, path: string, options: LoadWeightsOptions = {}): Promise<LoadWeightsReport> {
  const mode = options.mode ?? 'auto';
  if (mode !== 'order' && mode !== 'name' && mode !== 'auto')
    throw new WeightFileError(path, `unknown load mode '${String(mode)}' (expected order, name or auto)`);
  let bytes: Uint8Array;
  try {
    bytes = await fsp.readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new WeightFileError(
      path,
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EISDIR'
          ? 'is a directory, not a weight file'
          : `cannot read file (${(e as Error).message})`,
    );
  }
  const sniffed = sniffWeightFormat(bytes);
  const format = options.format ?? sniffed ?? weightFormatFromPath(path);
  if (format === null) throw notAWeightFile(path, bytes, bytes.length);
  if (format === 'keras-h5' && sniffed !== 'keras-h5') {
    // readKerasH5 says it too, but after a wasm start; this is the common mistake (wrong file).
    throw new WeightFileError(
      path,
      `not an HDF5 file (no HDF5 signature; ${bytes.length} bytes, starting ${hexPrefix(bytes)}); Keras .h5 weight files start with \\x89HDF`,
    );
  }
  const except = options.except ?? [];
  if (format === 'keras-h5') return loadKerasLayers(model, await readKerasH5(bytes, path), path, mode, except);
  const { weights, metadata } = readSafetensors(bytes, path);
  if (metadata['format'] === 'xception-checkpoint/1') {
    throw new WeightFileError(
      path,
      'this is a training checkpoint (weights, optimizer state and run state): pass its run folder, or the weights.safetensors beside it',
    );
  }
  const assigned = assignByName(model, weights, path, except);
  return { format: 'safetensors', mode: 'name', weights: assigned, metadata };
}

/** Loads Keras H5 layers (from readKerasH5) into `model`; all-or-nothing. */
export function loadKerasLayers(
  model: Model,
  allFileLayers: readonly KerasLayer[],
  label: string,
  mode: LoadMode = 'auto',
  except: readonly string[] = [],
): LoadWeightsReport {
  const modelLayers = modelWeightSpec(model).filter((l) => !except.includes(l.name));
  const fileLayers = allFileLayers.filter((l) => !except.includes(l.name));
  const resolved: KerasMatchMode = mode === 'auto' ? (namesMatch(modelLayers, fileLayers) ? 'name' : 'order') : mode;
  const assignments = matchKerasWeights(modelLayers, fileLayers, resolved, label);
  const targets = assignments.map((a) => {
    const v = model.getLayer(a.modelLayer).getWeight(a.modelWeight);
    if (!sameShape(v.shape, a.shape)) {
      throw new WeightFileError(
        label,
        `model weight "${v.name}" has shape ${shapeText([...v.shape])} but file weight "${a.fileLayer}/${a.fileWeight}" has ${shapeText(a.shape)}`,
      );
    }
    return { v, data: a.data };
  });
  const expected = modelLayers.reduce((n, l) => n + l.weights.length, 0);
  if (targets.length !== expected) throw new WeightFileError(label, `${targets.length} of the model's ${expected} weights were matched`);
  assignAll(targets);
  return { format: 'keras-h5', mode: resolved, weights: targets.length, metadata: {} };
}

/** True when the file's layers with weights are, by name, exactly the model's layers with weights. */
function namesMatch(modelLayers: readonly ModelLayerWeights[], fileLayers: readonly KerasLayer[]): boolean {
  const fileNames = fileLayers.filter((l) => l.weights.length > 0).map((l) => l.name);
  const modelNames = modelLayers.filter((l) => l.weights.length > 0).map((l) => l.name);
  if (fileNames.length !== modelNames.length) return false;
  const set = new Set(fileNames);
  return set.size === fileNames.length && modelNames.every((n) => set.has(n));
}

function hexPrefix(bytes: Uint8Array): string {
  return [...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ') || '(empty)';
}

/**
 * Saves the model's weights atomically, as a Keras H5 weight file or as safetensors, with the
 * record (default: the model's own, from the registry; null writes none).
 */
export async function saveWeights(
  model: Model,
  path: string,
  format: WeightFormat,
  record: ModelRecord | null = modelRecordOf(model),
): Promise<void> {
  if (format === 'keras-h5') {
    await writeKerasH5(modelToKerasLayers(model), path, record ? { attributes: recordToH5Attributes(record) } : {});
  } else if (format === 'safetensors') {
    await writeSafetensorsFile(path, namedWeightsOf(model), weightsMetadata(record));
  } else {
    throw new WeightFileError(path, `unknown weight format '${String(format)}' (expected keras-h5 or safetensors)`);
  }
}

/**
 * The `__metadata__` of a safetensors file, reading only its header (a weight file can be large).
 * Returns null for a file that is not safetensors or whose header does not parse; the full,
 * validating read happens in loadWeights.
 */
export async function peekSafetensorsMetadata(path: string): Promise<Record<string, string> | null> {
  let fh: fsp.FileHandle | null = null;
  try {
    fh = await fsp.open(path, 'r');
    const size = (await fh.stat()).size;
    const head = Buffer.alloc(8);
    if (size < 8 || (await fh.read(head, 0, 8, 0)).bytesRead !== 8) return null;
    const n = head.readBigUInt64LE(0);
    if (n === 0n || n > BigInt(Math.min(size - 8, 100_000_000))) return null;
    const json = Buffer.alloc(Number(n));
    if ((await fh.read(json, 0, json.length, 8)).bytesRead !== json.length) return null;
    const header = JSON.parse(json.toString('utf8')) as Record<string, unknown>;
    const meta = header['__metadata__'];
    if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) return {};
    return Object.fromEntries(Object.entries(meta as Record<string, unknown>).filter(([, v]) => typeof v === 'string')) as Record<
      string,
      string
    >;
  } catch {
    return null;
  } finally {
    await fh?.close();
  }
}
