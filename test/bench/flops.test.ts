import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceBackend } from '../../src/backends/index.js';
import { noGrad } from '../../src/core/engine.js';
import { Random } from '../../src/core/random.js';
import { forwardFlops, layerMultiplyAdds, trainingFlops } from '../../src/bench/flops.js';
import { Conv2D, DepthwiseConv2D, SeparableConv2D } from '../../src/nn/layers/convolutional.js';
import { Activation, Dense, Flatten, InputLayer } from '../../src/nn/layers/core.js';
import { BatchNormalization } from '../../src/nn/layers/normalization.js';
import { Model } from '../../src/nn/model.js';

const ctx = () => ({ rng: new Random(1), backend: referenceBackend });

test('FLOPs of a tiny model, counted by hand: 2 × multiply-adds of convs and dense; BN, activations, flatten count nothing', () => {
  const c = ctx();
  const model = noGrad(() => {
    const input = new InputLayer({ shape: [8, 8, 3], name: 'img' }).apply([], c);
    // 3×3 stride 2 valid on 8×8×3 → 3×3×4: 9 positions × (3·3·3·4 = 108) = 972 multiply-adds.
    let x = new Conv2D({ filters: 4, kernelSize: 3, strides: 2, padding: 'valid', useBias: true, name: 'conv' }).apply(input, c);
    x = new BatchNormalization({ name: 'bn' }).apply(x, c);
    x = new Activation('relu', { name: 'relu' }).apply(x, c);
    // Separable on 3×3×4 → 3×3×6: depthwise 9 × (3·3·4 = 36) = 324, pointwise 9 × (4·6 = 24) = 216.
    x = new SeparableConv2D({ filters: 6, kernelSize: 3, padding: 'same', name: 'sep' }).apply(x, c);
    // Depthwise 3×3 valid, multiplier 2, on 3×3×6 → 1×1×12: 1 × (3·3·6·2 = 108) = 108.
    x = new DepthwiseConv2D({ kernelSize: 3, padding: 'valid', depthMultiplier: 2, name: 'dw' }).apply(x, c);
    x = new Flatten({ name: 'flat' }).apply(x, c);
    // Dense 12 → 5: 60.
    x = new Dense({ units: 5, name: 'fc' }).apply(x, c);
    return new Model({ inputs: input, outputs: x, name: 'tiny' });
  });
  const byLayer = Object.fromEntries(model.layers.map((l) => [l.name, layerMultiplyAdds(l)]));
  assert.deepEqual(byLayer, { img: 0, conv: 972, bn: 0, relu: 0, sep: 324 + 216, dw: 108, flat: 0, fc: 60 });
  assert.equal(forwardFlops(model), 2 * 1680);
  assert.equal(trainingFlops(model), 3 * 2 * 1680);
  model.dispose();
});

test('a pointwise-first separable convolution counts its 1×1 at the input resolution, grouped spatial kernels by their size', () => {
  const c = ctx();
  const input = new InputLayer({ shape: [4, 4, 4], name: 'in' }).apply([], c);
  const sep = new SeparableConv2D({
    filters: 8,
    kernelSize: 3,
    strides: 2,
    padding: 'same',
    order: 'pointwise-first',
    segments: 2,
    name: 'pf',
  });
  noGrad(() => sep.apply(input, c));
  // Pointwise at 4×4: 16 × (4·8 = 32) = 512. Spatial, 2 groups over 8 channels, at 2×2 output:
  // 4 positions × (3·3·(8/2)·8 = 288) = 1152.
  assert.equal(layerMultiplyAdds(sep), 512 + 1152);
});
