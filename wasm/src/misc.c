/* Elementwise kernels, channel bookkeeping, optimizer updates and the classification losses. */
#include "kernels.h"

static void axpby_serial(const float *a, const float *b, float alpha, float beta, int n, float *y) {
  for (int i = 0; i < n; i++) y[i] = alpha * a[i] + beta * b[i];
}

static void mul_serial(const float *a, const float *b, int n, float *y) {
  for (int i = 0; i < n; i++) y[i] = a[i] * b[i];
}

static void scale_serial(const float *a, float s, int n, float *y) {
  for (int i = 0; i < n; i++) y[i] = a[i] * s;
}

/* max(x, 0) with NaN kept and −0 → 0. */
static void relu_serial(const float *x, int n, float *y) {
  for (int i = 0; i < n; i++) y[i] = x[i] <= 0 ? 0.0f : x[i];
}

static void relu_backward_serial(const float *dy, const float *y, int n, float *dx) {
  for (int i = 0; i < n; i++) dx[i] = y[i] <= 0 ? 0.0f : dy[i];
}

static void elu_serial(const float *x, double alpha, int n, float *y) {
  for (int i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : (float)(alpha * (exp_d(x[i]) - 1));
}

static void elu_backward_serial(const float *dy, const float *y, float alpha, int n, float *dx) {
  for (int i = 0; i < n; i++) dx[i] = y[i] > 0 ? dy[i] : dy[i] * (y[i] + alpha);
}

/* Copies `count` columns of `rows` rows between row-major matrices (concat and slice). */
void EXPORT(copy_columns)(const float *src, int srcStride, float *dst, int dstStride, int rows, int count) {
  for (int r = 0; r < rows; r++)
    __builtin_memcpy(dst + (size_t)r * dstStride, src + (size_t)r * srcStride, (size_t)count * sizeof(float));
}

static void bias_add_serial(const float *x, const float *bias, int rows, int C, float *y) {
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < C; c++) y[(size_t)r * C + c] = x[(size_t)r * C + c] + bias[c];
}

/* The elementwise kernels above on the pool: each thread takes a contiguous range of elements
 * (of rows for bias_add), so results are bitwise those of one thread. */
typedef enum { AXPBY, MUL, SCALE, RELU, RELU_BACKWARD, ELU, ELU_BACKWARD, BIAS_ADD } ElementwiseKind;
typedef struct {
  ElementwiseKind kind;
  const float *a, *b;
  float *y;
  double s, t;
  int n, C;
} ElementwiseJob;

static void elementwise_task(void *ctx, int tid, int threads) {
  const ElementwiseJob *j = ctx;
  int i0, i1;
  split_range(j->n, tid, threads, 16, &i0, &i1);
  if (i1 <= i0) return;
  int n = i1 - i0;
  const float *a = j->a + (j->kind == BIAS_ADD ? (size_t)i0 * j->C : (size_t)i0), *b = j->b ? j->b + i0 : 0;
  float *y = j->y + (j->kind == BIAS_ADD ? (size_t)i0 * j->C : (size_t)i0);
  switch (j->kind) {
    case AXPBY: return axpby_serial(a, b, (float)j->s, (float)j->t, n, y);
    case MUL: return mul_serial(a, b, n, y);
    case SCALE: return scale_serial(a, (float)j->s, n, y);
    case RELU: return relu_serial(a, n, y);
    case RELU_BACKWARD: return relu_backward_serial(a, b, n, y);
    case ELU: return elu_serial(a, j->s, n, y);
    case ELU_BACKWARD: return elu_backward_serial(a, b, (float)j->s, n, y);
    case BIAS_ADD: return bias_add_serial(a, j->b, n, j->C, y);
  }
}

static void elementwise(ElementwiseKind kind, const float *a, const float *b, double s, double t, int n, float *y) {
  ElementwiseJob job = {kind, a, b, y, s, t, n, 1};
  parallel_run(elementwise_task, &job, n);
}

void EXPORT(axpby)(const float *a, const float *b, float alpha, float beta, int n, float *y) { elementwise(AXPBY, a, b, alpha, beta, n, y); }
void EXPORT(mul)(const float *a, const float *b, int n, float *y) { elementwise(MUL, a, b, 0, 0, n, y); }
void EXPORT(scale)(const float *a, float s, int n, float *y) { elementwise(SCALE, a, 0, s, 0, n, y); }
void EXPORT(relu)(const float *x, int n, float *y) { elementwise(RELU, x, 0, 0, 0, n, y); }
void EXPORT(relu_backward)(const float *dy, const float *y, int n, float *dx) { elementwise(RELU_BACKWARD, dy, y, 0, 0, n, dx); }
void EXPORT(elu)(const float *x, double alpha, int n, float *y) { elementwise(ELU, x, 0, alpha, 0, n, y); }
void EXPORT(elu_backward)(const float *dy, const float *y, float alpha, int n, float *dx) { elementwise(ELU_BACKWARD, dy, y, alpha, 0, n, dx); }

void EXPORT(bias_add)(const float *x, const float *bias, int rows, int C, float *y) {
  ElementwiseJob job = {BIAS_ADD, x, bias, y, 0, 0, rows, C};
  parallel_run(elementwise_task, &job, (double)rows * C);
}

double EXPORT(sum_squares)(const float *x, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) s += (double)x[i] * x[i];
  return s;
}

/* The UpdateRule formulas of core/backend.ts, in float64 per weight like the reference. */
void EXPORT(update_sgd)(float *w, const float *grad, float *v, int n, double gradScale, double lr, double momentum, int nesterov,
                        double decay) {
  for (int i = 0; i < n; i++) {
    double g = gradScale * grad[i] + decay * w[i];
    if (!v) {
      w[i] = (float)(w[i] - lr * g);
      continue;
    }
    double vel = momentum * v[i] - lr * g;
    v[i] = (float)vel;
    w[i] = (float)(w[i] + (nesterov ? momentum * vel - lr * g : vel));
  }
}

void EXPORT(update_rmsprop)(float *w, const float *grad, float *ms, float *mom, int n, double gradScale, double lr, double rho,
                            double momentum, double epsilon, double decay) {
  for (int i = 0; i < n; i++) {
    double g = gradScale * grad[i] + decay * w[i];
    ms[i] = (float)(rho * ms[i] + (1 - rho) * g * g);
    mom[i] = (float)(momentum * mom[i] + lr * g / __builtin_sqrt((double)ms[i] + epsilon));
    w[i] = w[i] - mom[i];
  }
}

void EXPORT(update_adam)(float *w, const float *grad, float *m, float *v, int n, double gradScale, double lr, double beta1, double beta2,
                         double epsilon, double decay, int decoupled, double c1, double c2) {
  for (int i = 0; i < n; i++) {
    double old = w[i];
    double g = gradScale * grad[i] + (decoupled ? 0 : decay * old);
    m[i] = (float)(beta1 * m[i] + (1 - beta1) * g);
    v[i] = (float)(beta2 * v[i] + (1 - beta2) * g * g);
    double step = (double)m[i] / c1 / (__builtin_sqrt((double)v[i] / c2) + epsilon);
    w[i] = (float)(old - lr * (step + (decoupled ? decay * old : 0)));
  }
}

/* probs[row] = softmax(x[row]); returns log Σ exp(x − max) and sets *max. */
static double softmax_row(const float *x, float *probs, int C, double *max) {
  double m = -__builtin_inf(), sum = 0;
  for (int c = 0; c < C; c++)
    if (x[c] > m) m = x[c];
  for (int c = 0; c < C; c++) sum += exp_d(x[c] - m);
  for (int c = 0; c < C; c++) probs[c] = (float)(exp_d(x[c] - m) / sum);
  *max = m;
  return log_d(sum);
}

void EXPORT(softmax)(const float *x, int rows, int C, float *probs) {
  double max;
  for (int r = 0; r < rows; r++) softmax_row(x + (size_t)r * C, probs + (size_t)r * C, C, &max);
}

static double smoothed_target(int label, int c, int C, double smoothing) { return (c == label ? 1 - smoothing : 0) + smoothing / C; }

double EXPORT(softmax_cross_entropy)(const float *logits, const int *labels, int rows, int C, double smoothing, float *probs) {
  double total = 0, max;
  for (int r = 0; r < rows; r++) {
    const float *x = logits + (size_t)r * C;
    double logSum = softmax_row(x, probs + (size_t)r * C, C, &max);
    for (int c = 0; c < C; c++) {
      double t = smoothed_target(labels[r], c, C, smoothing);
      if (t != 0) total -= t * (x[c] - max - logSum);
    }
  }
  return total / rows;
}

void EXPORT(softmax_cross_entropy_backward)(const float *probs, const int *labels, int rows, int C, double smoothing, double scale,
                                            float *dlogits) {
  double factor = scale / rows;
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < C; c++) {
      size_t i = (size_t)r * C + c;
      dlogits[i] = (float)((probs[i] - smoothed_target(labels[r], c, C, smoothing)) * factor);
    }
}

/* Mean over all elements of BCE(sigmoid(x), t) = max(x, 0) − x·t + log(1 + e^−|x|) (stable for any x). */
double EXPORT(sigmoid_cross_entropy)(const float *logits, const float *targets, int n, float *probs) {
  double total = 0;
  for (int i = 0; i < n; i++) {
    double x = logits[i], e = exp_d(-__builtin_fabs(x));
    total += (x > 0 ? x : 0) - x * targets[i] + log_d(1 + e);
    probs[i] = (float)(x >= 0 ? 1 / (1 + e) : e / (1 + e));
  }
  return total / n;
}

void EXPORT(sigmoid_cross_entropy_backward)(const float *probs, const float *targets, int n, double scale, float *dlogits) {
  double factor = scale / n;
  for (int i = 0; i < n; i++) dlogits[i] = (float)((probs[i] - targets[i]) * factor);
}

/* 1 in the relaxed-SIMD builds (multiply-adds fused: MADD in kernels.h), 0 in the plain SIMD128 ones. */
int EXPORT(relaxed_simd)(void) {
#ifdef __wasm_relaxed_simd__
  return 1;
#else
  return 0;
#endif
}
