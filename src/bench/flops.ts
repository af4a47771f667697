/**
 * FLOPs of a model, counted on its inference graph (src/infer/graph.ts): the multiply-adds of its
 * convolution and dense nodes, ×2 (one multiply, one add). Batch norm, activations, pooling and
 * additions are left out, as papers and vendors count them. A training step is counted as 3× the
 * forward pass (forward, backward to the inputs, backward to the weights: each the same multiply-adds).
 */
import type { Layer } from '../nn/layer.js';
import type { Model } from '../nn/model.js';
import { lowerLayer, type GraphNode } from '../infer/graph.js';

/**
 * Multiply-adds of one graph node for one image. A convolution kernel's every weight is used once
 * per output position (grouped HWIO [kh, kw, in/groups, out]), so its multiply-adds are the kernel
 * size × the output positions; a dense kernel [in, units] is used once. (A separable convolution
 * is two convolution nodes, the pointwise one at the resolution it runs at.)
 */
export function nodeMultiplyAdds(n: GraphNode): number {
  const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
  if (n.op === 'conv') return size(n.kernelShape) * n.geometry.outH * n.geometry.outW;
  if (n.op === 'dense') return size(n.kernelShape);
  return 0;
}

/** Multiply-adds of one layer for one image, at the shapes it was built with (0 before it is applied). */
export function layerMultiplyAdds(layer: Layer): number {
  return lowerLayer(layer).reduce((sum, n) => sum + nodeMultiplyAdds(n), 0);
}

/**
 * Forward FLOPs of the model for one image (2 × multiply-adds), layer by layer (so a layer type
 * without a lowering counts nothing instead of failing).
 */
export function forwardFlops(model: Model): number {
  return 2 * model.layers.reduce((sum, layer) => sum + layerMultiplyAdds(layer), 0);
}

/** FLOPs of one training step for one image: forward + backward to inputs + backward to weights. */
export function trainingFlops(model: Model): number {
  return 3 * forwardFlops(model);
}
