/**
 * Batch normalization over the rows of a [rows, channels] view (rows = N·H·W for NHWC).
 *   mean[c]     = (1/R) Σ_r x[r, c]
 *   variance[c] = (1/R) Σ_r (x[r, c] − mean[c])²          (biased, as Keras normalizes with it)
 *   y[r, c]     = gamma[c] · (x[r, c] − mean[c]) / sqrt(variance[c] + ε) + beta[c]
 * Loops run rows outside and channels inside (memory order), with per-channel float64 sums.
 */
import type { BatchNormParams, Handle, NumArray } from '../../core/backend.js';
import { asArray, check, checkPositiveInts, fromAccumulator, newLike } from './arrays.js';

function checkBatchNormParams(p: BatchNormParams, kernel: string): void {
  checkPositiveInts(p, ['rows', 'channels'], kernel);
  check(Number.isFinite(p.epsilon) && p.epsilon >= 0, `${kernel}: epsilon must be a finite number ≥ 0, got ${p.epsilon}`);
}

/** Per-channel mean and biased variance; two passes, so large means do not cancel the variance. */
function channelStatistics(x: NumArray, rows: number, C: number): { mean: Float64Array; variance: Float64Array } {
  const mean = new Float64Array(C);
  for (let r = 0; r < rows; r++) {
    const base = r * C;
    for (let c = 0; c < C; c++) mean[c] += x[base + c];
  }
  for (let c = 0; c < C; c++) mean[c] /= rows;
  const variance = new Float64Array(C);
  for (let r = 0; r < rows; r++) {
    const base = r * C;
    for (let c = 0; c < C; c++) {
      const d = x[base + c] - mean[c];
      variance[c] += d * d;
    }
  }
  for (let c = 0; c < C; c++) variance[c] /= rows;
  return { mean, variance };
}

/** y = gamma·(x − mean)·invStd + beta, written as y = x·factor + offset per channel. */
function normalize(
  x: NumArray,
  gamma: NumArray,
  beta: NumArray,
  mean: ArrayLike<number>,
  variance: ArrayLike<number>,
  p: BatchNormParams,
): NumArray {
  const { rows, channels: C } = p;
  const factor = new Float64Array(C);
  const offset = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    factor[c] = gamma[c] / Math.sqrt(variance[c] + p.epsilon);
    offset[c] = beta[c] - mean[c] * factor[c];
  }
  const y = newLike(x, rows * C);
  for (let r = 0; r < rows; r++) {
    const base = r * C;
    for (let c = 0; c < C; c++) y[base + c] = x[base + c] * factor[c] + offset[c];
  }
  if (p.relu) for (let i = 0; i < y.length; i++) if (y[i]! <= 0) y[i] = 0; // NaN stays NaN, as relu()
  return y;
}

export function batchNormTrain(
  xh: Handle,
  gammah: Handle,
  betah: Handle,
  p: BatchNormParams,
): { y: NumArray; mean: NumArray; variance: NumArray } {
  checkBatchNormParams(p, 'batchNormTrain');
  const x = asArray(xh, p.rows * p.channels, 'batchNormTrain input');
  const gamma = asArray(gammah, p.channels, 'batchNormTrain gamma');
  const beta = asArray(betah, p.channels, 'batchNormTrain beta');
  const { mean, variance } = channelStatistics(x, p.rows, p.channels);
  return {
    y: normalize(x, gamma, beta, mean, variance, p),
    mean: fromAccumulator(x, mean),
    variance: fromAccumulator(x, variance),
  };
}

export function batchNormInference(
  xh: Handle,
  gammah: Handle,
  betah: Handle,
  meanh: Handle,
  varianceh: Handle,
  p: BatchNormParams,
): NumArray {
  checkBatchNormParams(p, 'batchNormInference');
  const x = asArray(xh, p.rows * p.channels, 'batchNormInference input');
  const gamma = asArray(gammah, p.channels, 'batchNormInference gamma');
  const beta = asArray(betah, p.channels, 'batchNormInference beta');
  const mean = asArray(meanh, p.channels, 'batchNormInference mean');
  const variance = asArray(varianceh, p.channels, 'batchNormInference variance');
  return normalize(x, gamma, beta, mean, variance, p);
}

/**
 * Backward of batchNormTrain, where `mean` and `variance` are the batch statistics it returned
 * (so they depend on x). With x̂ = (x − mean)·invStd and R rows, per channel:
 *   dbeta  = Σ_r dy
 *   dgamma = Σ_r dy·x̂
 *   dx     = gamma·invStd/R · (R·dy − dbeta − x̂·dgamma)
 * The last two terms are the gradient flowing through the mean and the variance.
 * With p.relu the forward was max(0, batch norm) with output y: dy is first zeroed where y ≤ 0
 * (not where y is NaN: reluBackward's rule).
 */
export function batchNormBackward(
  dyh: Handle,
  xh: Handle,
  gammah: Handle,
  meanh: Handle,
  varianceh: Handle,
  p: BatchNormParams,
  yh?: Handle,
): { dx: NumArray; dgamma: NumArray; dbeta: NumArray } {
  checkBatchNormParams(p, 'batchNormBackward');
  const { rows, channels: C } = p;
  let dy = asArray(dyh, rows * C, 'batchNormBackward output gradient');
  if (p.relu) {
    check(yh !== undefined, 'batchNormBackward: the fused ReLU needs the forward output y');
    const y = asArray(yh!, rows * C, 'batchNormBackward forward output');
    const masked = newLike(dy, rows * C);
    for (let i = 0; i < masked.length; i++) masked[i] = y[i]! <= 0 ? 0 : dy[i]!;
    dy = masked;
  }
  const x = asArray(xh, rows * C, 'batchNormBackward input');
  const gamma = asArray(gammah, C, 'batchNormBackward gamma');
  const mean = asArray(meanh, C, 'batchNormBackward mean');
  const variance = asArray(varianceh, C, 'batchNormBackward variance');

  const invStd = new Float64Array(C);
  for (let c = 0; c < C; c++) invStd[c] = 1 / Math.sqrt(variance[c] + p.epsilon);

  const sumDy = new Float64Array(C);
  const sumDyXhat = new Float64Array(C);
  for (let r = 0; r < rows; r++) {
    const base = r * C;
    for (let c = 0; c < C; c++) {
      const g = dy[base + c];
      sumDy[c] += g;
      sumDyXhat[c] += g * (x[base + c] - mean[c]) * invStd[c];
    }
  }

  const dx = newLike(dy, rows * C);
  for (let r = 0; r < rows; r++) {
    const base = r * C;
    for (let c = 0; c < C; c++) {
      const xhat = (x[base + c] - mean[c]) * invStd[c];
      dx[base + c] = ((gamma[c] * invStd[c]) / rows) * (rows * dy[base + c] - sumDy[c] - xhat * sumDyXhat[c]);
    }
  }
  return { dx, dgamma: fromAccumulator(dy, sumDyXhat), dbeta: fromAccumulator(dy, sumDy) };
}
