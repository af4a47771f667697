/*
 * conv2d with groups, forward and both backwards, NHWC with HWIO filters.
 * - groups == inChannels (depthwise, any multiplier): direct loops over output pixels.
 * - otherwise: per group, im2col in chunks of rows (bounded scratch) and the blocked GEMM;
 *   a 1×1 stride-1 unpadded ungrouped convolution is a GEMM straight on the activations.
 * im2col column order is (ky, kx, ci), the row order of the HWIO filter, so a group's filter is
 * the [K, outChannels/groups] sub-matrix at column g·coutG with row stride outChannels.
 */
#include <wasm_simd128.h>
#include "kernels.h"

#define SCRATCH_TARGET_FLOATS (1 << 21) /* 8 MiB of im2col rows per chunk */

static int is_depthwise(const ConvParams *p) { return p->groups == p->inChannels && p->groups > 1; }

static int is_plain_pointwise(const ConvParams *p) {
  return p->kernelHeight == 1 && p->kernelWidth == 1 && p->strideHeight == 1 && p->strideWidth == 1 && p->padTop == 0 &&
         p->padLeft == 0 && p->padBottom == 0 && p->padRight == 0 && p->groups == 1;
}

static int col_width(const ConvParams *p) { return p->kernelHeight * p->kernelWidth * (p->inChannels / p->groups); }

static int chunk_rows(const ConvParams *p) {
  int rows = p->batch * p->outHeight * p->outWidth;
  return max_int(1, min_int(rows, SCRATCH_TARGET_FLOATS / col_width(p)));
}

/* Floats of scratch the conv kernels need besides GEMM's work space. */
int EXPORT(conv_scratch_floats)(const ConvParams *p) {
  if (is_depthwise(p) || is_plain_pointwise(p)) return 0;
  return chunk_rows(p) * col_width(p);
}

/* The input offset (or −1 for padding) of window cell (ky, kx) of output row m. */
static long input_pixel(const ConvParams *p, int m, int ky, int kx) {
  int ow = m % p->outWidth, t = m / p->outWidth, oh = t % p->outHeight, n = t / p->outHeight;
  int ih = oh * p->strideHeight - p->padTop + ky * p->dilationHeight;
  int iw = ow * p->strideWidth - p->padLeft + kx * p->dilationWidth;
  if (ih < 0 || ih >= p->inHeight || iw < 0 || iw >= p->inWidth) return -1;
  return ((long)(n * p->inHeight + ih) * p->inWidth + iw) * p->inChannels;
}

static void im2col_serial(const ConvParams *p, const float *x, int g, int m0, int rows, float *col) {
  int cg = p->inChannels / p->groups, K = col_width(p);
  for (int r = 0; r < rows; r++) {
    float *out = col + (size_t)r * K;
    for (int ky = 0; ky < p->kernelHeight; ky++)
      for (int kx = 0; kx < p->kernelWidth; kx++, out += cg) {
        long at = input_pixel(p, m0 + r, ky, kx);
        if (at < 0) zero_floats(out, (size_t)cg);
        else __builtin_memcpy(out, x + at + g * cg, (size_t)cg * sizeof(float));
      }
  }
}

typedef struct {
  const ConvParams *p;
  const float *x;
  int g, m0, rows;
  float *col;
} Im2colJob;

static void im2col_task(void *ctx, int tid, int n) {
  const Im2colJob *j = ctx;
  int r0, r1;
  split_range(j->rows, tid, n, 1, &r0, &r1);
  if (r1 > r0) im2col_serial(j->p, j->x, j->g, j->m0 + r0, r1 - r0, j->col + (size_t)r0 * col_width(j->p));
}

/* Rows of the column matrix, split across threads (pure copies: bitwise the same). */
static void im2col(const ConvParams *p, const float *x, int g, int m0, int rows, float *col) {
  Im2colJob job = {p, x, g, m0, rows, col};
  parallel_run(im2col_task, &job, (double)rows * col_width(p));
}

static void col2im_add(const ConvParams *p, const float *col, int g, int m0, int rows, float *dx) {
  int cg = p->inChannels / p->groups, K = col_width(p);
  for (int r = 0; r < rows; r++) {
    const float *in = col + (size_t)r * K;
    for (int ky = 0; ky < p->kernelHeight; ky++)
      for (int kx = 0; kx < p->kernelWidth; kx++, in += cg) {
        long at = input_pixel(p, m0 + r, ky, kx);
        if (at < 0) continue;
        float *out = dx + at + g * cg;
        for (int c = 0; c < cg; c++) out[c] += in[c];
      }
  }
}

/* Runs the body with m (output row), at (input offset) and cell (ky·kw + kx) for every real tap. */
#define FOR_EACH_TAP(p, ...)                                                  \
  for (int m = 0; m < (p)->batch * (p)->outHeight * (p)->outWidth; m++)        \
    for (int ky = 0; ky < (p)->kernelHeight; ky++)                             \
      for (int kx = 0; kx < (p)->kernelWidth; kx++) {                          \
        long at = input_pixel((p), m, ky, kx);                                 \
        if (at < 0) continue;                                                  \
        int cell = ky * (p)->kernelWidth + kx;                                 \
        __VA_ARGS__                                                            \
      }

/* Whether the depthwise forward and input-gradient kernels run pixel by pixel (multiplier 1, and
 * the window fits their tap lists). */
static int by_pixel(const ConvParams *p) { return p->outChannels == p->inChannels && p->kernelHeight * p->kernelWidth <= 64; }

/* out[c] = Σ_t rows[t][c] · w[cells[t]·C + c] for c in [0, C): `count` taps of a multiplier-1
 * depthwise window summed in registers, 16 channels at a time (then 4, then 1), in tap order
 * from 0 (the order of the generic kernels), and stored once. */
static void sum_taps(const float *const *rows, const int *cells, int count, const float *w, int C, float *out) {
  int c = 0;
  for (; c + 16 <= C; c += 16) {
    v128_t a0 = wasm_f32x4_splat(0), a1 = a0, a2 = a0, a3 = a0;
    for (int t = 0; t < count; t++) {
      const float *xr = rows[t] + c, *wr = w + (size_t)cells[t] * C + c;
      a0 = MADD(a0, wasm_v128_load(xr), wasm_v128_load(wr));
      a1 = MADD(a1, wasm_v128_load(xr + 4), wasm_v128_load(wr + 4));
      a2 = MADD(a2, wasm_v128_load(xr + 8), wasm_v128_load(wr + 8));
      a3 = MADD(a3, wasm_v128_load(xr + 12), wasm_v128_load(wr + 12));
    }
    wasm_v128_store(out + c, a0);
    wasm_v128_store(out + c + 4, a1);
    wasm_v128_store(out + c + 8, a2);
    wasm_v128_store(out + c + 12, a3);
  }
  for (; c + 4 <= C; c += 4) {
    v128_t a = wasm_f32x4_splat(0);
    for (int t = 0; t < count; t++) a = MADD(a, wasm_v128_load(rows[t] + c), wasm_v128_load(w + (size_t)cells[t] * C + c));
    wasm_v128_store(out + c, a);
  }
  for (; c < C; c++) {
    float a = 0;
    for (int t = 0; t < count; t++) a += rows[t][c] * w[(size_t)cells[t] * C + c];
    out[c] = a;
  }
}

/* One output pixel of a multiplier-1 depthwise convolution, every channel: the input rows its
 * window reads. */
static void depthwise_pixel(const ConvParams *p, const float *x, const float *w, float *yr, int n, int oh, int ow) {
  int C = p->inChannels;
  int cells[64], count = 0;
  const float *xs[64];
  for (int ky = 0; ky < p->kernelHeight; ky++) {
    int ih = oh * p->strideHeight - p->padTop + ky * p->dilationHeight;
    if (ih < 0 || ih >= p->inHeight) continue;
    for (int kx = 0; kx < p->kernelWidth; kx++) {
      int iw = ow * p->strideWidth - p->padLeft + kx * p->dilationWidth;
      if (iw < 0 || iw >= p->inWidth) continue;
      xs[count] = x + ((size_t)(n * p->inHeight + ih) * p->inWidth + iw) * C;
      cells[count++] = ky * p->kernelWidth + kx;
    }
  }
  sum_taps(xs, cells, count, w, C, yr);
}

/* The three generic depthwise kernels on input channels [c0, c1) (outputs [c0·mult, c1·mult)):
 * threads split channels, so every output element is summed in the same order as on one thread. */
static void depthwise_forward(const ConvParams *p, const float *x, const float *w, float *y, int c0, int c1) {
  int O = p->outChannels, mult = O / p->inChannels;
  FOR_EACH_TAP(p, {
    const float *restrict xr = x + at, *restrict wr = w + (size_t)cell * O;
    float *restrict yr = y + (size_t)m * O;
    if (mult == 1)
      for (int c = c0; c < c1; c++) yr[c] += xr[c] * wr[c];
    else
      for (int o = c0 * mult; o < c1 * mult; o++) yr[o] += xr[o / mult] * wr[o];
  })
}

/* One input pixel's gradient of a multiplier-1 depthwise convolution, every channel: the output
 * gradients of the pixels whose windows read it, taps in (ky, kx) order. */
static void depthwise_input_pixel(const ConvParams *p, const float *dy, const float *w, float *dxr, int n, int ih, int iw) {
  int C = p->inChannels;
  int cells[64], count = 0;
  const float *gs[64];
  for (int ky = 0; ky < p->kernelHeight; ky++) {
    int oy = ih + p->padTop - ky * p->dilationHeight;
    if (oy < 0 || oy % p->strideHeight != 0 || oy / p->strideHeight >= p->outHeight) continue;
    for (int kx = 0; kx < p->kernelWidth; kx++) {
      int ox = iw + p->padLeft - kx * p->dilationWidth;
      if (ox < 0 || ox % p->strideWidth != 0 || ox / p->strideWidth >= p->outWidth) continue;
      gs[count] = dy + ((size_t)(n * p->outHeight + oy / p->strideHeight) * p->outWidth + ox / p->strideWidth) * C;
      cells[count++] = ky * p->kernelWidth + kx;
    }
  }
  sum_taps(gs, cells, count, w, C, dxr);
}

/* The by-pixel kernels (multiplier 1) on rows [r0, r1) of the output (forward) or input (input
 * gradient), every channel: each pixel is summed whole by one thread, in the one-thread order. */
static void depthwise_forward_rows(const ConvParams *p, const float *x, const float *w, float *y, int r0, int r1) {
  for (int r = r0; r < r1; r++) {
    int n = r / p->outHeight, oh = r % p->outHeight;
    for (int ow = 0; ow < p->outWidth; ow++)
      depthwise_pixel(p, x, w, y + ((size_t)r * p->outWidth + ow) * p->outChannels, n, oh, ow);
  }
}

static void depthwise_input_rows(const ConvParams *p, const float *dy, const float *w, float *dx, int r0, int r1) {
  for (int r = r0; r < r1; r++) {
    int n = r / p->inHeight, ih = r % p->inHeight;
    for (int iw = 0; iw < p->inWidth; iw++)
      depthwise_input_pixel(p, dy, w, dx + ((size_t)r * p->inWidth + iw) * p->inChannels, n, ih, iw);
  }
}

static void depthwise_backward_input(const ConvParams *p, const float *dy, const float *w, float *dx, int c0, int c1) {
  int O = p->outChannels, mult = O / p->inChannels;
  FOR_EACH_TAP(p, {
    const float *restrict gr = dy + (size_t)m * O, *restrict wr = w + (size_t)cell * O;
    float *restrict xr = dx + at;
    if (mult == 1)
      for (int c = c0; c < c1; c++) xr[c] += gr[c] * wr[c];
    else
      for (int o = c0 * mult; o < c1 * mult; o++) xr[o / mult] += gr[o] * wr[o];
  })
}

static void depthwise_backward_filter(const ConvParams *p, const float *x, const float *dy, float *dw, int c0, int c1) {
  int O = p->outChannels, mult = O / p->inChannels;
  FOR_EACH_TAP(p, {
    const float *restrict xr = x + at, *restrict gr = dy + (size_t)m * O;
    float *restrict wr = dw + (size_t)cell * O;
    if (mult == 1)
      for (int c = c0; c < c1; c++) wr[c] += xr[c] * gr[c];
    else
      for (int o = c0 * mult; o < c1 * mult; o++) wr[o] += xr[o / mult] * gr[o];
  })
}

/* A depthwise kernel on [s0, s1) of what threads split: input channels (the generic kernels) or
 * (image, row) pairs (the by-pixel ones). */
typedef void (*depthwise_fn)(const ConvParams *p, const float *a, const float *b, float *out, int s0, int s1);
typedef struct {
  depthwise_fn fn;
  const ConvParams *p;
  const float *a, *b;
  float *out;
  int count, align;
} DepthwiseJob;

static void depthwise_task(void *ctx, int tid, int n) {
  const DepthwiseJob *j = ctx;
  int s0, s1;
  split_range(j->count, tid, n, j->align, &s0, &s1);
  if (s1 > s0) j->fn(j->p, j->a, j->b, j->out, s0, s1);
}

static void run_depthwise(depthwise_fn fn, const ConvParams *p, const float *a, const float *b, float *out, int count, int align) {
  DepthwiseJob job = {fn, p, a, b, out, count, align};
  double taps = (double)p->batch * p->outHeight * p->outWidth * p->kernelHeight * p->kernelWidth * p->outChannels;
  parallel_run(depthwise_task, &job, taps);
}

/* Zeroes `outFloats` of out, then runs a generic kernel over all channels on the pool, threads
 * taking whole 16-channel blocks. */
static void depthwise(depthwise_fn fn, const ConvParams *p, const float *a, const float *b, float *out, size_t outFloats) {
  zero_floats(out, outFloats);
  run_depthwise(fn, p, a, b, out, p->inChannels, 16);
}

/* A by-pixel kernel over `rows` (image, row) pairs on the pool: threads split rows, not channels,
 * so no thread walks the windows of pixels it computes no channel of. */
static void depthwise_by_rows(depthwise_fn fn, const ConvParams *p, const float *a, const float *b, float *out, int rows) {
  run_depthwise(fn, p, a, b, out, rows, 1);
}

void EXPORT(conv2d_forward)(const ConvParams *p, const float *x, const float *w, float *y, float *scratch, float *work) {
  conv2d_forward_fused(p, x, w, y, scratch, work, 0);
}

/* One group's GEMM of a forward convolution: its filter columns as stored (row stride O), or the
 * whole filter packed by gemm_prepack_b (an ungrouped convolution's). */
static void forward_gemm(int packed, int rows, int og, int K, const float *a, const float *w, int O, float *y, const Epilogue *ep,
                         float *work) {
  if (packed) gemm_packed(rows, og, K, a, K, w, y, O, ep, work);
  else gemm_with(0, 0, rows, og, K, a, K, w, O, y, O, 0, ep, work);
}

/* The forward convolution with a compiled plan's epilogue (ep may be 0; kernels.h); `packed`: w
 * was packed by gemm_prepack_b (ungrouped, not depthwise). A depthwise convolution has no GEMM to
 * fuse into: its epilogue runs as one pass after it. */
static void conv_forward(const ConvParams *p, const float *x, const float *w, int packed, float *y, float *scratch, float *work,
                         const Epilogue *ep) {
  int M = p->batch * p->outHeight * p->outWidth, O = p->outChannels;
  if (is_depthwise(p)) {
    /* Multiplier 1 writes every output (depthwise_pixel); others sum into zeroes. */
    if (by_pixel(p)) depthwise_by_rows(depthwise_forward_rows, p, x, w, y, p->batch * p->outHeight);
    else depthwise(depthwise_forward, p, x, w, y, (size_t)M * O);
    if (ep) epilogue_rows(ep, y, M, O, O);
    return;
  }
  if (is_plain_pointwise(p)) return forward_gemm(packed, M, O, p->inChannels, x, w, O, y, ep, work);
  int og = O / p->groups, K = col_width(p), chunk = chunk_rows(p);
  for (int g = 0; g < p->groups; g++)
    for (int m0 = 0; m0 < M; m0 += chunk) {
      int rows = min_int(chunk, M - m0);
      Epilogue part;
      if (ep) part = (Epilogue){ep->bias ? ep->bias + g * og : 0, ep->sum ? ep->sum + (size_t)m0 * O + g * og : 0, ep->act, ep->alpha};
      im2col(p, x, g, m0, rows, scratch);
      forward_gemm(packed, rows, og, K, scratch, w + g * og, O, y + (size_t)m0 * O + g * og, ep ? &part : 0, work);
    }
}

void EXPORT(conv2d_forward_fused)(const ConvParams *p, const float *x, const float *w, float *y, float *scratch, float *work,
                                  const Epilogue *ep) {
  conv_forward(p, x, w, 0, y, scratch, work, ep);
}

/* An ungrouped, not depthwise, convolution on weights packed by gemm_prepack_b (K = kh·kw·cin rows,
 * outChannels columns): a compiled plan's, which packs its weights once instead of every run. */
void EXPORT(conv2d_forward_packed)(const ConvParams *p, const float *x, const float *packedW, float *y, float *scratch, float *work,
                                   const Epilogue *ep) {
  conv_forward(p, x, packedW, 1, y, scratch, work, ep);
}

void EXPORT(conv2d_backward_input)(const ConvParams *p, const float *dy, const float *w, float *dx, float *scratch, float *work) {
  if (is_depthwise(p)) { /* by pixel, every input gradient is written; else summed into zeroes */
    if (by_pixel(p)) return depthwise_by_rows(depthwise_input_rows, p, dy, w, dx, p->batch * p->inHeight);
    return depthwise(depthwise_backward_input, p, dy, w, dx, (size_t)p->batch * p->inHeight * p->inWidth * p->inChannels);
  }
  int M = p->batch * p->outHeight * p->outWidth, O = p->outChannels;
  if (is_plain_pointwise(p)) return gemm(0, 1, M, p->inChannels, O, dy, O, w, O, dx, p->inChannels, 0, work);
  zero_floats(dx, (size_t)p->batch * p->inHeight * p->inWidth * p->inChannels);
  int og = O / p->groups, K = col_width(p), chunk = chunk_rows(p);
  for (int g = 0; g < p->groups; g++)
    for (int m0 = 0; m0 < M; m0 += chunk) {
      int rows = min_int(chunk, M - m0);
      gemm(0, 1, rows, K, og, dy + (size_t)m0 * O + g * og, O, w + g * og, O, scratch, K, 0, work);
      col2im_add(p, scratch, g, m0, rows, dx);
    }
}

void EXPORT(conv2d_backward_filter)(const ConvParams *p, const float *x, const float *dy, float *dw, float *scratch, float *work) {
  if (is_depthwise(p))
    return depthwise(depthwise_backward_filter, p, x, dy, dw, (size_t)p->kernelHeight * p->kernelWidth * p->outChannels);
  int M = p->batch * p->outHeight * p->outWidth, O = p->outChannels;
  if (is_plain_pointwise(p)) return gemm(1, 0, p->inChannels, O, M, x, p->inChannels, dy, O, dw, O, 0, work);
  int og = O / p->groups, K = col_width(p), chunk = chunk_rows(p);
  for (int g = 0; g < p->groups; g++)
    for (int m0 = 0; m0 < M; m0 += chunk) {
      int rows = min_int(chunk, M - m0);
      im2col(p, x, g, m0, rows, scratch);
      gemm(1, 0, K, og, rows, scratch, K, dy + (size_t)m0 * O + g * og, O, dw + g * og, O, m0 > 0, work);
    }
}
