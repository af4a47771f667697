#include "common.h"

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>

namespace xnative {

namespace {
std::atomic<int64_t> liveBuffers{0};
std::atomic<int64_t> liveBytes{0};
constexpr int64_t kMaxElements = int64_t(1) << 40;

// Freed large blocks, kept by exact (rounded) size for the next allocation of that size. Every
// kernel returns a fresh output; without this, each large output would be new memory from the
// OS and cost a page fault per 4 KiB on first write (256 faults, ~10% of the time, for one 1×1
// convolution at 19×19×728). Training and inference repeat the same shapes, so exact sizes hit.
// Shared by all threads of the process, hence the mutex; bounded by poolLimitBytes (1 GiB by
// default; XCEPTION_POOL_MB sets it through setPoolLimit). A larger pool trades resident memory
// for page faults: Xception's training step at 299×299, batch 8 frees ~2.5 GB per step, and what
// the pool does not keep is faulted in again by the next forward pass.
constexpr size_t kPoolMinBytes = 64 * 1024;
std::atomic<size_t> poolLimitBytes{size_t(1) << 30};
std::mutex poolMutex;
std::unordered_map<size_t, std::vector<void*>> pool;
size_t pooledBytes = 0;

size_t roundedBytes(int64_t size) {
  // aligned_alloc wants a multiple of the alignment, and a non-zero size.
  size_t bytes = static_cast<size_t>(size) * sizeof(float);
  size_t rounded = ((bytes + 63) / 64) * 64;
  return rounded == 0 ? 64 : rounded;
}

void* takeFromPool(size_t rounded) {
  if (rounded < kPoolMinBytes) return nullptr;
  std::lock_guard<std::mutex> lock(poolMutex);
  auto it = pool.find(rounded);
  if (it == pool.end() || it->second.empty()) return nullptr;
  void* p = it->second.back();
  it->second.pop_back();
  pooledBytes -= rounded;
  return p;
}

void giveToPool(void* p, size_t rounded) {
  if (rounded >= kPoolMinBytes) {
    std::lock_guard<std::mutex> lock(poolMutex);
    if (pooledBytes + rounded <= poolLimitBytes.load()) {
      pool[rounded].push_back(p);
      pooledBytes += rounded;
      return;
    }
  }
  std::free(p);
}
}  // namespace

std::unique_ptr<Buffer> allocBuffer(int64_t size, bool zero) {
  if (size < 0 || size > kMaxElements) throw KernelError("buffer size out of range: " + std::to_string(size));
  auto b = std::make_unique<Buffer>();
  b->size = size;
  size_t rounded = roundedBytes(size);
  void* p = takeFromPool(rounded);
  if (!p) p = std::aligned_alloc(64, rounded);
  if (!p) throw std::bad_alloc();
  if (zero) std::memset(p, 0, rounded);
  b->data = static_cast<float*>(p);
  liveBuffers += 1;
  liveBytes += size * static_cast<int64_t>(sizeof(float));
  return b;
}

void setPoolLimit(size_t bytes) {
  poolLimitBytes.store(bytes);
  std::lock_guard<std::mutex> lock(poolMutex);
  // Keep what still fits; return the rest.
  for (auto it = pool.begin(); it != pool.end() && pooledBytes > bytes; ++it) {
    while (!it->second.empty() && pooledBytes > bytes) {
      std::free(it->second.back());
      it->second.pop_back();
      pooledBytes -= it->first;
    }
  }
}

size_t poolLimit() { return poolLimitBytes.load(); }

void releasePool() {
  std::lock_guard<std::mutex> lock(poolMutex);
  for (auto& entry : pool)
    for (void* p : entry.second) std::free(p);
  pool.clear();
  pooledBytes = 0;
}

void releaseBufferData(Buffer* b) {
  if (!b || b->disposed) return;
  giveToPool(b->data, roundedBytes(b->size));
  b->data = nullptr;
  b->derived.clear();
  b->disposed = true;
  liveBuffers -= 1;
  liveBytes -= b->size * static_cast<int64_t>(sizeof(float));
}

MemoryStats memoryStats() {
  std::lock_guard<std::mutex> lock(poolMutex);
  return {liveBuffers.load(), liveBytes.load(), static_cast<int64_t>(pooledBytes)};
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

const float* Args::input(size_t i, int64_t expected, const char* name) const {
  if (i >= in.size() || in[i] == nullptr) fail(*this, std::string("missing input ") + name);
  const Buffer* b = in[i];
  if (b->disposed) fail(*this, std::string("input ") + name + " was disposed");
  if (b->size != expected)
    fail(*this, std::string("input ") + name + " has " + std::to_string(b->size) + " elements, parameters need " +
                    std::to_string(expected));
  return b->data;
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
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) throw KernelError(std::string(what) + ": negative dimension");
    if (__builtin_mul_overflow(n, d, &n) || n > kMaxElements)
      throw KernelError(std::string(what) + ": tensor too large");
  }
  return n;
}

}  // namespace xnative
