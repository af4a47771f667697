import type { CrossEntropyParams, RowsParams } from '../backend.js';
import { needsGrad } from '../autograd.js';
import { OptionError, ShapeError, shapeToString } from '../errors.js';
import { Tensor } from '../tensor.js';
import { checkRank, checkSameBackend, makeGrad } from './util.js';

export interface CrossEntropyOptions {
  labelSmoothing?: number;
}

/** Validates integer labels before any backend sees them. */
export function toLabels(labels: ArrayLike<number>, rows: number, classes: number): Int32Array {
  if (labels.length !== rows) throw new ShapeError(`softmaxCrossEntropy: ${labels.length} labels for a batch of ${rows}`);
  const out = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    const v = labels[i]!;
    if (!Number.isInteger(v) || v < 0 || v >= classes) {
      throw new ShapeError(`softmaxCrossEntropy: label ${v} at index ${i} is outside 0…${classes - 1}`);
    }
    out[i] = v;
  }
  return out;
}

/**
 * Mean softmax cross-entropy of logits [N, classes] against integer labels; returns a scalar
 * tensor whose backward feeds (softmax − target)/N into the logits.
 */
export function softmaxCrossEntropy(logits: Tensor, labels: ArrayLike<number>, opts: CrossEntropyOptions = {}): Tensor {
  checkSameBackend('softmaxCrossEntropy', logits);
  checkRank('softmaxCrossEntropy', 'logits', logits, 2);
  const [rows, classes] = logits.shape as [number, number];
  if (rows === 0 || classes === 0) throw new ShapeError(`softmaxCrossEntropy: empty logits ${shapeToString(logits.shape)}`);
  const labelSmoothing = opts.labelSmoothing ?? 0;
  if (!(labelSmoothing >= 0 && labelSmoothing < 1)) throw new OptionError(`labelSmoothing must be in [0, 1), got ${labelSmoothing}`);
  const y = toLabels(labels, rows, classes);
  const p: CrossEntropyParams = { rows, channels: classes, labelSmoothing };
  const be = logits.backend;
  const { loss, probs } = be.softmaxCrossEntropy(logits.handle, y, p);
  const arr = logits.dtype === 'float64' ? Float64Array.of(loss) : Float32Array.of(loss);
  const out = new Tensor(be, be.upload(arr), [], logits.dtype);
  const probsT = new Tensor(be, probs, logits.shape, logits.dtype);
  if (needsGrad([logits])) {
    out.node = {
      op: 'softmaxCrossEntropy',
      inputs: [logits],
      backward: (dy) => [makeGrad(logits, be.softmaxCrossEntropyBackward(probsT.handle, y, p, dy.item()), logits.shape)],
    };
  } else {
    probsT.dispose();
  }
  return out;
}

/** Validates multi-label targets (rows·classes values in [0, 1]) before any backend sees them. */
export function toTargets(
  targets: ArrayLike<number>,
  rows: number,
  classes: number,
  dtype: 'float32' | 'float64',
): Float32Array | Float64Array {
  if (targets.length !== rows * classes) {
    throw new ShapeError(`sigmoidCrossEntropy: ${targets.length} targets for ${rows} rows × ${classes} classes`);
  }
  const out = dtype === 'float64' ? new Float64Array(targets.length) : new Float32Array(targets.length);
  for (let i = 0; i < targets.length; i++) {
    const t = targets[i]!;
    if (!(t >= 0 && t <= 1)) throw new ShapeError(`sigmoidCrossEntropy: target ${t} at index ${i} is outside [0, 1]`);
    out[i] = t;
  }
  return out;
}

/**
 * Mean binary cross-entropy of sigmoid(logits) [N, classes] against targets in [0, 1] (row-major
 * N·classes; multi-hot for multi-label data), averaged over every row and class like Keras's
 * binary_crossentropy; returns a scalar whose backward feeds (sigmoid − target)/(N·classes).
 */
export function sigmoidCrossEntropy(logits: Tensor, targets: ArrayLike<number>): Tensor {
  checkSameBackend('sigmoidCrossEntropy', logits);
  checkRank('sigmoidCrossEntropy', 'logits', logits, 2);
  const [rows, classes] = logits.shape as [number, number];
  if (rows === 0 || classes === 0) throw new ShapeError(`sigmoidCrossEntropy: empty logits ${shapeToString(logits.shape)}`);
  const be = logits.backend;
  const t = new Tensor(be, be.upload(toTargets(targets, rows, classes, logits.dtype)), logits.shape, logits.dtype);
  const p: RowsParams = { rows, channels: classes };
  const { loss, probs } = be.sigmoidCrossEntropy(logits.handle, t.handle, p);
  const arr = logits.dtype === 'float64' ? Float64Array.of(loss) : Float32Array.of(loss);
  const out = new Tensor(be, be.upload(arr), [], logits.dtype);
  const probsT = new Tensor(be, probs, logits.shape, logits.dtype);
  if (needsGrad([logits])) {
    out.node = {
      op: 'sigmoidCrossEntropy',
      inputs: [logits],
      backward: (dy) => [makeGrad(logits, be.sigmoidCrossEntropyBackward(probsT.handle, t.handle, p, dy.item()), logits.shape)],
    };
  } else {
    probsT.dispose();
    t.dispose();
  }
  return out;
}
