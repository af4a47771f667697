/*
 * Kernels of compiled inference plans on wasm (src/infer/wasm-plan.ts): the fused epilogue of a
 * convolution or dense step, one pass over its output instead of one per post-op.
 */
#include "kernels.h"

/* Activation codes: 0 none, else ELTWISE_ALG of src/infer/plan-format.ts (1 ReLU, 2 ELU). */
#define ACT_RELU 1
#define ACT_ELU 2

/* y[r, c] = act(y[r, c] + bias[c] + sum[r, c]); bias and sum may be 0 (absent). The activations
 * compute as the relu and elu kernels of misc.c do, so plans and op-by-op agree. */
void EXPORT(plan_epilogue)(float *y, int rows, int C, const float *bias, const float *sum, int act, double alpha) {
  for (int r = 0; r < rows; r++) {
    float *restrict yr = y + (size_t)r * C;
    const float *restrict sr = sum ? sum + (size_t)r * C : 0;
    for (int c = 0; c < C; c++) {
      float v = yr[c];
      if (bias) v += bias[c];
      if (sr) v += sr[c];
      if (act == ACT_RELU) v = v <= 0 ? 0.0f : v;
      else if (act == ACT_ELU && !(v > 0)) v = (float)(alpha * (exp_d(v) - 1));
      yr[c] = v;
    }
  }
}
