import { makeResult } from '../autograd.js';
import { OptionError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { checkSameBackend, makeGrad, rowsOf } from './util.js';

export function relu(x: Tensor): Tensor {
  checkSameBackend('relu', x);
  const b = x.backend;
  const y = makeResult(x, b.relu(x.handle, x.size), x.shape, 'relu', [x], (dy) => [
    makeGrad(x, b.reluBackward(dy.handle, y.handle, x.size), x.shape),
  ]);
  return y;
}

/** ELU: x for x > 0, alpha·(exp(x) − 1) otherwise. */
export function elu(x: Tensor, alpha = 1): Tensor {
  checkSameBackend('elu', x);
  if (!(alpha > 0)) throw new OptionError(`elu: alpha must be positive, got ${alpha}`);
  const b = x.backend;
  const y = makeResult(x, b.elu(x.handle, alpha, x.size), x.shape, 'elu', [x], (dy) => [
    makeGrad(x, b.eluBackward(dy.handle, y.handle, alpha, x.size), x.shape),
  ]);
  return y;
}

/** Softmax over the last axis. Inference only: training goes through softmaxCrossEntropy. */
export function softmax(x: Tensor): Tensor {
  checkSameBackend('softmax', x);
  const b = x.backend;
  return makeResult(x, b.softmax(x.handle, rowsOf(x)), x.shape, 'softmax', [x], () => {
    throw new OptionError('softmax has no gradient here: train on logits with softmaxCrossEntropy');
  });
}

/**
 * Sigmoid, elementwise. Inference only, like softmax: training goes through sigmoidCrossEntropy.
 * Its probabilities are that kernel's (against zero targets), so the contract needs no second sigmoid.
 */
export function sigmoid(x: Tensor): Tensor {
  checkSameBackend('sigmoid', x);
  const b = x.backend;
  const zeros = b.zeros(x.size, x.dtype);
  try {
    const { probs } = b.sigmoidCrossEntropy(x.handle, zeros, { rows: 1, channels: x.size });
    return makeResult(x, probs, x.shape, 'sigmoid', [x], () => {
      throw new OptionError('sigmoid has no gradient here: train on logits with sigmoidCrossEntropy');
    });
  } finally {
    b.dispose(zeros);
  }
}

export type ActivationName = 'relu' | 'elu' | 'softmax' | 'sigmoid' | 'linear';

export const ACTIVATIONS: readonly ActivationName[] = ['relu', 'elu', 'softmax', 'sigmoid', 'linear'];

/** Classifier activations that a model asked for logits leaves out (the loss applies them). */
export function isLogitsActivation(name: ActivationName): boolean {
  return name === 'softmax' || name === 'sigmoid';
}

export function activation(name: ActivationName, x: Tensor): Tensor {
  switch (name) {
    case 'relu':
      return relu(x);
    case 'elu':
      return elu(x);
    case 'softmax':
      return softmax(x);
    case 'sigmoid':
      return sigmoid(x);
    case 'linear':
      return x;
    default:
      throw new OptionError(`unknown activation '${String(name)}' (known: ${ACTIVATIONS.join(', ')})`);
  }
}
