/** One named float32 tensor as stored in a weight file. `data` is row-major (C order). */
export interface NamedWeight {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** Number of elements of `shape`, or -1 if a dimension is not a non-negative safe integer or the product overflows. */
export function elementCount(shape: readonly unknown[]): number {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) return -1;
    n *= d;
    if (!Number.isSafeInteger(n)) return -1;
  }
  return n;
}

export function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
