#pragma once
// The logical-to-physical map (docs/format.md, "Chunk array"; docs/design.md,
// "Address spaces").
//
// Everything above this layer speaks logical addresses. A chunk maps a
// logical range to one physical range (SINGLE) or two (DUP), so a DUP block
// has two copies at distant device offsets and the trees never know.
// Chunks are created on demand as space runs out; the array lives in the
// superblock and is written at each commit.
//
// Thread-safety: guarded by the engine's tree lock.

#include <cstdint>
#include <vector>

#include "format/superblock.h"
#include "util/status.h"

namespace cairn {

struct PhysicalCopy {
  uint64_t offset;
};

class ChunkMap {
 public:
  ChunkMap(uint64_t device_size, std::vector<Chunk> chunks, uint64_t next_logical)
      : device_size_(device_size), chunks_(std::move(chunks)), next_logical_(next_logical) {}

  const Chunk* find(uint64_t logical) const;
  // Physical offsets of every copy of [logical, logical + len); the range must lie in one chunk.
  Result<std::vector<uint64_t>> map(uint64_t logical, uint64_t len) const;
  // Carve a new chunk out of unallocated device space. Its size is the type's
  // preferred size, or less if the device has less left (at least `min_len`).
  Result<Chunk> allocate(uint32_t type, uint32_t profile, uint64_t min_len);
  // Unallocated device bytes usable by a new chunk of this profile.
  uint64_t unallocated(uint32_t profile) const;
  uint64_t preferred_size(uint32_t type) const;

  const std::vector<Chunk>& chunks() const { return chunks_; }
  uint64_t next_logical() const { return next_logical_; }
  uint64_t device_size() const { return device_size_; }

 private:
  // Free physical gaps (start, len), excluding the superblock reserves.
  std::vector<std::pair<uint64_t, uint64_t>> physical_gaps() const;

  uint64_t device_size_;
  std::vector<Chunk> chunks_;
  uint64_t next_logical_;
};

}  // namespace cairn
