/**
 * SepVGG: VGG16's layout (five stages of 2, 2, 3, 3, 3 convolutions with 64 … 512 channels, a 2×2
 * max pool after each) with every convolution but the first made depthwise separable, each
 * followed by batch norm and ReLU. It is the review's counter-example to the paper's figure 9:
 * "a VGG-style network whose modules were made depthwise separable did better without residual
 * connections". With `residual`, stages 2–5 get Xception's shortcut: a strided 1×1 conv + BN
 * added after the stage's pool.
 *
 *   block1: conv (regular: 1–3 input channels give a depthwise conv little to mix) + sepconv
 *   block2–5: 2 or 3 × (sepconv → BN → ReLU), max pool, optional residual add
 *   head: Keras's (global average pooling `avg_pool`, Dense `predictions`)
 *
 * Names follow Keras: `block1_conv1`, `blockK_sepconvJ` (+ `_bn`, `_act`), `blockK_pool`, and
 * auto-named shortcut layers `conv2d_N`, `batch_normalization_N`, `add_N`.
 */
import type { Backend } from '../../core/backend.js';
import { getBackend } from '../../core/engine.js';
import { Random } from '../../core/random.js';
import type { Layer, SymbolicTensor } from '../../nn/layer.js';
import { Activation, InputLayer } from '../../nn/layers/core.js';
import { Conv2D, SeparableConv2D } from '../../nn/layers/convolutional.js';
import { Add } from '../../nn/layers/merge.js';
import { BatchNormalization } from '../../nn/layers/normalization.js';
import { MaxPooling2D } from '../../nn/layers/pooling.js';
import { Model } from '../../nn/model.js';
import { type ApplicationOptions, applyHead, checkMinInput, NameCounter } from '../common.js';
import { checkModelSize, resolveModelOptions } from '../options.js';

export interface SepVggOptions extends ApplicationOptions {
  /** Xception-style residual connections around stages 2–5. Default true, as xception's switch. */
  residual?: boolean;
  /**
   * 'imagenet': VGG's five pools (minimum input 32); 'small': block1 keeps the resolution (no
   * pool), as xception's small stem does, for 28×28 or 32×32 images.
   */
  stem?: 'imagenet' | 'small';
  seed?: number;
  backend?: Backend;
  name?: string;
}

export interface ResolvedSepVggOptions extends Required<Omit<SepVggOptions, 'backend' | 'pooling' | 'inputShape'>> {
  inputShape: [number, number, number];
  pooling: 'avg' | 'max' | null;
}

/** VGG16's stages: convolutions per stage and their channels (before the width multiplier). */
export const SEPVGG_STAGES: readonly { convs: number; channels: number }[] = [
  { convs: 2, channels: 64 },
  { convs: 2, channels: 128 },
  { convs: 3, channels: 256 },
  { convs: 3, channels: 512 },
  { convs: 3, channels: 512 },
];

export const SEPVGG_MIN_INPUT = { imagenet: 32, small: 16 } as const;

export function sepVggChannels(width = 1): number[] {
  return SEPVGG_STAGES.map((s) => Math.max(1, Math.round(s.channels * width)));
}

/** Checks every option against the schema (models/options.ts) and fills in defaults, before anything is allocated. */
export function resolveSepVggOptions(options: SepVggOptions = {}): ResolvedSepVggOptions {
  const resolved = resolveModelOptions('sepvgg', options as Record<string, unknown>) as unknown as ResolvedSepVggOptions;
  checkMinInput('sepvgg', resolved.inputShape, resolved.stem, SEPVGG_MIN_INPUT[resolved.stem]);
  checkModelSize('sepvgg', sepVggParamsBound(resolved));
  return resolved;
}

/** An upper bound on the parameter count from the channel counts (nothing is built). */
export function sepVggParamsBound(o: ResolvedSepVggOptions): number {
  const ch = sepVggChannels(o.width);
  let total = 9 * o.inputShape[2] * ch[0]! + 4 * ch[0]!;
  let cin = ch[0]!;
  SEPVGG_STAGES.forEach((s, i) => {
    const cout = ch[i]!;
    for (let j = i === 0 ? 1 : 0; j < s.convs; j++) {
      total += 9 * cin + cin * cout + 4 * cout;
      cin = cout;
    }
    if (i > 0) total += ch[i - 1]! * cout + 4 * cout; // shortcut conv + BN
  });
  return total + (o.includeTop ? (cin + 1) * o.classes : 0);
}

/** Builds a SepVGG model (see SepVggOptions); weights are freshly initialized. */
export function sepVgg(options: SepVggOptions = {}): Model {
  const o = resolveSepVggOptions(options);
  const ctx = { rng: new Random(o.seed), backend: options.backend ?? getBackend() };
  const auto = new NameCounter();
  const apply = (layer: Layer, x: SymbolicTensor | SymbolicTensor[]) => layer.apply(x, ctx);
  const bn = (name?: string) => new BatchNormalization({ momentum: o.bnMomentum, name: name ?? auto.next('batch_normalization') });
  const convBnRelu = (x: SymbolicTensor, layer: Layer) => {
    x = apply(layer, x);
    x = apply(bn(`${layer.name}_bn`), x);
    return apply(new Activation('relu', { name: `${layer.name}_act` }), x);
  };
  const ch = sepVggChannels(o.width);
  const input = apply(new InputLayer({ shape: o.inputShape, name: auto.next('input') }), []);
  let x = input;
  SEPVGG_STAGES.forEach((stage, i) => {
    const block = `block${i + 1}`;
    const pooled = i > 0 || o.stem === 'imagenet';
    let shortcut: SymbolicTensor | null = null;
    if (o.residual && i > 0) {
      // Stages 2–5 always pool: the shortcut halves the resolution with them.
      const proj = new Conv2D({ filters: ch[i]!, kernelSize: 1, strides: 2, padding: 'same', useBias: false, name: auto.next('conv2d') });
      shortcut = apply(bn(), apply(proj, x));
    }
    for (let j = 1; j <= stage.convs; j++) {
      const layer =
        i === 0 && j === 1
          ? new Conv2D({ filters: ch[i]!, kernelSize: 3, padding: 'same', useBias: false, name: `${block}_conv1` })
          : new SeparableConv2D({ filters: ch[i]!, kernelSize: 3, padding: 'same', useBias: false, name: `${block}_sepconv${j}` });
      x = convBnRelu(x, layer);
    }
    if (pooled) x = apply(new MaxPooling2D({ poolSize: 2, strides: 2, padding: 'same', name: `${block}_pool` }), x);
    if (shortcut) x = apply(new Add({ name: auto.next('add') }), [x, shortcut]);
  });
  x = applyHead(x, o, apply, auto);
  const model = new Model({ inputs: input, outputs: x, name: o.name, seed: o.seed });
  model.config = { model: 'sepvgg', ...o };
  return model;
}
