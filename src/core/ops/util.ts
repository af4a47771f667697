import { BackendError, ShapeError, shapeToString } from '../errors.js';
import type { Handle } from '../backend.js';
import { Tensor as TensorClass, type Tensor } from '../tensor.js';

/** All inputs must live on one backend in one dtype. */
export function checkSameBackend(op: string, ...ts: Tensor[]): void {
  const first = ts[0]!;
  for (const t of ts) {
    void t.handle; // throws DisposedError for a disposed input
    if (t.backend !== first.backend) {
      throw new BackendError(`${op}: inputs are on different backends (${first.backend.name} and ${t.backend.name})`);
    }
    if (t.dtype !== first.dtype) {
      throw new ShapeError(`${op}: inputs have different dtypes (${first.dtype} and ${t.dtype})`);
    }
  }
}

export function checkRank(op: string, name: string, t: Tensor, rank: number): void {
  if (t.rank !== rank) {
    throw new ShapeError(`${op}: ${name} must have rank ${rank}, got ${shapeToString(t.shape)}`);
  }
}

export function checkSameShape(op: string, a: Tensor, b: Tensor): void {
  if (a.rank !== b.rank || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new ShapeError(`${op}: shapes differ: ${shapeToString(a.shape)} vs ${shapeToString(b.shape)}`);
  }
}

/** Whether autograd will want a gradient for this input. */
export function wants(t: Tensor): boolean {
  return t.requiresGrad || t.node !== null;
}

/** rows × channels view of an NHWC (or [N, C]) tensor. */
export function rowsOf(t: Tensor): { rows: number; channels: number } {
  const channels = t.shape[t.rank - 1] ?? 1;
  return { rows: channels === 0 ? 0 : t.size / channels, channels };
}

/** A gradient tensor (never itself recorded: this library does not do double backward). */
export function makeGrad(like: Tensor, h: Handle, shape: readonly number[]): Tensor {
  return new TensorClass(like.backend, h, shape, like.dtype);
}
