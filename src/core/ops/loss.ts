import type { CrossEntropyParams } from '../backend.js';
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
