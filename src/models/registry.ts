/**
 * The models the library builds by name, each with its input preprocessing and the CLI flags
 * that map onto its options.
 */
import { OptionError } from '../core/errors.js';
import type { Model } from '../nn/model.js';
import { preprocessPixels, type Preprocessing } from '../data/transforms.js';
import {
  inceptionV3,
  inceptionV3MinInput,
  inceptionV3ParamsBound,
  resolveInceptionV3Options,
  type InceptionV3Options,
} from './inception_v3/inception_v3.js';
import { resolveSepVggOptions, SEPVGG_MIN_INPUT, sepVgg, sepVggParamsBound, type SepVggOptions } from './sepvgg/sepvgg.js';
import { resolveXceptionOptions, xception, XCEPTION_MIN_INPUT, xceptionParamsBound, type XceptionOptions } from './xception/xception.js';

export interface ModelEntry {
  name: string;
  description: string;
  build: (options: Record<string, unknown>) => Model;
  /** Checks options as build would and fills in the defaults, allocating nothing (throws OptionError/ShapeError). */
  resolveOptions: (options: Record<string, unknown>) => Record<string, unknown>;
  /** How pixels in [0, 255] become network inputs. */
  preprocessing: Preprocessing;
  defaultInputShape: [number, number, number];
  /** The smallest input height/width the model accepts with each stem. */
  minInput: (stem: 'imagenet' | 'small') => number;
  /** An upper bound on the parameter count of the model `options` describe, computed without building it. */
  paramsBound: (options: Record<string, unknown>) => number;
}

const entries = new Map<string, ModelEntry>();

export function registerModel(entry: ModelEntry): void {
  entries.set(entry.name, entry);
}

export function modelNames(): string[] {
  return [...entries.keys()];
}

export function getModelEntry(name: string): ModelEntry {
  const e = entries.get(name);
  if (!e) throw new OptionError(`unknown model '${name}' (known: ${modelNames().join(', ')})`);
  return e;
}

export function buildModel(name: string, options: Record<string, unknown> = {}): Model {
  return getModelEntry(name).build(options);
}

registerModel({
  name: 'xception',
  description: "Xception (Chollet 2017), Keras applications.Xception layout, with the paper's research switches",
  build: (o) => xception(o as XceptionOptions),
  preprocessing: 'xception',
  defaultInputShape: [299, 299, 3],
  minInput: (stem) => XCEPTION_MIN_INPUT[stem],
  resolveOptions: (o) => ({ ...resolveXceptionOptions(o as XceptionOptions) }),
  paramsBound: (o) => xceptionParamsBound(resolveXceptionOptions(o as XceptionOptions)),
});

registerModel({
  name: 'inception_v3',
  description: "Inception V3 (Szegedy et al. 2016), Keras applications.InceptionV3 layout: the paper's baseline",
  build: (o) => inceptionV3(o as InceptionV3Options),
  preprocessing: 'inception_v3',
  defaultInputShape: [299, 299, 3],
  minInput: (stem) => inceptionV3MinInput(stem),
  resolveOptions: (o) => ({ ...resolveInceptionV3Options(o as InceptionV3Options) }),
  paramsBound: (o) => inceptionV3ParamsBound(resolveInceptionV3Options(o as InceptionV3Options)),
});

registerModel({
  name: 'sepvgg',
  description: "VGG16's layout with depthwise separable convolutions, residuals optional: the review's counter-example to figure 9",
  build: (o) => sepVgg(o as SepVggOptions),
  preprocessing: 'xception',
  defaultInputShape: [299, 299, 3],
  minInput: (stem) => SEPVGG_MIN_INPUT[stem],
  resolveOptions: (o) => ({ ...resolveSepVggOptions(o as SepVggOptions) }),
  paramsBound: (o) => sepVggParamsBound(resolveSepVggOptions(o as SepVggOptions)),
});

/** Keras `preprocess_input` for these models: pixels in [0, 255] → [-1, 1] (x/127.5 − 1). */
export function preprocessInput(pixels: ArrayLike<number>, mode: Preprocessing = 'xception'): Float32Array {
  return preprocessPixels(pixels, mode);
}
