/** Softmax and softmax cross-entropy over the rows of [rows, classes]. */
import type { CrossEntropyParams, Handle, NumArray, RowsParams } from '../../core/backend.js';
import { asArray, check, checkPositiveInts, newLike } from './arrays.js';

/**
 * Writes softmax(x[row]) into probs[row] and returns log Σ exp(x − max) for that row.
 * Subtracting the row maximum first keeps every exp ≤ 1, so large logits cannot overflow.
 */
function softmaxRow(x: NumArray, probs: NumArray, base: number, C: number): { max: number; logSum: number } {
  let max = -Infinity;
  for (let c = 0; c < C; c++) if (x[base + c] > max) max = x[base + c];
  let sum = 0;
  for (let c = 0; c < C; c++) sum += Math.exp(x[base + c] - max);
  for (let c = 0; c < C; c++) probs[base + c] = Math.exp(x[base + c] - max) / sum;
  return { max, logSum: Math.log(sum) };
}

export function softmax(xh: Handle, p: RowsParams): NumArray {
  checkPositiveInts(p, ['rows', 'channels'], 'softmax');
  const x = asArray(xh, p.rows * p.channels, 'softmax input');
  const probs = newLike(x, x.length);
  for (let r = 0; r < p.rows; r++) softmaxRow(x, probs, r * p.channels, p.channels);
  return probs;
}

function checkCrossEntropy(labels: Int32Array, p: CrossEntropyParams, kernel: string): void {
  checkPositiveInts(p, ['rows', 'channels'], kernel);
  const s = p.labelSmoothing;
  check(Number.isFinite(s) && s >= 0 && s <= 1, `${kernel}: labelSmoothing must be in [0, 1], got ${s}`);
  check(labels instanceof Int32Array, `${kernel}: labels must be an Int32Array`);
  check(labels.length === p.rows, `${kernel}: ${labels.length} labels for ${p.rows} rows`);
  for (let r = 0; r < p.rows; r++) {
    const label = labels[r];
    check(label >= 0 && label < p.channels, `${kernel}: label ${label} in row ${r} is outside 0…${p.channels - 1}`);
  }
}

/** target[c] = onehot(label)[c]·(1 − s) + s/classes. */
function target(label: number, c: number, p: CrossEntropyParams): number {
  return (c === label ? 1 - p.labelSmoothing : 0) + p.labelSmoothing / p.channels;
}

/**
 * loss = (1/rows) Σ_rows −Σ_c target[c]·log softmax(logits)[c], with
 * log softmax = logits − max − log Σ exp(logits − max) (never log of a rounded-to-zero prob).
 */
export function softmaxCrossEntropy(logitsh: Handle, labels: Int32Array, p: CrossEntropyParams): { loss: number; probs: NumArray } {
  checkCrossEntropy(labels, p, 'softmaxCrossEntropy');
  const C = p.channels;
  const logits = asArray(logitsh, p.rows * C, 'softmaxCrossEntropy logits');
  const probs = newLike(logits, logits.length);
  let total = 0;
  for (let r = 0; r < p.rows; r++) {
    const base = r * C;
    const { max, logSum } = softmaxRow(logits, probs, base, C);
    for (let c = 0; c < C; c++) {
      const t = target(labels[r], c, p);
      if (t !== 0) total -= t * (logits[base + c] - max - logSum);
    }
  }
  return { loss: total / p.rows, probs };
}

/** d(scale·loss)/d(logits) = (probs − target)·scale/rows. */
export function softmaxCrossEntropyBackward(probsh: Handle, labels: Int32Array, p: CrossEntropyParams, scale: number): NumArray {
  checkCrossEntropy(labels, p, 'softmaxCrossEntropyBackward');
  check(Number.isFinite(scale), `softmaxCrossEntropyBackward: scale must be a finite number, got ${scale}`);
  const C = p.channels;
  const probs = asArray(probsh, p.rows * C, 'softmaxCrossEntropyBackward probs');
  const dlogits = newLike(probs, probs.length);
  const factor = scale / p.rows;
  for (let r = 0; r < p.rows; r++) {
    const base = r * C;
    for (let c = 0; c < C; c++) dlogits[base + c] = (probs[base + c] - target(labels[r], c, p)) * factor;
  }
  return dlogits;
}
