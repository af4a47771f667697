/**
 * Central finite differences in float64, for checking backward kernels against their forward.
 *
 * A kernel y = f(x) is reduced to the scalar loss L = Σ y·r for a fixed random r, whose exact
 * gradient is the backward kernel applied to dy = r. Each input element is moved by ±eps:
 *   ∂L/∂x_i ≈ (L(x + eps·e_i) − L(x − eps·e_i)) / (2·eps),
 * with truncation error O(eps²) and rounding error about 1e-16·|L|/eps.
 */
import type { Tolerance } from './arrays.js';
import { assertAllClose } from './arrays.js';

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`dot: lengths ${a.length} and ${b.length} differ`);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** The numerical gradient of `loss` at x (x is restored afterwards). */
export function numericGradient(loss: (x: Float64Array) => number, x: Float64Array, eps = 1e-6): Float64Array {
  const grad = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const saved = x[i];
    x[i] = saved + eps;
    const plus = loss(x);
    x[i] = saved - eps;
    const minus = loss(x);
    x[i] = saved;
    grad[i] = (plus - minus) / (2 * eps);
  }
  return grad;
}

/**
 * Tolerance for analytic-vs-central-difference gradients in float64 at eps = 1e-6. Rounding in
 * the loss (about 1e-16·|L| per term, divided by 2·eps) leaves errors up to ~5e-9 on these
 * small problems, so atol sits a few times above that; a wrong gradient is off by ~1e-2 or more.
 */
export const GRADIENT_TOLERANCE: Tolerance = { rtol: 1e-6, atol: 3e-8 };

/** Asserts an analytic gradient equals the central-difference gradient of `loss` at x. */
export function assertGradient(
  analytic: ArrayLike<number>,
  loss: (x: Float64Array) => number,
  x: Float64Array,
  label: string,
  tol: Tolerance = GRADIENT_TOLERANCE,
): void {
  assertAllClose(analytic, numericGradient(loss, x), tol, label);
}

/**
 * The float32 form of the check, for backends that compute only in float32: along a random
 * direction, the central difference of `loss` must match the analytic gradient. With x± the
 * float32-rounded points x ± eps·d and δ = (x+ − x−)/2 (the step actually taken),
 *   (L(x+) − L(x−))/2 ≈ Σ_i grad_i·δ_i,
 * within rtol (1e-3) of Σ_i |grad_i·δ_i|: rounding in float32 stays ~1e-5 of that and the O(eps²) error
 * ~1e-6, while a wrong gradient term is off by a sizeable fraction of it.
 */
export function assertDirectionalGradient(
  analytic: ArrayLike<number>,
  loss: (x: Float32Array) => number,
  x: Float32Array,
  direction: ArrayLike<number>,
  label: string,
  { eps = 1e-3, rtol = 1e-3 } = {},
): void {
  const plus = Float32Array.from(x, (v, i) => v + eps * direction[i]!);
  const minus = Float32Array.from(x, (v, i) => v - eps * direction[i]!);
  let predicted = 0,
    scale = 0;
  for (let i = 0; i < x.length; i++) {
    const step = (plus[i]! - minus[i]!) / 2;
    predicted += analytic[i]! * step;
    scale += Math.abs(analytic[i]! * step);
  }
  const measured = (loss(plus) - loss(minus)) / 2;
  const err = Math.abs(measured - predicted);
  if (!(err <= rtol * scale)) {
    throw new Error(
      `${label}: directional derivative ${measured} vs analytic ${predicted} (error ${err.toExponential(2)}, scale ${scale.toExponential(2)})`,
    );
  }
}
