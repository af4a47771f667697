/* exp and log in double precision without libc (~1e-15 relative): the float32 kernels that need
 * them (softmax, losses, ELU) round once at the end, like the reference's float64 loops. */
#include "kernels.h"

static double scale_by_power_of_two(double x, int k) {
  /* x·2^k through the exponent bits, in two steps so that subnormal and large k stay exact. */
  union { double d; unsigned long long u; } s;
  int half = k / 2;
  s.u = (unsigned long long)(half + 1023) << 52;
  x *= s.d;
  s.u = (unsigned long long)(k - half + 1023) << 52;
  return x * s.d;
}

double exp_d(double x) {
  if (x != x) return x;
  if (x > 709.78) return __builtin_inf();
  if (x < -745.2) return 0.0;
  const double ln2 = 0.6931471805599453;
  double kf = __builtin_nearbyint(x / ln2);
  int k = (int)kf;
  /* r = x − k·ln2 in two parts (Cody–Waite), |r| ≤ ln2/2. */
  double r = (x - kf * 0.6931471803691238) - kf * 1.9082149292705877e-10;
  double term = 1.0, sum = 1.0;
  for (int i = 1; i <= 14; i++) {
    term *= r / i;
    sum += term;
  }
  return scale_by_power_of_two(sum, k);
}

double log_d(double x) {
  if (x != x || x < 0) return __builtin_nan("");
  if (x == 0) return -__builtin_inf();
  if (x == __builtin_inf()) return x;
  union { double d; unsigned long long u; } v = {x};
  int e = (int)((v.u >> 52) & 0x7ff);
  if (e == 0) { /* subnormal: scale into the normal range first */
    v.d = x * 4503599627370496.0; /* 2^52 */
    e = (int)((v.u >> 52) & 0x7ff) - 52;
  }
  e -= 1023;
  v.u = (v.u & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL; /* mantissa m in [1, 2) */
  double m = v.d;
  if (m > 1.4142135623730951) {
    m *= 0.5;
    e += 1;
  }
  /* log m = 2·atanh(s), s = (m−1)/(m+1), |s| ≤ 0.172. */
  double s = (m - 1) / (m + 1), s2 = s * s, term = s, sum = 0;
  for (int i = 1; i <= 41; i += 2) {
    sum += term / i;
    term *= s2;
  }
  return 2 * sum + e * 0.6931471805599453;
}
