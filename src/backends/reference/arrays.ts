/**
 * Handles of the reference backend are the typed arrays themselves. These helpers check that a
 * handle is one, that it has the size the caller promised, and allocate results of the same dtype
 * as an input. The checks are cheap and turn a bug in a caller into a clear BackendError instead
 * of silently reading `undefined` as NaN.
 */
import type { DType, Handle, NumArray } from '../../core/backend.js';
import { BackendError } from '../../core/errors.js';

export function check(cond: boolean, message: string): asserts cond {
  if (!cond) throw new BackendError(`reference backend: ${message}`);
}

/** The typed array behind a handle; `what` names it in the error message. */
export function asArray(h: Handle, size: number, what: string): NumArray {
  check(
    h instanceof Float32Array || h instanceof Float64Array,
    `${what} is not a reference-backend handle (expected a Float32Array or Float64Array)`,
  );
  check(h.length === size, `${what} has ${h.length} elements, expected ${size}`);
  return h;
}

/** A zero-filled array of `size` elements with the dtype of `like`. */
export function newLike(like: NumArray, size: number): NumArray {
  return like instanceof Float32Array ? new Float32Array(size) : new Float64Array(size);
}

export function newOfDtype(dtype: DType, size: number): NumArray {
  check(dtype === 'float32' || dtype === 'float64', `unsupported dtype '${String(dtype)}'`);
  return dtype === 'float32' ? new Float32Array(size) : new Float64Array(size);
}

/** Copies a float64 accumulator into a fresh array with the dtype of `like` (rounds once). */
export function fromAccumulator(like: NumArray, acc: Float64Array): NumArray {
  const out = newLike(like, acc.length);
  out.set(acc);
  return out;
}

export function checkPositiveInts(params: object, names: readonly string[], kernel: string): void {
  const record = params as Record<string, unknown>;
  for (const name of names) {
    const v = record[name];
    check(typeof v === 'number' && Number.isInteger(v) && v > 0, `${kernel}: ${name} must be a positive integer, got ${String(v)}`);
  }
}

export function checkNonNegativeInts(params: object, names: readonly string[], kernel: string): void {
  const record = params as Record<string, unknown>;
  for (const name of names) {
    const v = record[name];
    check(typeof v === 'number' && Number.isInteger(v) && v >= 0, `${kernel}: ${name} must be a non-negative integer, got ${String(v)}`);
  }
}

/**
 * The one output-size rule of every sliding window (convolution and pooling):
 * out = floor((in + padBefore + padAfter − dilation·(kernel − 1) − 1) / stride) + 1.
 * The caller resolved the output size; the reference asserts it agrees.
 */
export function checkWindowOutput(
  kernel: string,
  axis: string,
  inSize: number,
  outSize: number,
  window: number,
  stride: number,
  dilation: number,
  padBefore: number,
  padAfter: number,
): void {
  const span = dilation * (window - 1) + 1;
  const padded = inSize + padBefore + padAfter;
  check(padded >= span, `${kernel}: ${axis} window spans ${span} but the padded input has only ${padded}`);
  const expected = Math.floor((padded - span) / stride) + 1;
  check(
    outSize === expected,
    `${kernel}: output ${axis} ${outSize} disagrees with input ${inSize}, window ${window}, stride ${stride}, ` +
      `dilation ${dilation}, padding ${padBefore}+${padAfter} (expected ${expected})`,
  );
}
