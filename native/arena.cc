// Every kernel returns a fresh output, and a training step frees nearly all it allocated (2.5 GB
// for Xception at 299×299, batch 8). Memory that goes back to the system costs a page fault per
// 4 KiB when it is written again — 594k faults, ~15% of that step, with the exact-size pool this
// arena replaced. So large blocks live in one reserved address range: best fit (lowest address
// among equals), freed ranges coalesced with their neighbours and kept resident. The resident
// size then follows the most the process ever held at once plus fragmentation, like a static
// memory plan found at run time, and repeating steps stop faulting. A guard returns free pages
// to the system when the resident size exceeds the live peak by more than the slack
// (XCEPTION_POOL_MB, 1 GiB by default), so fragmentation stays bounded; arenaTrim returns all.
#include "arena.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <vector>

// Under AddressSanitizer the arena's blocks are poisoned while free and past their requested
// size, so an overrun into a neighbour is reported like one past a malloc block.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define XN_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define XN_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define XN_POISON(p, n) ((void)(p), (void)(n))
#define XN_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace xnative {

namespace {
constexpr size_t kPage = 4096;

// A number from a cgroup file ("max" or a missing file: no limit).
size_t cgroupLimit(const char* file) {
  std::ifstream in(file);
  unsigned long long v = 0;
  if (!(in >> v) || v == 0) return SIZE_MAX;
  return static_cast<size_t>(v);
}

// The most memory this process may use: physical memory, the address-space limit (ulimit -v) and
// the cgroup's memory limit (v2, then v1), whichever is smallest. Past the cgroup limit the kernel's
// OOM killer ends the process; a request larger than this is refused up front instead.
size_t usableMemory() {
  size_t bound = SIZE_MAX;
  long pages = sysconf(_SC_PHYS_PAGES), pageSize = sysconf(_SC_PAGESIZE);
  if (pages > 0 && pageSize > 0) bound = static_cast<size_t>(pages) * static_cast<size_t>(pageSize);
  struct rlimit as;
  if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) bound = std::min<size_t>(bound, as.rlim_cur);
  bound = std::min(bound, cgroupLimit("/sys/fs/cgroup/memory.max"));
  bound = std::min(bound, cgroupLimit("/sys/fs/cgroup/memory/memory.limit_in_bytes"));
  return bound;
}

struct FreeRange {
  size_t size;
  bool resident;  // false after its pages went back to the system
};

struct Arena {
  std::mutex mutex;
  bool reserveTried = false;
  char* base = nullptr;
  size_t reserved = 0;
  size_t top = 0;      // [top, reserved) holds no block; pages in [top, touched) may be resident
  size_t touched = 0;
  std::map<size_t, FreeRange> byOffset;         // free ranges below top
  std::set<std::pair<size_t, size_t>> bySize;   // (size, offset) of the same ranges: best fit
  size_t freeBelowTop = 0;
  size_t trimmedBelowTop = 0;  // bytes of free ranges below top that are not resident
  size_t live = 0, peak = 0;
  size_t slack = size_t(1) << 30;
  size_t usable = SIZE_MAX;  // usableMemory(), read once at the reservation

  // The address range, once: as large as the memory the process may use (nothing is committed
  // until written; MAP_NORESERVE so the reservation itself is not charged). If that much address
  // space is refused (ulimit -v, strict overcommit), less is taken, down to 1 GiB, and malloc serves
  // the rest under the same kernel limit. Without it, malloc serves all.
  void reserve() {
    reserveTried = true;
    usable = usableMemory();
    if (sysconf(_SC_PAGESIZE) != static_cast<long>(kPage) || usable == SIZE_MAX) return;
    for (size_t want = usable / kPage * kPage; want >= (size_t(1) << 30); want /= 2) {
      void* p = mmap(nullptr, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p != MAP_FAILED) {
        base = static_cast<char*>(p);
        reserved = want;
        return;
      }
    }
  }

  bool owns(const void* p) const {
    return base && p >= base && static_cast<const char*>(p) < base + reserved;
  }

  void insertFree(size_t offset, FreeRange r) {
    byOffset.emplace(offset, r);
    bySize.emplace(r.size, offset);
    freeBelowTop += r.size;
    if (!r.resident) trimmedBelowTop += r.size;
  }

  void eraseFree(std::map<size_t, FreeRange>::iterator it) {
    bySize.erase({it->second.size, it->first});
    freeBelowTop -= it->second.size;
    if (!it->second.resident) trimmedBelowTop -= it->second.size;
    byOffset.erase(it);
  }

  size_t resident() const { return top - trimmedBelowTop + (touched - top); }

  void* take(size_t bytes) {
    if (!reserveTried) reserve();
    if (!base) return nullptr;
    size_t offset;
    auto fit = bySize.lower_bound({bytes, 0});
    if (fit != bySize.end()) {
      offset = fit->second;
      auto it = byOffset.find(offset);
      FreeRange r = it->second;
      eraseFree(it);
      if (r.size > bytes) insertFree(offset + bytes, {r.size - bytes, r.resident});
    } else {
      // No free range is large enough: grow at the top, starting inside a free range that ends there.
      offset = top;
      if (!byOffset.empty()) {
        auto last = std::prev(byOffset.end());
        if (last->first + last->second.size == top) {
          offset = last->first;
          eraseFree(last);
        }
      }
      if (offset + bytes > reserved) return nullptr;
      top = offset + bytes;
      touched = std::max(touched, top);
    }
    live += bytes;
    peak = std::max(peak, live);
    guard();  // growing at the top past a hole may leave more resident than the peak needs
    return base + offset;
  }

  void give(void* p, size_t bytes) {
    size_t offset = static_cast<size_t>(static_cast<char*>(p) - base);
    live -= bytes;
    FreeRange r{bytes, true};
    // Coalesce with the free neighbours on both sides.
    auto next = byOffset.lower_bound(offset);
    if (next != byOffset.end() && next->first == offset + r.size) {
      r.size += next->second.size;
      r.resident = r.resident && next->second.resident;
      eraseFree(next);
    }
    auto after = byOffset.lower_bound(offset);
    if (after != byOffset.begin()) {
      auto prev = std::prev(after);
      if (prev->first + prev->second.size == offset) {
        offset = prev->first;
        r.size += prev->second.size;
        r.resident = r.resident && prev->second.resident;
        eraseFree(prev);
      }
    }
    if (offset + r.size == top) {
      top = offset;  // the range above top is free space, counted resident up to `touched`
    } else {
      insertFree(offset, r);
    }
    guard();
  }

  void release(char* from, size_t bytes) {
    if (bytes) madvise(from, bytes, MADV_DONTNEED);
  }

  // Keeps resident() <= peak + slack: the unused space above the top goes first, then the largest
  // free ranges below it.
  void guard() {
    size_t bound = peak + slack;
    if (resident() <= bound) return;
    size_t keepAbove = std::min(touched - top, bound > top - trimmedBelowTop ? bound - (top - trimmedBelowTop) : 0);
    keepAbove = keepAbove / kPage * kPage;
    release(base + top + keepAbove, touched - top - keepAbove);
    touched = top + keepAbove;
    while (resident() > bound) {
      auto largest = bySize.end();
      for (auto it = bySize.rbegin(); it != bySize.rend(); ++it)
        if (byOffset.at(it->second).resident) {
          largest = std::prev(it.base());
          break;
        }
      if (largest == bySize.end()) break;
      size_t offset = largest->second;
      auto it = byOffset.find(offset);
      release(base + offset, it->second.size);
      FreeRange r{it->second.size, false};
      eraseFree(it);
      insertFree(offset, r);
    }
  }

  void trimAll() {
    release(base + top, touched - top);
    touched = top;
    std::vector<std::pair<size_t, size_t>> resident;
    for (auto& [offset, r] : byOffset)
      if (r.resident) resident.push_back({offset, r.size});
    for (auto [offset, size] : resident) {
      release(base + offset, size);
      auto it = byOffset.find(offset);
      eraseFree(it);
      insertFree(offset, {size, false});
    }
    peak = live;
  }
};

Arena& arena() {
  static Arena* a = new Arena();  // never destroyed: buffers may be freed during process exit
  return *a;
}

size_t pageRounded(size_t bytes) { return (bytes + kPage - 1) / kPage * kPage; }
}  // namespace

void* arenaAlloc(size_t bytes) {
  if (bytes >= kArenaMinBytes) {
    Arena& a = arena();
    std::lock_guard<std::mutex> lock(a.mutex);
    if (bytes > SIZE_MAX - kPage) return nullptr;
    if (char* p = static_cast<char*>(a.take(pageRounded(bytes)))) {
      XN_UNPOISON(p, bytes);
      XN_POISON(p + bytes, pageRounded(bytes) - bytes);
      return p;
    }
    // More than the process may use, or than the full-size arena has left: malloc would only
    // overcommit, and writing the pages would wake the OOM killer.
    if (bytes > a.usable || (a.base && a.reserved >= a.usable / kPage * kPage)) return nullptr;
  }
  if (bytes > SIZE_MAX - 64) return nullptr;
  return std::aligned_alloc(64, (bytes + 63) / 64 * 64);
}

void arenaFree(void* p, size_t bytes) {
  if (!p) return;
  Arena& a = arena();
  if (bytes >= kArenaMinBytes && a.owns(p)) {
    std::lock_guard<std::mutex> lock(a.mutex);
    XN_POISON(p, pageRounded(bytes));
    a.give(p, pageRounded(bytes));
    return;
  }
  std::free(p);
}

void arenaTrim() {
  Arena& a = arena();
  std::lock_guard<std::mutex> lock(a.mutex);
  if (a.base) a.trimAll();
}

void arenaSetSlack(size_t bytes) {
  Arena& a = arena();
  std::lock_guard<std::mutex> lock(a.mutex);
  a.slack = bytes;
  if (a.base) a.guard();
}

ArenaStats arenaStats() {
  Arena& a = arena();
  std::lock_guard<std::mutex> lock(a.mutex);
  if (!a.base) return {0, 0, static_cast<int64_t>(a.peak)};
  size_t resident = a.resident();
  return {static_cast<int64_t>(resident), static_cast<int64_t>(resident - a.live), static_cast<int64_t>(a.peak)};
}

}  // namespace xnative
