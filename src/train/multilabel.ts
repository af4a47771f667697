/**
 * Multi-label training (the paper's JFT set-up): a sigmoid head, binary cross-entropy against
 * multi-hot targets, MAP@100 for evaluation. Which runs are multi-label, and the step's loss.
 */
import { OptionError } from '../core/errors.js';
import { sigmoidCrossEntropy, softmaxCrossEntropy } from '../core/ops/loss.js';
import type { Tensor } from '../core/tensor.js';
import type { Batch } from '../data/loader.js';
import { topKCorrect } from './top-k.js';

/**
 * Whether a run trains multi-label: `multiLabel` as given, else implied by multi-label data or a
 * sigmoid head. A softmax head cannot learn several labels per image, so it is refused on such data.
 */
export function resolveMultiLabel(given: boolean | undefined, dataMultiLabel: boolean, classifierActivation: unknown): boolean {
  if (given !== undefined && typeof given !== 'boolean')
    throw new OptionError(`multiLabel must be true or false, got ${JSON.stringify(given)}`);
  const multiLabel = given ?? (dataMultiLabel || classifierActivation === 'sigmoid');
  if (multiLabel && classifierActivation === 'softmax') {
    throw new OptionError(
      `multi-label ${dataMultiLabel ? 'data' : 'training'} needs a sigmoid head (one independent probability per class), ` +
        `but the model's classifierActivation is 'softmax': pass --classifier-activation sigmoid`,
    );
  }
  if (!multiLabel && dataMultiLabel) throw new OptionError('this dataset is multi-label: multiLabel false cannot train on it');
  return multiLabel;
}

/**
 * A batch's multi-hot targets (one-hot from the labels of single-label data), with Keras's binary
 * label smoothing t·(1 − s) + s/2.
 */
export function multiLabelTargets(batch: Batch, classes: number, labelSmoothing: number): Float32Array {
  let t = batch.targets;
  if (!t) {
    t = new Float32Array(batch.size * classes);
    for (let i = 0; i < batch.size; i++) t[i * classes + batch.y[i]!] = 1;
  }
  if (labelSmoothing === 0) return t;
  return t.map((v) => v * (1 - labelSmoothing) + labelSmoothing / 2);
}

export interface LossChoice {
  multiLabel: boolean;
  labelSmoothing: number;
  classes: number;
}

/** The training loss of a batch's logits: softmax or sigmoid cross-entropy. */
export function trainingLoss(logits: Tensor, batch: Batch, c: LossChoice): Tensor {
  return c.multiLabel
    ? sigmoidCrossEntropy(logits, multiLabelTargets(batch, c.classes, c.labelSmoothing))
    : softmaxCrossEntropy(logits, batch.y, { labelSmoothing: c.labelSmoothing });
}

/**
 * The batch's "correct" count for progress lines: top-1 hits; multi-label, the images whose
 * highest-scored class is one of theirs (precision at 1).
 */
export function correctAtOne(logits: Float32Array, batch: Batch, c: LossChoice): number {
  if (!c.multiLabel || !batch.targets) return topKCorrect(logits, batch.y, c.classes, 1);
  let correct = 0;
  for (let r = 0; r < batch.size; r++) {
    let best = 0;
    for (let k = 1; k < c.classes; k++) if (logits[r * c.classes + k]! > logits[r * c.classes + best]!) best = k;
    if (batch.targets[r * c.classes + best]! >= 0.5) correct++;
  }
  return correct;
}
