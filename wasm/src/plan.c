/*
 * Kernels of compiled inference plans on wasm (src/infer/wasm-plan.ts): the fused epilogue of a
 * convolution or dense step, one pass over its output instead of one per post-op.
 */
#include "kernels.h"

/* Activation codes (kernels.h ACT_*): 0 none, else ELTWISE_ALG of src/infer/plan-format.ts. */

/* y[r, c] = act(y[r, c] + bias[c] + sum[r, c]); bias and sum may be 0 (absent): the epilogue as a
 * pass of its own, for post-op orders a GEMM's fused epilogue does not cover. */
void EXPORT(plan_epilogue)(float *y, int rows, int C, const float *bias, const float *sum, int act, double alpha) {
  Epilogue ep = {bias, sum, act, alpha};
  epilogue_rows(&ep, y, rows, C, C);
}

void epilogue_rows(const Epilogue *ep, float *y, int rows, int cols, int ld) {
  for (int r = 0; r < rows; r++) {
    float *yr = y + (size_t)r * ld;
    const float *sr = ep->sum ? ep->sum + (size_t)r * ld : 0;
    for (int c = 0; c < cols; c++) yr[c] = epilogue_value(ep, yr[c], c, sr);
  }
}

/* The activations compute as the relu and elu kernels of misc.c do, so plans and op-by-op agree. */
float epilogue_value(const Epilogue *ep, float v, int col, const float *sumRow) {
  if (ep->bias) v += ep->bias[col];
  if (sumRow) v += sumRow[col];
  if (ep->act == ACT_RELU) v = v <= 0 ? 0.0f : v;
  else if (ep->act == ACT_ELU && !(v > 0)) v = (float)(ep->alpha * (exp_d(v) - 1));
  return v;
}
