#pragma once
// One chunk: a range of logical addresses, its content type and profile, and
// where its copies live on the device (docs/format.md, "Chunks"). The same
// 48-byte record is a CHUNK_ITEM in the chunk tree and an entry of the
// superblock's system chunk array.

#include <cstdint>
#include <string>
#include <vector>

#include "format/constants.h"
#include "util/status.h"

namespace cairn {

struct Chunk {
  static constexpr size_t kDiskSize = 48;
  uint64_t logical = 0;
  uint64_t length = 0;
  uint32_t type = 0;     // ChunkType
  uint32_t profile = 0;  // Profile
  uint32_t num_stripes = 0;
  uint64_t physical[2] = {0, 0};

  bool contains(uint64_t l, uint64_t len) const { return l >= logical && l + len <= logical + length && l + len >= l; }
  bool operator==(const Chunk&) const = default;

  void encode(uint8_t* p) const;  // kDiskSize bytes
  static Chunk decode(const uint8_t* p);
};

std::string chunk_type_name(uint32_t type);

// What one chunk record must be on its own: known type and profile, the
// stripe count the profile implies, node-size-aligned logical range inside
// [kFirstLogical, logical_end) (0: unchecked), sector-aligned stripes that
// end inside the device.
Status validate_chunk(const Chunk& c, uint64_t total_bytes, uint32_t node_size, uint64_t logical_end);

// What a set of chunks must be together: no two overlap in logical space,
// and no stripe overlaps another stripe or a superblock copy's reserve (two
// chunks sharing physical space would overwrite each other's blocks).
// `chunks` must be sorted by logical address.
Status validate_chunk_set(const std::vector<Chunk>& chunks, uint64_t total_bytes);

}  // namespace cairn
