/**
 * Image classification in a few lines, as Keras's
 *   img = image.load_img(path, target_size=(299, 299)); x = preprocess_input(img_to_array(img))
 *   decode_predictions(model.predict(x[None]), top=5)
 * does it:
 *
 *   const model = buildModel('xception');
 *   await loadWeights(model, 'xception_weights_tf_dim_ordering_tf_kernels.h5');
 *   const [result] = await predictImages(model, ['cat.jpg'], { top: 5 });
 *
 * Images are decoded by sharp (JPEG, PNG, WebP, …), converted to RGB (an alpha channel is dropped,
 * as PIL's convert('RGB') does), resized to the model's input without keeping the aspect ratio
 * (Keras's `load_img(target_size=…)`, nearest-neighbour by default as there, with Pillow's
 * arithmetic: see resize-pil.ts), then preprocessed
 * as the model's registry entry says (Xception and Inception V3: x/127.5 − 1).
 */
import { tensor } from '../core/creation.js';
import { noGrad } from '../core/engine.js';
import { OptionError, ShapeError } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import { readImagePixels } from '../data/image-file.js';
import { kerasPreprocessing } from '../data/image-preprocessing.js';
import { preprocessPixels, type Preprocessing } from '../data/transforms.js';
import { cachedCompiledInference } from '../infer/auto.js';
import type { Model } from '../nn/model.js';
import { imagenetClassNames } from './imagenet-classes.js';

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

export type Interpolation = 'nearest' | 'bilinear';

export interface LoadImageOptions {
  /** Keras's default is nearest-neighbour. */
  interpolation?: Interpolation;
}

/**
 * Keras's `image.load_img(file, target_size=(height, width), color_mode=…)`: readImagePixels with
 * Keras's resize policy (stretch, aspect ratio not kept) and `interpolation` (default nearest).
 * Returns HWC uint8 pixels.
 */
export async function loadImage(file: string, shape: readonly [number, number, number], options: LoadImageOptions = {}): Promise<Uint8Array> {
  const interpolation = options.interpolation ?? 'nearest';
  if (interpolation !== 'nearest' && interpolation !== 'bilinear') throw new OptionError(`interpolation must be 'nearest' or 'bilinear', got ${JSON.stringify(interpolation)}`);
  return readImagePixels(file, shape, { ...kerasPreprocessing('xception'), interpolation });
}

export interface PredictOptions extends LoadImageOptions, DecodeOptions {
  /** Classes per image (default 5). */
  top?: number;
  /** Pixel preprocessing (default 'xception': x/127.5 − 1). */
  preprocessing?: Preprocessing;
  /** Images per forward pass (default 8). */
  batchSize?: number;
}

export interface ImagePrediction {
  file: string;
  predictions: ClassScore[];
}

/** True when the model's last layer ends in a softmax, i.e. it outputs probabilities. */
export function outputsProbabilities(model: Model): boolean {
  const last = model.output.layer as unknown as { activation?: unknown };
  return last.activation === 'softmax';
}

/** Softmax of each row, for models whose classifier outputs logits. */
function softmaxRows(data: Float32Array, classes: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < data.length / classes; r++) {
    let max = -Infinity;
    for (let i = 0; i < classes; i++) max = Math.max(max, data[r * classes + i]!);
    let sum = 0;
    for (let i = 0; i < classes; i++) sum += out[r * classes + i] = Math.exp(data[r * classes + i]! - max);
    for (let i = 0; i < classes; i++) out[r * classes + i]! /= sum;
  }
  return out;
}

/** Class probabilities [images × classes] for preprocessed images (model inputs, NHWC). */
export function classify(model: Model, inputs: Float32Array, count: number): Float32Array {
  if (model.outputShape.length !== 1) {
    throw new ShapeError(`model '${model.name}' outputs [${model.outputShape.join(', ')}], not class scores: prediction needs a classifier (build it with the top)`);
  }
  // On the native backend a compiled plan (cached per model and batch) runs the network;
  // elsewhere, or if the model does not compile, model.forward does, op by op.
  const plan = cachedCompiledInference(model, count, false);
  const probs = plan ? plan.runData(inputs) : noGrad(() => {
    const backend = model.weights[0]?.value.backend;
    const x = tensor(inputs, [count, ...model.inputShape], backend ? { backend } : {});
    const y = model.forward(x);
    const d = Float32Array.from(y.data());
    y.dispose();
    x.dispose();
    return d;
  });
  return outputsProbabilities(model) ? probs : softmaxRows(probs, model.outputShape[0]!);
}

/** Loads, preprocesses and classifies images; one result per file, in order. */
export async function predictImages(model: Model, files: readonly string[], options: PredictOptions = {}): Promise<ImagePrediction[]> {
  const top = options.top ?? 5;
  if (!Number.isInteger(top) || top < 1) throw new OptionError(`top must be a positive integer, got ${top}`);
  const batchSize = options.batchSize ?? 8;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new OptionError(`batchSize must be a positive integer, got ${batchSize}`);
  const shape = model.inputShape as [number, number, number];
  if (shape.length !== 3) throw new ShapeError(`model '${model.name}' does not take images (input [${shape.join(', ')}])`);
  const per = shape[0] * shape[1] * shape[2];
  const results: ImagePrediction[] = [];
  for (let start = 0; start < files.length; start += batchSize) {
    const chunk = files.slice(start, start + batchSize);
    const inputs = new Float32Array(chunk.length * per);
    for (let i = 0; i < chunk.length; i++) {
      const pixels = await loadImage(chunk[i]!, shape, options);
      inputs.set(preprocessPixels(pixels, options.preprocessing ?? 'xception'), i * per);
    }
    const probs = classify(model, inputs, chunk.length);
    const classes = model.outputShape[0]!;
    const decoded = chunk.map((_, i) => decodePredictions(probs.subarray(i * classes, (i + 1) * classes), top, options)[0]!);
    chunk.forEach((file, i) => results.push({ file, predictions: decoded[i]! }));
  }
  return results;
}
