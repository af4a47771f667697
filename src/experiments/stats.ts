/**
 * The small statistics the experiment report needs: mean, sample standard deviation, Student's t
 * confidence intervals, and Welch's interval for the difference of two means.
 */

export function mean(xs: readonly number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

/** Sample standard deviation (n − 1); 0 for a single value, NaN for none. */
export function std(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  if (xs.length === 1) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) * (x - m), 0) / (xs.length - 1));
}

/** ln Γ(x) for x > 0 (Lanczos approximation, g = 7, 9 terms; ~15 digits). */
function lnGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
    -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  x -= 1;
  let a = c[0]!;
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of the incomplete beta function (modified Lentz). */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1,
    d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return h;
}

/** Regularized incomplete beta I_x(a, b). */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  return x < (a + 1) / (a + b + 2) ? (front * betaContinuedFraction(a, b, x)) / a : 1 - (front * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** P(T ≤ t) for Student's t with df degrees of freedom (df may be fractional, as Welch's). */
export function studentTCdf(t: number, df: number): number {
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** The t with P(T ≤ t) = p (bisection; p in (0, 1)). */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1) || !(df > 0)) return NaN;
  if (p < 0.5) return -studentTQuantile(1 - p, df);
  let lo = 0,
    hi = 1;
  while (studentTCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

export interface Interval {
  mean: number;
  low: number;
  high: number;
  /** Half-width. */
  margin: number;
}

/** Mean with its Student's t confidence interval (default 95%); NaN bounds for fewer than 2 values. */
export function confidenceInterval(xs: readonly number[], level = 0.95): Interval {
  const m = mean(xs);
  if (xs.length < 2) return { mean: m, low: NaN, high: NaN, margin: NaN };
  const margin = studentTQuantile(1 - (1 - level) / 2, xs.length - 1) * (std(xs) / Math.sqrt(xs.length));
  return { mean: m, low: m - margin, high: m + margin, margin };
}

/** Welch's confidence interval for mean(a) − mean(b) (unequal variances). */
export function differenceInterval(a: readonly number[], b: readonly number[], level = 0.95): Interval & { df: number } {
  const d = mean(a) - mean(b);
  if (a.length < 2 || b.length < 2) return { mean: d, low: NaN, high: NaN, margin: NaN, df: NaN };
  const va = std(a) ** 2 / a.length,
    vb = std(b) ** 2 / b.length;
  const se = Math.sqrt(va + vb);
  if (se === 0) return { mean: d, low: d, high: d, margin: 0, df: Infinity };
  const df = (va + vb) ** 2 / ((va * va) / (a.length - 1) + (vb * vb) / (b.length - 1));
  const margin = studentTQuantile(1 - (1 - level) / 2, df) * se;
  return { mean: d, low: d - margin, high: d + margin, margin, df };
}

/** The most seeds a power calculation reports; beyond it a decision is called out of reach. */
export const MAX_SEEDS_NEEDED = 1000;

/**
 * Seeds per variant (equal for both) at which the 95% Welch interval of a difference of means
 * becomes narrower than `distance` — the gap between the observed difference and the decision's
 * boundary (zero, or a margin) — assuming the observed standard deviations `sdA`, `sdB` and the
 * observed difference stay as they are. Infinity when the difference sits on the boundary
 * (distance ≤ 0) or more than MAX_SEEDS_NEEDED seeds would be needed.
 */
export function seedsNeeded(sdA: number, sdB: number, distance: number, level = 0.95): number {
  if (!(distance > 0) || !Number.isFinite(sdA) || !Number.isFinite(sdB)) return Infinity;
  const va = sdA * sdA,
    vb = sdB * sdB;
  if (va + vb === 0) return 2;
  for (let n = 2; n <= MAX_SEEDS_NEEDED; n++) {
    // Welch's degrees of freedom with n values on each side.
    const df = ((va + vb) ** 2 * (n - 1)) / (va * va + vb * vb);
    const halfWidth = studentTQuantile(1 - (1 - level) / 2, df) * Math.sqrt((va + vb) / n);
    if (halfWidth < distance) return n;
  }
  return Infinity;
}

/**
 * The 95% prediction interval of one new value drawn like `xs` (mean ± t·sd·√(1 + 1/n)): where a
 * re-run of one seed should land if nothing but chance differs.
 */
export function predictionInterval(xs: readonly number[], level = 0.95): Interval {
  const m = mean(xs);
  if (xs.length < 2) return { mean: m, low: NaN, high: NaN, margin: NaN };
  const margin = studentTQuantile(1 - (1 - level) / 2, xs.length - 1) * std(xs) * Math.sqrt(1 + 1 / xs.length);
  return { mean: m, low: m - margin, high: m + margin, margin };
}
