import type { Backend, DType, Handle, NumArray } from './backend.js';
import { DisposedError, ShapeError, shapeToString } from './errors.js';
import { trackTensor } from './engine.js';

/**
 * Backend memory shared by tensors that view the same data (a reshape shares its source's
 * storage). Freed when the last tensor viewing it is disposed.
 */
class Storage {
  refs = 1;
  constructor(
    readonly backend: Backend,
    public handle: Handle | null,
  ) {}
  release(): void {
    if (--this.refs === 0 && this.handle !== null) {
      this.backend.dispose(this.handle);
      this.handle = null;
    }
  }
}

/** What autograd recorded about the op that produced a tensor. */
export interface GradNode {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  /** Given d(loss)/d(output), returns d(loss)/d(input) for each input (null where not needed). */
  readonly backward: (dy: Tensor) => (Tensor | null)[];
}

let nextTensorId = 0;

/**
 * An immutable n-dimensional array on one backend. Public tensors are NHWC float32; float64
 * exists on the reference backend for gradient checks.
 */
export class Tensor {
  readonly id = nextTensorId++;
  readonly shape: readonly number[];
  readonly size: number;
  /** True for leaves whose gradient should be kept in `.grad` (trainable weights). */
  requiresGrad = false;
  grad: Tensor | null = null;
  /** Set on outputs of recorded ops; cleared after backward. */
  node: GradNode | null = null;
  /**
   * Bumped by every in-place writer (optimizer updates), so that copies of the contents made
   * elsewhere (compiled inference plans) can tell they are stale.
   */
  version = 0;
  private storage: Storage | null;

  constructor(
    readonly backend: Backend,
    handle: Handle | Storage,
    shape: readonly number[],
    readonly dtype: DType = 'float32',
  ) {
    this.shape = Object.freeze([...shape]);
    this.size = sizeOf(shape);
    if (handle instanceof Storage) {
      handle.refs++;
      this.storage = handle;
    } else {
      this.storage = new Storage(backend, handle);
    }
    trackTensor(this);
  }

  get rank(): number {
    return this.shape.length;
  }

  get isDisposed(): boolean {
    return this.storage === null || this.storage.handle === null;
  }

  /** The backend handle; throws DisposedError after dispose(). */
  get handle(): Handle {
    const h = this.storage?.handle;
    if (!h) throw new DisposedError(`tensor #${this.id} ${shapeToString(this.shape)} was used after dispose()`);
    return h;
  }

  /** A copy of the values in logical (NHWC, row-major) order. */
  data(): Float32Array {
    return this.backend.download(this.handle, this.size, 'float32') as Float32Array;
  }

  /** A copy in this tensor's own dtype. */
  dataRaw(): NumArray {
    return this.backend.download(this.handle, this.size, this.dtype);
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new ShapeError(`item() needs a one-element tensor, got ${shapeToString(this.shape)}`);
    return this.dataRaw()[0]!;
  }

  /** A view with another shape of the same size (shares memory). */
  reshape(shape: readonly number[]): Tensor {
    const storage = this.storageOrThrow();
    return new Tensor(this.backend, storage, resolveReshape(this.shape, shape), this.dtype);
  }

  dispose(): void {
    if (this.storage) {
      this.storage.release();
      this.storage = null;
    }
    this.node = null;
  }

  toString(): string {
    return `Tensor(${shapeToString(this.shape)}, ${this.dtype}, ${this.backend.name})`;
  }

  /** @internal */
  storageOrThrow(): Storage {
    if (!this.storage || this.storage.handle === null) void this.handle; // throws DisposedError
    return this.storage!;
  }
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`invalid dimension ${d} in shape ${shapeToString(shape)}`);
    n *= d;
  }
  return n;
}

/** Resolves one -1 and checks the sizes agree. */
export function resolveReshape(from: readonly number[], to: readonly number[]): number[] {
  const size = sizeOf(from);
  const unknown = to.filter((d) => d === -1).length;
  if (unknown > 1) throw new ShapeError(`reshape to ${shapeToString(to)}: at most one -1`);
  const known = to.reduce((a, d) => (d === -1 ? a : a * d), 1);
  const out = to.map((d) => (d === -1 ? (known === 0 ? 0 : size / known) : d));
  if (out.some((d) => !Number.isInteger(d) || d < 0) || sizeOf(out) !== size) {
    throw new ShapeError(`cannot reshape ${shapeToString(from)} (${size} values) to ${shapeToString(to)}`);
  }
  return out;
}
