import { OptionError, ShapeError, shapeToString } from '../../core/errors.js';
import { ACTIVATIONS, activation, type ActivationName, isLogitsActivation } from '../../core/ops/activations.js';
import { dropout } from '../../core/ops/dropout.js';
import { flatten } from '../../core/ops/elementwise.js';
import { biasAdd, matmul } from '../../core/ops/linalg.js';
import type { Tensor } from '../../core/tensor.js';
import type { InitializerName } from '../initializers.js';
import { Layer, singleShape, type BuildContext, type CallContext, type LayerOptions, type Shape, type Variable } from '../layer.js';

export interface InputLayerOptions extends LayerOptions {
  shape: Shape;
}

/** The model's input placeholder (Keras InputLayer). */
export class InputLayer extends Layer {
  readonly className = 'InputLayer';
  readonly shape: Shape;
  constructor(opts: InputLayerOptions) {
    super(opts, 'input');
    if (!Array.isArray(opts.shape) || !opts.shape.every((d) => Number.isInteger(d) && d > 0)) {
      throw new ShapeError(`input shape must be positive integers, got ${JSON.stringify(opts.shape)}`);
    }
    this.shape = [...opts.shape];
  }
  computeOutputShape(): Shape {
    return this.shape;
  }
  call([x]: readonly Tensor[]): Tensor {
    return x!;
  }
}

export interface DenseOptions extends LayerOptions {
  units: number;
  activation?: ActivationName;
  useBias?: boolean;
  kernelInitializer?: InitializerName;
}

/** Keras Dense on [batch, features]: kernel [in, units], bias [units]. */
export class Dense extends Layer {
  readonly className = 'Dense';
  readonly units: number;
  readonly activation: ActivationName;
  readonly useBias: boolean;
  readonly kernelInitializer: InitializerName;
  kernel!: Variable;
  bias: Variable | null = null;

  constructor(opts: DenseOptions) {
    super(opts, 'dense');
    if (!Number.isInteger(opts.units) || opts.units < 1)
      throw new OptionError(`${this.name}: units must be a positive integer, got ${opts.units}`);
    this.units = opts.units;
    this.activation = opts.activation ?? 'linear';
    if (!ACTIVATIONS.includes(this.activation))
      throw new OptionError(`${this.name}: unknown activation '${this.activation}' (known: ${ACTIVATIONS.join(', ')})`);
    this.useBias = opts.useBias ?? true;
    this.kernelInitializer = opts.kernelInitializer ?? 'glorot_uniform';
  }

  computeOutputShape(inputShapes: readonly Shape[]): Shape {
    const s = singleShape(this, inputShapes);
    if (s.length !== 1) throw new ShapeError(`${this.name}: Dense expects [features], got ${shapeToString(s)} (pool or flatten first)`);
    return [this.units];
  }

  protected override build(inputShapes: readonly Shape[], ctx: BuildContext): void {
    this.kernel = this.addWeight('kernel', [inputShapes[0]![0]!, this.units], this.kernelInitializer, ctx);
    if (this.useBias) this.bias = this.addWeight('bias', [this.units], 'zeros', ctx);
  }

  call([x]: readonly Tensor[], ctx: CallContext): Tensor {
    let y = matmul(x!, this.kernel.read());
    if (this.bias) y = biasAdd(y, this.bias.read());
    return ctx.logits && isLogitsActivation(this.activation) ? y : activation(this.activation, y);
  }
}

export class Activation extends Layer {
  readonly className = 'Activation';
  constructor(
    readonly activation: ActivationName,
    opts: LayerOptions = {},
  ) {
    super(opts, 'activation');
    if (!ACTIVATIONS.includes(activation))
      throw new OptionError(`${this.name}: unknown activation '${activation}' (known: ${ACTIVATIONS.join(', ')})`);
  }
  computeOutputShape(inputShapes: readonly Shape[]): Shape {
    return singleShape(this, inputShapes);
  }
  call([x]: readonly Tensor[], ctx: CallContext): Tensor {
    return ctx.logits && isLogitsActivation(this.activation) ? x! : activation(this.activation, x!);
  }
}

export class Dropout extends Layer {
  readonly className = 'Dropout';
  constructor(
    readonly rate: number,
    opts: LayerOptions = {},
  ) {
    super(opts, 'dropout');
    if (!(rate >= 0 && rate < 1)) throw new OptionError(`${this.name}: dropout rate must be in [0, 1), got ${rate}`);
  }
  computeOutputShape(inputShapes: readonly Shape[]): Shape {
    return singleShape(this, inputShapes);
  }
  call([x]: readonly Tensor[], ctx: CallContext): Tensor {
    return dropout(x!, this.rate, ctx.rng, ctx.training);
  }
}

export class Flatten extends Layer {
  readonly className = 'Flatten';
  constructor(opts: LayerOptions = {}) {
    super(opts, 'flatten');
  }
  computeOutputShape(inputShapes: readonly Shape[]): Shape {
    return [singleShape(this, inputShapes).reduce((a, b) => a * b, 1)];
  }
  call([x]: readonly Tensor[]): Tensor {
    return flatten(x!);
  }
}
