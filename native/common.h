// Shared types of the native backend: buffers, kernel arguments, the per-environment state
// (oneDNN engine, stream, primitive cache) and the checks every kernel runs before touching memory.
//
// Rule of this code: JavaScript has already validated everything, but nothing here trusts it.
// Each kernel checks its numbers and the element counts of its buffers and throws KernelError
// (turned into a JS exception by the binding) instead of reading or writing out of bounds.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>
#ifdef _OPENMP
#include <omp.h>
#endif

// Hot loops are compiled for AVX-512, AVX2 and baseline x86-64 (the build has no -march flag);
// the loader picks one at run time.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define XN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define XN_CLONES
#endif

namespace xnative {

// Below this many elements one thread does it all: a parallel region costs a few microseconds.
constexpr int64_t kParallelMin = 1 << 15;

// OpenMP's view, or one thread in a build without it: the threads a loop over n elements gets,
// and inside a parallel region this thread's number and the team's size.
inline int threadsFor(int64_t n) {
#ifdef _OPENMP
  return n > kParallelMin ? omp_get_max_threads() : 1;
#else
  (void)n;
  return 1;
#endif
}
inline int threadId() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}
inline int teamSize() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// Per-thread rows of float64 partial sums for the parallel reductions. Each thread's row starts
// on its own 64-byte cache line with a full line of padding after it: the rows are written once per
// input row, and two threads writing one shared cache line (false sharing) made the reductions
// slower on two threads than on one.
class ThreadPartials {
 public:
  ThreadPartials(int threads, int64_t width)
      : stride_((width + 2 * kLine - 1) / kLine * kLine),
        data_(static_cast<size_t>(threads) * static_cast<size_t>(stride_) + kLine, 0.0) {}
  double* row(int t) { return aligned() + static_cast<size_t>(t) * static_cast<size_t>(stride_); }
  const double* row(int t) const { return const_cast<ThreadPartials*>(this)->row(t); }

 private:
  static constexpr int64_t kLine = 64 / sizeof(double);
  double* aligned() {
    const auto addr = reinterpret_cast<uintptr_t>(data_.data());
    return data_.data() + ((64 - addr % 64) % 64) / sizeof(double);
  }
  int64_t stride_;
  std::vector<double> data_;
};

class KernelError : public std::runtime_error {
 public:
  explicit KernelError(const std::string& m) : std::runtime_error(m) {}
};

// An allocation the arena and malloc both refused; the binding reports ERR_XCEPTION_NATIVE_OOM.
class OutOfMemory : public std::bad_alloc {
 public:
  explicit OutOfMemory(const std::string& m) : message_(m) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

// Native float32 storage behind one JS handle. `data` becomes null on dispose; the object itself
// lives until the JS external that owns it is garbage collected.
struct Buffer;
void releaseBufferData(Buffer* b);

// A copy of a buffer's contents in a layout some primitive prefers (e.g. blocked filters), kept
// with the buffer so repeated use of the same weights reorders them once, not on every call. Its
// storage comes from the arena like any buffer's: counted, and reused instead of page-faulted.
struct DerivedLayout {
  dnnl::memory::desc desc;
  std::shared_ptr<Buffer> storage;
  dnnl::memory mem;  // on storage
  uint64_t version;  // Buffer::version it was made from
};

struct Buffer {
  float* data = nullptr;
  int64_t size = 0;  // elements
  bool disposed = false;
  // A low buffer (`allocLowBuffer`) holds its contents only as `size` bfloat16 values in `low`,
  // flat, and `data` is null: a bf16 kernel's output whose usual readers take bf16 (a pointwise
  // product, a gradient for one). A reader that needs float32 widens it once (`materialize`).
  std::unique_ptr<Buffer> low;
  // Kernels never write their inputs, so a buffer's contents only change through in-place
  // writers (future optimizer steps), which must bump `version` to invalidate `derived`.
  uint64_t version = 0;
  std::vector<DerivedLayout> derived;
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { releaseBufferData(this); }  // outputs of a kernel that failed midway
};

// y[i] = x[i] rounded to bfloat16 (nearest even); only where the CPU has AVX512_BF16 (round_bf16.cc).
// The Span form runs on the calling thread (inside a parallel region).
void roundToBf16Avx512(const float* x, uint16_t* y, int64_t n);
void roundSpanToBf16Avx512(const float* x, uint16_t* y, int64_t n);

// Depthwise 3×3 convolutions, stride 1, one pixel of padding, over nhwc (kernels_dw.cc): own
// AVX-512 loops, usable where ownDepthwiseAvailable(). Tensors are n × h × w × c (input and output
// the same size); the filter is Keras's [3, 3, c, 1]. Storage is float32 or bf16 (uint16_t; a bf16
// output needs AVX512_BF16: ownBf16Rounding()).
struct DwShape {
  int64_t n, h, w, c;
};
bool ownDepthwiseAvailable();
// y = depthwise(x, w), or with w turned 180° (`turned`: the input gradient, x being dy).
template <class In, class Out>
void depthwise3x3(const DwShape& s, const In* x, const float* w, bool turned, Out* y);
// dw[3, 3, c, 1] = Σ over pixels of x(tap) · dy.
template <class Dy>
void depthwise3x3Filter(const DwShape& s, const float* x, const Dy* dy, float* dw);

// Allocates 64-byte aligned storage (what oneDNN kernels like); zero-filled if asked.
std::unique_ptr<Buffer> allocBuffer(int64_t size, bool zero);

// A low buffer of `size` elements (see Buffer::low); its bf16 storage is lowData(b).
std::unique_ptr<Buffer> allocLowBuffer(int64_t size);
inline uint16_t* lowData(const Buffer& b) { return reinterpret_cast<uint16_t*>(b.low->data); }
inline bool isLow(const Buffer& b) { return b.data == nullptr && b.low != nullptr; }
// Gives a low buffer its float32 contents (the bf16 values widened exactly) and drops the bf16
// copy: from then on it is an ordinary buffer. No-op for other buffers.
void materialize(Buffer& b);
// A bf16 value as float32 (exact: its bits are the float's upper half).
inline float bf16ToFloat(uint16_t v) {
  const uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
// dst[i] = bf16ToFloat(src[i]).
void widenBf16(const uint16_t* src, float* dst, int64_t n);

// Live native memory, for diagnostics and leak tests.
struct MemoryStats {
  int64_t buffers;
  int64_t bytes;
  int64_t pooledBytes;    // freed memory kept resident for reuse
  int64_t arenaBytes;     // the arena's resident size (live + kept)
  int64_t peakLiveBytes;  // the most the arena held at once since the last trim
};
MemoryStats memoryStats();

// One cached oneDNN object set (primitive descriptors, primitives). Subclasses per kernel kind.
struct CacheEntry {
  virtual ~CacheEntry() = default;
};

// Per Node environment (main thread or worker): oneDNN engine and stream plus the primitive cache,
// so that worker threads never share mutable state.
struct State {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::map<std::vector<int64_t>, std::unique_ptr<CacheEntry>> cache;
  int64_t hits = 0, misses = 0;
  static constexpr size_t kMaxEntries = 2048;

  // Returns the entry for `key`, building it with `make()` on a miss. The key must begin with a
  // kernel-kind tag, which is what makes the static_cast safe.
  template <class T, class Make>
  T& cached(std::vector<int64_t> key, Make make) {
    auto it = cache.find(key);
    if (it != cache.end()) {
      ++hits;
      return *static_cast<T*>(it->second.get());
    }
    ++misses;
    // A crude bound: a program that cycles through thousands of shapes rebuilds; others never do.
    if (cache.size() >= kMaxEntries) cache.clear();
    std::unique_ptr<T> e = make();
    T& ref = *e;
    cache.emplace(std::move(key), std::move(e));
    return ref;
  }
};

// Kernel inputs as the binding parsed them.
struct Args {
  const char* op = "";
  std::vector<Buffer*> in;
  std::vector<double> nums;
  const int32_t* ints = nullptr;
  int64_t intCount = 0;

  void expectCounts(size_t nIn, size_t nNums) const;
  // Input i, which must hold exactly `expected` elements (a low buffer is materialized first).
  const float* input(size_t i, int64_t expected, const char* name) const;
  // The same checks; the bf16 contents if input i is a low buffer, else null (nothing widened).
  const uint16_t* lowInput(size_t i, int64_t expected, const char* name) const;
  // nums[i] as an integer in [lo, 2^31).
  int64_t dim(size_t i, const char* name, int64_t lo = 1) const;
  double real(size_t i, const char* name) const;
  bool flag(size_t i, const char* name) const;
};

struct Result {
  std::vector<std::unique_ptr<Buffer>> out;
  std::vector<double> scalars;
  float* add(int64_t size, bool zero = false) {
    out.push_back(allocBuffer(size, zero));
    return out.back()->data;
  }
  // A low output (see Buffer::low): the kernel writes its bf16 values.
  uint16_t* addLow(int64_t size) {
    out.push_back(allocLowBuffer(size));
    return lowData(*out.back());
  }
};

using KernelFn = void (*)(State&, const Args&, Result&);

// Multiplies element counts, refusing anything that overflows or exceeds 2^40 elements.
int64_t elems(std::initializer_list<int64_t> dims, const char* what);
int64_t elems(const std::vector<int64_t>& dims, const char* what);

[[noreturn]] void fail(const Args& a, const std::string& msg);

// Bit pattern of a float parameter, for cache keys.
inline int64_t keyBits(double v) {
  float f = static_cast<float>(v);
  int32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
}

// oneDNN's implementation name for a convolution (which = 0 forward, 1 backward data, 2 filter),
// in float32 or as the `.bf16` kernels run it.
std::string describeConv(State& s, const Args& a, int which, bool bf16);

// Whether bf16 arithmetic is native on this CPU as oneDNN sees it (ONEDNN_MAX_CPU_ISA included):
// "native" (AVX512_BF16 or AMX), "emulated" (AVX-512 without them: oneDNN rounds in software) or
// "unsupported" (no AVX-512: oneDNN 2.6 has no fast bf16 kernels).
const char* bf16Hardware();

// Whether bf16 roundings use our own AVX512_BF16 loop (round_bf16.cc): where bf16 is native as
// oneDNN sees it (ONEDNN_MAX_CPU_ISA included); else oneDNN's reorder rounds them.
bool ownBf16Rounding();

// Registration tables of the kernel files.
void registerDnnlKernels(std::map<std::string, KernelFn>& table);
void registerLoopKernels(std::map<std::string, KernelFn>& table);
void registerBatchNormKernels(std::map<std::string, KernelFn>& table);

}  // namespace xnative
