/**
 * The reference backend: plain TypeScript loops, the readable specification of every kernel in
 * `core/backend.ts`. Faster backends are tested against it.
 *
 * Handles are the typed arrays themselves (Float32Array or Float64Array, in the logical layout).
 * Every kernel returns a new array of the dtype of its first array input and accumulates in
 * float64, so float32 results round once. Float64 inputs give float64 results throughout, which
 * is what the finite-difference gradient checks run on.
 */
import type { Backend } from '../../core/backend.js';
import { batchNormBackward, batchNormInference, batchNormTrain } from './batchnorm.js';
import { conv2d, conv2dBackwardFilter, conv2dBackwardInput } from './conv.js';
import { biasAdd, concatChannels, matmul, sliceChannels, sumRows } from './dense.js';
import { axpby, dispose, download, elu, eluBackward, mul, relu, reluBackward, scale, upload, zeros } from './elementwise.js';
import { applyUpdate, sumSquares } from './training.js';
import { sigmoidCrossEntropy, sigmoidCrossEntropyBackward, softmax, softmaxCrossEntropy, softmaxCrossEntropyBackward } from './loss.js';
import {
  avgPool2d,
  avgPool2dBackward,
  globalAvgPool,
  globalAvgPoolBackward,
  globalMaxPool,
  globalMaxPoolBackward,
  maxPool2d,
  maxPool2dBackward,
} from './pooling.js';

export const referenceBackend: Backend = Object.freeze({
  name: 'reference',
  dtypes: Object.freeze(['float32', 'float64'] as const),

  upload,
  download,
  zeros,
  dispose,

  axpby,
  mul,
  scale,
  relu,
  reluBackward,
  elu,
  eluBackward,

  conv2d,
  conv2dBackwardInput,
  conv2dBackwardFilter,

  batchNormTrain,
  batchNormInference,
  batchNormBackward,

  maxPool2d,
  maxPool2dBackward,
  avgPool2d,
  avgPool2dBackward,
  globalAvgPool,
  globalAvgPoolBackward,
  globalMaxPool,
  globalMaxPoolBackward,

  matmul,
  biasAdd,
  sumRows,
  concatChannels,
  sliceChannels,

  applyUpdate,
  sumSquares,

  softmax,
  softmaxCrossEntropy,
  softmaxCrossEntropyBackward,
  sigmoidCrossEntropy,
  sigmoidCrossEntropyBackward,
});
