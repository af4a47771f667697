/**
 * Xception (Chollet 2017), laid out exactly as Keras `applications.Xception`, plus the switches
 * the paper and its readers ask about. With default options the layer names, order, shapes and
 * parameter counts equal Keras's (22,910,480 parameters at 299×299×3 with 1000 classes).
 *
 *   entry flow:  block1 (two regular convs) → blocks 2–4 (two separable convs + max pool each,
 *                with a strided 1×1 conv on the residual branch)
 *   middle flow: blocks 5–12 (three ReLU–separable conv–BN each, identity residual)
 *   exit flow:   block13 (as the entry blocks) → block14 (two separable convs, no residual)
 */
import type { Backend } from '../../core/backend.js';
import { getBackend } from '../../core/engine.js';
import { ShapeError } from '../../core/errors.js';
import { Random } from '../../core/random.js';
import type { Layer, SymbolicTensor } from '../../nn/layer.js';
import { Activation, InputLayer } from '../../nn/layers/core.js';
import { Conv2D, SeparableConv2D, type IntermediateActivation, type Segments, type SeparableOrder } from '../../nn/layers/convolutional.js';
import { Add } from '../../nn/layers/merge.js';
import { BatchNormalization } from '../../nn/layers/normalization.js';
import { MaxPooling2D } from '../../nn/layers/pooling.js';
import { Model } from '../../nn/model.js';
import { applyHead, checkHead, checkMinInput, headParams, NameCounter, type ApplicationOptions } from '../common.js';
import { checkModelSize, resolveModelOptions } from '../options.js';

/** Keras's application options (ApplicationOptions: includeTop, inputShape, pooling, classes,
 * classifierActivation, width, dropout before the classifier — the paper used 0.5 on ImageNet,
 * Keras 0) and the research switches below. */
export interface XceptionOptions extends Omit<ApplicationOptions, 'stem'> {
  /** Residual connections around blocks 2–13 (paper figure 9). Default true. */
  residual?: boolean;
  /** Non-linearity between depthwise and pointwise (paper figure 10). Default 'none'. */
  intermediateActivation?: IntermediateActivation;
  /** Default 'depthwise-first' (Keras); 'pointwise-first' is the "extreme Inception" order. */
  order?: SeparableOrder;
  /** Channel segments of every spatial convolution: 1 = regular conv … 'depthwise' (default). */
  segments?: Segments;
  /** Number of middle-flow blocks. Default 8. */
  middleBlocks?: number;
  /** Width multiplier on every channel count. Default 1. */
  width?: number;
  /**
   * Round every scaled channel count to a multiple of this (default 1: Keras's counts, where
   * 728 = 8·91 limits the segment counts that divide every layer). E.g. 32 lets segments run
   * 1, 2, 4, … 32 at any width.
   */
  channelMultiple?: number;
  /** Dropout rate before the classifier (the paper used 0.5 on ImageNet). Default 0, as Keras. */
  dropout?: number;
  /**
   * 'imagenet' (Keras: two valid 3×3 convs, the first strided; minimum input 71) or 'small'
   * (the same two convs with stride 1 and 'same' padding, for 28×28 or 32×32 images; the rest
   * of the network is unchanged).
   */
  stem?: 'imagenet' | 'small';
  /** Seed of the weight initialization (and the model's dropout generator). Default 0. */
  seed?: number;
  backend?: Backend;
  name?: string;
}

/** Keras's channel counts, scaled by the width multiplier. */
export function xceptionChannels(width = 1, multiple = 1) {
  const c = (n: number) => Math.max(multiple, Math.round((n * width) / multiple) * multiple);
  return {
    stem: [c(32), c(64)] as const,
    entry: [c(128), c(256), c(728)] as const,
    middle: c(728),
    exit: [c(728), c(1024)] as const,
    final: [c(1536), c(2048)] as const,
  };
}

export const XCEPTION_MIN_INPUT = { imagenet: 71, small: 8 } as const;

export interface ResolvedXceptionOptions extends Required<Omit<XceptionOptions, 'backend' | 'pooling' | 'inputShape'>> {
  inputShape: [number, number, number];
  pooling: 'avg' | 'max' | null;
}

/** Checks every option against the schema (models/options.ts) and fills in defaults, before anything is allocated. */
export function resolveXceptionOptions(options: XceptionOptions = {}): ResolvedXceptionOptions {
  const resolved = resolveModelOptions('xception', options as Record<string, unknown>) as unknown as ResolvedXceptionOptions;
  checkMinInput('xception', resolved.inputShape, resolved.stem, XCEPTION_MIN_INPUT[resolved.stem]);
  checkSegments(resolved);
  checkHead('xception', resolved);
  checkModelSize('xception', xceptionParamsBound(resolved));
  return resolved;
}

/**
 * An upper bound on the parameter count, from the channel counts alone (nothing is built): each
 * separable conv counted with its spatial convolution on the larger of its two channel counts.
 */
export function xceptionParamsBound(o: ResolvedXceptionOptions): number {
  const ch = xceptionChannels(o.width, o.channelMultiple);
  const conv = (cin: number, cout: number, k: number) => k * k * cin * cout + 4 * cout; // + batch norm
  const sep = (cin: number, cout: number) => {
    const c = Math.max(cin, cout);
    return 9 * c * (o.segments === 'depthwise' ? 1 : c / o.segments) + conv(cin, cout, 1);
  };
  const down = (cin: number, mid: number, cout: number) => sep(cin, mid) + sep(mid, cout) + conv(cin, cout, 1);
  const head = headParams(ch.final[1], o);
  return (
    conv(o.inputShape[2], ch.stem[0], 3) +
    conv(ch.stem[0], ch.stem[1], 3) +
    down(ch.stem[1], ch.entry[0], ch.entry[0]) +
    down(ch.entry[0], ch.entry[1], ch.entry[1]) +
    down(ch.entry[1], ch.entry[2], ch.entry[2]) +
    o.middleBlocks * 3 * sep(ch.middle, ch.middle) +
    down(ch.middle, ch.exit[0], ch.exit[1]) +
    sep(ch.exit[1], ch.final[0]) +
    sep(ch.final[0], ch.final[1]) +
    head
  );
}

/** Every separable conv's spatial convolution must split its channels evenly. */
function checkSegments(o: ResolvedXceptionOptions): void {
  if (o.segments === 'depthwise') return;
  const ch = xceptionChannels(o.width, o.channelMultiple);
  // [input, output] channels of each separable conv, in network order.
  const seps: [string, number, number][] = [
    ['block2_sepconv1', ch.stem[1], ch.entry[0]],
    ['block2_sepconv2', ch.entry[0], ch.entry[0]],
    ['block3_sepconv1', ch.entry[0], ch.entry[1]],
    ['block3_sepconv2', ch.entry[1], ch.entry[1]],
    ['block4_sepconv1', ch.entry[1], ch.entry[2]],
    ['block4_sepconv2', ch.entry[2], ch.entry[2]],
    ['middle blocks', ch.entry[2], ch.middle],
    ['block13_sepconv1', ch.middle, ch.exit[0]],
    ['block13_sepconv2', ch.exit[0], ch.exit[1]],
    ['block14_sepconv1', ch.exit[1], ch.final[0]],
    ['block14_sepconv2', ch.final[0], ch.final[1]],
  ];
  for (const [name, cin, cout] of seps) {
    const c = o.order === 'depthwise-first' ? cin : cout;
    if (c % (o.segments as number) !== 0) {
      throw new ShapeError(
        `xception: segments ${o.segments} does not divide the ${c} channels of ${name}'s spatial convolution` +
          ` (with width ${o.width}, every spatial convolution's channel count must be a multiple of the segments; channelMultiple can round the counts)`,
      );
    }
  }
}

/** Builds an Xception model (see XceptionOptions); weights are freshly initialized. */
export function xception(options: XceptionOptions = {}): Model {
  const o = resolveXceptionOptions(options);
  const b = xceptionBuilder(o, options.backend ?? getBackend());
  const input = b.apply(new InputLayer({ shape: o.inputShape, name: b.auto.next('input') }), []);
  let x = entryFlow(b, input);
  x = middleFlow(b, x);
  x = exitFlow(b, x);
  x = applyHead(x, o, b.apply, b.auto);
  const model = new Model({ inputs: input, outputs: x, name: o.name, seed: o.seed });
  model.config = { model: 'xception', ...o };
  return model;
}

/** What every block needs: the options, the channel counts and the layer factories, in one place. */
interface XceptionBuilder {
  o: ResolvedXceptionOptions;
  ch: ReturnType<typeof xceptionChannels>;
  /** Keras's automatic names (conv2d_1, batch_normalization_1, add_1, …), in creation order. */
  auto: NameCounter;
  sep: (filters: number, name: string) => SeparableConv2D;
  bn: (name?: string) => BatchNormalization;
  relu: (name: string) => Activation;
  apply: (layer: Layer, x: SymbolicTensor | SymbolicTensor[]) => SymbolicTensor;
}

function xceptionBuilder(o: ResolvedXceptionOptions, backend: Backend): XceptionBuilder {
  const ctx = { rng: new Random(o.seed), backend };
  const auto = new NameCounter();
  return {
    o,
    ch: xceptionChannels(o.width, o.channelMultiple),
    auto,
    sep: (filters, name) =>
      new SeparableConv2D({
        filters,
        kernelSize: 3,
        padding: 'same',
        useBias: false,
        name,
        segments: o.segments,
        intermediateActivation: o.intermediateActivation,
        order: o.order,
      }),
    bn: (name) => new BatchNormalization({ momentum: o.bnMomentum, name: name ?? auto.next('batch_normalization') }),
    relu: (name) => new Activation('relu', { name }),
    apply: (layer, x) => layer.apply(x, ctx),
  };
}

/** Entry flow: block1 (two regular convs), then blocks 2–4 (each halves the resolution). */
function entryFlow(b: XceptionBuilder, input: SymbolicTensor): SymbolicTensor {
  const { o, ch, apply, bn, relu } = b;
  const small = o.stem === 'small';
  const padding = small ? 'same' : 'valid';
  let x = apply(
    new Conv2D({ filters: ch.stem[0], kernelSize: 3, strides: small ? 1 : 2, padding, useBias: false, name: 'block1_conv1' }),
    input,
  );
  x = apply(bn('block1_conv1_bn'), x);
  x = apply(relu('block1_conv1_act'), x);
  x = apply(new Conv2D({ filters: ch.stem[1], kernelSize: 3, padding, useBias: false, name: 'block1_conv2' }), x);
  x = apply(bn('block1_conv2_bn'), x);
  x = apply(relu('block1_conv2_act'), x);
  x = downBlock(b, x, 2, [ch.entry[0], ch.entry[0]], false); // block2 follows block1's ReLU directly
  x = downBlock(b, x, 3, [ch.entry[1], ch.entry[1]], true);
  return downBlock(b, x, 4, [ch.entry[2], ch.entry[2]], true);
}

/** Middle flow: blocks 5… with an identity residual around three ReLU → separable conv → BN. */
function middleFlow(b: XceptionBuilder, x: SymbolicTensor): SymbolicTensor {
  const { o, ch, apply, bn, relu, sep } = b;
  for (let i = 0; i < o.middleBlocks; i++) {
    const prefix = `block${i + 5}`;
    const residual = x;
    for (let j = 1; j <= 3; j++) {
      x = apply(relu(`${prefix}_sepconv${j}_act`), x);
      x = apply(sep(ch.middle, `${prefix}_sepconv${j}`), x);
      x = apply(bn(`${prefix}_sepconv${j}_bn`), x);
    }
    if (o.residual) x = apply(new Add({ name: b.auto.next('add') }), [x, residual]);
  }
  return x;
}

/** Exit flow: block13 (as the entry blocks), then block14 (two separable convs, no residual). */
function exitFlow(b: XceptionBuilder, x: SymbolicTensor): SymbolicTensor {
  const { o, ch, apply, bn, relu, sep } = b;
  const b13 = o.middleBlocks + 5;
  x = downBlock(b, x, b13, [ch.exit[0], ch.exit[1]], true);
  const b14 = b13 + 1;
  x = apply(sep(ch.final[0], `block${b14}_sepconv1`), x);
  x = apply(bn(`block${b14}_sepconv1_bn`), x);
  x = apply(relu(`block${b14}_sepconv1_act`), x);
  x = apply(sep(ch.final[1], `block${b14}_sepconv2`), x);
  x = apply(bn(`block${b14}_sepconv2_bn`), x);
  return apply(relu(`block${b14}_sepconv2_act`), x);
}

/** Blocks 2–4 and 13: two separable convs and a strided max pool, with a strided 1×1 conv on the residual branch. */
function downBlock(b: XceptionBuilder, x: SymbolicTensor, block: number, filters: [number, number], reluFirst: boolean): SymbolicTensor {
  const { o, apply, bn, relu, sep, auto } = b;
  let residual: SymbolicTensor | null = null;
  if (o.residual) {
    residual = apply(
      new Conv2D({ filters: filters[1], kernelSize: 1, strides: 2, padding: 'same', useBias: false, name: auto.next('conv2d') }),
      x,
    );
    residual = apply(bn(), residual);
  }
  if (reluFirst) x = apply(relu(`block${block}_sepconv1_act`), x);
  x = apply(sep(filters[0], `block${block}_sepconv1`), x);
  x = apply(bn(`block${block}_sepconv1_bn`), x);
  x = apply(relu(`block${block}_sepconv2_act`), x);
  x = apply(sep(filters[1], `block${block}_sepconv2`), x);
  x = apply(bn(`block${block}_sepconv2_bn`), x);
  x = apply(new MaxPooling2D({ poolSize: 3, strides: 2, padding: 'same', name: `block${block}_pool` }), x);
  if (residual) x = apply(new Add({ name: auto.next('add') }), [x, residual]);
  return x;
}
