// The memory of the backend's large buffers: one reserved address range, carved best-fit and
// coalesced on free, whose freed pages stay resident for the next allocation (see arena.cc).
#pragma once

#include <cstddef>
#include <cstdint>

namespace xnative {

struct ArenaStats {
  int64_t residentBytes;  // pages of the arena that may be resident (used + kept free)
  int64_t freeBytes;      // of those, freed and kept for reuse
  int64_t peakLiveBytes;  // the most the arena's blocks ever held at once (since the last trim)
};

// Blocks of at least kArenaMinBytes come from the arena; smaller ones from malloc.
constexpr size_t kArenaMinBytes = 64 * 1024;

// 64-byte aligned; nullptr only if neither the arena nor malloc has the memory.
void* arenaAlloc(size_t bytes);
// Takes back a block of arenaAlloc (the same byte count).
void arenaFree(void* p, size_t bytes);
// Returns every free page to the system now and forgets the peak.
void arenaTrim();
// Free memory kept resident beyond the live peak at most (fragmentation's bound).
void arenaSetSlack(size_t bytes);
ArenaStats arenaStats();

}  // namespace xnative
