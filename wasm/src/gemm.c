/*
 * Blocked single-precision GEMM on SIMD128 (the pointwise convolutions are ~93% of Xception's
 * work). Goto/BLIS structure: B is packed into KC×NC panels of NR columns, A into MC×KC panels of
 * MR rows (zero-padded at the edges, which also absorbs the transposes), and a 4×8 register
 * micro-kernel (8 accumulators + 2 B vectors + a broadcast + a product) walks the panels. A 6×8
 * tile (12 accumulators) does not fit the xmm registers V8 leaves free and spills: single-thread
 * GFLOP/s on Xception's pointwise shapes were 20–22 with 6×8, 18 with 5×8, 28–31 with 4×8.
 */
#include <wasm_simd128.h>
#include "kernels.h"

/* dst[k·4 + r] = A[r·lda + k] for 4 whole rows and k in [0, kc): 4×4 blocks transposed in registers. */
static void pack_a_rows4(const float *A, int lda, int kc, float *dst) {
  const float *a0 = A, *a1 = A + lda, *a2 = A + 2 * (size_t)lda, *a3 = A + 3 * (size_t)lda;
  int k = 0;
  for (; k + 4 <= kc; k += 4) {
    v128_t r0 = wasm_v128_load(a0 + k), r1 = wasm_v128_load(a1 + k), r2 = wasm_v128_load(a2 + k), r3 = wasm_v128_load(a3 + k);
    v128_t t0 = wasm_i32x4_shuffle(r0, r1, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(r0, r1, 2, 6, 3, 7);
    v128_t t2 = wasm_i32x4_shuffle(r2, r3, 0, 4, 1, 5), t3 = wasm_i32x4_shuffle(r2, r3, 2, 6, 3, 7);
    float *out = dst + k * GEMM_MR;
    wasm_v128_store(out, wasm_i32x4_shuffle(t0, t2, 0, 1, 4, 5));
    wasm_v128_store(out + 4, wasm_i32x4_shuffle(t0, t2, 2, 3, 6, 7));
    wasm_v128_store(out + 8, wasm_i32x4_shuffle(t1, t3, 0, 1, 4, 5));
    wasm_v128_store(out + 12, wasm_i32x4_shuffle(t1, t3, 2, 3, 6, 7));
  }
  for (; k < kc; k++) {
    float *out = dst + k * GEMM_MR;
    out[0] = a0[k], out[1] = a1[k], out[2] = a2[k], out[3] = a3[k];
  }
}

static void pack_a(int transA, const float *A, int lda, int i0, int mc, int k0, int kc, float *dst) {
  for (int p = 0; p < mc; p += GEMM_MR) {
    int rows = min_int(GEMM_MR, mc - p);
    if (!transA && rows == GEMM_MR) {
      pack_a_rows4(A + (size_t)(i0 + p) * lda + k0, lda, kc, dst);
      dst += kc * GEMM_MR;
      continue;
    }
    for (int k = 0; k < kc; k++) {
      float *out = dst + k * GEMM_MR;
      for (int r = 0; r < rows; r++) {
        int i = i0 + p + r, kk = k0 + k;
        out[r] = transA ? A[(size_t)kk * lda + i] : A[(size_t)i * lda + kk];
      }
      for (int r = rows; r < GEMM_MR; r++) out[r] = 0;
    }
    dst += kc * GEMM_MR;
  }
}

static void pack_b(int transB, const float *B, int ldb, int k0, int kc, int j0, int nc, float *dst) {
  for (int p = 0; p < nc; p += GEMM_NR) {
    int cols = min_int(GEMM_NR, nc - p);
    for (int k = 0; k < kc; k++) {
      float *out = dst + k * GEMM_NR;
      int kk = k0 + k;
      if (!transB && cols == GEMM_NR) {
        const float *src = B + (size_t)kk * ldb + j0 + p;
        wasm_v128_store(out, wasm_v128_load(src));
        wasm_v128_store(out + 4, wasm_v128_load(src + 4));
        continue;
      }
      for (int c = 0; c < cols; c++) {
        int j = j0 + p + c;
        out[c] = transB ? B[(size_t)j * ldb + kk] : B[(size_t)kk * ldb + j];
      }
      for (int c = cols; c < GEMM_NR; c++) out[c] = 0;
    }
    dst += kc * GEMM_NR;
  }
}

/* A finished 8-wide tile row: the epilogue's bias, sum and ReLU on two vectors (see kernels.h;
 * ReLU as `v <= 0 ? 0 : v`, like misc.c's, so NaN and −0 come out the same). */
static void finish_row(const Epilogue *ep, const float *sumRow, v128_t *lo, v128_t *hi) {
  if (ep->bias) {
    *lo = wasm_f32x4_add(*lo, wasm_v128_load(ep->bias));
    *hi = wasm_f32x4_add(*hi, wasm_v128_load(ep->bias + 4));
  }
  if (sumRow) {
    *lo = wasm_f32x4_add(*lo, wasm_v128_load(sumRow));
    *hi = wasm_f32x4_add(*hi, wasm_v128_load(sumRow + 4));
  }
  if (ep->act == ACT_RELU) {
    v128_t zero = wasm_f32x4_splat(0);
    *lo = wasm_v128_bitselect(zero, *lo, wasm_f32x4_le(*lo, zero));
    *hi = wasm_v128_bitselect(zero, *hi, wasm_f32x4_le(*hi, zero));
  }
}

/* tile[MR×NR] = Σ_k a[k]ᵀ·b[k] over packed panels; then C = (add ? C : 0) + tile on rows × cols,
 * and the epilogue `ep` (0: none; its bias and sum start at this tile) on the result. */
static void micro_kernel(int kc, const float *a, const float *b, float *C, int ldc, int rows, int cols, int add, const Epilogue *ep) {
  v128_t c00 = wasm_f32x4_splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  v128_t c30 = c00, c31 = c00;
  for (int k = 0; k < kc; k++) {
    v128_t b0 = wasm_v128_load(b), b1 = wasm_v128_load(b + 4);
    v128_t av;
    av = wasm_f32x4_splat(a[0]); c00 = MADD(c00, av, b0); c01 = MADD(c01, av, b1);
    av = wasm_f32x4_splat(a[1]); c10 = MADD(c10, av, b0); c11 = MADD(c11, av, b1);
    av = wasm_f32x4_splat(a[2]); c20 = MADD(c20, av, b0); c21 = MADD(c21, av, b1);
    av = wasm_f32x4_splat(a[3]); c30 = MADD(c30, av, b0); c31 = MADD(c31, av, b1);
    a += GEMM_MR;
    b += GEMM_NR;
  }
  v128_t acc[GEMM_MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
  if (cols == GEMM_NR && (!ep || ep->act != ACT_ELU)) {
    for (int r = 0; r < rows; r++) {
      float *out = C + (size_t)r * ldc;
      v128_t lo = acc[r][0], hi = acc[r][1];
      if (add) {
        lo = wasm_f32x4_add(lo, wasm_v128_load(out));
        hi = wasm_f32x4_add(hi, wasm_v128_load(out + 4));
      }
      if (ep) finish_row(ep, ep->sum ? ep->sum + (size_t)r * ldc : 0, &lo, &hi);
      wasm_v128_store(out, lo);
      wasm_v128_store(out + 4, hi);
    }
    return;
  }
  float tile[GEMM_MR * GEMM_NR];
  for (int r = 0; r < GEMM_MR; r++) {
    wasm_v128_store(tile + r * GEMM_NR, acc[r][0]);
    wasm_v128_store(tile + r * GEMM_NR + 4, acc[r][1]);
  }
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++) {
      float v = (add ? C[(size_t)r * ldc + c] : 0) + tile[r * GEMM_NR + c];
      C[(size_t)r * ldc + c] = ep ? epilogue_value(ep, v, c, ep->sum ? ep->sum + (size_t)r * ldc : 0) : v;
    }
}

/* The epilogue of the tile at row i, column j of C (its bias and sum moved there). */
static Epilogue tile_epilogue(const Epilogue *ep, int i, int j, int ldc) {
  Epilogue t = *ep;
  if (t.bias) t.bias += j;
  if (t.sum) t.sum += (size_t)i * ldc + j;
  return t;
}

static void zero_matrix(float *C, int M, int N, int ldc) {
  for (int i = 0; i < M; i++) zero_floats(C + (size_t)i * ldc, (size_t)N);
}

/* B packed once ahead (a compiled plan's weights; gemm_prepack_b): its panels for KC block k0 at
 * base + k0·npad, micro-panel of column j at (j / NR)·kc·NR within; `col` is the column of this
 * call's B[0] (a thread's share starts there). */
typedef struct {
  const float *base;
  int npad, col;
} PackedB;

static const float *packed_panel(const PackedB *pb, int k0, int kc, int j0) {
  return pb->base + (size_t)k0 * pb->npad + (size_t)((pb->col + j0) / GEMM_NR) * kc * GEMM_NR;
}

static void gemm_serial(int transA, int transB, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc,
                        int accumulate, const Epilogue *ep, const PackedB *pb, float *work) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate) zero_matrix(C, M, N, ldc);
    if (ep) epilogue_rows(ep, C, M, N, ldc);
    return;
  }
  float *packA = work, *packB = work + GEMM_MC * GEMM_KC;
  for (int j0 = 0; j0 < N; j0 += GEMM_NC) {
    int nc = min_int(GEMM_NC, N - j0);
    for (int k0 = 0; k0 < K; k0 += GEMM_KC) {
      int kc = min_int(GEMM_KC, K - k0);
      int add = accumulate || k0 > 0, last = k0 + kc == K;
      const float *panelB = packB;
      if (pb) panelB = packed_panel(pb, k0, kc, j0);
      else pack_b(transB, B, ldb, k0, kc, j0, nc, packB);
      for (int i0 = 0; i0 < M; i0 += GEMM_MC) {
        int mc = min_int(GEMM_MC, M - i0);
        pack_a(transA, A, lda, i0, mc, k0, kc, packA);
        for (int jr = 0; jr < nc; jr += GEMM_NR) {
          for (int ir = 0; ir < mc; ir += GEMM_MR) {
            float *c = C + (size_t)(i0 + ir) * ldc + j0 + jr;
            Epilogue t;
            if (ep && last) t = tile_epilogue(ep, i0 + ir, j0 + jr, ldc);
            micro_kernel(kc, packA + ir * kc, panelB + jr * kc, c, ldc, min_int(GEMM_MR, mc - ir), min_int(GEMM_NR, nc - jr), add,
                         ep && last ? &t : 0);
          }
        }
      }
    }
  }
}

typedef struct {
  int transA, transB, M, N, K;
  const float *A;
  int lda;
  const float *B;
  int ldb;
  float *C;
  int ldc, accumulate;
  const Epilogue *ep;
  const PackedB *pb;
  float *work;
} GemmJob;

/* Thread tid's block of C: rows when M ≥ N, else columns, in whole micro-tiles. Each element is
 * summed in the same order as on one thread, so the result is bitwise the same. */
static void gemm_task(void *ctx, int tid, int n) {
  const GemmJob *j = ctx;
  int b, e;
  float *work = gemm_work_of(tid, j->work);
  Epilogue t;
  if (j->M >= j->N) {
    split_range(j->M, tid, n, GEMM_MR, &b, &e);
    const float *A = j->transA ? j->A + b : j->A + (size_t)b * j->lda;
    if (j->ep) t = tile_epilogue(j->ep, b, 0, j->ldc);
    if (e > b)
      gemm_serial(j->transA, j->transB, e - b, j->N, j->K, A, j->lda, j->B, j->ldb, j->C + (size_t)b * j->ldc, j->ldc, j->accumulate,
                  j->ep ? &t : 0, j->pb, work);
  } else {
    split_range(j->N, tid, n, GEMM_NR, &b, &e);
    const float *B = j->transB ? j->B + (size_t)b * j->ldb : j->B + b;
    if (j->ep) t = tile_epilogue(j->ep, 0, b, j->ldc);
    PackedB share;
    if (j->pb) share = (PackedB){j->pb->base, j->pb->npad, j->pb->col + b};
    if (e > b)
      gemm_serial(j->transA, j->transB, j->M, e - b, j->K, j->A, j->lda, B, j->ldb, j->C + b, j->ldc, j->accumulate, j->ep ? &t : 0,
                  j->pb ? &share : 0, work);
  }
}

static void gemm_run(int transA, int transB, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc,
                     int accumulate, const Epilogue *ep, const PackedB *pb, float *work) {
  GemmJob job = {transA, transB, M, N, K, A, lda, B, ldb, C, ldc, accumulate, ep, pb, work};
  parallel_run(gemm_task, &job, (double)M * N * K);
}

void gemm_with(int transA, int transB, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc,
               int accumulate, const Epilogue *ep, float *work) {
  gemm_run(transA, transB, M, N, K, A, lda, B, ldb, C, ldc, accumulate, ep, 0, work);
}

/* Columns of B as packed: N rounded up to whole micro-panels. */
static int packed_columns(int N) { return (N + GEMM_NR - 1) / GEMM_NR * GEMM_NR; }

/* Floats of packing space each thread's `work` must hold (the TypeScript side allocates them). */
int EXPORT(gemm_work_floats)(void) { return GEMM_WORK_FLOATS; }

int EXPORT(gemm_packed_b_floats)(int K, int N) { return K * packed_columns(N); }

/* dst (gemm_packed_b_floats(K, N) floats) = B[K, N] (row stride N) in the panels gemm_serial
 * reads: the packing every GEMM call would repeat, done once for weights that do not change. */
void EXPORT(gemm_prepack_b)(int K, int N, const float *B, float *dst) {
  int npad = packed_columns(N);
  for (int k0 = 0; k0 < K; k0 += GEMM_KC) {
    int kc = min_int(GEMM_KC, K - k0);
    pack_b(0, B, N, k0, kc, 0, N, dst + (size_t)k0 * npad);
  }
}

void gemm_packed(int M, int N, int K, const float *A, int lda, const float *packedB, float *C, int ldc, const Epilogue *ep, float *work) {
  PackedB pb = {packedB, packed_columns(N), 0};
  gemm_run(0, 0, M, N, K, A, lda, 0, N, C, ldc, 0, ep, &pb, work);
}

void EXPORT(gemm)(int transA, int transB, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc,
                  int accumulate, float *work) {
  gemm_with(transA, transB, M, N, K, A, lda, B, ldb, C, ldc, accumulate, 0, work);
}

/* A compiled plan's dense step: the GEMM with its epilogue, on weights packed by gemm_prepack_b. */
void EXPORT(gemm_fused)(int M, int N, int K, const float *A, const float *packedB, float *C, const Epilogue *ep, float *work) {
  gemm_packed(M, N, K, A, K, packedB, C, N, ep, work);
}
