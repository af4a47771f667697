import { OptionError } from '../../core/errors.js';
import { avgPool2d, globalAvgPool, globalMaxPool, maxPool2d, resolvePool2D } from '../../core/ops/pooling.js';
import { pair } from '../../core/ops/padding.js';
import type { Tensor } from '../../core/tensor.js';
import { Layer, singleImageShape, type LayerOptions, type Shape } from '../layer.js';

export interface Pooling2DOptions extends LayerOptions {
  poolSize?: number | [number, number];
  strides?: number | [number, number];
  padding?: 'same' | 'valid';
}

abstract class Pooling2D extends Layer {
  readonly poolSize: [number, number];
  readonly strides: [number, number];
  readonly padding: 'same' | 'valid';
  constructor(opts: Pooling2DOptions, prefix: string) {
    super(opts, prefix);
    this.poolSize = pair('poolSize', opts.poolSize, 2);
    this.strides = pair('strides', opts.strides ?? this.poolSize, 2);
    const p = opts.padding ?? 'valid';
    if (p !== 'same' && p !== 'valid') throw new OptionError(`${this.name}: padding must be 'same' or 'valid', got ${JSON.stringify(p)}`);
    this.padding = p;
  }
  computeOutputShape(inputShapes: readonly Shape[]): Shape {
    const [h, w, c] = singleImageShape(this, inputShapes);
    const p = resolvePool2D([1, h, w, c], { poolSize: this.poolSize, strides: this.strides, padding: this.padding });
    return [p.outHeight, p.outWidth, c];
  }
  protected opts() {
    return { poolSize: this.poolSize, strides: this.strides, padding: this.padding };
  }
}

/** Keras MaxPooling2D; 'same' pads at the end on odd totals (74 → 37). */
export class MaxPooling2D extends Pooling2D {
  readonly className = 'MaxPooling2D';
  constructor(opts: Pooling2DOptions = {}) {
    super(opts, 'max_pooling2d');
  }
  call([x]: readonly Tensor[]): Tensor {
    return maxPool2d(x!, this.opts());
  }
}

export class AveragePooling2D extends Pooling2D {
  readonly className = 'AveragePooling2D';
  constructor(opts: Pooling2DOptions = {}) {
    super(opts, 'average_pooling2d');
  }
  call([x]: readonly Tensor[]): Tensor {
    return avgPool2d(x!, this.opts());
  }
}

export class GlobalAveragePooling2D extends Layer {
  readonly className = 'GlobalAveragePooling2D';
  constructor(opts: LayerOptions = {}) {
    super(opts, 'global_average_pooling2d');
  }
  computeOutputShape(inputShapes: readonly Shape[]): Shape {
    return [singleImageShape(this, inputShapes)[2]];
  }
  call([x]: readonly Tensor[]): Tensor {
    return globalAvgPool(x!);
  }
}

export class GlobalMaxPooling2D extends Layer {
  readonly className = 'GlobalMaxPooling2D';
  constructor(opts: LayerOptions = {}) {
    super(opts, 'global_max_pooling2d');
  }
  computeOutputShape(inputShapes: readonly Shape[]): Shape {
    return [singleImageShape(this, inputShapes)[2]];
  }
  call([x]: readonly Tensor[]): Tensor {
    return globalMaxPool(x!);
  }
}
