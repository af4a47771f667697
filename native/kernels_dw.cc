// Depthwise 3×3 convolutions with stride 1 and one pixel of padding (Xception's every depthwise
// layer) over nhwc, as own AVX-512 loops: forward, backward data (the forward with the filter
// turned 180°) and the filter gradient.
//
// Why not oneDNN's: these passes are memory-bound, and in bf16 training their neighbours keep
// tensors as bf16 (common.h, Buffer::low). oneDNN 2.6's bf16 depthwise kernels are slower than
// its float32 ones, so its passes read and write float32 and each bf16 neighbour rounded or
// widened a copy. Here the forward writes bf16 for the pointwise product that reads it next,
// and the backward passes read that product's bf16 input gradient, in half the bytes.
//
// Every loop keeps 16 channels in a vector and accumulates in float32. Threads take contiguous
// rows of output pixels; the filter gradient sums each thread's rows in registers row by row, then
// adds the threads' partial sums in thread order (deterministic for a given thread count).
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "common.h"

namespace xnative {
namespace {

#define XN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

constexpr int kTaps = 9;

XN_AVX512 inline __mmask16 laneMask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
}

// Asks for `bytes` from p in cache ahead of use. The loops below walk a row 16 channels at a time,
// so each pass touches every pixel at a stride of the channel count: too far apart for the
// hardware prefetchers, and cold rows came from memory at a third of its bandwidth.
XN_AVX512 inline void prefetchRow(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t i = 0; i < bytes; i += 64) _mm_prefetch(c + i, _MM_HINT_T1);
}

// 16 channels as float32, from float or bf16 storage (masked lanes read nothing and are 0).
XN_AVX512 inline __m512 load16(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
XN_AVX512 inline __m512 load16(const uint16_t* p, __mmask16 m) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}

XN_AVX512 inline void store16(float* p, __m512 v, __mmask16 m) { _mm512_mask_storeu_ps(p, m, v); }
XN_AVX512 inline void store16(uint16_t* p, __m512 v, __mmask16 m) {
  _mm256_mask_storeu_epi16(p, m, reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)));
}

// Masks of output row oy's three window rows: `m` where the row is inside the image, else none (a
// tap on padding is skipped, not multiplied by zero, so an infinite weight or gradient there adds
// nothing, as in the reference). `row` is the image row each window row reads (oy for padding).
struct WindowRows {
  __mmask16 mask[3];
  int64_t row[3];
};
XN_AVX512 inline WindowRows windowRows(const DwShape& s, int64_t oy, __mmask16 m) {
  WindowRows r;
  for (int ky = 0; ky < 3; ++ky) {
    const int64_t iy = oy + ky - 1;
    const bool inside = iy >= 0 && iy < s.h;
    r.mask[ky] = inside ? m : 0;
    r.row[ky] = inside ? iy : oy;
  }
  return r;
}

// Σ over taps of x(tap) · w(tap) for output pixel ox, a column inside or at the image's edge.
XN_AVX512 inline __m512 windowSum(const DwShape& s, const float* const rows[3], const WindowRows& wr, const __m512 wv[kTaps],
                                  int64_t ox) {
  __m512 acc = _mm512_setzero_ps();
  for (int ky = 0; ky < 3; ++ky)
    for (int kx = 0; kx < 3; ++kx) {
      const int64_t ix = ox + kx - 1;
      const __mmask16 k = ix >= 0 && ix < s.w ? wr.mask[ky] : 0;
      acc = _mm512_mask3_fmadd_ps(_mm512_maskz_loadu_ps(k, rows[ky] + (k ? ix : ox) * s.c), wv[ky * 3 + kx], acc, k);
    }
  return acc;
}

// One output row of y = depthwise(x, w) into `out`: src[ky] is the image row window row ky reads
// (any row for padding), taps[t·c + ch] tap t's weight. Inner columns go four at a time: four
// independent sums hide the multiply-add latency.
template <class Out>
XN_AVX512 void forwardRow(const DwShape& s, const float* const src[3], int64_t oy, const float* taps, Out* out) {
  for (int64_t c0 = 0; c0 < s.c; c0 += 16) {
    const __mmask16 m = laneMask(s.c - c0);
    const WindowRows wr = windowRows(s, oy, m);
    const float* rows[3] = {src[0] + c0, src[1] + c0, src[2] + c0};
    __m512 wv[kTaps];
    for (int t = 0; t < kTaps; ++t) wv[t] = _mm512_maskz_loadu_ps(m, taps + t * s.c + c0);
    Out* o = out + c0;
    store16(o, windowSum(s, rows, wr, wv, 0), m);
    int64_t ox = 1;
    for (; ox + 4 <= s.w - 1; ox += 4) {
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int ky = 0; ky < 3; ++ky) {
        const __mmask16 k = wr.mask[ky];
        const float* p = rows[ky] + (ox - 1) * s.c;
        for (int kx = 0; kx < 3; ++kx) {
          const __m512 wt = wv[ky * 3 + kx];
          a0 = _mm512_mask3_fmadd_ps(_mm512_maskz_loadu_ps(k, p + (kx + 0) * s.c), wt, a0, k);
          a1 = _mm512_mask3_fmadd_ps(_mm512_maskz_loadu_ps(k, p + (kx + 1) * s.c), wt, a1, k);
          a2 = _mm512_mask3_fmadd_ps(_mm512_maskz_loadu_ps(k, p + (kx + 2) * s.c), wt, a2, k);
          a3 = _mm512_mask3_fmadd_ps(_mm512_maskz_loadu_ps(k, p + (kx + 3) * s.c), wt, a3, k);
        }
      }
      store16(o + (ox + 0) * s.c, a0, m);
      store16(o + (ox + 1) * s.c, a1, m);
      store16(o + (ox + 2) * s.c, a2, m);
      store16(o + (ox + 3) * s.c, a3, m);
    }
    for (; ox < s.w; ++ox) store16(o + ox * s.c, windowSum(s, rows, wr, wv, ox), m);
  }
}

// The image rows a thread's output rows read, as float32. A float32 input is read in place (the
// row below the window prefetched: `ahead`); a bf16 one is widened a row at a time into a ring of three, so each value
// is widened once, not once per tap.
template <class In>
struct RowSource;

template <>
struct RowSource<float> {
  const DwShape& s;
  const float* x;
  const float* row(int64_t b, int64_t iy) { return x + (b * s.h + iy) * s.w * s.c; }
  void ahead(int64_t b, int64_t iy) {
    if (iy < s.h) prefetchRow(row(b, iy), s.w * s.c * static_cast<int64_t>(sizeof(float)));
  }
};

template <>
struct RowSource<uint16_t> {
  const DwShape& s;
  const uint16_t* x;
  std::vector<float> ring = std::vector<float>(static_cast<size_t>(3 * s.w * s.c));
  int64_t held[3] = {-1, -1, -1};  // the image row (b·h + iy) each slot holds
  XN_AVX512 const float* row(int64_t b, int64_t iy) {
    const int64_t id = b * s.h + iy, size = s.w * s.c;
    float* slot = ring.data() + (id % 3) * size;
    if (held[id % 3] != id) {
      for (int64_t i = 0; i < size; i += 16) {
        const __mmask16 m = laneMask(size - i);
        _mm512_mask_storeu_ps(slot + i, m, load16(x + id * size + i, m));
      }
      held[id % 3] = id;
    }
    return slot;
  }
  void ahead(int64_t, int64_t) {}
};

template <class In, class Out>
XN_AVX512 void forwardAll(const DwShape& s, const In* x, const float* taps, Out* y) {
  const int64_t rows = s.n * s.h;
#pragma omp parallel num_threads(threadsFor(rows * s.w * s.c))
  {
    const int64_t t = threadId(), team = teamSize();
    RowSource<In> source{s, x};
    for (int64_t r = rows * t / team; r < rows * (t + 1) / team; ++r) {
      const int64_t b = r / s.h, oy = r % s.h;
      const float* src[3];
      for (int ky = 0; ky < 3; ++ky) {
        const int64_t iy = oy + ky - 1;
        src[ky] = source.row(b, iy >= 0 && iy < s.h ? iy : oy);
      }
      source.ahead(b, oy + 2);
      forwardRow(s, src, oy, taps, y + r * s.w * s.c);
    }
  }
}

// Σ over output row (b, oy) of x(window tap) · dy, per tap and channel, added to sums[t·c + ch].
// Nine sums, one a tap, each in its own register.
template <class Dy>
XN_AVX512 void filterRow(const DwShape& s, const float* x, const Dy* dy, float* sums, int64_t b, int64_t oy) {
  const int64_t row = s.w * s.c;
  if (oy + 2 < s.h) prefetchRow(x + (b * s.h + oy + 2) * row, row * static_cast<int64_t>(sizeof(float)));
  if (oy + 1 < s.h) prefetchRow(dy + (b * s.h + oy + 1) * row, row * static_cast<int64_t>(sizeof(Dy)));
  for (int64_t c0 = 0; c0 < s.c; c0 += 16) {
    const __mmask16 m = laneMask(s.c - c0);
    const WindowRows wr = windowRows(s, oy, m);
    const float* rows[3];
    for (int ky = 0; ky < 3; ++ky) rows[ky] = x + (b * s.h + wr.row[ky]) * s.w * s.c + c0;
    __m512 acc[kTaps];
    for (int t = 0; t < kTaps; ++t) acc[t] = _mm512_setzero_ps();
    const Dy* g = dy + (b * s.h + oy) * s.w * s.c + c0;
    auto pixel = [&](int64_t ox, bool edge) XN_AVX512 {
      const __m512 gv = load16(g + ox * s.c, m);
      for (int ky = 0; ky < 3; ++ky)
        for (int kx = 0; kx < 3; ++kx) {
          const int64_t ix = ox + kx - 1;
          const __mmask16 k = !edge || (ix >= 0 && ix < s.w) ? wr.mask[ky] : 0;
          acc[ky * 3 + kx] = _mm512_mask3_fmadd_ps(load16(rows[ky] + (k ? ix : ox) * s.c, k), gv, acc[ky * 3 + kx], k);
        }
    };
    pixel(0, true);
    for (int64_t ox = 1; ox < s.w - 1; ++ox) pixel(ox, false);
    if (s.w > 1) pixel(s.w - 1, true);
    for (int t = 0; t < kTaps; ++t) {
      float* at = sums + t * s.c + c0;
      _mm512_mask_storeu_ps(at, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, at), acc[t]));
    }
  }
}

template <class Dy>
XN_AVX512 void filterAll(const DwShape& s, const float* x, const Dy* dy, float* dw) {
  const int64_t rows = s.n * s.h, size = kTaps * s.c;
  const int threads = std::max<int64_t>(1, std::min<int64_t>(threadsFor(rows * s.w * s.c), rows));
  std::vector<float> partial(static_cast<size_t>(threads * size), 0.f);
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = threadId(), team = teamSize();
    float* sums = partial.data() + t * size;
    for (int64_t r = rows * t / team; r < rows * (t + 1) / team; ++r) filterRow(s, x, dy, sums, r / s.h, r % s.h);
  }
  std::copy_n(partial.data(), size, dw);
  for (int t = 1; t < threads; ++t)
    for (int64_t i = 0; i < size; ++i) dw[i] += partial[static_cast<size_t>(t * size + i)];
}

#undef XN_AVX512

// The taps of a Keras depthwise filter [3, 3, c, 1], or turned 180° (for the backward data pass).
std::vector<float> tapsOf(const DwShape& s, const float* w, bool turned) {
  std::vector<float> taps(static_cast<size_t>(kTaps * s.c));
  for (int t = 0; t < kTaps; ++t) std::copy_n(w + (turned ? kTaps - 1 - t : t) * s.c, s.c, taps.data() + t * s.c);
  return taps;
}

}  // namespace

bool ownDepthwiseAvailable() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl");
  return ok;
}

template <class In, class Out>
void depthwise3x3(const DwShape& s, const In* x, const float* w, bool turned, Out* y) {
  forwardAll(s, x, tapsOf(s, w, turned).data(), y);
}
template void depthwise3x3(const DwShape&, const float*, const float*, bool, float*);
template void depthwise3x3(const DwShape&, const float*, const float*, bool, uint16_t*);
template void depthwise3x3(const DwShape&, const uint16_t*, const float*, bool, float*);
template void depthwise3x3(const DwShape&, const uint16_t*, const float*, bool, uint16_t*);

template <class Dy>
void depthwise3x3Filter(const DwShape& s, const float* x, const Dy* dy, float* dw) {
  filterAll(s, x, dy, dw);
}
template void depthwise3x3Filter(const DwShape&, const float*, const float*, float*);
template void depthwise3x3Filter(const DwShape&, const float*, const uint16_t*, float*);

}  // namespace xnative
