/**
 * Inception V3 (Szegedy et al. 2016, "Rethinking the Inception Architecture"), laid out exactly as
 * Keras `applications.InceptionV3` — the baseline the Xception paper compares against. With
 * default options the layer names, order, shapes and parameter counts equal Keras's
 * (23,851,784 parameters at 299×299×3 with 1000 classes).
 *
 * Every convolution is a conv2d_bn block: bias-free Conv2D → BatchNormalization(scale=False) →
 * ReLU, all three auto-named (`conv2d_N`, `batch_normalization_N`, `activation_N`) as in Keras.
 *
 *   stem:       3×3/2 valid, 3×3 valid, 3×3 same, max pool 3×3/2, 1×1, 3×3 valid, max pool 3×3/2
 *   35×35:      mixed0–mixed2 (1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avg pool→1×1)
 *   → 17×17:    mixed3 (strided 3×3 | 1×1→3×3→strided 3×3 | max pool)
 *   17×17:      mixed4–mixed7 (1×1 | 1×1→1×7→7×1 | 1×1→7×1→1×7→7×1→1×7 | avg pool→1×1)
 *   → 8×8:      mixed8 (1×1→strided 3×3 | 1×1→1×7→7×1→strided 3×3 | max pool)
 *   8×8:        mixed9, mixed10 (1×1 | 1×1→[1×3, 3×1] | 1×1→3×3→[1×3, 3×1] | avg pool→1×1)
 */
import type { Backend } from '../../core/backend.js';
import { getBackend } from '../../core/engine.js';
import { Random } from '../../core/random.js';
import type { Layer, SymbolicTensor } from '../../nn/layer.js';
import { Activation, InputLayer } from '../../nn/layers/core.js';
import { Conv2D } from '../../nn/layers/convolutional.js';
import { Concatenate } from '../../nn/layers/merge.js';
import { BatchNormalization } from '../../nn/layers/normalization.js';
import { AveragePooling2D, MaxPooling2D } from '../../nn/layers/pooling.js';
import { Model } from '../../nn/model.js';
import { applyHead, checkHead, checkMinInput, headParams, NameCounter, type ApplicationOptions } from '../common.js';
import { checkModelSize, resolveModelOptions } from '../options.js';

/** Keras's application options (ApplicationOptions: includeTop, inputShape, pooling, classes,
 * classifierActivation, width, dropout before the classifier) and these. */
export interface InceptionV3Options extends ApplicationOptions {
  /**
   * 'imagenet' (Keras: minimum input 75) or 'small' for 28×28 / 32×32 images: the five stem
   * convolutions run with stride 1 and 'same' padding and only the last stem max pool is kept,
   * made 'same' (32 → 16 at mixed0, 7 at mixed3, 3 at mixed8; minimum input 13). The mixed
   * blocks are unchanged, so their strided 'valid' reductions still work.
   */
  stem?: 'imagenet' | 'small';
  /** Seed of the weight initialization (and the model's dropout generator). Default 0. */
  seed?: number;
  backend?: Backend;
  name?: string;
}

export interface ResolvedInceptionV3Options extends Required<Omit<InceptionV3Options, 'backend' | 'pooling' | 'inputShape'>> {
  inputShape: [number, number, number];
  pooling: 'avg' | 'max' | null;
}

/** Output size of a k×k window with stride s: 'valid' drops the partial windows, 'same' keeps them. */
function windowOut(size: number, k: number, s: number, padding: 'same' | 'valid'): number {
  return padding === 'same' ? Math.ceil(size / s) : Math.floor((size - k) / s) + 1;
}

/**
 * Spatial sizes along one axis: after the stem, after mixed3 and after mixed8 (the three places
 * the size shrinks). A size below 1 anywhere means the input is too small.
 */
export function inceptionV3Sizes(size: number, stem: 'imagenet' | 'small' = 'imagenet'): { stem: number; mixed3: number; mixed8: number } {
  let s = size;
  if (stem === 'imagenet') {
    s = windowOut(s, 3, 2, 'valid'); // conv 32, 3×3/2
    s = windowOut(s, 3, 1, 'valid'); // conv 32, 3×3
    s = windowOut(s, 3, 2, 'valid'); // max pool 3×3/2 (the 'same' 64-conv keeps the size)
    s = windowOut(s, 3, 1, 'valid'); // conv 192, 3×3
    s = windowOut(s, 3, 2, 'valid'); // max pool 3×3/2
  } else {
    s = windowOut(s, 3, 2, 'same'); // the one stem max pool
  }
  const m3 = s >= 3 ? windowOut(s, 3, 2, 'valid') : 0;
  const m8 = m3 >= 3 ? windowOut(m3, 3, 2, 'valid') : 0;
  return { stem: s, mixed3: m3, mixed8: m8 };
}

/** The smallest height/width each stem accepts (75 for 'imagenet', as Keras; 13 for 'small'). */
export function inceptionV3MinInput(stem: 'imagenet' | 'small' = 'imagenet'): number {
  let s = 1;
  while (inceptionV3Sizes(s, stem).mixed8 < 1) s++;
  return s;
}

/** Checks every option against the schema (models/options.ts) and fills in defaults, before anything is allocated. */
export function resolveInceptionV3Options(options: InceptionV3Options = {}): ResolvedInceptionV3Options {
  const resolved = resolveModelOptions('inception_v3', options as Record<string, unknown>) as unknown as ResolvedInceptionV3Options;
  checkMinInput('inception_v3', resolved.inputShape, resolved.stem, inceptionV3MinInput(resolved.stem));
  checkHead('inception_v3', resolved);
  checkModelSize('inception_v3', inceptionV3ParamsBound(resolved));
  return resolved;
}

/**
 * An upper bound on the parameter count: Keras's 21.8 million below the classifier scaled by
 * width² (with room for the rounding of channel counts, and a million for tiny widths), plus the classifier.
 */
export function inceptionV3ParamsBound(o: ResolvedInceptionV3Options): number {
  const features = Math.max(1, Math.round(2048 * o.width));
  return 24e6 * o.width ** 2 + 1e6 + headParams(features, o);
}

/** The building blocks every phase uses, bound to one model's options, generators and names. */
interface InceptionBlocks {
  /** Keras's conv2d_bn: bias-free conv → BN without gamma → ReLU, all auto-named. */
  convBn(x: SymbolicTensor, filters: number, kh: number, kw: number, strides?: number, padding?: 'same' | 'valid'): SymbolicTensor;
  avgPool3(x: SymbolicTensor): SymbolicTensor;
  maxPool3(x: SymbolicTensor, padding?: 'same' | 'valid'): SymbolicTensor;
  concat(branches: SymbolicTensor[], name?: string): SymbolicTensor;
}

function inceptionBlocks(
  o: ResolvedInceptionV3Options,
  apply: (layer: Layer, x: SymbolicTensor | SymbolicTensor[]) => SymbolicTensor,
  auto: NameCounter,
): InceptionBlocks {
  const c = (n: number) => Math.max(1, Math.round(n * o.width));
  return {
    convBn: (x, filters, kh, kw, strides = 1, padding = 'same') => {
      x = apply(new Conv2D({ filters: c(filters), kernelSize: [kh, kw], strides, padding, useBias: false, name: auto.next('conv2d') }), x);
      x = apply(new BatchNormalization({ scale: false, momentum: o.bnMomentum, name: auto.next('batch_normalization') }), x);
      return apply(new Activation('relu', { name: auto.next('activation') }), x);
    },
    avgPool3: (x) => apply(new AveragePooling2D({ poolSize: 3, strides: 1, padding: 'same', name: auto.next('average_pooling2d') }), x),
    maxPool3: (x, padding = 'valid') => apply(new MaxPooling2D({ poolSize: 3, strides: 2, padding, name: auto.next('max_pooling2d') }), x),
    concat: (branches, name) => apply(new Concatenate({ name: name ?? auto.next('concatenate') }), branches),
  };
}

/** The stem: Keras's (two max pools, 299 → 35) or the small one (one 'same' max pool, 32 → 16). */
function stemPhase({ convBn, maxPool3 }: InceptionBlocks, x: SymbolicTensor, stem: 'imagenet' | 'small'): SymbolicTensor {
  if (stem === 'imagenet') {
    x = convBn(x, 32, 3, 3, 2, 'valid');
    x = convBn(x, 32, 3, 3, 1, 'valid');
    x = convBn(x, 64, 3, 3);
    x = maxPool3(x);
    x = convBn(x, 80, 1, 1, 1, 'valid');
    x = convBn(x, 192, 3, 3, 1, 'valid');
    return maxPool3(x);
  }
  x = convBn(x, 32, 3, 3);
  x = convBn(x, 32, 3, 3);
  x = convBn(x, 64, 3, 3);
  x = convBn(x, 80, 1, 1);
  x = convBn(x, 192, 3, 3);
  return maxPool3(x, 'same');
}

/** mixed0–2 (35×35): the pool branch has 32 filters in mixed0, 64 afterwards; then mixed3: 35 → 17. */
function grid35Phase({ convBn, avgPool3, maxPool3, concat }: InceptionBlocks, x: SymbolicTensor): SymbolicTensor {
  for (let i = 0; i < 3; i++) {
    const branch1x1 = convBn(x, 64, 1, 1);
    let branch5x5 = convBn(x, 48, 1, 1);
    branch5x5 = convBn(branch5x5, 64, 5, 5);
    let branch3x3dbl = convBn(x, 64, 1, 1);
    branch3x3dbl = convBn(branch3x3dbl, 96, 3, 3);
    branch3x3dbl = convBn(branch3x3dbl, 96, 3, 3);
    const branchPool = convBn(avgPool3(x), i === 0 ? 32 : 64, 1, 1);
    x = concat([branch1x1, branch5x5, branch3x3dbl, branchPool], `mixed${i}`);
  }
  const branch3x3 = convBn(x, 384, 3, 3, 2, 'valid');
  let branch3x3dbl = convBn(x, 64, 1, 1);
  branch3x3dbl = convBn(branch3x3dbl, 96, 3, 3);
  branch3x3dbl = convBn(branch3x3dbl, 96, 3, 3, 2, 'valid');
  return concat([branch3x3, branch3x3dbl, maxPool3(x)], 'mixed3');
}

/** mixed4–7 (17×17): factorized 7×7, the inner width growing 128, 160, 160, 192; then mixed8: 17 → 8. */
function grid17Phase({ convBn, avgPool3, maxPool3, concat }: InceptionBlocks, x: SymbolicTensor): SymbolicTensor {
  const inner7x7 = [128, 160, 160, 192];
  for (let i = 0; i < 4; i++) {
    const f = inner7x7[i]!;
    const branch1x1 = convBn(x, 192, 1, 1);
    let branch7x7 = convBn(x, f, 1, 1);
    branch7x7 = convBn(branch7x7, f, 1, 7);
    branch7x7 = convBn(branch7x7, 192, 7, 1);
    let branch7x7dbl = convBn(x, f, 1, 1);
    branch7x7dbl = convBn(branch7x7dbl, f, 7, 1);
    branch7x7dbl = convBn(branch7x7dbl, f, 1, 7);
    branch7x7dbl = convBn(branch7x7dbl, f, 7, 1);
    branch7x7dbl = convBn(branch7x7dbl, 192, 1, 7);
    const branchPool = convBn(avgPool3(x), 192, 1, 1);
    x = concat([branch1x1, branch7x7, branch7x7dbl, branchPool], `mixed${4 + i}`);
  }
  let branch3x3 = convBn(x, 192, 1, 1);
  branch3x3 = convBn(branch3x3, 320, 3, 3, 2, 'valid');
  let branch7x7x3 = convBn(x, 192, 1, 1);
  branch7x7x3 = convBn(branch7x7x3, 192, 1, 7);
  branch7x7x3 = convBn(branch7x7x3, 192, 7, 1);
  branch7x7x3 = convBn(branch7x7x3, 192, 3, 3, 2, 'valid');
  return concat([branch3x3, branch7x7x3, maxPool3(x)], 'mixed8');
}

/** mixed9, mixed10 (8×8): the 3×3s split into parallel 1×3 and 3×1. */
function grid8Phase({ convBn, avgPool3, concat }: InceptionBlocks, x: SymbolicTensor): SymbolicTensor {
  for (let i = 0; i < 2; i++) {
    const branch1x1 = convBn(x, 320, 1, 1);
    const branch3x3In = convBn(x, 384, 1, 1);
    const branch3x3 = concat([convBn(branch3x3In, 384, 1, 3), convBn(branch3x3In, 384, 3, 1)], `mixed9_${i}`);
    let branch3x3dblIn = convBn(x, 448, 1, 1);
    branch3x3dblIn = convBn(branch3x3dblIn, 384, 3, 3);
    const branch3x3dbl = concat([convBn(branch3x3dblIn, 384, 1, 3), convBn(branch3x3dblIn, 384, 3, 1)]);
    const branchPool = convBn(avgPool3(x), 192, 1, 1);
    x = concat([branch1x1, branch3x3, branch3x3dbl, branchPool], `mixed${9 + i}`);
  }
  return x;
}

/** Builds an Inception V3 model (see InceptionV3Options); weights are freshly initialized. */
export function inceptionV3(options: InceptionV3Options = {}): Model {
  const o = resolveInceptionV3Options(options);
  const ctx = { rng: new Random(o.seed), backend: options.backend ?? getBackend() };
  const auto = new NameCounter();
  const apply = (layer: Layer, x: SymbolicTensor | SymbolicTensor[]) => layer.apply(x, ctx);
  const blocks = inceptionBlocks(o, apply, auto);

  const input = new InputLayer({ shape: o.inputShape, name: auto.next('input') }).apply([], ctx);
  let x = stemPhase(blocks, input, o.stem);
  x = grid35Phase(blocks, x);
  x = grid17Phase(blocks, x);
  x = grid8Phase(blocks, x);
  x = applyHead(x, o, apply, auto);

  const model = new Model({ inputs: input, outputs: x, name: o.name, seed: o.seed });
  model.config = { model: 'inception_v3', ...o };
  return model;
}
