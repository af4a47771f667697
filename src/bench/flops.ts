/**
 * FLOPs of a model, counted from its layers: the multiply-adds of its convolutions and dense
 * layers, ×2 (one multiply, one add). Batch norm, activations, pooling and additions are left out,
 * as papers and vendors count them. A training step is counted as 3× the forward pass (forward,
 * backward to the inputs, backward to the weights: each the same multiply-adds).
 */
import type { Layer } from '../nn/layer.js';
import { Conv2D, DepthwiseConv2D, SeparableConv2D } from '../nn/layers/convolutional.js';
import { Dense } from '../nn/layers/core.js';
import type { Model } from '../nn/model.js';

/** Output positions (height × width) of an image shape [h, w, c] without the batch. */
function positions(shape: readonly number[]): number {
  return shape[0]! * shape[1]!;
}

/**
 * Multiply-adds of one layer for one image. A convolution kernel's every weight is used once per
 * output position (Conv2D [kh, kw, in/groups, filters], depthwise [kh, kw, C, multiplier]), so
 * its multiply-adds are the kernel size × the output positions; a dense kernel [in, units] is used
 * once. A separable convolution's pointwise kernel runs at the resolution it sees: the output for
 * depthwise-first (Keras), the input for pointwise-first.
 */
export function layerMultiplyAdds(layer: Layer): number {
  const out = layer.output?.shape;
  const inShape = layer.inbound?.[0]?.shape;
  if (!out || !inShape) return 0;
  if (layer instanceof Conv2D) return layer.kernel.size * positions(out);
  if (layer instanceof DepthwiseConv2D) return layer.depthwiseKernel.size * positions(out);
  if (layer instanceof SeparableConv2D) {
    const pointwiseAt = layer.order === 'depthwise-first' ? out : inShape;
    return layer.spatialKernel.size * positions(out) + layer.pointwiseKernel.size * positions(pointwiseAt);
  }
  if (layer instanceof Dense) return layer.kernel.size;
  return 0;
}

/** Forward FLOPs of the model for one image (2 × multiply-adds). */
export function forwardFlops(model: Model): number {
  let macs = 0;
  for (const layer of model.layers) macs += layerMultiplyAdds(layer);
  return 2 * macs;
}

/** FLOPs of one training step for one image: forward + backward to inputs + backward to weights. */
export function trainingFlops(model: Model): number {
  return 3 * forwardFlops(model);
}
