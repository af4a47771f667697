/**
 * Layers with Keras names and layouts, applied either eagerly to tensors or symbolically to
 * build a functional model (the way Keras `applications` define their networks).
 */
import type { Backend } from '../core/backend.js';
import { tensor } from '../core/creation.js';
import { getBackend, keep } from '../core/engine.js';
import { OptionError, ShapeError, shapeToString } from '../core/errors.js';
import { Random } from '../core/random.js';
import type { Tensor } from '../core/tensor.js';
import { initialize, type InitializerName } from './initializers.js';

/** A shape without the batch dimension, e.g. [299, 299, 3]. */
export type Shape = readonly number[];

/** A named weight of a layer. Its full name is `<layer>/<weight>`, e.g. `block1_conv1/kernel`. */
export class Variable {
  private _value: Tensor;

  constructor(
    readonly layer: Layer,
    /** The weight's own name: 'kernel', 'depthwise_kernel', 'gamma', 'moving_mean', … */
    readonly weightName: string,
    value: Tensor,
    /** False for statistics that training updates but no gradient touches (BN moving stats). */
    readonly trainableByNature: boolean,
  ) {
    this._value = keep(value);
  }

  get name(): string {
    return `${this.layer.name}/${this.weightName}`;
  }

  get shape(): readonly number[] {
    return this._value.shape;
  }

  get size(): number {
    return this._value.size;
  }

  /** Trainable now: by nature and not frozen with its layer. */
  get trainable(): boolean {
    return this.trainableByNature && this.layer.trainable;
  }

  /** The current value; marked to receive a gradient if trainable. */
  read(): Tensor {
    this._value.requiresGrad = this.trainable;
    return this._value;
  }

  get value(): Tensor {
    return this._value;
  }

  /** Replaces the value (same shape); the old tensor is disposed. */
  assign(t: Tensor): void {
    if (t.rank !== this._value.rank || t.shape.some((d, i) => d !== this._value.shape[i])) {
      throw new ShapeError(
        `${this.name}: cannot assign ${shapeToString(t.shape)} to a weight of shape ${shapeToString(this._value.shape)}`,
      );
    }
    if (t === this._value) return;
    const old = this._value;
    this._value = keep(t);
    this._value.requiresGrad = old.requiresGrad;
    old.dispose();
  }

  /** Replaces the values from a plain array in the Keras layout. */
  setData(data: Float32Array): void {
    if (data.length !== this.size) {
      throw new ShapeError(`${this.name}: ${data.length} values for a weight of shape ${shapeToString(this.shape)}`);
    }
    this.assign(tensor(data, this.shape, { backend: this._value.backend }));
  }
}

/** A graph edge while a functional model is being defined. */
export class SymbolicTensor {
  private static nextId = 0;
  readonly id = SymbolicTensor.nextId++;
  constructor(
    readonly shape: Shape,
    /** The layer whose output this is. */
    readonly layer: Layer,
    readonly inputs: readonly SymbolicTensor[],
  ) {}
}

export interface BuildContext {
  rng: Random;
  backend: Backend;
}

export interface CallContext {
  training: boolean;
  /** Source of dropout masks. */
  rng: Random;
  /** Skip the final activation of the output layer (train on logits). */
  logits?: boolean;
  /** Steps the batch-norm statistics have had, when they warm up (ForwardOptions.statisticsStep). */
  statisticsStep?: number;
}

const autoNameCounters = new Map<string, number>();

export function snakeCase(className: string): string {
  return className
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z])([A-Z][a-z])/g, '$1_$2')
    .toLowerCase();
}

export interface LayerOptions {
  name?: string;
  trainable?: boolean;
}

export abstract class Layer {
  abstract readonly className: string;
  readonly name: string;
  /** False freezes every weight of the layer (and runs BatchNormalization in inference mode). */
  trainable: boolean;
  readonly weights: Variable[] = [];
  built = false;
  /** Symbolic inputs when used inside a functional model (each layer is applied once). */
  inbound: readonly SymbolicTensor[] | null = null;
  output: SymbolicTensor | null = null;

  constructor(opts: LayerOptions, defaultPrefix: string) {
    if (opts.name !== undefined && (typeof opts.name !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(opts.name))) {
      throw new OptionError(`layer name must be letters, digits, '_', '.', '-', got ${JSON.stringify(opts.name)}`);
    }
    if (opts.name) {
      this.name = opts.name;
    } else {
      const n = (autoNameCounters.get(defaultPrefix) ?? 0) + 1;
      autoNameCounters.set(defaultPrefix, n);
      this.name = `${defaultPrefix}_${n}`;
    }
    this.trainable = opts.trainable ?? true;
  }

  /** Output shape (without batch) for these input shapes; throws ShapeError if they don't fit. */
  abstract computeOutputShape(inputShapes: readonly Shape[]): Shape;

  /** Creates the weights; called once with the input shapes. */
  protected build(_inputShapes: readonly Shape[], _ctx: BuildContext): void {}

  abstract call(inputs: readonly Tensor[], ctx: CallContext): Tensor;

  protected addWeight(weightName: string, shape: readonly number[], init: InitializerName, ctx: BuildContext, trainable = true): Variable {
    const data = initialize(init, shape, ctx.rng);
    const v = new Variable(this, weightName, tensor(data, shape, { backend: ctx.backend }), trainable);
    this.weights.push(v);
    return v;
  }

  ensureBuilt(inputShapes: readonly Shape[], ctx?: Partial<BuildContext>): void {
    if (this.built) return;
    this.computeOutputShape(inputShapes);
    this.build(inputShapes, { rng: ctx?.rng ?? new Random(0), backend: ctx?.backend ?? getBackend() });
    this.built = true;
  }

  /** Applies the layer to symbolic inputs (functional model definition). */
  apply(inputs: SymbolicTensor | readonly SymbolicTensor[], ctx?: Partial<BuildContext>): SymbolicTensor {
    if (this.output) throw new OptionError(`layer '${this.name}' is already used in a model; create a new layer`);
    const list = inputs instanceof SymbolicTensor ? [inputs] : [...inputs];
    const shapes = list.map((s) => s.shape);
    const outShape = this.computeOutputShape(shapes);
    this.ensureBuilt(shapes, ctx);
    this.inbound = list;
    this.output = new SymbolicTensor(outShape, this, list);
    return this.output;
  }

  countParams(): number {
    return this.weights.reduce((a, w) => a + w.size, 0);
  }

  getWeight(weightName: string): Variable {
    const w = this.weights.find((v) => v.weightName === weightName);
    if (!w)
      throw new OptionError(
        `layer '${this.name}' has no weight '${weightName}' (has: ${this.weights.map((v) => v.weightName).join(', ') || 'none'})`,
      );
    return w;
  }
}

/** Checks one input of rank 3 (H, W, C) and returns it. */
export function singleImageShape(layer: Layer, inputShapes: readonly Shape[]): [number, number, number] {
  if (inputShapes.length !== 1) throw new ShapeError(`${layer.name}: expects one input, got ${inputShapes.length}`);
  const s = inputShapes[0]!;
  if (s.length !== 3)
    throw new ShapeError(`${layer.name} (${layer.className}): expects an input of [height, width, channels], got ${shapeToString(s)}`);
  return s as [number, number, number];
}

export function singleShape(layer: Layer, inputShapes: readonly Shape[]): Shape {
  if (inputShapes.length !== 1) throw new ShapeError(`${layer.name}: expects one input, got ${inputShapes.length}`);
  return inputShapes[0]!;
}
