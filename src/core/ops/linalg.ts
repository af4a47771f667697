import { makeResult } from '../autograd.js';
import { ShapeError, shapeToString } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { checkRank, checkSameBackend, makeGrad, wants } from './util.js';

/** [m, k] · [k, n] → [m, n] */
export function matmul(a: Tensor, b: Tensor): Tensor {
  checkSameBackend('matmul', a, b);
  checkRank('matmul', 'a', a, 2);
  checkRank('matmul', 'b', b, 2);
  const [m, k] = a.shape as [number, number];
  const [k2, n] = b.shape as [number, number];
  if (k !== k2) throw new ShapeError(`matmul: inner dimensions differ: ${shapeToString(a.shape)} · ${shapeToString(b.shape)}`);
  const be = a.backend;
  return makeResult(a, be.matmul(a.handle, b.handle, { m, k, n, transA: false, transB: false }), [m, n], 'matmul', [a, b], (dy) => [
    // dA = dY · Bᵀ, dB = Aᵀ · dY
    wants(a) ? makeGrad(a, be.matmul(dy.handle, b.handle, { m, k: n, n: k, transA: false, transB: true }), a.shape) : null,
    wants(b) ? makeGrad(b, be.matmul(a.handle, dy.handle, { m: k, k: m, n, transA: true, transB: false }), b.shape) : null,
  ]);
}

/** x[..., C] + bias[C] */
export function biasAdd(x: Tensor, bias: Tensor): Tensor {
  checkSameBackend('biasAdd', x, bias);
  const channels = x.shape[x.rank - 1]!;
  if (bias.rank !== 1 || bias.size !== channels) {
    throw new ShapeError(`biasAdd: bias ${shapeToString(bias.shape)} does not match the last axis of ${shapeToString(x.shape)}`);
  }
  const p = { rows: x.size / channels, channels };
  const be = x.backend;
  return makeResult(x, be.biasAdd(x.handle, bias.handle, p), x.shape, 'biasAdd', [x, bias], (dy) => [
    wants(x) ? dy.reshape(x.shape) : null,
    wants(bias) ? makeGrad(bias, be.sumRows(dy.handle, p), bias.shape) : null,
  ]);
}

/** Fully connected: x[N, in] · kernel[in, out] (+ bias[out]). */
export function dense(x: Tensor, kernel: Tensor, bias?: Tensor | null): Tensor {
  checkRank('dense', 'input', x, 2);
  checkRank('dense', 'kernel', kernel, 2);
  if (x.shape[1] !== kernel.shape[0]) {
    throw new ShapeError(`dense: input ${shapeToString(x.shape)} does not match kernel ${shapeToString(kernel.shape)}`);
  }
  const y = matmul(x, kernel);
  return bias ? biasAdd(y, bias) : y;
}
