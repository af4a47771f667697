import type { Backend, BatchNormParams } from '../backend.js';
import { makeResult } from '../autograd.js';
import { ShapeError, shapeToString } from '../errors.js';
import { Tensor } from '../tensor.js';
import { checkSameBackend, makeGrad, rowsOf, wants } from './util.js';

export interface BatchNormTrainResult {
  y: Tensor;
  /** The moving statistics after this batch (new tensors; the caller swaps them in). */
  movingMean: Tensor;
  movingVariance: Tensor;
}

export interface BatchNormOptions {
  /** Apply ReLU to the output in the same kernel (batch norm → ReLU fused). */
  relu?: boolean;
}

function params(op: string, x: Tensor, vectors: Tensor[], epsilon: number, relu = false): BatchNormParams {
  const { rows, channels } = rowsOf(x);
  for (const v of vectors) {
    if (v.size !== channels) {
      throw new ShapeError(
        `${op}: per-channel vector ${shapeToString(v.shape)} does not match ${channels} channels of ${shapeToString(x.shape)}`,
      );
    }
  }
  if (!(epsilon > 0)) throw new ShapeError(`${op}: epsilon must be positive, got ${epsilon}`);
  return relu ? { rows, channels, epsilon, relu } : { rows, channels, epsilon };
}

/**
 * Batch normalization with this batch's statistics (training). The moving averages follow the
 * Keras convention, moving = moving·momentum + batch·(1 − momentum), where the batch variance
 * fed to the average is the unbiased one (n/(n−1)), as TensorFlow's fused kernel and PyTorch do;
 * the normalization itself uses the biased variance. With `relu`, returns max(0, ·) of it.
 */
export function batchNormTrain(
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  movingMean: Tensor,
  movingVariance: Tensor,
  momentum: number,
  epsilon: number,
  opts: BatchNormOptions = {},
): BatchNormTrainResult {
  checkSameBackend('batchNorm', x, gamma, beta, movingMean, movingVariance);
  const p = params('batchNorm', x, [gamma, beta, movingMean, movingVariance], epsilon, opts.relu);
  if (p.rows < 2) throw new ShapeError(`batchNorm: training needs more than one value per channel, got ${shapeToString(x.shape)}`);
  const b = x.backend;
  const r = b.batchNormTrain(x.handle, gamma.handle, beta.handle, p);
  // Tensors (not bare handles) so that a tidy scope frees the saved statistics.
  const mean = new Tensor(b, r.mean, [p.channels], x.dtype);
  const variance = new Tensor(b, r.variance, [p.channels], x.dtype);
  const out = makeResult(x, r.y, x.shape, p.relu ? 'batchNormRelu' : 'batchNorm', [x, gamma, beta], (dy) => {
    const g = b.batchNormBackward(dy.handle, x.handle, gamma.handle, mean.handle, variance.handle, p, p.relu ? out.handle : undefined);
    return [
      makeGrad(x, g.dx, x.shape),
      wants(gamma) ? makeGrad(gamma, g.dgamma, gamma.shape) : (b.dispose(g.dgamma), null),
      wants(beta) ? makeGrad(beta, g.dbeta, beta.shape) : (b.dispose(g.dbeta), null),
    ];
  });
  const bessel = p.rows / (p.rows - 1);
  const newMean = new Tensor(b, b.axpby(movingMean.handle, mean.handle, momentum, 1 - momentum, p.channels), movingMean.shape, x.dtype);
  const newVar = new Tensor(
    b,
    b.axpby(movingVariance.handle, variance.handle, momentum, (1 - momentum) * bessel, p.channels),
    movingVariance.shape,
    x.dtype,
  );
  if (!out.node) {
    // Nothing will run backward: the batch statistics can go now.
    mean.dispose();
    variance.dispose();
  }
  return { y: out, movingMean: newMean, movingVariance: newVar };
}

/** Batch normalization with fixed statistics (inference, or a frozen layer); `relu` as batchNormTrain. */
export function batchNormInference(
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  mean: Tensor,
  variance: Tensor,
  epsilon: number,
  opts: BatchNormOptions = {},
): Tensor {
  checkSameBackend('batchNorm', x, gamma, beta, mean, variance);
  const p = params('batchNorm', x, [gamma, beta, mean, variance], epsilon, opts.relu);
  const b = x.backend;
  const y = b.batchNormInference(x.handle, gamma.handle, beta.handle, mean.handle, variance.handle, p);
  if (p.relu) {
    // Rare (a frozen layer under training): the unfused backward on the ReLU-masked gradient.
    const plain = { rows: p.rows, channels: p.channels, epsilon: p.epsilon };
    const out = makeResult(x, y, x.shape, 'batchNormReluInference', [x, gamma, beta], (dy) => {
      const masked = new Tensor(b, b.reluBackward(dy.handle, out.handle, x.size), x.shape, x.dtype);
      try {
        return inferenceGrads(b, masked, x, gamma, beta, mean, variance, plain);
      } finally {
        masked.dispose();
      }
    });
    return out;
  }
  return makeResult(x, y, x.shape, 'batchNormInference', [x, gamma, beta], (dy) =>
    inferenceGrads(b, dy, x, gamma, beta, mean, variance, p),
  );
}

/**
 * Gradients of y = x·s + t with s = gamma/sqrt(var+eps): dx is dy scaled per channel, which is
 * the same kernel applied to dy with a zero mean and a zero offset.
 */
function inferenceGrads(
  b: Backend,
  dy: Tensor,
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  mean: Tensor,
  variance: Tensor,
  p: BatchNormParams,
): (Tensor | null)[] {
  const zeros = b.zeros(p.channels, x.dtype);
  const onesH = b.upload(x.dtype === 'float64' ? new Float64Array(p.channels).fill(1) : new Float32Array(p.channels).fill(1));
  const dx = b.batchNormInference(dy.handle, gamma.handle, zeros, zeros, variance.handle, p);
  let dgamma: Tensor | null = null;
  if (wants(gamma)) {
    // d/dgamma = Σ_rows dy·(x − mean)/sqrt(var + eps)
    const xhat = b.batchNormInference(x.handle, onesH, zeros, mean.handle, variance.handle, p);
    const prod = b.mul(dy.handle, xhat, x.size);
    dgamma = makeGrad(gamma, b.sumRows(prod, p), gamma.shape);
    b.dispose(xhat);
    b.dispose(prod);
  }
  const dbeta = wants(beta) ? makeGrad(beta, b.sumRows(dy.handle, p), beta.shape) : null;
  b.dispose(zeros);
  b.dispose(onesH);
  return [makeGrad(x, dx, x.shape), dgamma, dbeta];
}
