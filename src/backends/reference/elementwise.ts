/** Elementwise kernels, flat over `size` elements. Results take the dtype of the first input. */
import type { DType, Handle, NumArray } from '../../core/backend.js';
import { asArray, check, newLike, newOfDtype } from './arrays.js';

function checkSize(size: number, kernel: string): void {
  check(Number.isInteger(size) && size >= 0, `${kernel}: size must be a non-negative integer, got ${size}`);
}

function checkFinite(value: number, name: string, kernel: string): void {
  check(Number.isFinite(value), `${kernel}: ${name} must be a finite number, got ${value}`);
}

// --- memory ---------------------------------------------------------------------------------

/** The handle is a private copy, so the caller may reuse its array. */
export function upload(data: NumArray): NumArray {
  check(data instanceof Float32Array || data instanceof Float64Array, 'upload needs a Float32Array or Float64Array');
  return data.slice();
}

export function download(h: Handle, size: number, dtype: DType): NumArray {
  checkSize(size, 'download');
  const a = asArray(h, size, 'download source');
  const out = newOfDtype(dtype, size);
  out.set(a);
  return out;
}

export function zeros(size: number, dtype: DType): NumArray {
  checkSize(size, 'zeros');
  return newOfDtype(dtype, size);
}

/** Handles are garbage-collected typed arrays: nothing to free. */
export function dispose(_h: Handle): void {}

// --- arithmetic -----------------------------------------------------------------------------

/** alpha·a + beta·b. */
export function axpby(ah: Handle, bh: Handle, alpha: number, beta: number, size: number): NumArray {
  checkSize(size, 'axpby');
  checkFinite(alpha, 'alpha', 'axpby');
  checkFinite(beta, 'beta', 'axpby');
  const a = asArray(ah, size, 'axpby a');
  const b = asArray(bh, size, 'axpby b');
  const y = newLike(a, size);
  for (let i = 0; i < size; i++) y[i] = alpha * a[i] + beta * b[i];
  return y;
}

export function mul(ah: Handle, bh: Handle, size: number): NumArray {
  checkSize(size, 'mul');
  const a = asArray(ah, size, 'mul a');
  const b = asArray(bh, size, 'mul b');
  const y = newLike(a, size);
  for (let i = 0; i < size; i++) y[i] = a[i] * b[i];
  return y;
}

export function scale(ah: Handle, s: number, size: number): NumArray {
  checkSize(size, 'scale');
  checkFinite(s, 's', 'scale');
  const a = asArray(ah, size, 'scale input');
  const y = newLike(a, size);
  for (let i = 0; i < size; i++) y[i] = s * a[i];
  return y;
}

// --- activations ----------------------------------------------------------------------------

/** max(x, 0); NaN stays NaN (PyTorch's rule: a NaN is not hidden as 0). */
export function relu(xh: Handle, size: number): NumArray {
  checkSize(size, 'relu');
  const x = asArray(xh, size, 'relu input');
  const y = newLike(x, size);
  for (let i = 0; i < size; i++) y[i] = Math.max(x[i]!, 0); // Math.max keeps NaN
  return y;
}

/** 0 where the forward output y ≤ 0, else dy (the gradient at exactly 0 is taken as 0; a NaN y passes dy). */
export function reluBackward(dyh: Handle, yh: Handle, size: number): NumArray {
  checkSize(size, 'reluBackward');
  const dy = asArray(dyh, size, 'reluBackward output gradient');
  const y = asArray(yh, size, 'reluBackward forward output');
  const dx = newLike(dy, size);
  for (let i = 0; i < size; i++) dx[i] = y[i]! <= 0 ? 0 : dy[i]!;
  return dx;
}

/** x where x > 0, else alpha·(exp(x) − 1)  (Keras ELU). */
export function elu(xh: Handle, alpha: number, size: number): NumArray {
  checkSize(size, 'elu');
  checkFinite(alpha, 'alpha', 'elu');
  const x = asArray(xh, size, 'elu input');
  const y = newLike(x, size);
  for (let i = 0; i < size; i++) y[i] = x[i] > 0 ? x[i] : alpha * Math.expm1(x[i]);
  return y;
}

/**
 * From the forward output y: dy where y > 0, else dy·(y + alpha), because for x ≤ 0
 * d/dx alpha·(eˣ − 1) = alpha·eˣ = y + alpha.
 */
export function eluBackward(dyh: Handle, yh: Handle, alpha: number, size: number): NumArray {
  checkSize(size, 'eluBackward');
  checkFinite(alpha, 'alpha', 'eluBackward');
  const dy = asArray(dyh, size, 'eluBackward output gradient');
  const y = asArray(yh, size, 'eluBackward forward output');
  const dx = newLike(dy, size);
  for (let i = 0; i < size; i++) dx[i] = y[i] > 0 ? dy[i] : dy[i] * (y[i] + alpha);
  return dx;
}
