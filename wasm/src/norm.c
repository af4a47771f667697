/*
 * Batch norm over [rows, channels] (train, inference, backward, each with the fused ReLU) and
 * the per-channel sums it shares with sumRows. Sums run in float64 like the reference's.
 * `acc` is scratch for 2·channels doubles. Threads split channels [c0, c1), so every sum runs in the
 * same order as on one thread (bitwise the same result).
 */
#include <wasm_simd128.h>
#include "kernels.h"

static void column_sums(const float *x, int rows, int C, int c0, int c1, double *sum) {
  for (int c = c0; c < c1; c++) sum[c] = 0;
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * C;
    for (int c = c0; c < c1; c++) sum[c] += xr[c];
  }
}

/* The arguments of every kernel here (each uses the fields it names) and the kernel to run. */
typedef struct NormJob {
  void (*fn)(const struct NormJob *j, int c0, int c1);
  const float *x, *dy, *y, *gamma, *beta, *mean, *var;
  float *out, *meanOut, *varOut, *dgamma, *dbeta;
  int rows, C, relu;
  double eps;
  double *acc;
} NormJob;

static void norm_task(void *ctx, int tid, int n) {
  const NormJob *j = ctx;
  int c0, c1;
  split_range(j->C, tid, n, 4, &c0, &c1);
  if (c1 > c0) j->fn(j, c0, c1);
}

static void run_norm(void (*fn)(const NormJob *j, int c0, int c1), NormJob *j) {
  j->fn = fn;
  parallel_run(norm_task, j, (double)j->rows * j->C);
}

static void sum_rows_range(const NormJob *j, int c0, int c1) {
  column_sums(j->x, j->rows, j->C, c0, c1, j->acc);
  for (int c = c0; c < c1; c++) j->out[c] = (float)j->acc[c];
}

void EXPORT(sum_rows)(const float *x, int rows, int C, float *out, double *acc) {
  NormJob j = {.x = x, .out = out, .rows = rows, .C = C, .acc = acc};
  run_norm(sum_rows_range, &j);
}

/* y = x·factor + offset per channel, then max(0, ·) when relu (NaN stays NaN). The per-channel
 * coefficients come from float64; the per-element work is float32 SIMD (error ~1e-7 relative). */
static void normalize(const float *x, int rows, int C, int c0, int c1, const float *restrict factor, const float *restrict offset,
                      int relu, float *restrict y) {
  for (int r = 0; r < rows; r++) {
    const float *restrict xr = x + (size_t)r * C;
    float *restrict yr = y + (size_t)r * C;
    if (relu)
      for (int c = c0; c < c1; c++) {
        float v = xr[c] * factor[c] + offset[c];
        yr[c] = v <= 0 ? 0.0f : v;
      }
    else
      for (int c = c0; c < c1; c++) yr[c] = xr[c] * factor[c] + offset[c];
  }
}

/* acc: 2·C doubles of space, used as 2·C floats. */
static void normalize_with(const NormJob *j, int c0, int c1, const double *mean, const double *var, double *acc) {
  int C = j->C;
  float *factor = (float *)acc, *offset = factor + C;
  for (int c = c0; c < c1; c++) {
    double f = j->gamma[c] / __builtin_sqrt(var[c] + j->eps);
    factor[c] = (float)f;
    offset[c] = (float)(j->beta[c] - mean[c] * f);
  }
  normalize(j->x, j->rows, C, c0, c1, factor, offset, j->relu, j->out);
}

/* acc holds 4·C doubles here: mean, variance, then normalize's factor and offset. */
static void batchnorm_train_range(const NormJob *j, int c0, int c1) {
  int rows = j->rows, C = j->C;
  double *mean = j->acc, *var = j->acc + C;
  column_sums(j->x, rows, C, c0, c1, mean);
  for (int c = c0; c < c1; c++) mean[c] /= rows, var[c] = 0;
  for (int r = 0; r < rows; r++) {
    const float *xr = j->x + (size_t)r * C;
    for (int c = c0; c < c1; c++) {
      double d = xr[c] - mean[c];
      var[c] += d * d;
    }
  }
  for (int c = c0; c < c1; c++) {
    var[c] /= rows;
    j->meanOut[c] = (float)mean[c];
    j->varOut[c] = (float)var[c];
  }
  normalize_with(j, c0, c1, mean, var, j->acc + 2 * C);
}

void EXPORT(batchnorm_train)(const float *x, int rows, int C, const float *gamma, const float *beta, double eps, int relu, float *y,
                             float *meanOut, float *varOut, double *acc) {
  NormJob j = {.x = x, .gamma = gamma, .beta = beta, .out = y, .meanOut = meanOut, .varOut = varOut};
  j.rows = rows, j.C = C, j.relu = relu, j.eps = eps, j.acc = acc;
  run_norm(batchnorm_train_range, &j);
}

/* acc holds 4·C doubles. */
static void batchnorm_inference_range(const NormJob *j, int c0, int c1) {
  double *mean = j->acc, *var = j->acc + j->C;
  for (int c = c0; c < c1; c++) mean[c] = j->mean[c], var[c] = j->var[c];
  normalize_with(j, c0, c1, mean, var, j->acc + 2 * j->C);
}

void EXPORT(batchnorm_inference)(const float *x, int rows, int C, const float *gamma, const float *beta, const float *meanIn,
                                 const float *varIn, double eps, int relu, float *y, double *acc) {
  NormJob j = {.x = x, .gamma = gamma, .beta = beta, .mean = meanIn, .var = varIn, .out = y};
  j.rows = rows, j.C = C, j.relu = relu, j.eps = eps, j.acc = acc;
  run_norm(batchnorm_inference_range, &j);
}

/* dx = gamma·invStd/R · (R·dy − Σdy − x̂·Σdy·x̂), written per channel as k1·dy + k2·(x − mean) + k3
 * with the per-element work in float32; dy is masked where y ≤ 0 when y is given. */

/* Rows summed in float32 SIMD before each partial sum is added into the float64 totals. */
#define SUM_BLOCK 32

static v128_t masked(const float *y, const float *dy, size_t at) {
  v128_t g = wasm_v128_load(dy + at);
  if (!y) return g;
  v128_t zero = wasm_f32x4_splat(0);
  return wasm_v128_bitselect(zero, g, wasm_f32x4_le(wasm_v128_load(y + at), zero));
}

static void add_f64(double *to, v128_t s) {
  v128_t lo = wasm_f64x2_promote_low_f32x4(s), hi = wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(s, s, 2, 3, 0, 1));
  wasm_v128_store(to, wasm_f64x2_add(wasm_v128_load(to), lo));
  wasm_v128_store(to + 2, wasm_f64x2_add(wasm_v128_load(to + 2), hi));
}

/* Σ masked dy and Σ masked dy·(x − mean) per channel in [c0, c1): float32 over blocks of rows,
 * float64 across blocks. */
static void masked_sums(const NormJob *j, int c0, int c1, double *sumDy, double *sumDyXc) {
  const float *dy = j->dy, *x = j->x, *y = j->y, *mean = j->mean;
  int C = j->C, c4 = c0 + (c1 - c0) / 4 * 4;
  for (int c = c0; c < c1; c++) sumDy[c] = 0, sumDyXc[c] = 0;
  for (int r0 = 0; r0 < j->rows; r0 += SUM_BLOCK) {
    int r1 = min_int(j->rows, r0 + SUM_BLOCK);
    for (int c = c0; c < c4; c += 4) {
      v128_t s1 = wasm_f32x4_splat(0), s2 = s1, m = wasm_v128_load(mean + c);
      for (int r = r0; r < r1; r++) {
        size_t at = (size_t)r * C + c;
        v128_t g = masked(y, dy, at);
        s1 = wasm_f32x4_add(s1, g);
        s2 = wasm_f32x4_add(s2, wasm_f32x4_mul(g, wasm_f32x4_sub(wasm_v128_load(x + at), m)));
      }
      add_f64(sumDy + c, s1);
      add_f64(sumDyXc + c, s2);
    }
    for (int c = c4; c < c1; c++)
      for (int r = r0; r < r1; r++) {
        size_t at = (size_t)r * C + c;
        float g = y && y[at] <= 0 ? 0.0f : dy[at];
        sumDy[c] += g;
        sumDyXc[c] += g * (x[at] - mean[c]);
      }
  }
}

/* acc: 4·C doubles: the two sums, then the three float coefficients. */
static void batchnorm_backward_range(const NormJob *j, int c0, int c1) {
  int rows = j->rows, C = j->C;
  double *sumDy = j->acc, *sumDyXc = j->acc + C;
  float *k1 = (float *)(j->acc + 2 * C), *k2 = k1 + C, *k3 = k2 + C;
  masked_sums(j, c0, c1, sumDy, sumDyXc);
  for (int c = c0; c < c1; c++) {
    double invStd = 1 / __builtin_sqrt((double)j->var[c] + j->eps), gamma = j->gamma[c];
    double sumDyXhat = sumDyXc[c] * invStd;
    j->dgamma[c] = (float)sumDyXhat;
    j->dbeta[c] = (float)sumDy[c];
    k1[c] = (float)(gamma * invStd);
    k2[c] = (float)(-gamma * invStd * invStd * sumDyXhat / rows);
    k3[c] = (float)(-gamma * invStd * sumDy[c] / rows);
  }
  const float *restrict dy = j->dy, *restrict x = j->x, *restrict y = j->y, *restrict mean = j->mean;
  float *restrict out = j->out;
  for (int r = 0; r < rows; r++) {
    size_t base = (size_t)r * C;
    if (y)
      for (int c = c0; c < c1; c++) {
        float g = y[base + c] <= 0 ? 0.0f : dy[base + c];
        out[base + c] = k1[c] * g + k2[c] * (x[base + c] - mean[c]) + k3[c];
      }
    else
      for (int c = c0; c < c1; c++) out[base + c] = k1[c] * dy[base + c] + k2[c] * (x[base + c] - mean[c]) + k3[c];
  }
}

void EXPORT(batchnorm_backward)(const float *dy, const float *x, const float *gamma, const float *mean, const float *var, int rows, int C,
                                double eps, const float *y, float *dx, float *dgamma, float *dbeta, double *acc) {
  NormJob j = {.x = x, .dy = dy, .y = y, .gamma = gamma, .mean = mean, .var = var, .out = dx, .dgamma = dgamma, .dbeta = dbeta};
  j.rows = rows, j.C = C, j.eps = eps, j.acc = acc;
  run_norm(batchnorm_backward_range, &j);
}
