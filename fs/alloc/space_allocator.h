#pragma once
// In-memory free-space allocator with pinned extents (docs/design.md, "Space").
//
// The free-space map is derived state: the extent tree (every allocated
// extent has an item) and the chunk tree's own nodes (the only things in
// system chunks) say what is in use. At open it comes from the free-space
// cache a clean unmount saved (alloc/space_cache.h) or, without a valid
// one, from a scan of the extent tree.
//
// Empty chunks are given back (reclaim_empty): at each commit, and at once
// when a chunk of another type needs the device space.
//
// Pinning (invariant 1): space freed during transaction T may still be
// referenced by the last durable superblock, so it goes to the pinned list
// and returns to the free map only after T's superblock is durable
// (unpin_all, called by commit after the final flush).
//
// Thread-safety: guarded by the engine's tree lock.

#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "alloc/chunk_map.h"
#include "util/status.h"

namespace cairn {

class SpaceAllocator {
 public:
  SpaceAllocator(ChunkMap* chunks, uint32_t data_profile, uint32_t meta_profile, uint32_t node_size);

  // Add every chunk's range as free; then mark_used() each allocated extent.
  void init_from_chunks();
  // Data and metadata free space as a loaded cache says (checked by
  // load_space_cache), system chunks wholly free; then mark_used() the
  // chunk tree's nodes.
  void init_from_cache(const std::vector<std::pair<uint64_t, uint64_t>>& free);
  // What a cache written now must say: the free space of data and metadata
  // chunks as the running transaction's commit leaves it (the pinned ranges
  // are free once it is durable), sorted and merged.
  std::vector<std::pair<uint64_t, uint64_t>> free_after_commit() const;
  // False when [start, start+len) is not free space of one chunk (outside
  // every chunk, or overlapping something marked before).
  bool mark_used(uint64_t start, uint64_t len);

  // Allocate exactly `len` bytes (aligned to `align`) of the given chunk
  // type, creating a chunk when the existing ones are full.
  Result<uint64_t> alloc(uint32_t type, uint64_t len, uint64_t align);
  // Allocate between min_len and max_len bytes, contiguous: the largest run
  // available near the cursor. Data writeback uses it to build big extents.
  Result<std::pair<uint64_t, uint64_t>> alloc_range(uint32_t type, uint64_t min_len, uint64_t max_len, uint64_t align);
  // Allocate from existing chunks only (a commit past the point where the
  // chunk tree was written must not create a chunk).
  Result<uint64_t> alloc_in_chunks(uint32_t type, uint64_t len, uint64_t align);

  // Create a chunk of this type now (mkfs gives a new image one of each).
  Status add_chunk(uint32_t type) { return grow(type, 1 << 20); }
  void free_now(uint64_t start, uint64_t len);  // never referenced by a durable state
  void pin(uint64_t start, uint64_t len);       // freed in the running transaction
  void unpin_all();                             // the running transaction is durable
  uint64_t pinned_bytes() const { return pinned_bytes_; }
  uint64_t pinned_data_bytes() const { return pinned_of(kChunkData); }
  // Pinned bytes in chunks of one type (space reports count them as free
  // to come, not as used).
  uint64_t pinned_of(uint32_t type) const { return pinned_by_type_[type_index(type)]; }

  // Free bytes in existing chunks of this type (kept as ranges come and go:
  // every reservation asks).
  uint64_t free_in_chunks(uint32_t type) const { return map_for(type).bytes; }
  // Free bytes a data writer can still get, counting unallocated device space
  // but keeping a metadata reserve so deletes and commits never run dry.
  uint64_t data_available() const;
  uint64_t metadata_available() const;
  // The unallocated device space data_available() keeps back for a metadata
  // chunk (0 while the metadata chunks still have half a chunk free).
  uint64_t metadata_chunk_held_back() const;
  bool chunks_changed() const { return !chunks_->changed().empty(); }

  // Give back every data and metadata chunk nothing lives in: no extent, no
  // node, nothing pinned (so the last durable state references nothing in
  // it either, and its device space may be reused at once). The last chunk
  // of each type stays, and so does the chunk with the highest logical
  // address (the next chunk's address follows it). Returns how many went.
  size_t reclaim_empty();
  uint64_t chunks_reclaimed() const { return chunks_reclaimed_; }

 private:
  struct FreeMap {
    std::map<uint64_t, uint64_t> ranges;  // start -> length, merged
    uint64_t bytes = 0;                   // their sum
  };
  FreeMap& map_for(uint32_t type) {
    return type == kChunkData ? data_free_ : type == kChunkSystem ? system_free_ : meta_free_;
  }
  const FreeMap& map_for(uint32_t type) const {
    return type == kChunkData ? data_free_ : type == kChunkSystem ? system_free_ : meta_free_;
  }
  uint32_t profile_for(uint32_t type) const { return type == kChunkData ? data_profile_ : meta_profile_; }
  void insert_free(FreeMap& m, uint64_t start, uint64_t len);
  bool take(FreeMap& m, uint64_t start, uint64_t len);
  Result<std::pair<uint64_t, uint64_t>> alloc_range_impl(uint32_t type, uint64_t min_len, uint64_t max_len, uint64_t align,
                                                         bool may_grow);
  Status grow(uint32_t type, uint64_t min_len);
  uint64_t metadata_reserve() const;
  // Device bytes a new data chunk must leave unallocated for the next
  // metadata chunk (0 while the metadata chunks have half a chunk free).
  uint64_t metadata_room_device_bytes() const;

  ChunkMap* chunks_;
  uint32_t data_profile_, meta_profile_, node_size_;
  FreeMap data_free_, meta_free_, system_free_;
  std::map<uint32_t, uint64_t> cursor_;
  std::vector<std::pair<uint64_t, uint64_t>> pinned_;
  static size_t type_index(uint32_t type) { return type == kChunkData ? 0 : type == kChunkSystem ? 2 : 1; }
  uint64_t pinned_bytes_ = 0;
  uint64_t pinned_by_type_[3] = {0, 0, 0};
  uint64_t chunks_reclaimed_ = 0;
};

}  // namespace cairn
