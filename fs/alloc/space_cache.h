#pragma once
// Reading and laying out the free-space cache (docs/format.md, "Free space
// cache"; docs/design.md, "Space").
//
// The free-space map is derived state: the extent tree says what is in use.
// Rebuilding it means reading the whole extent tree, a cost that grows with
// the filesystem (about 1 s per million extents), so a clean unmount saves
// the map and the next mount loads it. The cache describes exactly one
// commit, the superblock's own generation: the first commit after a mount
// makes it stale (and frees its blocks), a crash after that leaves a stale
// cache, and a stale, damaged or inconsistent cache is never used: the
// extent tree is read instead.
//
// What the loader can check cheaply it does: every block (checksum, its
// address, the generation, its place in the chain) in a metadata chunk;
// ranges sorted, apart, sector-aligned, each inside one data or metadata
// chunk; the cache's blocks outside every free range; and the space the
// ranges leave in use equal to the superblock's bytes_used plus the cache's
// own blocks. A cache that passes all of that and still lies (ranges
// swapped for others of the same total) is what fsck's comparison with the
// extent tree finds (docs/design.md, "Space", names the trade).

#include <cstdint>
#include <utility>
#include <vector>

#include "alloc/chunk_map.h"
#include "dev/block_device.h"
#include "format/space_cache.h"
#include "format/superblock.h"

namespace cairn {

using FreeRanges = std::vector<std::pair<uint64_t, uint64_t>>;  // start, length: sorted, merged

struct LoadedSpaceCache {
  FreeRanges free;               // free space of every data and metadata chunk
  std::vector<uint64_t> blocks;  // the cache's own blocks (in use in `free`'s view)
  uint64_t extent_items = 0;
};

// Read and check the cache `sb` points at; the caller has checked
// sb.space_cache_valid(). Any failure is EUCLEAN (or the read's error) and
// means "read the extent tree instead". Without `check_totals` the last
// check (space in use against bytes_used) is left out: fsck compares the
// ranges with the extent tree itself and names the first that differs.
Result<LoadedSpaceCache> load_space_cache(BlockDevice& dev, const ChunkMap& chunks, const Superblock& sb,
                                          bool check_totals = true);

// Blocks needed for `ranges` ranges.
uint32_t space_cache_blocks_needed(uint64_t ranges, uint32_t node_size);

// Lay `free` out over `blocks` (in chain order; enough of them).
std::vector<SpaceCacheBlock> layout_space_cache(const FreeRanges& free, const std::vector<uint64_t>& blocks,
                                                uint64_t generation, uint64_t extent_items, uint32_t node_size);

}  // namespace cairn
