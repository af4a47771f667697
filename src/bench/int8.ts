/**
 * The int8 bench rows' calibration. The bench runs random weights on random images, so there is
 * nothing meaningful to calibrate on: every value gets one fixed scale, unsigned where the node ends
 * in a ReLU (which is what decides the kernels oneDNN runs: u8 or s8 sources). int8 speed does not
 * depend on the scale values; accuracy is measured elsewhere, on calibrated real models.
 * The same calibration writes the QDQ ONNX model that ONNX Runtime runs as the rows' peer, so the
 * classifier is named in `fp32Nodes` (its pooled input has no scale: it stays fp32 in both).
 */
import { fuseGraph } from '../infer/fuse.js';
import { type GraphNode, lowerModel } from '../infer/graph.js';
import { type Int8Calibration, valueKey } from '../infer/quant-types.js';
import type { Model } from '../nn/model.js';

const TIMING_SCALE = 0.05;

/** Whether a node's value is never negative: it ends in a ReLU, or max-pools such a value. */
function endsInRelu(n: GraphNode): boolean {
  if (n.op === 'conv' || n.op === 'dense') {
    const last = n.posts[n.posts.length - 1];
    return last?.kind === 'eltwise' && last.alg === 'relu';
  }
  if (n.op === 'eltwise') return n.alg === 'relu';
  if (n.op === 'pool' && n.alg === 'max') return endsInRelu(n.inputs[0]!);
  return false;
}

/** Scales for every image value of `model`'s fused graph (the classifier stays fp32): timing only. */
export function timingCalibration(model: Model, batch: number): Int8Calibration {
  const g = lowerModel(model, { inputShape: model.inputShape, logits: false, batch });
  fuseGraph(g);
  const values: Int8Calibration['values'] = {};
  const fp32Nodes: Int8Calibration['fp32Nodes'] = {};
  for (const n of g.nodes) {
    if (n.op === 'dense') fp32Nodes[valueKey(n)] = 'timing: the classifier stays fp32';
    if (n.op === 'flatten' || n.op === 'softmax' || n.op === 'dense' || n.shape.length !== 3) continue;
    values[valueKey(n)] = { scale: TIMING_SCALE, unsigned: endsInRelu(n) };
  }
  return { method: 'minmax', images: 1, values, fp32Nodes };
}
