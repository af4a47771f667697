import { OptionError, ShapeError, shapeToString } from '../core/errors.js';
import type { Layer, SymbolicTensor } from '../nn/layer.js';
import { Dense, Dropout } from '../nn/layers/core.js';
import { GlobalAveragePooling2D, GlobalMaxPooling2D } from '../nn/layers/pooling.js';

/** Rejects misspelled or unknown options by name, before anything is built. */
export function checkOptions(what: string, options: Record<string, unknown>, known: readonly string[]): void {
  if (options === null || typeof options !== 'object') throw new OptionError(`${what}: options must be an object`);
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      const near = known.find((k) => k.toLowerCase() === key.toLowerCase().replace(/[-_]/g, ''));
      throw new OptionError(
        `${what}: unknown option '${key}'${near ? ` (did you mean '${near}'?)` : ''}; known options: ${known.join(', ')}`,
      );
    }
  }
}

/**
 * Keras-style automatic names, counted per model and starting at 1 (`conv2d_1`,
 * `batch_normalization_1`, `add_1`, …), as in the official Xception weight files.
 */
export class NameCounter {
  private counts = new Map<string, number>();
  next(prefix: string): string {
    const n = (this.counts.get(prefix) ?? 0) + 1;
    this.counts.set(prefix, n);
    return `${prefix}_${n}`;
  }
}

/** The options every Keras application model shares, and the small-image stem. */
export interface ApplicationOptions {
  includeTop?: boolean;
  inputShape?: readonly [number, number, number];
  pooling?: 'avg' | 'max' | null;
  classes?: number;
  classifierActivation?: 'softmax' | 'sigmoid' | 'linear';
  /** Dense+ReLU layers `fc1`, `fc2`, … between the global pooling and the classifier (the paper's JFT head: [4096, 4096]). */
  fcLayers?: readonly number[];
  width?: number;
  dropout?: number;
  stem?: 'imagenet' | 'small';
  /**
   * Momentum of every BatchNormalization's moving statistics (Keras convention:
   * moving = moving·m + batch·(1 − m)); default Keras's 0.99. Short runs want a faster average
   * (0.9, PyTorch's default): with 0.99 the statistics trail the weights by ~100 steps, so a
   * network trained for a few hundred steps is evaluated with stale statistics.
   */
  bnMomentum?: number;
}

export interface ResolvedApplicationOptions {
  includeTop: boolean;
  inputShape: [number, number, number];
  pooling: 'avg' | 'max' | null;
  classes: number;
  classifierActivation: 'softmax' | 'sigmoid' | 'linear';
  fcLayers: readonly number[];
  width: number;
  dropout: number;
  stem: 'imagenet' | 'small';
  bnMomentum: number;
}

/** The input must be at least `min` high and wide for the stem (the smallest the network can shrink). */
export function checkMinInput(what: string, inputShape: readonly [number, number, number], stem: 'imagenet' | 'small', min: number): void {
  if (inputShape[0] >= min && inputShape[1] >= min) return;
  throw new ShapeError(
    `${what}: input ${shapeToString(inputShape)} is too small: height and width must be at least ${min} with the '${stem}' stem` +
      (stem === 'imagenet' ? " (small images need the 'small' stem: --stem small on the command line, stem: 'small' in code)" : ''),
  );
}

/** The fully connected layers belong to the top: without it they have nothing to feed. */
export function checkHead(what: string, o: ResolvedApplicationOptions): void {
  if (!o.includeTop && o.fcLayers.length > 0) throw new OptionError(`${what}: fcLayers applies only with the top (includeTop true)`);
}

/** Parameters of the top on `features` pooled features: the fc layers and the classifier (0 without the top). */
export function headParams(features: number, o: ResolvedApplicationOptions): number {
  if (!o.includeTop) return 0;
  let params = 0;
  let inputs = features;
  for (const units of o.fcLayers) {
    params += (inputs + 1) * units;
    inputs = units;
  }
  return params + (inputs + 1) * o.classes;
}

/**
 * Keras's head: with the top, global average pooling `avg_pool`, the optional fully connected
 * layers `fc1`, `fc2`, … (Dense + ReLU, as Keras's VGG names them), optional dropout and the
 * Dense `predictions`; without it, optional global pooling of the feature map.
 */
export function applyHead(
  x: SymbolicTensor,
  o: ResolvedApplicationOptions,
  apply: (layer: Layer, x: SymbolicTensor) => SymbolicTensor,
  auto: NameCounter,
): SymbolicTensor {
  if (o.includeTop) {
    x = apply(new GlobalAveragePooling2D({ name: 'avg_pool' }), x);
    o.fcLayers.forEach((units, i) => {
      x = apply(new Dense({ units, activation: 'relu', name: `fc${i + 1}` }), x);
    });
    if (o.dropout > 0) x = apply(new Dropout(o.dropout, { name: 'dropout' }), x);
    return apply(new Dense({ units: o.classes, activation: o.classifierActivation, name: 'predictions' }), x);
  }
  if (o.pooling === 'avg') return apply(new GlobalAveragePooling2D({ name: auto.next('global_average_pooling2d') }), x);
  if (o.pooling === 'max') return apply(new GlobalMaxPooling2D({ name: auto.next('global_max_pooling2d') }), x);
  return x;
}
