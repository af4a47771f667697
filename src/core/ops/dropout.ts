import { OptionError } from '../errors.js';
import type { Random } from '../random.js';
import { Tensor } from '../tensor.js';
import { mul } from './elementwise.js';

/**
 * Inverted dropout (Keras): in training, each value is zeroed with probability `rate` and the
 * rest scaled by 1/(1 − rate); at inference the input passes unchanged. The mask is drawn in
 * TypeScript from a seeded generator, so every backend drops the same values.
 */
export function dropout(x: Tensor, rate: number, rng: Random, training: boolean): Tensor {
  if (!(rate >= 0 && rate < 1)) throw new OptionError(`dropout rate must be in [0, 1), got ${rate}`);
  if (!training || rate === 0) return x;
  const keepScale = 1 / (1 - rate);
  const mask = x.dtype === 'float64' ? new Float64Array(x.size) : new Float32Array(x.size);
  for (let i = 0; i < mask.length; i++) mask[i] = rng.next() < rate ? 0 : keepScale;
  const m = new Tensor(x.backend, x.backend.upload(mask), x.shape, x.dtype);
  return mul(x, m);
}
