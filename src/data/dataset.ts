/**
 * The common in-memory dataset: every reader (IDX, CIFAR, image folder, arrays) produces one of
 * these, and the loader consumes only this. Pixels stay uint8 (a quarter of the memory of
 * float32); conversion to float happens per batch.
 */
import { OptionError } from '../core/errors.js';
import { DatasetError } from './errors.js';

export interface ImageDataset {
  /** Human-readable name, e.g. `fashion-mnist/train`. */
  readonly name: string;
  /** Pixels, N·H·W·C (NHWC), uint8 0..255. */
  readonly images: Uint8Array;
  /** Class index per image, each in [0, classes). */
  readonly labels: Int32Array;
  readonly count: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  /** Number of classes (labels are < classes). */
  readonly classes: number;
  /** Optional names, `classNames[k]` names class k; length === classes when present. */
  readonly classNames?: readonly string[];
  /**
   * Multi-label datasets only: N·classes multi-hot targets (1 = the image shows class k), every
   * image with at least one. `labels` then holds each image's lowest class (for stratified splits).
   */
  readonly targets?: Uint8Array;
}

export const FASHION_MNIST_CLASS_NAMES: readonly string[] = Object.freeze([
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
]);

export const MNIST_CLASS_NAMES: readonly string[] = Object.freeze(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);

/** Bytes per image. */
export function imageSize(ds: Pick<ImageDataset, 'height' | 'width' | 'channels'>): number {
  return ds.height * ds.width * ds.channels;
}

function isPosInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

/**
 * Checks that a dataset is internally consistent: sizes agree and every label is in range.
 * `source` names the file or origin in the error. Throws DatasetError.
 */
export function validateDataset(ds: ImageDataset, source: string = ds.name): void {
  const dims = { height: ds.height, width: ds.width, channels: ds.channels, classes: ds.classes };
  for (const [k, v] of Object.entries(dims)) {
    if (!isPosInt(v)) throw new DatasetError(`${k} must be a positive integer, got ${v}`, source);
  }
  if (!Number.isInteger(ds.count) || ds.count < 0) throw new DatasetError(`count must be a non-negative integer, got ${ds.count}`, source);
  if (!(ds.images instanceof Uint8Array)) throw new DatasetError('images must be a Uint8Array', source);
  if (!(ds.labels instanceof Int32Array)) throw new DatasetError('labels must be an Int32Array', source);
  const expected = ds.count * imageSize(ds);
  if (ds.images.length !== expected) {
    throw new DatasetError(
      `images hold ${ds.images.length} bytes but ${ds.count}×${ds.height}×${ds.width}×${ds.channels} needs ${expected}`,
      source,
    );
  }
  if (ds.labels.length !== ds.count) {
    throw new DatasetError(`${ds.labels.length} labels for ${ds.count} images`, source);
  }
  const bad = firstLabelOutOfRange(ds.labels, ds.classes);
  if (bad >= 0) throw new DatasetError(`label ${ds.labels[bad]} at index ${bad} is out of range [0, ${ds.classes})`, source);
  if (ds.classNames !== undefined && ds.classNames.length !== ds.classes) {
    throw new DatasetError(`${ds.classNames.length} class names for ${ds.classes} classes`, source);
  }
  if (ds.targets !== undefined) validateTargets(ds, ds.targets, source);
}

/** Multi-hot targets: N·classes values of 0 or 1, at least one 1 per image. */
function validateTargets(ds: ImageDataset, targets: Uint8Array, source: string): void {
  if (!(targets instanceof Uint8Array)) throw new DatasetError('targets must be a Uint8Array', source);
  if (targets.length !== ds.count * ds.classes)
    throw new DatasetError(`${targets.length} targets for ${ds.count} images × ${ds.classes} classes`, source);
  for (let i = 0; i < ds.count; i++) {
    let any = false;
    for (let c = 0; c < ds.classes; c++) {
      const t = targets[i * ds.classes + c]!;
      if (t > 1) throw new DatasetError(`target ${t} of image ${i}, class ${c} is not 0 or 1`, source);
      any ||= t === 1;
    }
    if (!any) throw new DatasetError(`image ${i} has no label`, source);
  }
}

/** Each image's lowest class in multi-hot targets (the `labels` of a multi-label dataset). */
export function firstLabels(targets: Uint8Array, count: number, classes: number): Int32Array {
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) labels[i] = Math.max(0, targets.subarray(i * classes, (i + 1) * classes).indexOf(1));
  return labels;
}

/** Index of the first label outside [0, classes), or -1. */
export function firstLabelOutOfRange(labels: ArrayLike<number>, classes: number): number {
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (!(l >= 0 && l < classes && Number.isInteger(l))) return i;
  }
  return -1;
}

export interface FromArraysOptions {
  name?: string;
  classNames?: readonly string[];
}

/**
 * A dataset from arrays already in memory. `shape` is [N, H, W, C]; pixels may be any numeric
 * array of 0..255 integers (copied to uint8, values outside 0..255 or non-integers rejected);
 * labels any numeric array of integers in [0, classes).
 */
export function fromArrays(
  images: ArrayLike<number>,
  labels: ArrayLike<number>,
  shape: readonly [number, number, number, number],
  classes: number,
  options: FromArraysOptions = {},
): ImageDataset {
  const name = options.name ?? 'arrays';
  if (!Array.isArray(shape) || shape.length !== 4)
    throw new OptionError(`fromArrays: shape must be [N, H, W, C], got ${JSON.stringify(shape)}`);
  const [n, h, w, c] = shape;
  if (!Number.isInteger(n) || n < 0 || !isPosInt(h) || !isPosInt(w) || !isPosInt(c)) {
    throw new OptionError(`fromArrays: shape must be non-negative N and positive H, W, C integers, got [${shape.join(', ')}]`);
  }
  if (!isPosInt(classes)) throw new OptionError(`fromArrays: classes must be a positive integer, got ${classes}`);
  if (images.length !== n * h * w * c) {
    throw new DatasetError(`fromArrays: ${images.length} pixel values do not match shape [${shape.join(', ')}] (${n * h * w * c})`, name);
  }
  if (labels.length !== n) throw new DatasetError(`fromArrays: ${labels.length} labels for ${n} images`, name);
  let pixels: Uint8Array;
  if (images instanceof Uint8Array) {
    pixels = images.slice();
  } else {
    pixels = new Uint8Array(images.length);
    for (let i = 0; i < images.length; i++) {
      const v = images[i]!;
      if (!(Number.isInteger(v) && v >= 0 && v <= 255))
        throw new DatasetError(`fromArrays: pixel ${i} is ${v}, expected an integer in 0..255`, name);
      pixels[i] = v;
    }
  }
  const bad = firstLabelOutOfRange(labels, classes);
  if (bad >= 0) throw new DatasetError(`fromArrays: label ${labels[bad]} at index ${bad} is out of range [0, ${classes})`, name);
  const ds: ImageDataset = {
    name,
    images: pixels,
    labels: Int32Array.from(labels),
    count: n,
    height: h,
    width: w,
    channels: c,
    classes,
    ...(options.classNames ? { classNames: Object.freeze([...options.classNames]) } : {}),
  };
  validateDataset(ds, name);
  return ds;
}

/** A new dataset holding copies of the given images, in the given order. */
export function subsetDataset(ds: ImageDataset, indices: ArrayLike<number>, name = `${ds.name}[subset]`): ImageDataset {
  const size = imageSize(ds);
  const images = new Uint8Array(indices.length * size);
  const labels = new Int32Array(indices.length);
  const C = ds.classes;
  const targets = ds.targets ? new Uint8Array(indices.length * C) : undefined;
  for (let i = 0; i < indices.length; i++) {
    const k = indices[i]!;
    if (!(Number.isInteger(k) && k >= 0 && k < ds.count)) throw new OptionError(`subsetDataset: index ${k} out of range [0, ${ds.count})`);
    images.set(ds.images.subarray(k * size, (k + 1) * size), i * size);
    labels[i] = ds.labels[k]!;
    targets?.set(ds.targets!.subarray(k * C, (k + 1) * C), i * C);
  }
  return { ...ds, name, images, labels, count: indices.length, ...(targets ? { targets } : {}) };
}
