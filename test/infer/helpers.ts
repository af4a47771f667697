/** Shared set-up of the compiled-inference tests. */
import { Random, tensor, xception, type Model, type Tensor } from '../../src/index.js';
import type { Backend } from '../../src/core/backend.js';
import { BatchNormalization } from '../../src/nn/layers/normalization.js';

/** A small Xception with every research switch away from the paper's: 4 segments, pointwise-first, ELU between, no residual. */
export function researchVariantXception(backend: Backend): Model {
  return xception({
    backend,
    stem: 'small',
    inputShape: [24, 24, 3],
    classes: 5,
    width: 0.25,
    channelMultiple: 8,
    middleBlocks: 2,
    segments: 4,
    order: 'pointwise-first',
    intermediateActivation: 'elu',
    residual: false,
    seed: 3,
  });
}

/**
 * Gives every batch norm non-trivial statistics and affine weights (fresh ones are mean 0,
 * variance 1, gamma 1, beta 0, which would hide a wrong fold), and every bias non-zero values.
 */
export function randomizeStatistics(model: Model, seed = 11): void {
  const rng = new Random(seed);
  const fill = (n: number, lo: number, hi: number) => Float32Array.from({ length: n }, () => rng.uniform(lo, hi));
  for (const layer of model.layers) {
    if (layer instanceof BatchNormalization) {
      const c = layer.movingMean.size;
      layer.gamma?.setData(fill(c, 0.5, 1.5));
      layer.beta?.setData(fill(c, -0.3, 0.3));
      layer.movingMean.setData(fill(c, -0.2, 0.2));
      layer.movingVariance.setData(fill(c, 0.5, 2));
    }
    for (const w of layer.weights) if (w.weightName === 'bias') w.setData(fill(w.size, -0.1, 0.1));
  }
}

export function randomImages(backend: Backend, batch: number, shape: readonly number[], seed = 3): Tensor {
  const rng = new Random(seed);
  const n = batch * shape.reduce((a, b) => a * b, 1);
  return tensor(
    Float32Array.from({ length: n }, () => rng.uniform(-1, 1)),
    [batch, ...shape],
    { backend },
  );
}

/** max |a − b| / max |b|, and max |a − b|. */
export function errors(actual: ArrayLike<number>, expected: ArrayLike<number>): { rel: number; abs: number } {
  let abs = 0,
    scale = 0;
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} vs ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (!(d <= abs)) abs = Number.isNaN(d) ? Infinity : Math.max(abs, d);
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return { abs, rel: scale === 0 ? abs : abs / scale };
}
