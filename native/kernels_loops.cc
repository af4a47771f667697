// The small kernels as plain loops: elementwise arithmetic, bias and row sums, channel concat and
// slice, softmax and cross-entropy, global pooling. They are memory-bound; OpenMP (the runtime
// oneDNN itself uses here) splits the big ones across cores. Reductions accumulate in double so
// that long sums (rows = N·H·W) stay within 1e-4 of the reference.
#include <algorithm>
#include <cmath>
#include <limits>

#include "common.h"

namespace xnative {
namespace {

// Runs body(begin, end) over [0, n) in contiguous chunks, one per thread (one call if small).
// The body must not throw.
template <class F>
void chunked(int64_t n, F body) {
#ifdef _OPENMP
  if (n > kParallelMin) {
#pragma omp parallel
    {
      const int64_t t = omp_get_thread_num(), k = omp_get_num_threads();
      // Chunk edges on multiples of 16 floats (64 bytes) so threads never share a cache line.
      const int64_t b = (n * t / k) & ~int64_t(15), e = t == k - 1 ? n : (n * (t + 1) / k) & ~int64_t(15);
      if (e > b) body(b, e);
    }
    return;
  }
#endif
  body(0, n);
}

XN_CLONES void reluRange(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] <= 0.f ? 0.f : x[i];  // NaN stays NaN (PyTorch's rule)
}

// The gradient is dropped where the forward output is ≤ 0 (the contract passes y, not x); a NaN y
// passes dy, as in PyTorch.
XN_CLONES void reluBackwardRange(const float* dy, const float* y, float* dx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] = y[i] <= 0.f ? 0.f : dy[i];
}

XN_CLONES void axpbyRange(float a, const float* x, float b, const float* y, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a * x[i] + b * y[i];
}

XN_CLONES void mulRange(const float* x, const float* y, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * y[i];
}

XN_CLONES void scaleRange(float s, const float* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = s * x[i];
}

// inputs: x; nums: size
void relu(State&, const Args& a, Result& r) {
  a.expectCounts(1, 1);
  const int64_t n = a.dim(0, "size");
  const float* x = a.input(0, n, "x");
  float* y = r.add(n);
  chunked(n, [&](int64_t b, int64_t e) { reluRange(x + b, y + b, e - b); });
}

// inputs: dy, y; nums: size
void reluBackward(State&, const Args& a, Result& r) {
  a.expectCounts(2, 1);
  const int64_t n = a.dim(0, "size");
  const float* dy = a.input(0, n, "dy");
  const float* y = a.input(1, n, "y");
  float* dx = r.add(n);
  chunked(n, [&](int64_t b, int64_t e) { reluBackwardRange(dy + b, y + b, dx + b, e - b); });
}

// inputs: a, b; nums: alpha, beta, size
void axpby(State&, const Args& a, Result& r) {
  a.expectCounts(2, 3);
  double alpha = a.real(0, "alpha"), beta = a.real(1, "beta");
  int64_t n = a.dim(2, "size");
  const float* x = a.input(0, n, "a");
  const float* y = a.input(1, n, "b");
  float* out = r.add(n);
  const float fa = static_cast<float>(alpha), fb = static_cast<float>(beta);
  chunked(n, [&](int64_t b, int64_t e) { axpbyRange(fa, x + b, fb, y + b, out + b, e - b); });
}

// inputs: a, b; nums: size
void mul(State&, const Args& a, Result& r) {
  a.expectCounts(2, 1);
  int64_t n = a.dim(0, "size");
  const float* x = a.input(0, n, "a");
  const float* y = a.input(1, n, "b");
  float* out = r.add(n);
  chunked(n, [&](int64_t b, int64_t e) { mulRange(x + b, y + b, out + b, e - b); });
}

// inputs: a; nums: s, size
void scale(State&, const Args& a, Result& r) {
  a.expectCounts(1, 2);
  const float s = static_cast<float>(a.real(0, "s"));
  int64_t n = a.dim(1, "size");
  const float* x = a.input(0, n, "a");
  float* out = r.add(n);
  chunked(n, [&](int64_t b, int64_t e) { scaleRange(s, x + b, out + b, e - b); });
}

// inputs: x, bias; nums: rows, channels
void biasAdd(State&, const Args& a, Result& r) {
  a.expectCounts(2, 2);
  int64_t rows = a.dim(0, "rows"), ch = a.dim(1, "channels");
  int64_t n = elems({rows, ch}, "biasAdd input");
  const float* x = a.input(0, n, "x");
  const float* b = a.input(1, ch, "bias");
  float* out = r.add(n);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < rows; ++i) {
    const float* xr = x + i * ch;
    float* yr = out + i * ch;
    for (int64_t c = 0; c < ch; ++c) yr[c] = xr[c] + b[c];
  }
}

// inputs: x; nums: rows, channels → [channels]
void sumRows(State&, const Args& a, Result& r) {
  a.expectCounts(1, 2);
  int64_t rows = a.dim(0, "rows"), ch = a.dim(1, "channels");
  int64_t n = elems({rows, ch}, "sumRows input");
  const float* x = a.input(0, n, "x");
  float* out = r.add(ch);
  // One row of partial sums per thread, allocated here: nothing may throw inside the parallel
  // region (an exception escaping an OpenMP region terminates the process).
  const int threads = threadsFor(n);
  ThreadPartials part(threads, ch);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    double* mine = part.row(threadId());
#pragma omp for schedule(static)
    for (int64_t i = 0; i < rows; ++i) {
      const float* xr = x + i * ch;
      for (int64_t c = 0; c < ch; ++c) mine[c] += xr[c];
    }
  }
  for (int64_t c = 0; c < ch; ++c) {
    double total = 0;
    for (int t = 0; t < threads; ++t) total += part.row(t)[c];
    out[c] = static_cast<float>(total);
  }
}

// inputs: xs[0..k); nums: rows, channels[0..k)
void concatChannels(State&, const Args& a, Result& r) {
  if (a.nums.empty() || a.nums.size() != a.in.size() + 1 || a.in.empty())
    fail(a, "expected rows, then one channel count per input");
  a.expectCounts(a.in.size(), a.in.size() + 1);
  int64_t rows = a.dim(0, "rows");
  std::vector<int64_t> chans(a.in.size());
  std::vector<const float*> src(a.in.size());
  int64_t total = 0;
  for (size_t i = 0; i < a.in.size(); ++i) {
    chans[i] = a.dim(i + 1, "channels", 0);
    total += chans[i];
    if (total > 2147483647) fail(a, "too many channels");
    src[i] = a.input(i, elems({rows, chans[i]}, "concat input"), ("xs[" + std::to_string(i) + "]").c_str());
  }
  int64_t n = elems({rows, total}, "concat output");
  float* out = r.add(n);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t row = 0; row < rows; ++row) {
    float* dst = out + row * total;
    for (size_t i = 0; i < chans.size(); ++i) {
      std::copy_n(src[i] + row * chans[i], chans[i], dst);
      dst += chans[i];
    }
  }
}

// inputs: x; nums: rows, channels, start, count
void sliceChannels(State&, const Args& a, Result& r) {
  a.expectCounts(1, 4);
  int64_t rows = a.dim(0, "rows"), ch = a.dim(1, "channels");
  int64_t start = a.dim(2, "start", 0), count = a.dim(3, "count", 0);
  if (start + count > ch) fail(a, "slice [start, start + count) exceeds the channel count");
  const float* x = a.input(0, elems({rows, ch}, "slice input"), "x");
  int64_t n = elems({rows, count}, "slice output");
  float* out = r.add(n);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t row = 0; row < rows; ++row) std::copy_n(x + row * ch + start, count, out + row * count);
}

// Writes softmax(x row) into p and returns log(Σ exp(x − max)) + max, the log-normalizer.
double softmaxRow(const float* x, float* p, int64_t ch) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t c = 0; c < ch; ++c) mx = std::max(mx, x[c]);
  double sum = 0;
  for (int64_t c = 0; c < ch; ++c) sum += std::exp(static_cast<double>(x[c]) - mx);
  for (int64_t c = 0; c < ch; ++c) p[c] = static_cast<float>(std::exp(static_cast<double>(x[c]) - mx) / sum);
  return std::log(sum) + mx;
}

// inputs: x; nums: rows, channels
void softmax(State&, const Args& a, Result& r) {
  a.expectCounts(1, 2);
  int64_t rows = a.dim(0, "rows"), ch = a.dim(1, "channels");
  int64_t n = elems({rows, ch}, "softmax input");
  const float* x = a.input(0, n, "x");
  float* out = r.add(n);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < rows; ++i) softmaxRow(x + i * ch, out + i * ch, ch);
}

void checkLabels(const Args& a, int64_t rows, int64_t ch) {
  if (a.ints == nullptr || a.intCount != rows)
    fail(a, "expected " + std::to_string(rows) + " labels, got " + std::to_string(a.ints ? a.intCount : 0));
  for (int64_t i = 0; i < rows; ++i)
    if (a.ints[i] < 0 || a.ints[i] >= ch)
      fail(a, "label " + std::to_string(a.ints[i]) + " at row " + std::to_string(i) + " is outside [0, " +
                  std::to_string(ch) + ")");
}

double smoothingOf(const Args& a, size_t i) {
  double s = a.real(i, "labelSmoothing");
  if (s < 0 || s > 1) fail(a, "labelSmoothing must be in [0, 1]");
  return s;
}

// inputs: logits; nums: rows, channels, labelSmoothing; ints: labels → probs; scalar: mean loss
void softmaxCrossEntropy(State&, const Args& a, Result& r) {
  a.expectCounts(1, 3);
  int64_t rows = a.dim(0, "rows"), ch = a.dim(1, "channels");
  double smooth = smoothingOf(a, 2);
  int64_t n = elems({rows, ch}, "logits");
  const float* x = a.input(0, n, "logits");
  checkLabels(a, rows, ch);
  float* probs = r.add(n);
  double loss = 0;
  // target = onehot·(1 − s) + s/C, so −Σ target·log p = (1 − s)·(lse − x_label) + (s/C)·Σ (lse − x_c).
  for (int64_t i = 0; i < rows; ++i) {
    const float* xr = x + i * ch;
    double lse = softmaxRow(xr, probs + i * ch, ch);
    double sumLogp = 0;
    for (int64_t c = 0; c < ch; ++c) sumLogp += static_cast<double>(xr[c]) - lse;
    double logpLabel = static_cast<double>(xr[a.ints[i]]) - lse;
    loss -= (1 - smooth) * logpLabel + (smooth / static_cast<double>(ch)) * sumLogp;
  }
  r.scalars.push_back(loss / static_cast<double>(rows));
}

// inputs: probs; nums: rows, channels, labelSmoothing, scale; ints: labels
void softmaxCrossEntropyBackward(State&, const Args& a, Result& r) {
  a.expectCounts(1, 4);
  int64_t rows = a.dim(0, "rows"), ch = a.dim(1, "channels");
  double smooth = smoothingOf(a, 2);
  double scale = a.real(3, "scale");
  int64_t n = elems({rows, ch}, "probs");
  const float* p = a.input(0, n, "probs");
  checkLabels(a, rows, ch);
  float* dx = r.add(n);
  const double k = scale / static_cast<double>(rows), off = smooth / static_cast<double>(ch);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t c = 0; c < ch; ++c) {
      double target = off + (c == a.ints[i] ? 1 - smooth : 0.0);
      dx[i * ch + c] = static_cast<float>((p[i * ch + c] - target) * k);
    }
  }
}

// Targets of a binary cross-entropy must be probabilities; anything else is a caller's bug.
void checkTargets(const Args& a, const float* t, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!(t[i] >= 0.f && t[i] <= 1.f)) fail(a, "target at index " + std::to_string(i) + " is outside [0, 1]");
}

// inputs: logits, targets; nums: rows, channels → probs = sigmoid(logits); scalar: mean BCE
// over rows·channels in the stable form max(x, 0) − x·t + log1p(exp(−|x|)).
void sigmoidCrossEntropy(State&, const Args& a, Result& r) {
  a.expectCounts(2, 2);
  int64_t rows = a.dim(0, "rows"), ch = a.dim(1, "channels");
  int64_t n = elems({rows, ch}, "logits");
  const float* x = a.input(0, n, "logits");
  const float* t = a.input(1, n, "targets");
  checkTargets(a, t, n);
  float* probs = r.add(n);
  double loss = 0;
  for (int64_t i = 0; i < n; ++i) {
    double xi = x[i], e = std::exp(-std::fabs(xi));
    loss += std::max(xi, 0.0) - xi * t[i] + std::log1p(e);
    probs[i] = static_cast<float>(xi >= 0 ? 1 / (1 + e) : e / (1 + e));
  }
  r.scalars.push_back(loss / static_cast<double>(n));
}

// inputs: probs, targets; nums: rows, channels, scale → (probs − targets)·scale/(rows·channels)
void sigmoidCrossEntropyBackward(State&, const Args& a, Result& r) {
  a.expectCounts(2, 3);
  int64_t rows = a.dim(0, "rows"), ch = a.dim(1, "channels");
  double scale = a.real(2, "scale");
  int64_t n = elems({rows, ch}, "probs");
  const float* p = a.input(0, n, "probs");
  const float* t = a.input(1, n, "targets");
  checkTargets(a, t, n);
  float* dx = r.add(n);
  const double k = scale / static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) dx[i] = static_cast<float>((p[i] - t[i]) * k);
}

struct GlobalGeom {
  int64_t n, s, c;
  static GlobalGeom parse(const Args& a) {
    GlobalGeom g{a.dim(0, "batch"), a.dim(1, "spatial"), a.dim(2, "channels")};
    elems({g.n, g.s, g.c}, "global pool input");
    return g;
  }
  int64_t xSize() const { return n * s * c; }
  int64_t ySize() const { return n * c; }
};

// inputs: x; nums: batch, spatial, channels → [batch, channels]
void globalAvgPool(State&, const Args& a, Result& r) {
  a.expectCounts(1, 3);
  GlobalGeom g = GlobalGeom::parse(a);
  const float* x = a.input(0, g.xSize(), "x");
  float* y = r.add(g.ySize());
  std::vector<double> acc(g.c);
  for (int64_t b = 0; b < g.n; ++b) {
    std::fill(acc.begin(), acc.end(), 0.0);
    const float* xb = x + b * g.s * g.c;
    for (int64_t i = 0; i < g.s; ++i)
      for (int64_t c = 0; c < g.c; ++c) acc[c] += xb[i * g.c + c];
    for (int64_t c = 0; c < g.c; ++c) y[b * g.c + c] = static_cast<float>(acc[c] / static_cast<double>(g.s));
  }
}

// inputs: dy; nums: batch, spatial, channels
void globalAvgPoolBackward(State&, const Args& a, Result& r) {
  a.expectCounts(1, 3);
  GlobalGeom g = GlobalGeom::parse(a);
  const float* dy = a.input(0, g.ySize(), "dy");
  float* dx = r.add(g.xSize());
  const double inv = 1.0 / static_cast<double>(g.s);
  for (int64_t b = 0; b < g.n; ++b)
    for (int64_t i = 0; i < g.s; ++i)
      for (int64_t c = 0; c < g.c; ++c)
        dx[(b * g.s + i) * g.c + c] = static_cast<float>(dy[b * g.c + c] * inv);
}

// inputs: x; nums: batch, spatial, channels
void globalMaxPool(State&, const Args& a, Result& r) {
  a.expectCounts(1, 3);
  GlobalGeom g = GlobalGeom::parse(a);
  const float* x = a.input(0, g.xSize(), "x");
  float* y = r.add(g.ySize());
  for (int64_t b = 0; b < g.n; ++b) {
    const float* xb = x + b * g.s * g.c;
    float* yb = y + b * g.c;
    std::copy_n(xb, g.c, yb);
    for (int64_t i = 1; i < g.s; ++i)
      for (int64_t c = 0; c < g.c; ++c) yb[c] = std::max(yb[c], xb[i * g.c + c]);
  }
}

// inputs: dy, x; the gradient goes to the first maximum of each (batch, channel).
void globalMaxPoolBackward(State&, const Args& a, Result& r) {
  a.expectCounts(2, 3);
  GlobalGeom g = GlobalGeom::parse(a);
  const float* dy = a.input(0, g.ySize(), "dy");
  const float* x = a.input(1, g.xSize(), "x");
  float* dx = r.add(g.xSize(), /*zero=*/true);
  std::vector<int64_t> arg(g.c);
  for (int64_t b = 0; b < g.n; ++b) {
    const float* xb = x + b * g.s * g.c;
    std::fill(arg.begin(), arg.end(), 0);
    for (int64_t i = 1; i < g.s; ++i)
      for (int64_t c = 0; c < g.c; ++c)
        if (xb[i * g.c + c] > xb[arg[c] * g.c + c]) arg[c] = i;
    for (int64_t c = 0; c < g.c; ++c) dx[(b * g.s + arg[c]) * g.c + c] = dy[b * g.c + c];
  }
}

// ---- training --------------------------------------------------------------------------------

// In place: inputs param, grad, state…; nums: kind (0 sgd, 1 rmsprop, 2 adam), size, gradScale,
// then the rule's numbers (see UpdateRule in src/core/backend.ts):
//   sgd:     lr, momentum, nesterov, weightDecay            state: [v] if momentum > 0, else none
//   rmsprop: lr, rho, momentum, epsilon, weightDecay        state: [ms, mom]
//   adam:    lr, beta1, beta2, epsilon, weightDecay, decoupled, step   state: [m, v]
// Each element is read and written in the reference's order, in double precision, so aliased
// buffers behave as they do there. Written buffers get a new version (stale derived layouts).
void applyUpdate(State&, const Args& a, Result&) {
  if (a.nums.size() < 3) fail(a, "expected kind, size and gradScale");
  const int64_t kind = a.dim(0, "kind", 0);
  const int64_t n = a.dim(1, "size");
  const double gs = a.real(2, "gradScale");
  const size_t ruleNums = kind == 0 ? 4 : kind == 1 ? 5 : kind == 2 ? 7 : 0;
  if (ruleNums == 0) fail(a, "unknown update rule " + std::to_string(kind));
  const size_t states = kind == 0 ? (a.real(4, "momentum") > 0 ? 1 : 0) : 2;
  a.expectCounts(2 + states, 3 + ruleNums);
  float* w = const_cast<float*>(a.input(0, n, "param"));
  const float* g = a.input(1, n, "grad");
  std::vector<float*> st(states);
  for (size_t i = 0; i < states; ++i) st[i] = const_cast<float*>(a.input(2 + i, n, "state"));
  for (size_t i = 0; i < 2 + states; ++i)
    if (i != 1) a.in[i]->version += 1;
  const double lr = a.real(3, "lr");
  if (kind == 0) {
    const double momentum = a.real(4, "momentum"), wd = a.real(6, "weightDecay");
    const bool nesterov = a.flag(5, "nesterov");
    float* v = states ? st[0] : nullptr;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      const double gi = gs * g[i] + wd * w[i];
      if (v) {
        const double vel = momentum * v[i] - lr * gi;
        v[i] = static_cast<float>(vel);
        w[i] = static_cast<float>(w[i] + (nesterov ? momentum * vel - lr * gi : vel));
      } else {
        w[i] = static_cast<float>(w[i] - lr * gi);
      }
    }
  } else if (kind == 1) {
    const double rho = a.real(4, "rho"), momentum = a.real(5, "momentum"), eps = a.real(6, "epsilon");
    const double wd = a.real(7, "weightDecay");
    float *ms = st[0], *mom = st[1];
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      const double gi = gs * g[i] + wd * w[i];
      ms[i] = static_cast<float>(rho * ms[i] + (1 - rho) * gi * gi);
      mom[i] = static_cast<float>(momentum * mom[i] + lr * gi / std::sqrt(static_cast<double>(ms[i]) + eps));
      w[i] = static_cast<float>(w[i] - static_cast<double>(mom[i]));
    }
  } else {
    const double b1 = a.real(4, "beta1"), b2 = a.real(5, "beta2"), eps = a.real(6, "epsilon");
    const double wd = a.real(7, "weightDecay");
    const bool decoupled = a.flag(8, "decoupledWeightDecay");
    const double step = static_cast<double>(a.dim(9, "step"));
    const double c1 = 1 - std::pow(b1, step), c2 = 1 - std::pow(b2, step);
    float *m = st[0], *v = st[1];
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      const double old = w[i];
      const double gi = gs * g[i] + (decoupled ? 0.0 : wd * old);
      m[i] = static_cast<float>(b1 * m[i] + (1 - b1) * gi);
      v[i] = static_cast<float>(b2 * v[i] + (1 - b2) * gi * gi);
      const double upd = (static_cast<double>(m[i]) / c1) / (std::sqrt(static_cast<double>(v[i]) / c2) + eps);
      w[i] = static_cast<float>(old - lr * (upd + (decoupled ? wd * old : 0.0)));
    }
  }
}

// inputs: x; nums: size → scalar Σ x²
// Σ x² of n values in float64, in 16 interleaved partial sums: one running sum is a chain of
// dependent adds (4 cycles each), which made the per-step gradient check cost ~10 ms.
XN_CLONES double squaresOf(const float* x, int64_t n) {
  constexpr int kLanes = 16;
  double lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int k = 0; k < kLanes; ++k) lanes[k] += static_cast<double>(x[i + k]) * x[i + k];
  double total = 0;
  for (int k = 0; k < kLanes; ++k) total += lanes[k];
  for (; i < n; ++i) total += static_cast<double>(x[i]) * x[i];
  return total;
}

// Each thread sums a contiguous share; the shares are added in thread order (deterministic).
void sumSquares(State&, const Args& a, Result& r) {
  a.expectCounts(1, 1);
  const int64_t n = a.dim(0, "size");
  const float* x = a.input(0, n, "x");
  const int threads = threadsFor(n);
  std::vector<double> part(static_cast<size_t>(threads), 0.0);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int64_t t = threadId(), team = teamSize();
    const int64_t b = n * t / team, e = n * (t + 1) / team;
    part[static_cast<size_t>(t)] = squaresOf(x + b, e - b);
  }
  double total = 0;
  for (double p : part) total += p;
  r.scalars.push_back(total);
}

}  // namespace

void registerLoopKernels(std::map<std::string, KernelFn>& t) {
  t["relu"] = relu;
  t["reluBackward"] = reluBackward;
  t["axpby"] = axpby;
  t["mul"] = mul;
  t["scale"] = scale;
  t["biasAdd"] = biasAdd;
  t["sumRows"] = sumRows;
  t["concatChannels"] = concatChannels;
  t["sliceChannels"] = sliceChannels;
  t["softmax"] = softmax;
  t["softmaxCrossEntropy"] = softmaxCrossEntropy;
  t["softmaxCrossEntropyBackward"] = softmaxCrossEntropyBackward;
  t["sigmoidCrossEntropy"] = sigmoidCrossEntropy;
  t["sigmoidCrossEntropyBackward"] = sigmoidCrossEntropyBackward;
  t["globalAvgPool"] = globalAvgPool;
  t["globalAvgPoolBackward"] = globalAvgPoolBackward;
  t["globalMaxPool"] = globalMaxPool;
  t["globalMaxPoolBackward"] = globalMaxPoolBackward;
  t["applyUpdate"] = applyUpdate;
  t["sumSquares"] = sumSquares;
}

}  // namespace xnative
