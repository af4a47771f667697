#include "common.h"

#include "arena.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>

namespace xnative {

namespace {
std::atomic<int64_t> liveBuffers{0};
std::atomic<int64_t> liveBytes{0};
constexpr int64_t kMaxElements = int64_t(1) << 40;

size_t bufferBytes(int64_t size) {
  return std::max<size_t>(static_cast<size_t>(size) * sizeof(float), 64);
}
}  // namespace

std::unique_ptr<Buffer> allocBuffer(int64_t size, bool zero) {
  if (size < 0 || size > kMaxElements) throw KernelError("buffer size out of range: " + std::to_string(size));
  auto b = std::make_unique<Buffer>();
  b->size = size;
  size_t bytes = bufferBytes(size);
  void* p = arenaAlloc(bytes);
  if (!p)
    throw OutOfMemory("out of native memory: " + std::to_string(bytes) +
                      " bytes refused (more than RAM, ulimit -v or the cgroup's memory.max leave)");
  if (zero) std::memset(p, 0, bytes);
  b->data = static_cast<float*>(p);
  liveBuffers += 1;
  liveBytes += size * static_cast<int64_t>(sizeof(float));
  return b;
}

std::unique_ptr<Buffer> allocLowBuffer(int64_t size) {
  if (size < 0 || size > kMaxElements) throw KernelError("buffer size out of range: " + std::to_string(size));
  auto b = std::make_unique<Buffer>();
  b->size = size;
  b->low = allocBuffer((size + 1) / 2, false);  // counted as a buffer of its own
  liveBuffers += 1;
  return b;
}

XN_CLONES void widenBf16(const uint16_t* src, float* dst, int64_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16ToFloat(src[i]);
}

void materialize(Buffer& b) {
  if (!isLow(b)) return;
  size_t bytes = bufferBytes(b.size);
  void* p = arenaAlloc(bytes);
  if (!p) throw OutOfMemory("out of native memory: " + std::to_string(bytes) + " bytes refused widening a bf16 tensor");
  widenBf16(lowData(b), static_cast<float*>(p), b.size);
  b.data = static_cast<float*>(p);
  liveBytes += b.size * static_cast<int64_t>(sizeof(float));
  b.low.reset();
}

void releaseBufferData(Buffer* b) {
  if (!b || b->disposed) return;
  if (b->data) liveBytes -= b->size * static_cast<int64_t>(sizeof(float));
  arenaFree(b->data, bufferBytes(b->size));
  b->data = nullptr;
  b->low.reset();
  b->derived.clear();
  b->disposed = true;
  liveBuffers -= 1;
}

MemoryStats memoryStats() {
  ArenaStats a = arenaStats();
  return {liveBuffers.load(), liveBytes.load(), a.freeBytes, a.residentBytes, a.peakLiveBytes};
}

[[noreturn]] void fail(const Args& a, const std::string& msg) {
  throw KernelError(std::string(a.op) + ": " + msg);
}

void Args::expectCounts(size_t nIn, size_t nNums) const {
  if (in.size() != nIn)
    fail(*this, "expected " + std::to_string(nIn) + " input buffers, got " + std::to_string(in.size()));
  if (nums.size() != nNums)
    fail(*this, "expected " + std::to_string(nNums) + " numeric parameters, got " + std::to_string(nums.size()));
}

const uint16_t* Args::lowInput(size_t i, int64_t expected, const char* name) const {
  if (i >= in.size() || in[i] == nullptr) fail(*this, std::string("missing input ") + name);
  const Buffer* b = in[i];
  if (b->disposed) fail(*this, std::string("input ") + name + " was disposed");
  if (b->size != expected)
    fail(*this, std::string("input ") + name + " has " + std::to_string(b->size) + " elements, parameters need " +
                    std::to_string(expected));
  return isLow(*b) ? lowData(*b) : nullptr;
}

const float* Args::input(size_t i, int64_t expected, const char* name) const {
  if (lowInput(i, expected, name)) materialize(*in[i]);
  return in[i]->data;
}

int64_t Args::dim(size_t i, const char* name, int64_t lo) const {
  if (i >= nums.size()) fail(*this, std::string("missing parameter ") + name);
  double v = nums[i];
  if (!std::isfinite(v) || v != std::floor(v) || v < static_cast<double>(lo) || v > 2147483647.0)
    fail(*this, std::string("parameter ") + name + " must be an integer >= " + std::to_string(lo) + ", got " +
                    std::to_string(v));
  return static_cast<int64_t>(v);
}

double Args::real(size_t i, const char* name) const {
  if (i >= nums.size()) fail(*this, std::string("missing parameter ") + name);
  double v = nums[i];
  if (!std::isfinite(v)) fail(*this, std::string("parameter ") + name + " must be finite");
  return v;
}

bool Args::flag(size_t i, const char* name) const {
  double v = real(i, name);
  if (v != 0.0 && v != 1.0) fail(*this, std::string("parameter ") + name + " must be 0 or 1");
  return v == 1.0;
}

int64_t elems(std::initializer_list<int64_t> dims, const char* what) {
  return elems(std::vector<int64_t>(dims), what);
}

int64_t elems(const std::vector<int64_t>& dims, const char* what) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) throw KernelError(std::string(what) + ": negative dimension");
    if (__builtin_mul_overflow(n, d, &n) || n > kMaxElements)
      throw KernelError(std::string(what) + ": tensor too large");
  }
  return n;
}

}  // namespace xnative
