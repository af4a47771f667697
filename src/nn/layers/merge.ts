import { ShapeError, shapeToString } from '../../core/errors.js';
import { add, concat } from '../../core/ops/elementwise.js';
import type { Tensor } from '../../core/tensor.js';
import { Layer, type LayerOptions, type Shape } from '../layer.js';

/** Keras Add: elementwise sum of same-shaped inputs (residual connections). */
export class Add extends Layer {
  readonly className = 'Add';
  constructor(opts: LayerOptions = {}) {
    super(opts, 'add');
  }
  computeOutputShape(inputShapes: readonly Shape[]): Shape {
    if (inputShapes.length < 2) throw new ShapeError(`${this.name}: Add needs at least two inputs`);
    const first = inputShapes[0]!;
    for (const s of inputShapes) {
      if (s.length !== first.length || s.some((d, i) => d !== first[i])) {
        throw new ShapeError(`${this.name}: Add inputs differ: ${shapeToString(first)} vs ${shapeToString(s)}`);
      }
    }
    return first;
  }
  call(inputs: readonly Tensor[]): Tensor {
    let acc = inputs[0]!;
    for (let i = 1; i < inputs.length; i++) acc = add(acc, inputs[i]!);
    return acc;
  }
}

/** Keras Concatenate along the channel (last) axis. */
export class Concatenate extends Layer {
  readonly className = 'Concatenate';
  constructor(opts: LayerOptions = {}) {
    super(opts, 'concatenate');
  }
  computeOutputShape(inputShapes: readonly Shape[]): Shape {
    if (inputShapes.length < 1) throw new ShapeError(`${this.name}: Concatenate needs inputs`);
    const first = inputShapes[0]!;
    let channels = 0;
    for (const s of inputShapes) {
      if (s.length !== first.length || s.slice(0, -1).some((d, i) => d !== first[i])) {
        throw new ShapeError(
          `${this.name}: Concatenate inputs differ outside the channel axis: ${shapeToString(first)} vs ${shapeToString(s)}`,
        );
      }
      channels += s[s.length - 1]!;
    }
    return [...first.slice(0, -1), channels];
  }
  call(inputs: readonly Tensor[]): Tensor {
    return concat(inputs);
  }
}
