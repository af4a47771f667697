/** Seeded random arrays and closeness assertions shared by backend tests. */
import assert from 'node:assert/strict';
import type { Random } from '../../src/core/random.js';

/** Uniform values in [lo, hi), float64. */
export function randomArray(rng: Random, size: number, lo = -1, hi = 1): Float64Array {
  const a = new Float64Array(size);
  for (let i = 0; i < size; i++) a[i] = rng.uniform(lo, hi);
  return a;
}

/**
 * Values at least `margin` away from zero (either sign), for functions with a kink at 0 (ReLU,
 * ELU with alpha ≠ 1): a finite-difference step then never crosses the kink.
 */
export function awayFromZero(rng: Random, size: number, margin = 0.1, magnitude = 1): Float64Array {
  const a = new Float64Array(size);
  for (let i = 0; i < size; i++) {
    const v = rng.uniform(margin, magnitude);
    a[i] = rng.next() < 0.5 ? -v : v;
  }
  return a;
}

/**
 * Pairwise distinct values (a shuffled grid of step `gap` plus jitter below gap/4), centred on
 * zero, so no max is tied and a small perturbation never changes an argmax.
 */
export function distinctArray(rng: Random, size: number, gap = 0.01): Float64Array {
  const order = rng.permutation(size);
  const a = new Float64Array(size);
  for (let i = 0; i < size; i++) a[i] = (order[i] - size / 2) * gap + rng.uniform(-gap / 4, gap / 4);
  return a;
}

export function toFloat32(a: ArrayLike<number>): Float32Array {
  return Float32Array.from(a);
}

export interface Tolerance {
  /** Allowed |actual − expected| relative to |expected|. */
  rtol: number;
  /** Allowed absolute difference, for expected values near zero. */
  atol: number;
}

/** Largest |actual − expected| / (atol + rtol·|expected|); ≤ 1 means every element passes. */
export function worstRatio(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance): { ratio: number; index: number } {
  let ratio = 0,
    index = -1;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    const r = err / (tol.atol + tol.rtol * Math.abs(expected[i]));
    if (!(r <= ratio)) {
      ratio = r;
      index = i;
    }
  }
  return { ratio, index };
}

/** Element-wise closeness with a message naming the first offending element. */
export function assertAllClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance, label: string): void {
  assert.equal(actual.length, expected.length, `${label}: length ${actual.length}, expected ${expected.length}`);
  const { ratio, index } = worstRatio(actual, expected, tol);
  assert.ok(
    ratio <= 1,
    `${label}: element ${index} is ${actual[index]}, expected ${expected[index]} ` +
      `(error ${Math.abs(actual[index] - expected[index]).toExponential(2)}, rtol ${tol.rtol}, atol ${tol.atol})`,
  );
}
