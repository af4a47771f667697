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

/* y = x·factor + offset per channel, then max(0, ·) when relu (NaN stays NaN). */
static void normalize(const float *x, int rows, int C, const double *factor, const double *offset, int relu, float *y) {
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * C;
    float *yr = y + (size_t)r * C;
    for (int c = 0; c < C; c++) {
      float v = (float)(xr[c] * factor[c] + offset[c]);
      yr[c] = relu && v <= 0 ? 0.0f : v;
    }
  }
}

static void normalize_with(const float *x, int rows, int C, const float *gamma, const float *beta, const double *mean,
                           const double *var, double eps, int relu, float *y, double *acc) {
  double *factor = acc, *offset = acc + C;
  for (int c = 0; c < C; c++) {
    double f = gamma[c] / __builtin_sqrt(var[c] + eps);
    double o = beta[c] - mean[c] * f;
    factor[c] = f;
    offset[c] = o;
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

/* dx = gamma·invStd/R · (R·dy − Σdy − x̂·Σdy·x̂); dy is masked where y ≤ 0 when y is given. acc: 3·C doubles. */
void EXPORT(batchnorm_backward)(const float *dy, const float *x, const float *gamma, const float *mean, const float *var, int rows, int C,
                                double eps, const float *y, float *dx, float *dgamma, float *dbeta, double *acc) {
  double *invStd = acc, *sumDy = acc + C, *sumDyXhat = acc + 2 * C;
  for (int c = 0; c < C; c++) invStd[c] = 1 / __builtin_sqrt((double)var[c] + eps), sumDy[c] = 0, sumDyXhat[c] = 0;
  for (int r = 0; r < rows; r++) {
    size_t base = (size_t)r * C;
    for (int c = 0; c < C; c++) {
      double g = y && y[base + c] <= 0 ? 0 : dy[base + c];
      sumDy[c] += g;
      sumDyXhat[c] += g * (x[base + c] - mean[c]) * invStd[c];
    }
  }
  for (int r = 0; r < rows; r++) {
    size_t base = (size_t)r * C;
    for (int c = 0; c < C; c++) {
      double g = y && y[base + c] <= 0 ? 0 : dy[base + c];
      double xhat = (x[base + c] - mean[c]) * invStd[c];
      dx[base + c] = (float)(gamma[c] * invStd[c] / rows * (rows * g - sumDy[c] - xhat * sumDyXhat[c]));
    }
  }
  for (int c = 0; c < C; c++) dgamma[c] = (float)sumDyXhat[c], dbeta[c] = (float)sumDy[c];
}
