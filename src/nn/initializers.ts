import { OptionError } from '../core/errors.js';
import type { Random } from '../core/random.js';

/** Keras initializers by name; each fills a Float32Array for a weight of the given shape. */
export type InitializerName = 'glorot_uniform' | 'he_normal' | 'he_uniform' | 'zeros' | 'ones';

/**
 * Keras's fan computation: for a kernel [..receptive.., in, out] the receptive field multiplies
 * both fans; a [in, out] matrix uses them directly.
 */
export function fans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length < 1) return { fanIn: 1, fanOut: 1 };
  if (shape.length === 1) return { fanIn: shape[0]!, fanOut: shape[0]! };
  if (shape.length === 2) return { fanIn: shape[0]!, fanOut: shape[1]! };
  const receptive = shape.slice(0, -2).reduce((a, b) => a * b, 1);
  return { fanIn: shape[shape.length - 2]! * receptive, fanOut: shape[shape.length - 1]! * receptive };
}

export function initialize(name: InitializerName, shape: readonly number[], rng: Random): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const { fanIn, fanOut } = fans(shape);
  switch (name) {
    case 'zeros':
      return out;
    case 'ones':
      return out.fill(1);
    case 'glorot_uniform': {
      const limit = Math.sqrt(6 / (fanIn + fanOut));
      for (let i = 0; i < n; i++) out[i] = rng.uniform(-limit, limit);
      return out;
    }
    case 'he_uniform': {
      const limit = Math.sqrt(6 / fanIn);
      for (let i = 0; i < n; i++) out[i] = rng.uniform(-limit, limit);
      return out;
    }
    case 'he_normal': {
      // Keras: truncated normal with stddev sqrt(2/fanIn) / .87962566 (the truncation's shrinkage).
      const std = Math.sqrt(2 / fanIn) / 0.87962566103423978;
      for (let i = 0; i < n; i++) out[i] = rng.truncatedNormal(0, std);
      return out;
    }
    default:
      throw new OptionError(`unknown initializer '${String(name)}'`);
  }
}
