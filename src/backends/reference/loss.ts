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

/** sigmoid(x) without overflow: exp is only ever taken of −|x|. */
function sigmoid(x: number): number {
  const e = Math.exp(-Math.abs(x));
  return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

function checkTargets(targets: NumArray, kernel: string): void {
  for (let i = 0; i < targets.length; i++) {
    const t = targets[i]!;
    check(t >= 0 && t <= 1, `${kernel}: target ${t} at index ${i} is outside [0, 1]`);
  }
}

/**
 * loss = mean over rows·channels of BCE(sigmoid(x), t) = max(x, 0) − x·t + log(1 + exp(−|x|)),
 * which equals −t·log σ(x) − (1 − t)·log(1 − σ(x)) but never takes the log of a rounded zero.
 */
export function sigmoidCrossEntropy(logitsh: Handle, targetsh: Handle, p: RowsParams): { loss: number; probs: NumArray } {
  checkPositiveInts(p, ['rows', 'channels'], 'sigmoidCrossEntropy');
  const n = p.rows * p.channels;
  const logits = asArray(logitsh, n, 'sigmoidCrossEntropy logits');
  const targets = asArray(targetsh, n, 'sigmoidCrossEntropy targets');
  checkTargets(targets, 'sigmoidCrossEntropy');
  const probs = newLike(logits, n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const x = logits[i]!;
    total += Math.max(x, 0) - x * targets[i]! + Math.log1p(Math.exp(-Math.abs(x)));
    probs[i] = sigmoid(x);
  }
  return { loss: total / n, probs };
}

/** d(scale·loss)/d(logits) = (probs − targets)·scale/(rows·channels). */
export function sigmoidCrossEntropyBackward(probsh: Handle, targetsh: Handle, p: RowsParams, scale: number): NumArray {
  checkPositiveInts(p, ['rows', 'channels'], 'sigmoidCrossEntropyBackward');
  check(Number.isFinite(scale), `sigmoidCrossEntropyBackward: scale must be a finite number, got ${scale}`);
  const n = p.rows * p.channels;
  const probs = asArray(probsh, n, 'sigmoidCrossEntropyBackward probs');
  const targets = asArray(targetsh, n, 'sigmoidCrossEntropyBackward targets');
  checkTargets(targets, 'sigmoidCrossEntropyBackward');
  const dlogits = newLike(probs, n);
  const factor = scale / n;
  for (let i = 0; i < n; i++) dlogits[i] = (probs[i]! - targets[i]!) * factor;
  return dlogits;
}
