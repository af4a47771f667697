/*
 * Pooling over NHWC: padded cells are absent (never win a max, never count in an average), the
 * first maximum in row-major scan wins (NaN never does), like the reference.
 */
#include "kernels.h"

/* The window of output pixel (n, oh, ow), clipped to the image. */
typedef struct { int h0, h1, w0, w1; } Window;

static Window window_of(const PoolParams *p, int oh, int ow) {
  int hs = oh * p->strideHeight - p->padTop, ws = ow * p->strideWidth - p->padLeft;
  Window w = {max_int(hs, 0), min_int(hs + p->windowHeight, p->inHeight), max_int(ws, 0), min_int(ws + p->windowWidth, p->inWidth)};
  return w;
}

static int pool_out_size(const PoolParams *p) { return p->batch * p->outHeight * p->outWidth * p->channels; }

/* argmax[o] = flat input index of the first maximum of output element o, for channels [c0, c1);
 * the `channels` floats after argmax's output-sized part hold the running maxima (which start at
 * −∞, so NaN never wins). */
static void max_pool_argmax(const PoolParams *p, const float *x, int *argmax, int c0, int c1) {
  int C = p->channels;
  float *best = (float *)(argmax + pool_out_size(p));
  for (int n = 0; n < p->batch; n++)
    for (int oh = 0; oh < p->outHeight; oh++)
      for (int ow = 0; ow < p->outWidth; ow++) {
        Window w = window_of(p, oh, ow);
        int *am = argmax + ((size_t)(n * p->outHeight + oh) * p->outWidth + ow) * C;
        int first = ((n * p->inHeight + w.h0) * p->inWidth + w.w0) * C;
        for (int c = c0; c < c1; c++) am[c] = first + c, best[c] = -__builtin_inff();
        for (int ih = w.h0; ih < w.h1; ih++)
          for (int iw = w.w0; iw < w.w1; iw++) {
            int base = ((n * p->inHeight + ih) * p->inWidth + iw) * C;
            for (int c = c0; c < c1; c++) { /* branch-free, so the loop vectorizes */
              int wins = x[base + c] > best[c];
              best[c] = wins ? x[base + c] : best[c];
              am[c] = wins ? base + c : am[c];
            }
          }
      }
}

typedef struct {
  const PoolParams *p;
  const float *dy, *x;
  float *dx;
  int *argmax;
} MaxPoolBackwardJob;

/* Threads split channels: windows overlap, but never across channels, so no two threads add
 * into the same dx element (and each element sums in the same order as on one thread). */
static void max_pool_backward_task(void *ctx, int tid, int n) {
  const MaxPoolBackwardJob *j = ctx;
  int C = j->p->channels, c0, c1;
  split_range(C, tid, n, 4, &c0, &c1);
  if (c1 <= c0) return;
  max_pool_argmax(j->p, j->x, j->argmax, c0, c1);
  for (int o = 0, outPixels = pool_out_size(j->p) / C; o < outPixels; o++)
    for (int c = c0; c < c1; c++) j->dx[j->argmax[o * C + c]] += j->dy[o * C + c];
}

void EXPORT(max_pool_backward)(const PoolParams *p, const float *dy, const float *x, float *dx, int *argmax) {
  zero_floats(dx, (size_t)p->batch * p->inHeight * p->inWidth * p->channels);
  MaxPoolBackwardJob job = {p, dy, x, dx, argmax};
  parallel_run(max_pool_backward_task, &job, (double)pool_out_size(p) * p->windowHeight * p->windowWidth);
}

/* Output rows [r0, r1) (a row: one n, oh) of the max pool, without argmax: the maximum where one
 * wins (> −∞ after a strict > scan, so NaN never does), else the window's first value, which is
 * what max_pool_argmax's first-index default picks. */
static void max_pool_rows(const PoolParams *p, const float *x, float *y, int r0, int r1) {
  int C = p->channels;
  for (int r = r0; r < r1; r++) {
    int n = r / p->outHeight, oh = r % p->outHeight;
    for (int ow = 0; ow < p->outWidth; ow++) {
      Window w = window_of(p, oh, ow);
      float *restrict yr = y + ((size_t)r * p->outWidth + ow) * C;
      const float *first = x + ((size_t)(n * p->inHeight + w.h0) * p->inWidth + w.w0) * C;
      for (int c = 0; c < C; c++) yr[c] = -__builtin_inff();
      for (int ih = w.h0; ih < w.h1; ih++)
        for (int iw = w.w0; iw < w.w1; iw++) {
          const float *restrict xr = x + ((size_t)(n * p->inHeight + ih) * p->inWidth + iw) * C;
          for (int c = 0; c < C; c++) yr[c] = xr[c] > yr[c] ? xr[c] : yr[c];
        }
      for (int c = 0; c < C; c++) yr[c] = yr[c] > -__builtin_inff() ? yr[c] : first[c];
    }
  }
}

typedef struct {
  const PoolParams *p;
  const float *x;
  float *y;
} PoolJob;

static void max_pool_task(void *ctx, int tid, int n) {
  const PoolJob *j = ctx;
  int r0, r1;
  split_range(j->p->batch * j->p->outHeight, tid, n, 1, &r0, &r1);
  if (r1 > r0) max_pool_rows(j->p, j->x, j->y, r0, r1);
}

void EXPORT(max_pool_forward)(const PoolParams *p, const float *x, float *y) {
  PoolJob job = {p, x, y};
  parallel_run(max_pool_task, &job, (double)pool_out_size(p) * p->windowHeight * p->windowWidth);
}

void EXPORT(avg_pool_forward)(const PoolParams *p, const float *x, float *y) {
  int C = p->channels;
  for (int n = 0; n < p->batch; n++)
    for (int oh = 0; oh < p->outHeight; oh++)
      for (int ow = 0; ow < p->outWidth; ow++) {
        Window w = window_of(p, oh, ow);
        float *yr = y + ((size_t)(n * p->outHeight + oh) * p->outWidth + ow) * C;
        zero_floats(yr, (size_t)C);
        for (int ih = w.h0; ih < w.h1; ih++)
          for (int iw = w.w0; iw < w.w1; iw++) {
            const float *xr = x + ((size_t)(n * p->inHeight + ih) * p->inWidth + iw) * C;
            for (int c = 0; c < C; c++) yr[c] += xr[c];
          }
        float inv = 1.0f / (float)((w.h1 - w.h0) * (w.w1 - w.w0));
        for (int c = 0; c < C; c++) yr[c] *= inv;
      }
}

void EXPORT(avg_pool_backward)(const PoolParams *p, const float *dy, float *dx) {
  int C = p->channels;
  zero_floats(dx, (size_t)p->batch * p->inHeight * p->inWidth * C);
  for (int n = 0; n < p->batch; n++)
    for (int oh = 0; oh < p->outHeight; oh++)
      for (int ow = 0; ow < p->outWidth; ow++) {
        Window w = window_of(p, oh, ow);
        const float *gr = dy + ((size_t)(n * p->outHeight + oh) * p->outWidth + ow) * C;
        float inv = 1.0f / (float)((w.h1 - w.h0) * (w.w1 - w.w0));
        for (int ih = w.h0; ih < w.h1; ih++)
          for (int iw = w.w0; iw < w.w1; iw++) {
            float *xr = dx + ((size_t)(n * p->inHeight + ih) * p->inWidth + iw) * C;
            for (int c = 0; c < C; c++) xr[c] += gr[c] * inv;
          }
      }
}

/* Global pools over [batch, spatial, channels]; acc is scratch for channels doubles. */
void EXPORT(global_avg_pool_forward)(const float *x, int N, int S, int C, float *y, double *acc) {
  for (int n = 0; n < N; n++) {
    for (int c = 0; c < C; c++) acc[c] = 0;
    for (int s = 0; s < S; s++) {
      const float *xr = x + ((size_t)n * S + s) * C;
      for (int c = 0; c < C; c++) acc[c] += xr[c];
    }
    for (int c = 0; c < C; c++) y[n * C + c] = (float)(acc[c] / S);
  }
}

void EXPORT(global_avg_pool_backward)(const float *dy, int N, int S, int C, float *dx) {
  for (int n = 0; n < N; n++)
    for (int s = 0; s < S; s++) {
      float *xr = dx + ((size_t)n * S + s) * C;
      for (int c = 0; c < C; c++) xr[c] = (float)((double)dy[n * C + c] / S);
    }
}

/* As max_pool_argmax: argmax has N·C ints, then C floats of running maxima. */
static void global_argmax(const float *x, int N, int S, int C, int *argmax) {
  float *best = (float *)(argmax + N * C);
  for (int n = 0; n < N; n++) {
    int *am = argmax + n * C;
    for (int c = 0; c < C; c++) am[c] = n * S * C + c, best[c] = -__builtin_inff();
    for (int s = 0; s < S; s++) {
      int base = (n * S + s) * C;
      for (int c = 0; c < C; c++) {
        int wins = x[base + c] > best[c];
        best[c] = wins ? x[base + c] : best[c];
        am[c] = wins ? base + c : am[c];
      }
    }
  }
}

void EXPORT(global_max_pool_forward)(const float *x, int N, int S, int C, float *y, int *argmax) {
  global_argmax(x, N, S, C, argmax);
  for (int i = 0; i < N * C; i++) y[i] = x[argmax[i]];
}

void EXPORT(global_max_pool_backward)(const float *dy, const float *x, int N, int S, int C, float *dx, int *argmax) {
  global_argmax(x, N, S, C, argmax);
  zero_floats(dx, (size_t)N * S * C);
  for (int i = 0; i < N * C; i++) dx[argmax[i]] = dy[i];
}
