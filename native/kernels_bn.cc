// Batch normalization over a [rows, channels] view (NHWC activations), written as plain loops.
//
// Why not oneDNN's: for channel counts that are not a multiple of 16 (182 in the main job's
// model) oneDNN 2.6 falls to a slow reference path, and even its jit path does more passes than
// needed for these memory-bound shapes. Here: training statistics in one pass (shifted sums),
// normalization in a second; backward in two passes. Each thread owns a contiguous range of rows
// and keeps per-channel float64 partial sums, combined in thread order (deterministic for a given
// thread count). Narrow rows (few channels) are processed k rows at a time as one row of width
// k·channels, so the inner loop stays long enough to vectorize.
//
// The inner loops are compiled for AVX-512, AVX2 and baseline x86-64 (target_clones; the build
// has no -march flag) and the loader picks one at run time.
//
// In bf16 training x is often a low buffer (a pointwise convolution's bf16 output): the loops read
// it as such (`X` = uint16_t), and the backward's `.bf16` kernels write dx as a low buffer too, for
// the bf16 convolution that reads it next.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common.h"

namespace xnative {
namespace {

// Rows of width below this are grouped: `group` rows form one wide row of `width` values.
constexpr int64_t kMinWidth = 64;
// Floats of dx a thread computes before rounding them to a low dx (32 KB: stays in L1/L2).
constexpr int64_t kLowBlock = 8192;

struct BnShape {
  int64_t rows, ch;
  double eps;
  int64_t group;  // rows per wide row
  int64_t width;  // group · ch
  static BnShape parse(const Args& a) {
    BnShape b{};
    b.rows = a.dim(0, "rows");
    b.ch = a.dim(1, "channels");
    b.eps = a.real(2, "epsilon");
    if (!(b.eps > 0)) fail(a, "epsilon must be positive");
    elems({b.rows, b.ch}, "batch norm input");
    b.group = b.ch >= kMinWidth ? 1 : kMinWidth / b.ch + (kMinWidth % b.ch ? 1 : 0);
    b.width = b.group * b.ch;
    return b;
  }
  int64_t size() const { return rows * ch; }
};

// Rows [r0, r1) of this thread out of `rows`, split evenly.
void rowRange(int64_t rows, int t, int threads, int64_t& r0, int64_t& r1) {
  r0 = rows * t / threads;
  r1 = rows * (t + 1) / threads;
}

// Element i of x as float32: a float, or a bf16 value.
inline float ld(const float* x, int64_t i) { return x[i]; }
inline float ld(const uint16_t* x, int64_t i) { return bf16ToFloat(x[i]); }

// Runs body(x) with input i's contents as they are stored: bf16 for a low buffer, else float32.
template <class Body>
void onInput(const Args& a, size_t i, int64_t n, Body body) {
  if (const uint16_t* low = a.lowInput(i, n, "x")) return body(low);
  body(a.input(i, n, "x"));
}

// Σ (x − shift) and Σ (x − shift)² over `count` rows of `width` values, added to s1, s2.
// The shift (an early sample of each channel) keeps the sum of squares from cancelling when the
// mean is large against the spread.
template <class X>
XN_CLONES void shiftedSums(const X* x, int64_t count, int64_t width, const float* shift, double* s1, double* s2) {
  for (int64_t r = 0; r < count; ++r) {
    const X* xr = x + r * width;
    for (int64_t c = 0; c < width; ++c) {
      const double d = static_cast<double>(ld(xr, c) - shift[c]);
      s1[c] += d;
      s2[c] += d * d;
    }
  }
}

// Σ dy and Σ dy·(x − mean) over `count` rows of `width` values, added to s1, s2.
template <class X>
XN_CLONES void gradSums(const float* dy, const X* x, int64_t count, int64_t width, const float* mean, double* s1,
                        double* s2) {
  for (int64_t r = 0; r < count; ++r) {
    const float* gr = dy + r * width;
    const X* xr = x + r * width;
    for (int64_t c = 0; c < width; ++c) {
      const double g = gr[c];
      s1[c] += g;
      s2[c] += g * static_cast<double>(ld(xr, c) - mean[c]);
    }
  }
}

// The same sums with dy taken as 0 where the fused ReLU's output y is ≤ 0 (a NaN y keeps dy).
template <class X>
XN_CLONES void gradSumsMasked(const float* dy, const float* y, const X* x, int64_t count, int64_t width,
                              const float* mean, double* s1, double* s2) {
  for (int64_t r = 0; r < count; ++r) {
    const float* gr = dy + r * width;
    const float* yr = y + r * width;
    const X* xr = x + r * width;
    for (int64_t c = 0; c < width; ++c) {
      // The mask as bits (+0 where y <= 0, else dy): GCC leaves a select feeding a float → double
      // conversion as control flow, which it does not vectorize.
      uint32_t bits;
      std::memcpy(&bits, gr + c, sizeof bits);
      bits &= 0u - static_cast<uint32_t>(!(yr[c] <= 0.f));
      float masked;
      std::memcpy(&masked, &bits, sizeof masked);
      const double g = masked;
      s1[c] += g;
      s2[c] += g * static_cast<double>(ld(xr, c) - mean[c]);
    }
  }
}

// y = (x − m)·a + b per column, over `count` rows of `width` values. Centring first keeps a
// large mean from cancelling digits of y.
template <class X>
XN_CLONES void normalizeRows(const X* x, float* y, int64_t count, int64_t width, const float* m, const float* a,
                             const float* b) {
  for (int64_t r = 0; r < count; ++r) {
    const X* xr = x + r * width;
    float* yr = y + r * width;
    for (int64_t c = 0; c < width; ++c) yr[c] = (ld(xr, c) - m[c]) * a[c] + b[c];
  }
}

// y = max(0, (x − m)·a + b): batch norm followed by ReLU in one pass. NaN stays NaN (as relu).
template <class X>
XN_CLONES void normalizeReluRows(const X* x, float* y, int64_t count, int64_t width, const float* m, const float* a,
                                 const float* b) {
  for (int64_t r = 0; r < count; ++r) {
    const X* xr = x + r * width;
    float* yr = y + r * width;
    for (int64_t c = 0; c < width; ++c) {
      const float v = (ld(xr, c) - m[c]) * a[c] + b[c];
      yr[c] = v <= 0.f ? 0.f : v;
    }
  }
}

// dx = dy·a + (x − m)·b + c per column.
template <class X>
XN_CLONES void gradRows(const float* dy, const X* x, float* dx, int64_t count, int64_t width, const float* m,
                        const float* a, const float* b, const float* c) {
  for (int64_t r = 0; r < count; ++r) {
    const float* gr = dy + r * width;
    const X* xr = x + r * width;
    float* o = dx + r * width;
    for (int64_t j = 0; j < width; ++j) o[j] = gr[j] * a[j] + (ld(xr, j) - m[j]) * b[j] + c[j];
  }
}

// gradRows with dy taken as 0 where the fused ReLU's output y is ≤ 0 (a NaN y keeps dy).
template <class X>
XN_CLONES void gradRowsMasked(const float* dy, const float* y, const X* x, float* dx, int64_t count, int64_t width,
                              const float* m, const float* a, const float* b, const float* c) {
  for (int64_t r = 0; r < count; ++r) {
    const float* gr = dy + r * width;
    const float* yr = y + r * width;
    const X* xr = x + r * width;
    float* o = dx + r * width;
    for (int64_t j = 0; j < width; ++j) {
      const float dyv = gr[j];
      const float g = yr[j] <= 0.f ? 0.f : dyv;
      o[j] = g * a[j] + (ld(xr, j) - m[j]) * b[j] + c[j];
    }
  }
}

// Per-channel vector repeated `group` times, so it lines up with a wide row.
std::vector<float> widen(const BnShape& b, const std::vector<float>& v) {
  std::vector<float> w(static_cast<size_t>(b.width));
  for (int64_t k = 0; k < b.group; ++k) std::copy(v.begin(), v.end(), w.begin() + k * b.ch);
  return w;
}

// Runs rowKernel(firstRow, rowCount, width, threadSlot) over all rows: whole wide rows first,
// then the leftover rows (fewer than `group`) with width = ch on the last thread.
template <class F>
void forRows(const BnShape& b, int threads, F rowKernel) {
  const int64_t wide = b.rows / b.group;
  const int64_t rest = b.rows - wide * b.group;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    // Split by the team OpenMP actually gave (it may be smaller than asked for); slot t < threads.
    const int t = threadId();
    const int n = teamSize();
    int64_t r0, r1;
    rowRange(wide, t, n, r0, r1);
    if (r1 > r0) rowKernel(r0 * b.group, r1 - r0, b.width, t);
    if (t == n - 1 && rest > 0) rowKernel(wide * b.group, rest, b.ch, t);
  }
}

// Folds the per-thread, per-wide-column partials into per-channel double sums.
std::vector<double> fold(const BnShape& b, const ThreadPartials& part, int threads) {
  std::vector<double> out(static_cast<size_t>(b.ch), 0.0);
  for (int t = 0; t < threads; ++t)
    for (int64_t j = 0; j < b.width; ++j) out[j % b.ch] += part.row(t)[j];
  return out;
}

// y = (x − m)·a + b per channel over every row (with `relu`, max(0, ·)).
template <class X>
void normalizeAll(const BnShape& b, int threads, const X* x, float* y, const std::vector<float>& m, const std::vector<float>& a,
                  const std::vector<float>& shift, bool relu) {
  std::vector<float> wm = widen(b, m), wa = widen(b, a), wb = widen(b, shift);
  forRows(b, threads, [&](int64_t row, int64_t count, int64_t width, int) {
    (relu ? normalizeReluRows<X> : normalizeRows<X>)(x + row * b.ch, y + row * b.ch, count, width, wm.data(), wa.data(),
                                                     wb.data());
  });
}

// inputs: x, gamma, beta → y, mean, variance (biased). With `relu`, y = max(0, batch norm).
template <class X>
void batchNormTrainOn(const X* x, const Args& a, Result& r, bool relu) {
  BnShape b = BnShape::parse(a);
  const float* gamma = a.input(1, b.ch, "gamma");
  const float* beta = a.input(2, b.ch, "beta");
  float* y = r.add(b.size());
  float* mean = r.add(b.ch);
  float* var = r.add(b.ch);

  const int threads = threadsFor(b.size());
  // Everything that allocates happens outside the parallel region (nothing may throw inside).
  std::vector<float> shift(static_cast<size_t>(b.ch));
  for (int64_t c = 0; c < b.ch; ++c) shift[static_cast<size_t>(c)] = ld(x, c);
  std::vector<float> wideShift = widen(b, shift);
  ThreadPartials p1(threads, b.width), p2(threads, b.width);
  forRows(b, threads, [&](int64_t row, int64_t count, int64_t width, int t) {
    shiftedSums(x + row * b.ch, count, width, wideShift.data(), p1.row(t), p2.row(t));
  });
  std::vector<double> s1 = fold(b, p1, threads), s2 = fold(b, p2, threads);

  std::vector<float> m(static_cast<size_t>(b.ch)), scale(m.size());
  const double n = static_cast<double>(b.rows);
  for (int64_t c = 0; c < b.ch; ++c) {
    const double m1 = s1[c] / n;  // mean of (x − shift)
    const double v = std::max(0.0, s2[c] / n - m1 * m1);
    mean[c] = m[c] = static_cast<float>(shift[c] + m1);
    var[c] = static_cast<float>(v);
    scale[c] = static_cast<float>(gamma[c] / std::sqrt(v + b.eps));
  }
  normalizeAll(b, threads, x, y, m, scale, std::vector<float>(beta, beta + b.ch), relu);
}

void batchNormTrainImpl(const Args& a, Result& r, bool relu) {
  a.expectCounts(3, 3);
  onInput(a, 0, BnShape::parse(a).size(), [&](auto x) { batchNormTrainOn(x, a, r, relu); });
}

// inputs: x, gamma, beta, mean, variance → y. With `relu`, y = max(0, batch norm).
template <class X>
void batchNormInferenceOn(const X* x, const Args& a, Result& r, bool relu) {
  BnShape b = BnShape::parse(a);
  const float* gamma = a.input(1, b.ch, "gamma");
  const float* beta = a.input(2, b.ch, "beta");
  const float* mean = a.input(3, b.ch, "mean");
  const float* var = a.input(4, b.ch, "variance");
  for (int64_t c = 0; c < b.ch; ++c)
    if (!(var[c] + b.eps > 0)) fail(a, "variance + epsilon must be positive (channel " + std::to_string(c) + ")");
  float* y = r.add(b.size());
  std::vector<float> scale(static_cast<size_t>(b.ch));
  for (int64_t c = 0; c < b.ch; ++c)
    scale[c] = static_cast<float>(gamma[c] / std::sqrt(static_cast<double>(var[c]) + b.eps));
  normalizeAll(b, threadsFor(b.size()), x, y, std::vector<float>(mean, mean + b.ch), scale,
               std::vector<float>(beta, beta + b.ch), relu);
}

void batchNormInferenceImpl(const Args& a, Result& r, bool relu) {
  a.expectCounts(5, 3);
  onInput(a, 0, BnShape::parse(a).size(), [&](auto x) { batchNormInferenceOn(x, a, r, relu); });
}

// inputs: dy, x, gamma, mean, variance → dx, dgamma, dbeta. With xhat = (x − mean)·invStd:
//   dbeta = Σ dy,  dgamma = Σ dy·xhat,
//   dx = gamma·invStd·(dy − dbeta/R − xhat·dgamma/R) = dy·A + (x − mean)·B + C per channel.
// With `relu` (the forward was batch norm → ReLU) a sixth input is that forward's output y, and
// dy counts only where y > 0: the ReLU's backward folded into both passes.
// With `lowDx` dx is a low buffer (the `.bf16` kernels where the CPU rounds to bf16 natively).
template <class X>
void batchNormBackwardOn(const X* x, const Args& a, Result& r, bool relu, bool lowDx) {
  BnShape b = BnShape::parse(a);
  const float* dy = a.input(0, b.size(), "dy");
  const float* gamma = a.input(2, b.ch, "gamma");
  const float* mean = a.input(3, b.ch, "mean");
  const float* var = a.input(4, b.ch, "variance");
  for (int64_t c = 0; c < b.ch; ++c)
    if (!(var[c] + b.eps > 0)) fail(a, "variance + epsilon must be positive (channel " + std::to_string(c) + ")");
  const float* y = relu ? a.input(5, b.size(), "y") : nullptr;
  float* dx = lowDx ? nullptr : r.add(b.size());
  uint16_t* dxLow = lowDx ? r.addLow(b.size()) : nullptr;
  float* dgamma = r.add(b.ch);
  float* dbeta = r.add(b.ch);

  const int threads = threadsFor(b.size());
  std::vector<float> meanv(mean, mean + b.ch);
  std::vector<float> wideMean = widen(b, meanv);
  ThreadPartials p1(threads, b.width), p2(threads, b.width);
  forRows(b, threads, [&](int64_t row, int64_t count, int64_t width, int t) {
    if (relu)
      gradSumsMasked(dy + row * b.ch, y + row * b.ch, x + row * b.ch, count, width, wideMean.data(), p1.row(t), p2.row(t));
    else
      gradSums(dy + row * b.ch, x + row * b.ch, count, width, wideMean.data(), p1.row(t), p2.row(t));
  });
  std::vector<double> sumDy = fold(b, p1, threads), sumDyXm = fold(b, p2, threads);

  std::vector<float> ca(static_cast<size_t>(b.ch)), cb(ca.size()), cc(ca.size());
  const double n = static_cast<double>(b.rows);
  for (int64_t c = 0; c < b.ch; ++c) {
    const double inv = 1.0 / std::sqrt(static_cast<double>(var[c]) + b.eps);
    const double sumDyXhat = sumDyXm[c] * inv;
    dbeta[c] = static_cast<float>(sumDy[c]);
    dgamma[c] = static_cast<float>(sumDyXhat);
    const double k = gamma[c] * inv;
    const double kb = -k * inv * sumDyXhat / n;  // coefficient of (x − mean)
    ca[c] = static_cast<float>(k);
    cb[c] = static_cast<float>(kb);
    cc[c] = static_cast<float>(-k * sumDy[c] / n);
  }
  std::vector<float> wa = widen(b, ca), wb = widen(b, cb), wc = widen(b, cc);
  auto rows = [&](int64_t row, int64_t count, int64_t width, float* out) {
    if (relu)
      gradRowsMasked(dy + row * b.ch, y + row * b.ch, x + row * b.ch, out, count, width, wideMean.data(), wa.data(),
                     wb.data(), wc.data());
    else
      gradRows(dy + row * b.ch, x + row * b.ch, out, count, width, wideMean.data(), wa.data(), wb.data(), wc.data());
  };
  if (!lowDx) {
    forRows(b, threads, [&](int64_t row, int64_t count, int64_t width, int) { rows(row, count, width, dx + row * b.ch); });
    return;
  }
  // dx a few rows at a time into a per-thread float32 block that stays in cache, then rounded.
  const int64_t blockRows = std::max<int64_t>(1, kLowBlock / b.width);
  std::vector<float> blocks(static_cast<size_t>(threads * blockRows * b.width));
  forRows(b, threads, [&](int64_t row, int64_t count, int64_t width, int t) {
    float* block = blocks.data() + t * blockRows * b.width;
    const int64_t perRow = width / b.ch;  // original rows per row of this call
    for (int64_t done = 0; done < count; done += blockRows) {
      const int64_t n = std::min(blockRows, count - done);
      const int64_t first = row + done * perRow;
      rows(first, n, width, block);
      roundSpanToBf16Avx512(block, dxLow + first * b.ch, n * width);
    }
  });
}

void batchNormBackwardImpl(const Args& a, Result& r, bool relu, bool bf16) {
  a.expectCounts(relu ? 6 : 5, 3);
  const bool lowDx = bf16 && ownBf16Rounding();
  onInput(a, 1, BnShape::parse(a).size(), [&](auto x) { batchNormBackwardOn(x, a, r, relu, lowDx); });
}

void batchNormTrain(State&, const Args& a, Result& r) { batchNormTrainImpl(a, r, false); }
void batchNormInference(State&, const Args& a, Result& r) { batchNormInferenceImpl(a, r, false); }
void batchNormBackward(State&, const Args& a, Result& r) { batchNormBackwardImpl(a, r, false, false); }
void batchNormBackwardBf16(State&, const Args& a, Result& r) { batchNormBackwardImpl(a, r, false, true); }
void batchNormReluTrain(State&, const Args& a, Result& r) { batchNormTrainImpl(a, r, true); }
void batchNormReluInference(State&, const Args& a, Result& r) { batchNormInferenceImpl(a, r, true); }
void batchNormReluBackward(State&, const Args& a, Result& r) { batchNormBackwardImpl(a, r, true, false); }
void batchNormReluBackwardBf16(State&, const Args& a, Result& r) { batchNormBackwardImpl(a, r, true, true); }

}  // namespace

void registerBatchNormKernels(std::map<std::string, KernelFn>& t) {
  t["batchNormTrain"] = batchNormTrain;
  t["batchNormInference"] = batchNormInference;
  t["batchNormBackward"] = batchNormBackward;
  // Batch norm → ReLU fused (BatchNormParams.relu).
  t["batchNormReluTrain"] = batchNormReluTrain;
  t["batchNormReluInference"] = batchNormReluInference;
  t["batchNormReluBackward"] = batchNormReluBackward;
  // The same with dx as a low buffer (bf16) where the CPU rounds natively, for bf16 training.
  t["batchNormBackward.bf16"] = batchNormBackwardBf16;
  t["batchNormReluBackward.bf16"] = batchNormReluBackwardBf16;
}

}  // namespace xnative
