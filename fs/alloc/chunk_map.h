#pragma once
// The logical-to-physical map (docs/format.md, "Chunks"; docs/design.md,
// "Address spaces", "Chunks").
//
// Everything above this layer speaks logical addresses. A chunk maps a
// logical range to one physical range (SINGLE) or two (DUP), so a DUP block
// has two copies at distant device offsets and the trees never know.
// Chunks are created on demand as space runs out and given back when empty;
// on disk the map is the chunk tree, which the engine brings up to date at
// each commit from the changes recorded here (changed()).
//
// Thread-safety: guarded by the engine's tree lock.

#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include "format/chunk.h"
#include "util/status.h"

namespace cairn {

class ChunkMap {
 public:
  ChunkMap(uint64_t device_size, const std::vector<Chunk>& chunks, uint64_t next_logical);

  // The chunk holding `logical`, or null. O(log chunks).
  const Chunk* find(uint64_t logical) const;
  // Physical offsets of every copy of [logical, logical + len); the range must lie in one chunk.
  Result<std::vector<uint64_t>> map(uint64_t logical, uint64_t len) const;
  // Add a chunk read from the chunk tree at open (already validated).
  void load(const Chunk& c);
  // Carve a new chunk out of unallocated device space. Its size is the type's
  // preferred size, at most `max_len`, or less if the device has less left
  // (at least `min_len`).
  Result<Chunk> allocate(uint32_t type, uint32_t profile, uint64_t min_len, uint64_t max_len = UINT64_MAX);
  // Give a chunk's device space back (the caller knows nothing lives in it).
  void remove(uint64_t logical);
  // Unallocated device bytes usable by a new chunk of this profile.
  uint64_t unallocated(uint32_t profile) const;
  uint64_t preferred_size(uint32_t type) const;
  // Test knob: no chunk larger than this (0: no limit), so that a small
  // image gets hundreds of chunks.
  void set_max_chunk_size(uint64_t bytes) { max_chunk_size_ = bytes; }

  std::vector<Chunk> chunks() const;
  std::vector<Chunk> chunks_of(uint32_t type) const;
  size_t count() const { return chunks_.size(); }
  uint64_t bytes_of(uint32_t type) const { auto it = bytes_of_.find(type); return it == bytes_of_.end() ? 0 : it->second; }
  uint64_t last_logical() const { return chunks_.empty() ? 0 : chunks_.rbegin()->first; }
  uint64_t next_logical() const { return next_logical_; }
  uint64_t device_size() const { return device_size_; }

  // Logical addresses of chunks added or removed since clear_changed().
  const std::set<uint64_t>& changed() const { return changed_; }
  void clear_changed(uint64_t logical) { changed_.erase(logical); }
  void mark_changed(uint64_t logical) { changed_.insert(logical); }

 private:
  // Take [start, start+len) out of the free physical gaps / put it back.
  void carve(uint64_t start, uint64_t len);
  void release(uint64_t start, uint64_t len);

  uint64_t device_size_;
  std::map<uint64_t, Chunk> chunks_;  // by logical address
  uint64_t next_logical_;
  uint64_t max_chunk_size_ = 0;
  std::set<uint64_t> changed_;
  std::map<uint32_t, uint64_t> bytes_of_;  // logical bytes per chunk type
  // Unallocated device space: start -> length, merged, without the
  // superblock reserves; kept as chunks come and go, so that asking how much
  // is left (every statfs, every data chunk) costs nothing.
  std::map<uint64_t, uint64_t> gaps_;
  uint64_t free_total_ = 0;
};

}  // namespace cairn
