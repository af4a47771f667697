/**
 * Class probabilities from a model, with no Node built-ins (Node and the browser build share it):
 * a compiled plan where the model's backend has one (native, or wasm), else model.forward.
 */
import { tensor } from '../core/creation.js';
import { noGrad } from '../core/engine.js';
import { ShapeError } from '../core/errors.js';
import { cachedCompiledInference } from '../infer/auto.js';
import type { Model } from '../nn/model.js';

/** Throws unless the model outputs class scores (a classifier built with its top). */
export function checkClassifier(model: Model): void {
  if (model.outputShape.length !== 1) {
    throw new ShapeError(
      `model '${model.name}' outputs [${model.outputShape.join(', ')}], not class scores: prediction needs a classifier (build it with the top)`,
    );
  }
}

/** True when the model's last layer ends in a softmax or a sigmoid, i.e. it outputs probabilities. */
export function outputsProbabilities(model: Model): boolean {
  const last = model.output.layer as unknown as { activation?: unknown };
  return last.activation === 'softmax' || last.activation === 'sigmoid';
}

/** True for a multi-label classifier: a sigmoid head, one independent probability per class. */
export function isMultiLabelModel(model: Model): boolean {
  return (model.output.layer as unknown as { activation?: unknown }).activation === 'sigmoid';
}

/** The probability threshold at which a multi-label prediction names a class. */
export const MULTI_LABEL_THRESHOLD = 0.5;

/** Softmax of each row, for models whose classifier outputs logits. */
export function softmaxRows(data: Float32Array, classes: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < data.length / classes; r++) {
    let max = -Infinity;
    for (let i = 0; i < classes; i++) max = Math.max(max, data[r * classes + i]!);
    let sum = 0;
    for (let i = 0; i < classes; i++) sum += out[r * classes + i] = Math.exp(data[r * classes + i]! - max);
    for (let i = 0; i < classes; i++) out[r * classes + i]! /= sum;
  }
  return out;
}

/**
 * Probabilities from the network's output: a sigmoid head's logits through the sigmoid (it runs as
 * logits, as compiled plans have no sigmoid), a logits classifier's through the softmax.
 */
export function classProbabilities(model: Model, out: Float32Array): Float32Array {
  if (isMultiLabelModel(model)) return out.map((v) => 1 / (1 + Math.exp(-v)));
  return outputsProbabilities(model) ? out : softmaxRows(out, model.outputShape[0]!);
}

/** Class probabilities [images × classes] for preprocessed images (NHWC), by model.forward. */
export function classifyEager(model: Model, inputs: Float32Array, count: number): Float32Array {
  checkClassifier(model);
  const out = noGrad(() => {
    const backend = model.weights[0]?.value.backend;
    const x = tensor(inputs, [count, ...model.inputShape], backend ? { backend } : {});
    const y = model.forward(x, { logits: isMultiLabelModel(model) });
    const d = Float32Array.from(y.data());
    y.dispose();
    x.dispose();
    return d;
  });
  return classProbabilities(model, out);
}

/** Class probabilities [images × classes] for preprocessed images (model inputs, NHWC). */
export function classify(model: Model, inputs: Float32Array, count: number): Float32Array {
  checkClassifier(model);
  // On the native or wasm backend a compiled plan (cached per model and batch) runs the network;
  // elsewhere, or if the model does not compile, model.forward does, op by op.
  // A sigmoid head runs as logits (compiled plans have no sigmoid): classProbabilities applies it.
  const plan = cachedCompiledInference(model, count, isMultiLabelModel(model));
  if (!plan) return classifyEager(model, inputs, count);
  return classProbabilities(model, plan.runData(inputs));
}
