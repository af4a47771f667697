import type { Backend, DType } from './backend.js';
import { getBackend } from './engine.js';
import { ShapeError, shapeToString } from './errors.js';
import { Tensor, sizeOf } from './tensor.js';

export interface CreateOptions {
  backend?: Backend;
  dtype?: DType;
}

/** A tensor holding a copy of `data` (float32 unless dtype says float64). */
export function tensor(data: ArrayLike<number>, shape: readonly number[], opts: CreateOptions = {}): Tensor {
  const backend = opts.backend ?? getBackend();
  const dtype = opts.dtype ?? (data instanceof Float64Array ? 'float64' : 'float32');
  const n = sizeOf(shape);
  if (data.length !== n) {
    throw new ShapeError(`tensor: ${data.length} values do not fill shape ${shapeToString(shape)} (${n} values)`);
  }
  if (!backend.dtypes.includes(dtype)) throw new ShapeError(`backend '${backend.name}' does not compute in ${dtype}`);
  const arr = dtype === 'float64' ? Float64Array.from(data) : data instanceof Float32Array ? data : Float32Array.from(data);
  return new Tensor(backend, backend.upload(arr), shape, dtype);
}

export function zeros(shape: readonly number[], opts: CreateOptions = {}): Tensor {
  const backend = opts.backend ?? getBackend();
  const dtype = opts.dtype ?? 'float32';
  return new Tensor(backend, backend.zeros(sizeOf(shape), dtype), shape, dtype);
}

export function fill(shape: readonly number[], value: number, opts: CreateOptions = {}): Tensor {
  const n = sizeOf(shape);
  const arr = opts.dtype === 'float64' ? new Float64Array(n) : new Float32Array(n);
  arr.fill(value);
  return tensor(arr, shape, opts);
}

export function ones(shape: readonly number[], opts: CreateOptions = {}): Tensor {
  return fill(shape, 1, opts);
}

/** The same values on another backend (through the public NHWC layout). */
export function toBackend(t: Tensor, backend: Backend): Tensor {
  if (t.backend === backend) return t;
  return new Tensor(backend, backend.upload(t.dataRaw()), t.shape, t.dtype);
}
