#pragma once
// Free-space cache blocks (docs/format.md, "Free space cache").
//
// A clean unmount writes the allocator's free ranges of data and metadata
// chunks into a chain of node-sized blocks in metadata chunks, and the
// superblock points at the first; the next mount reads them instead of
// scanning the whole extent tree. Each block checks on its own (checksum,
// magic, fsid, its own address, the generation it describes, its place in
// the chain); what the ranges say is checked against the chunk map and the
// superblock by the loader (alloc/space_cache.h).

#include <cstdint>
#include <utility>
#include <vector>

#include "format/superblock.h"
#include "util/status.h"

namespace cairn {

struct SpaceCacheBlock {
  static constexpr uint64_t kMagic = 0x31454552464E5243ULL;  // "CRNFREE1"
  static constexpr size_t kHeaderSize = 112;
  static constexpr size_t kEntrySize = 16;

  uint64_t bytenr = 0;      // logical address of this block
  uint64_t generation = 0;  // the commit whose free space this is
  uint64_t next = 0;        // the next block, 0 in the last
  uint32_t index = 0;       // position in the chain, from 0
  uint32_t total_blocks = 0;
  uint64_t total_ranges = 0;
  uint64_t extent_items = 0;  // EXTENT_ITEMs + METADATA_ITEMs at that commit
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // start, length

  static size_t capacity(uint32_t node_size) { return (node_size - kHeaderSize) / kEntrySize; }
  // Encode into a node_size buffer, checksum included.
  void encode(const Superblock& sb, uint8_t* buf) const;
  // Decode a block read for `bytenr`: every header field that can be
  // checked alone is (EUCLEAN otherwise).
  static Result<SpaceCacheBlock> decode(const Superblock& sb, const uint8_t* buf, uint64_t bytenr);
};

}  // namespace cairn
