import { OptionError, ShapeError } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import { readImagePixels } from '../data/image-file.js';
import { ImageError } from '../data/errors.js';
import {
  type ImagePreprocessing,
  kerasPreprocessing,
  type ResizeInterpolation,
  validateImagePreprocessing,
} from '../data/image-preprocessing.js';
import { forEachConcurrently } from '../data/files.js';
import { preprocessingAffine, writeScaledPixels } from '../data/transforms.js';
import type { Model } from '../nn/model.js';
import { classify, isMultiLabelModel, MULTI_LABEL_THRESHOLD } from './classify.js';
import { imagenetClassNames } from './imagenet-classes.js';

export { classify, isMultiLabelModel, MULTI_LABEL_THRESHOLD, outputsProbabilities } from './classify.js';

export { imagenetClassNames } from './imagenet-classes.js';

export { ImageError } from '../data/errors.js';

export interface ClassScore {
  index: number;
  /** The ImageNet class name (its synonyms, comma-separated) for 1000-class outputs, else the caller's label or the index. */
  label: string;
  probability: number;
}

export interface DecodeOptions {
  /** Class labels by index (default: the ImageNet names when there are 1000 classes). */
  labels?: readonly string[];
}

/**
 * Keras's `decode_predictions`: the `top` most probable classes of each row of `preds`
 * ([batch, classes], or one row as a flat array), most probable first (ties: lower index first).
 * Keras returns (wnid, name, probability); the class list shipped here has no WordNet ids, so
 * each entry is {index, label, probability}.
 */
export function decodePredictions(preds: Tensor | Float32Array | readonly number[], top = 5, options: DecodeOptions = {}): ClassScore[][] {
  let data: ArrayLike<number>;
  let rows: number;
  let classes: number;
  if (Array.isArray(preds) || preds instanceof Float32Array) {
    data = preds as ArrayLike<number>;
    rows = 1;
    classes = data.length;
  } else {
    const t = preds as Tensor;
    if (t.rank !== 2) throw new ShapeError(`decodePredictions expects [batch, classes], got [${t.shape.join(', ')}]`);
    data = t.data();
    [rows, classes] = t.shape as [number, number];
  }
  if (!Number.isInteger(top) || top < 1) throw new OptionError(`decodePredictions: top must be a positive integer, got ${top}`);
  if (classes < 1) throw new ShapeError('decodePredictions: no classes');
  const labels = options.labels ?? (classes === 1000 ? imagenetClassNames() : null);
  if (labels && labels.length !== classes) throw new OptionError(`decodePredictions: ${labels.length} labels for ${classes} classes`);
  const k = Math.min(top, classes);
  const out: ClassScore[][] = [];
  for (let r = 0; r < rows; r++) {
    const order = Array.from({ length: classes }, (_, i) => i);
    const p = (i: number) => data[r * classes + i]!;
    order.sort((a, b) => p(b) - p(a) || a - b);
    out.push(order.slice(0, k).map((index) => ({ index, label: labels ? labels[index]! : String(index), probability: p(index) })));
  }
  return out;
}

export type Interpolation = ResizeInterpolation;

export interface LoadImageOptions {
  /** Keras's default is nearest-neighbour. */
  interpolation?: Interpolation;
}

/**
 * Keras's `image.load_img(file, target_size=(height, width), color_mode=…)`: readImagePixels with
 * Keras's resize policy (stretch, aspect ratio not kept) and `interpolation` (default nearest).
 * Returns HWC uint8 pixels.
 */
export async function loadImage(
  file: string,
  shape: readonly [number, number, number],
  options: LoadImageOptions = {},
): Promise<Uint8Array> {
  const interpolation = options.interpolation ?? 'nearest';
  if (interpolation !== 'nearest' && interpolation !== 'bilinear')
    throw new OptionError(`interpolation must be 'nearest' or 'bilinear', got ${JSON.stringify(interpolation)}`);
  return readImagePixels(file, shape, { ...kerasPreprocessing('xception'), interpolation });
}

export interface PredictOptions extends DecodeOptions {
  /** Classes per image (default 5). */
  top?: number;
  /**
   * How files become inputs (default kerasPreprocessing('xception'): stretch, nearest,
   * x/127.5 − 1, Keras-exact for the official weights). Pass what the weights were trained with.
   */
  preprocessing?: ImagePreprocessing;
  /** Images per forward pass (default 8). */
  batchSize?: number;
  /** Images decoded at once (default 8): sharp decodes them on libuv threads while a batch is classified. */
  decodeConcurrency?: number;
}

export interface ImagePrediction {
  file: string;
  /**
   * Most probable first; a multi-label model (sigmoid head): every class above 0.5, however many.
   * Empty when the image could not be read (see `error`).
   */
  predictions: ClassScore[];
  /** Why the image could not be read (the others are still classified). */
  error?: string;
}

/** Multi-label: every class above the threshold, most probable first. */
function classesAbove(probs: Float32Array, labels: readonly string[] | undefined): ClassScore[] {
  const out: ClassScore[] = [];
  probs.forEach((p, index) => {
    if (p > MULTI_LABEL_THRESHOLD) out.push({ index, label: labels ? labels[index]! : String(index), probability: p });
  });
  return out.sort((a, b) => b.probability - a.probability || a.index - b.index);
}

/** One batch of model inputs; a file that could not be read leaves zeros and its error. */
interface DecodedBatch {
  files: readonly string[];
  inputs: Float32Array;
  errors: (string | undefined)[];
}

/**
 * Model inputs for `files` (NHWC float32), each image read by readImagePixels and scaled as `prep`
 * says: the tensor evaluation builds for the same file. At most `concurrency` images are decoded
 * at once. Failures are collected, not thrown, unless they are not about the file (e.g. no sharp).
 */
export async function imageInputs(
  files: readonly string[],
  shape: readonly [number, number, number],
  prep: ImagePreprocessing,
  concurrency = 8,
): Promise<DecodedBatch> {
  const per = shape[0] * shape[1] * shape[2];
  const affine = preprocessingAffine(prep.scaling);
  const inputs = new Float32Array(files.length * per);
  const errors: (string | undefined)[] = files.map(() => undefined);
  await forEachConcurrently(files.length, concurrency, async (i) => {
    try {
      writeScaledPixels(await readImagePixels(files[i]!, shape, prep), affine, inputs, i * per);
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      errors[i] = e.message;
    }
  });
  return { files, inputs, errors };
}

function checkPositiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new OptionError(`${name} must be a positive integer, got ${v}`);
}

/**
 * Loads, preprocesses and classifies images; one result per file, in order. Batch k+1 is decoded
 * (sharp, libuv threads) while batch k is classified. An unreadable image gets `error` and no
 * predictions; the others are classified.
 */
export async function predictImages(model: Model, files: readonly string[], options: PredictOptions = {}): Promise<ImagePrediction[]> {
  const top = options.top ?? 5;
  const batchSize = options.batchSize ?? 8;
  const concurrency = options.decodeConcurrency ?? 8;
  checkPositiveInt('top', top);
  checkPositiveInt('batchSize', batchSize);
  checkPositiveInt('decodeConcurrency', concurrency);
  const prep = validateImagePreprocessing(options.preprocessing ?? kerasPreprocessing('xception'), 'predict preprocessing');
  const shape = model.inputShape as [number, number, number];
  if (shape.length !== 3) throw new ShapeError(`model '${model.name}' does not take images (input [${shape.join(', ')}])`);
  if (model.outputShape.length !== 1) {
    throw new ShapeError(
      `model '${model.name}' outputs [${model.outputShape.join(', ')}], not class scores: prediction needs a classifier (build it with the top)`,
    );
  }
  const classes = model.outputShape[0]!;
  const multiLabel = isMultiLabelModel(model);
  const decode = (start: number) => imageInputs(files.slice(start, start + batchSize), shape, prep, concurrency);
  const results: ImagePrediction[] = [];
  let pending: Promise<DecodedBatch> | null = files.length > 0 ? decode(0) : null;
  for (let start = 0; pending; start += batchSize) {
    const batch = await pending;
    // Queue the next batch's decoding before the (synchronous) forward pass, so it overlaps.
    pending = start + batchSize < files.length ? decode(start + batchSize) : null;
    pending?.catch(() => {}); // awaited next turn; this only keeps an early rejection from being reported as unhandled
    // The decodes are submitted to sharp from promise continuations: let them run before the
    // synchronous forward pass blocks this thread, or nothing would decode during it.
    if (pending) await new Promise((resolve) => setImmediate(resolve));
    const probs = batch.errors.every((e) => e !== undefined) ? null : classify(model, batch.inputs, batch.files.length);
    batch.files.forEach((file, i) => {
      const error = batch.errors[i];
      if (error !== undefined) results.push({ file, predictions: [], error });
      else {
        const row = probs!.subarray(i * classes, (i + 1) * classes);
        results.push({ file, predictions: multiLabel ? classesAbove(row, options.labels) : decodePredictions(row, top, options)[0]! });
      }
    });
  }
  return results;
}
