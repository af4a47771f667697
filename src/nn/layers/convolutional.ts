import { OptionError, quotedChoices, ShapeError } from '../../core/errors.js';
import { activation, type ActivationName, isLogitsActivation } from '../../core/ops/activations.js';
import { conv2d, depthwiseConv2d, resolveConv2D } from '../../core/ops/conv.js';
import { biasAdd } from '../../core/ops/linalg.js';
import { pair } from '../../core/ops/padding.js';
import type { Tensor } from '../../core/tensor.js';
import type { InitializerName } from '../initializers.js';
import { Layer, singleImageShape, type BuildContext, type CallContext, type LayerOptions, type Shape, type Variable } from '../layer.js';

export interface ConvOptions extends LayerOptions {
  kernelSize: number | [number, number];
  strides?: number | [number, number];
  padding?: 'same' | 'valid';
  dilationRate?: number | [number, number];
  useBias?: boolean;
  activation?: ActivationName;
  kernelInitializer?: InitializerName;
}

function checkPadding(p: unknown): 'same' | 'valid' {
  if (p === undefined) return 'valid';
  if (p !== 'same' && p !== 'valid') throw new OptionError(`padding must be 'same' or 'valid', got ${JSON.stringify(p)}`);
  return p;
}

/** Shape of the spatial output, through the same resolution the kernels use. */
function spatialOut(
  h: number,
  w: number,
  c: number,
  kernel: [number, number],
  strides: [number, number],
  dil: [number, number],
  padding: 'same' | 'valid',
  groups = 1,
): [number, number] {
  const p = resolveConv2D([1, h, w, c], [kernel[0], kernel[1], c / groups, groups], { strides, dilations: dil, padding, groups });
  return [p.outHeight, p.outWidth];
}

abstract class ConvBase extends Layer {
  readonly kernelSize: [number, number];
  readonly strides: [number, number];
  readonly dilationRate: [number, number];
  readonly padding: 'same' | 'valid';
  readonly useBias: boolean;
  readonly activation: ActivationName;
  readonly kernelInitializer: InitializerName;

  constructor(opts: ConvOptions, prefix: string) {
    super(opts, prefix);
    this.kernelSize = pair(`${prefix} kernelSize`, opts.kernelSize, 1);
    this.strides = pair(`${prefix} strides`, opts.strides, 1);
    this.dilationRate = pair(`${prefix} dilationRate`, opts.dilationRate, 1);
    this.padding = checkPadding(opts.padding);
    this.useBias = opts.useBias ?? true;
    this.activation = opts.activation ?? 'linear';
    this.kernelInitializer = opts.kernelInitializer ?? 'glorot_uniform';
  }

  protected finish(y: Tensor, bias: Variable | null, ctx: CallContext): Tensor {
    const z = bias ? biasAdd(y, bias.read()) : y;
    return ctx.logits && isLogitsActivation(this.activation) ? z : activation(this.activation, z);
  }
}

export interface Conv2DOptions extends ConvOptions {
  filters: number;
  groups?: number;
}

/** Keras Conv2D: kernel [kh, kw, in/groups, filters], optional bias [filters]. */
export class Conv2D extends ConvBase {
  readonly className = 'Conv2D';
  readonly filters: number;
  readonly groups: number;
  kernel!: Variable;
  bias: Variable | null = null;

  constructor(opts: Conv2DOptions) {
    super(opts, 'conv2d');
    if (!Number.isInteger(opts.filters) || opts.filters < 1)
      throw new OptionError(`${this.name}: filters must be a positive integer, got ${opts.filters}`);
    this.filters = opts.filters;
    this.groups = opts.groups ?? 1;
  }

  computeOutputShape(inputShapes: readonly Shape[]): Shape {
    const [h, w, c] = singleImageShape(this, inputShapes);
    if (c % this.groups !== 0 || this.filters % this.groups !== 0) {
      throw new ShapeError(`${this.name}: groups ${this.groups} must divide the ${c} input channels and the ${this.filters} filters`);
    }
    const [oh, ow] = spatialOut(h, w, c, this.kernelSize, this.strides, this.dilationRate, this.padding, this.groups);
    return [oh, ow, this.filters];
  }

  protected override build(inputShapes: readonly Shape[], ctx: BuildContext): void {
    const c = inputShapes[0]![2]!;
    this.kernel = this.addWeight('kernel', [...this.kernelSize, c / this.groups, this.filters], this.kernelInitializer, ctx);
    if (this.useBias) this.bias = this.addWeight('bias', [this.filters], 'zeros', ctx);
  }

  call([x]: readonly Tensor[], ctx: CallContext): Tensor {
    const y = conv2d(x!, this.kernel.read(), {
      strides: this.strides,
      padding: this.padding,
      dilations: this.dilationRate,
      groups: this.groups,
    });
    return this.finish(y, this.bias, ctx);
  }
}

export interface DepthwiseConv2DOptions extends ConvOptions {
  depthMultiplier?: number;
}

/** Keras DepthwiseConv2D: depthwise_kernel [kh, kw, C, multiplier]; one grouped call. */
export class DepthwiseConv2D extends ConvBase {
  readonly className = 'DepthwiseConv2D';
  readonly depthMultiplier: number;
  depthwiseKernel!: Variable;
  bias: Variable | null = null;

  constructor(opts: DepthwiseConv2DOptions) {
    super(opts, 'depthwise_conv2d');
    this.depthMultiplier = opts.depthMultiplier ?? 1;
    if (!Number.isInteger(this.depthMultiplier) || this.depthMultiplier < 1)
      throw new OptionError(`${this.name}: depthMultiplier must be a positive integer`);
  }

  computeOutputShape(inputShapes: readonly Shape[]): Shape {
    const [h, w, c] = singleImageShape(this, inputShapes);
    const [oh, ow] = spatialOut(h, w, c, this.kernelSize, this.strides, this.dilationRate, this.padding, c);
    return [oh, ow, c * this.depthMultiplier];
  }

  protected override build(inputShapes: readonly Shape[], ctx: BuildContext): void {
    const c = inputShapes[0]![2]!;
    this.depthwiseKernel = this.addWeight('depthwise_kernel', [...this.kernelSize, c, this.depthMultiplier], this.kernelInitializer, ctx);
    if (this.useBias) this.bias = this.addWeight('bias', [c * this.depthMultiplier], 'zeros', ctx);
  }

  call([x]: readonly Tensor[], ctx: CallContext): Tensor {
    const y = depthwiseConv2d(x!, this.depthwiseKernel.read(), {
      strides: this.strides,
      padding: this.padding,
      dilations: this.dilationRate,
    });
    return this.finish(y, this.bias, ctx);
  }
}

/** Channel segments of the spatial convolution: 'depthwise' = one per channel. */
export type Segments = number | 'depthwise';
/** The non-linearities allowed between depthwise and pointwise (the options schema takes these too). */
export const INTERMEDIATE_ACTIVATIONS = ['none', 'relu', 'elu'] as const;
export type IntermediateActivation = (typeof INTERMEDIATE_ACTIVATIONS)[number];
export const SEPARABLE_ORDERS = ['depthwise-first', 'pointwise-first'] as const;
export type SeparableOrder = (typeof SEPARABLE_ORDERS)[number];

export interface SeparableConv2DOptions extends ConvOptions {
  filters: number;
  depthMultiplier?: number;
  /**
   * Research switches (Xception paper §3 and its open questions); defaults are Keras's layer.
   * segments: groups of the spatial convolution, from 1 (a regular 3×3 convolution) to one per
   * channel ('depthwise'). intermediateActivation: a non-linearity between the two operations.
   * order: 'pointwise-first' is the "extreme Inception" order (1×1 first, then spatial).
   */
  segments?: Segments;
  intermediateActivation?: IntermediateActivation;
  order?: SeparableOrder;
}

/**
 * Keras SeparableConv2D: depthwise_kernel [kh, kw, C, multiplier], pointwise_kernel
 * [1, 1, C·multiplier, filters], optional bias. With segments other than one per channel the
 * spatial weight is a grouped kernel `spatial_kernel` [kh, kw, C/segments, C].
 */
export class SeparableConv2D extends ConvBase {
  readonly className = 'SeparableConv2D';
  readonly filters: number;
  readonly depthMultiplier: number;
  readonly segments: Segments;
  readonly intermediateActivation: IntermediateActivation;
  readonly order: SeparableOrder;
  spatialKernel!: Variable;
  pointwiseKernel!: Variable;
  bias: Variable | null = null;

  constructor(opts: SeparableConv2DOptions) {
    super(opts, 'separable_conv2d');
    if (!Number.isInteger(opts.filters) || opts.filters < 1)
      throw new OptionError(`${this.name}: filters must be a positive integer, got ${opts.filters}`);
    this.filters = opts.filters;
    this.depthMultiplier = opts.depthMultiplier ?? 1;
    this.segments = opts.segments ?? 'depthwise';
    this.intermediateActivation = opts.intermediateActivation ?? 'none';
    this.order = opts.order ?? 'depthwise-first';
    if (!INTERMEDIATE_ACTIVATIONS.includes(this.intermediateActivation)) {
      throw new OptionError(
        `${this.name}: intermediateActivation must be ${quotedChoices(INTERMEDIATE_ACTIVATIONS)}, got ${JSON.stringify(opts.intermediateActivation)}`,
      );
    }
    if (!SEPARABLE_ORDERS.includes(this.order)) {
      throw new OptionError(`${this.name}: order must be ${quotedChoices(SEPARABLE_ORDERS)}, got ${JSON.stringify(opts.order)}`);
    }
    if (this.segments !== 'depthwise' && (!Number.isInteger(this.segments) || this.segments < 1)) {
      throw new OptionError(`${this.name}: segments must be a positive integer or 'depthwise', got ${JSON.stringify(opts.segments)}`);
    }
    if (this.depthMultiplier !== 1 && (this.segments !== 'depthwise' || this.order !== 'depthwise-first')) {
      throw new OptionError(`${this.name}: depthMultiplier other than 1 needs segments 'depthwise' and order 'depthwise-first'`);
    }
  }

  /** Channels the spatial convolution runs over. */
  private spatialChannels(inChannels: number): number {
    return this.order === 'depthwise-first' ? inChannels : this.filters;
  }

  /** Groups of the spatial convolution for that many channels (validated). */
  groupsFor(channels: number): number {
    if (this.segments === 'depthwise') return channels;
    if (channels % this.segments !== 0) {
      throw new ShapeError(`${this.name}: segments ${this.segments} does not divide the ${channels} channels of its spatial convolution`);
    }
    return this.segments;
  }

  /** True when the spatial weight has the Keras depthwise layout. */
  private isDepthwise(channels: number): boolean {
    return this.groupsFor(channels) === channels;
  }

  computeOutputShape(inputShapes: readonly Shape[]): Shape {
    const [h, w, c] = singleImageShape(this, inputShapes);
    const sc = this.spatialChannels(c);
    const g = this.groupsFor(sc);
    const [oh, ow] = spatialOut(h, w, sc, this.kernelSize, this.strides, this.dilationRate, this.padding, g);
    return [oh, ow, this.filters];
  }

  protected override build(inputShapes: readonly Shape[], ctx: BuildContext): void {
    const c = inputShapes[0]![2]!;
    const sc = this.spatialChannels(c);
    const spatialShape = this.isDepthwise(sc)
      ? [...this.kernelSize, sc, this.depthMultiplier]
      : [...this.kernelSize, sc / this.groupsFor(sc), sc];
    const spatialName = this.isDepthwise(sc) ? 'depthwise_kernel' : 'spatial_kernel';
    const pointIn = this.order === 'depthwise-first' ? c * this.depthMultiplier : c;
    // Keras creates (and lists) the depthwise kernel first, whatever order they run in.
    this.spatialKernel = this.addWeight(spatialName, spatialShape, this.kernelInitializer, ctx);
    this.pointwiseKernel = this.addWeight('pointwise_kernel', [1, 1, pointIn, this.filters], this.kernelInitializer, ctx);
    if (this.useBias) this.bias = this.addWeight('bias', [this.filters], 'zeros', ctx);
  }

  private spatial(x: Tensor): Tensor {
    const c = x.shape[3]!;
    const opts = { strides: this.strides, padding: this.padding, dilations: this.dilationRate };
    return this.isDepthwise(c)
      ? depthwiseConv2d(x, this.spatialKernel.read(), opts)
      : conv2d(x, this.spatialKernel.read(), { ...opts, groups: this.groupsFor(c) });
  }

  private pointwise(x: Tensor): Tensor {
    return conv2d(x, this.pointwiseKernel.read(), { padding: 'valid' });
  }

  private between(x: Tensor): Tensor {
    return this.intermediateActivation === 'none' ? x : activation(this.intermediateActivation, x);
  }

  call([x]: readonly Tensor[], ctx: CallContext): Tensor {
    const y =
      this.order === 'depthwise-first' ? this.pointwise(this.between(this.spatial(x!))) : this.spatial(this.between(this.pointwise(x!)));
    return this.finish(y, this.bias, ctx);
  }
}
