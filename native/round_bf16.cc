// float32 → bfloat16 rounding (to nearest even, as oneDNN's reorders) with AVX512_BF16's
// vcvtne2ps2bf16. The bf16 convolutions round their operands element for element; oneDNN's flat
// reorder did that at ~39 GB/s on tensors in cache, this loop at ~125 (2-core Zen 5, 1.5M floats).
#include <immintrin.h>

#include <algorithm>

#include "common.h"

namespace xnative {

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void roundSpanToBf16Avx512(const float* x, uint16_t* y,
                                                                                            int64_t n) {
  const int64_t whole = n / 32 * 32;
  for (int64_t i = 0; i < whole; i += 32) {
    __m512bh r = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
    _mm512_storeu_si512(reinterpret_cast<void*>(y + i), reinterpret_cast<__m512i>(r));
  }
  for (int64_t i = whole; i < n; i += 16) {
    const __mmask16 m = static_cast<__mmask16>((1u << std::min<int64_t>(16, n - i)) - 1);
    __m256bh r = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i));
    _mm256_mask_storeu_epi16(reinterpret_cast<void*>(y + i), m, reinterpret_cast<__m256i>(r));
  }
}

void roundToBf16Avx512(const float* x, uint16_t* y, int64_t n) {
#pragma omp parallel if (n > kParallelMin)
  {
    const int64_t t = threadId(), team = teamSize();
    // Whole 32-value blocks per thread; the last thread takes the tail.
    const int64_t blocks = n / 32, b0 = blocks * t / team, b1 = blocks * (t + 1) / team;
    const int64_t end = t == team - 1 ? n : b1 * 32;
    roundSpanToBf16Avx512(x + b0 * 32, y + b0 * 32, end - b0 * 32);
  }
}

}  // namespace xnative
