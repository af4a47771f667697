/*
 * Batch norm over [rows, channels] (train, inference, backward, each with the fused ReLU) and
 * the per-channel sums it shares with sumRows. Sums run in float64 like the reference's.
 * `acc` is scratch for 2·channels doubles.
 */
#include "kernels.h"

static void column_sums(const float *x, int rows, int C, double *sum) {
  for (int c = 0; c < C; c++) sum[c] = 0;
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * C;
    for (int c = 0; c < C; c++) sum[c] += xr[c];
  }
}

void EXPORT(sum_rows)(const float *x, int rows, int C, float *out, double *acc) {
  column_sums(x, rows, C, acc);
  for (int c = 0; c < C; c++) out[c] = (float)acc[c];
}

/* y = x·factor + offset per channel, then max(0, ·) when relu (NaN stays NaN). The per-channel
 * coefficients come from float64; the per-element work is float32 SIMD (error ~1e-7 relative). */
static void normalize(const float *x, int rows, int C, const float *restrict factor, const float *restrict offset, int relu,
                      float *restrict y) {
  for (int r = 0; r < rows; r++) {
    const float *restrict xr = x + (size_t)r * C;
    float *restrict yr = y + (size_t)r * C;
    if (relu)
      for (int c = 0; c < C; c++) {
        float v = xr[c] * factor[c] + offset[c];
        yr[c] = v <= 0 ? 0.0f : v;
      }
    else
      for (int c = 0; c < C; c++) yr[c] = xr[c] * factor[c] + offset[c];
  }
}

/* acc: 2·C doubles of space, used as 2·C floats. */
static void normalize_with(const float *x, int rows, int C, const float *gamma, const float *beta, const double *mean,
                           const double *var, double eps, int relu, float *y, double *acc) {
  float *factor = (float *)acc, *offset = factor + C;
  for (int c = 0; c < C; c++) {
    double f = gamma[c] / __builtin_sqrt(var[c] + eps);
    factor[c] = (float)f;
    offset[c] = (float)(beta[c] - mean[c] * f);
  }
  normalize(x, rows, C, factor, offset, relu, y);
}

void EXPORT(batchnorm_train)(const float *x, int rows, int C, const float *gamma, const float *beta, double eps, int relu, float *y,
                             float *meanOut, float *varOut, double *acc) {
  /* acc holds 4·C doubles here: mean, variance, then normalize's factor and offset. */
  double *mean = acc, *var = acc + C;
  column_sums(x, rows, C, mean);
  for (int c = 0; c < C; c++) mean[c] /= rows, var[c] = 0;
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * C;
    for (int c = 0; c < C; c++) {
      double d = xr[c] - mean[c];
      var[c] += d * d;
    }
  }
  for (int c = 0; c < C; c++) {
    var[c] /= rows;
    meanOut[c] = (float)mean[c];
    varOut[c] = (float)var[c];
  }
  normalize_with(x, rows, C, gamma, beta, mean, var, eps, relu, y, acc + 2 * C);
}

void EXPORT(batchnorm_inference)(const float *x, int rows, int C, const float *gamma, const float *beta, const float *meanIn,
                                 const float *varIn, double eps, int relu, float *y, double *acc) {
  /* acc holds 4·C doubles. */
  double *mean = acc, *var = acc + C;
  for (int c = 0; c < C; c++) mean[c] = meanIn[c], var[c] = varIn[c];
  normalize_with(x, rows, C, gamma, beta, mean, var, eps, relu, y, acc + 2 * C);
}

/* dx = gamma·invStd/R · (R·dy − Σdy − x̂·Σdy·x̂), written per channel as k1·dy + k2·(x − mean) + k3
 * with the sums in float64 and the per-element work in float32; dy is masked where y ≤ 0 when y is
 * given. */
static void masked_sums(const float *dy, const float *x, const float *mean, const float *y, int rows, int C, double *sumDy,
                        double *sumDyXc) {
  for (int c = 0; c < C; c++) sumDy[c] = 0, sumDyXc[c] = 0;
  for (int r = 0; r < rows; r++) {
    size_t base = (size_t)r * C;
    for (int c = 0; c < C; c++) {
      float g = y && y[base + c] <= 0 ? 0.0f : dy[base + c];
      sumDy[c] += g;
      sumDyXc[c] += (double)g * (x[base + c] - mean[c]);
    }
  }
}

void EXPORT(batchnorm_backward)(const float *dy, const float *x, const float *gamma, const float *mean, const float *var, int rows, int C,
                                double eps, const float *y, float *dx, float *dgamma, float *dbeta, double *acc) {
  /* acc: 4·C doubles: the two sums, then the three float coefficients. */
  double *sumDy = acc, *sumDyXc = acc + C;
  float *k1 = (float *)(acc + 2 * C), *k2 = k1 + C, *k3 = k2 + C;
  masked_sums(dy, x, mean, y, rows, C, sumDy, sumDyXc);
  for (int c = 0; c < C; c++) {
    double invStd = 1 / __builtin_sqrt((double)var[c] + eps);
    double sumDyXhat = sumDyXc[c] * invStd;
    dgamma[c] = (float)sumDyXhat;
    dbeta[c] = (float)sumDy[c];
    k1[c] = (float)(gamma[c] * invStd);
    k2[c] = (float)(-gamma[c] * invStd * invStd * sumDyXhat / rows);
    k3[c] = (float)(-gamma[c] * invStd * sumDy[c] / rows);
  }
  for (int r = 0; r < rows; r++) {
    size_t base = (size_t)r * C;
    for (int c = 0; c < C; c++) {
      float g = y && y[base + c] <= 0 ? 0.0f : dy[base + c];
      dx[base + c] = k1[c] * g + k2[c] * (x[base + c] - mean[c]) + k3[c];
    }
  }
}
