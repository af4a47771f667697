/*
 * Shared declarations of the wasm kernels. Freestanding C (no libc): every pointer is an offset
 * into the one linear memory that the TypeScript side allocates from (src/backends/wasm/).
 * The TypeScript side validates every shape before it calls in; these kernels trust their sizes.
 */
#ifndef XCEPTION_WASM_KERNELS_H
#define XCEPTION_WASM_KERNELS_H

#define EXPORT(name) __attribute__((export_name(#name))) name

typedef unsigned long size_t;

/* acc + x·y on f32x4 (needs <wasm_simd128.h>): fused (one rounding, where the CPU has FMA) in the
 * relaxed-SIMD builds (-mrelaxed-simd; wasm/build.sh), a multiply then an add in the plain ones. */
#ifdef __wasm_relaxed_simd__
#define MADD(acc, x, y) wasm_f32x4_relaxed_madd(x, y, acc)
#else
#define MADD(acc, x, y) wasm_f32x4_add(acc, wasm_f32x4_mul(x, y))
#endif

/* Convolution parameters, in the order of core/backend.ts's Conv2DParams (CONV_FIELDS). */
typedef struct {
  int batch, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels;
  int kernelHeight, kernelWidth, strideHeight, strideWidth, dilationHeight, dilationWidth;
  int padTop, padLeft, padBottom, padRight, groups;
} ConvParams;

/* Pooling parameters, in the order of Pool2DParams (POOL_FIELDS). */
typedef struct {
  int batch, inHeight, inWidth, channels, outHeight, outWidth, windowHeight, windowWidth;
  int strideHeight, strideWidth, padTop, padLeft, padBottom, padRight;
} PoolParams;

/* Floats of GEMM packing space `work` must hold (see gemm.c). */
#define GEMM_MR 4
#define GEMM_NR 8
#define GEMM_MC 96
#define GEMM_KC 384
#define GEMM_NC 512
#define GEMM_WORK_FLOATS (GEMM_MC * GEMM_KC + GEMM_KC * GEMM_NC)

/* C[M,N] (row stride ldc) = (accumulate ? C : 0) + op(A)[M,K] · op(B)[K,N], where
 * op(A)[i,k] = transA ? A[k·lda + i] : A[i·lda + k] and op(B)[k,j] = transB ? B[j·ldb + k] : B[k·ldb + j]. */
void gemm(int transA, int transB, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc,
          int accumulate, float *work);

/* What a compiled plan's GEMM does to each finished tile of C before it is stored, in this order:
 * C[i,j] = act(C[i,j] + bias[j] + sum[i·ldc + j]) (bias, sum may be 0: absent; act 0 none, 1 ReLU,
 * 2 ELU). One pass inside the GEMM, on its threads, instead of another over the whole output. */
typedef struct {
  const float *bias, *sum;
  int act;
  double alpha;
} Epilogue;
#define ACT_RELU 1
#define ACT_ELU 2

/* gemm with an epilogue (ep may be 0). */
void gemm_with(int transA, int transB, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc,
               int accumulate, const Epilogue *ep, float *work);
/* C[M,N] (row stride ldc) = A[M,K] · B[K,N] and the epilogue, B packed by gemm_prepack_b. */
void gemm_packed(int M, int N, int K, const float *A, int lda, const float *packedB, float *C, int ldc, const Epilogue *ep, float *work);
/* The epilogue on a rows × cols block of row stride ld (ep's sum with the same stride). */
void epilogue_rows(const Epilogue *ep, float *y, int rows, int cols, int ld);
void conv2d_forward_fused(const ConvParams *p, const float *x, const float *w, float *y, float *scratch, float *work, const Epilogue *ep);
/* The epilogue on one element (the plan's and op-by-op's activations agree: misc.c). */
float epilogue_value(const Epilogue *ep, float v, int col, const float *sumRow);

/* Threads (threads.c): a job runs fn(ctx, tid, n) on n threads, tid 0 being the caller; below
 * PARALLEL_MIN_WORK (multiply-adds or elements; settable) it runs on the caller alone. */
#define MAX_THREADS 16
#define PARALLEL_MIN_WORK 65536.0
typedef void (*task_fn)(void *ctx, int tid, int n);
void parallel_run(task_fn fn, void *ctx, double work);
/* [begin, end): thread tid's share of count items, in multiples of align. */
void split_range(int count, int tid, int n, int align, int *begin, int *end);
float *gemm_work_of(int tid, float *own);

double exp_d(double x);
double log_d(double x);

static inline void zero_floats(float *p, size_t n) { __builtin_memset(p, 0, n * sizeof(float)); }
static inline int min_int(int a, int b) { return a < b ? a : b; }
static inline int max_int(int a, int b) { return a > b ? a : b; }

#endif
