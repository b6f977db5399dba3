#pragma once
// The superblock and its system chunk array (docs/format.md, "Superblock",
// "System chunk array").

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "csum/checksum.h"
#include "format/chunk.h"
#include "format/constants.h"
#include "util/status.h"

namespace cairn {

using Uuid = std::array<uint8_t, 16>;
std::string uuid_to_string(const Uuid& u);
bool uuid_parse(const std::string& s, Uuid* out);
Uuid uuid_generate_random();

struct Superblock {
  static constexpr size_t kMaxChunks = 64;
  static constexpr size_t kLabelSize = 256;

  uint8_t csum[kMaxCsumSize] = {};
  Uuid fsid = {};
  uint64_t bytenr = 0;  // physical offset of this copy
  uint64_t flags = 0;
  uint64_t generation = 0;
  uint64_t root = 0;  // logical address of the root tree's root node
  uint64_t root_generation = 0;  // generation of that node
  uint64_t total_bytes = 0;
  uint64_t bytes_used = 0;
  uint32_t format_version = kFormatVersion;
  uint32_t sector_size = kSectorSize;
  uint32_t node_size = kDefaultNodeSize;
  CsumType csum_type = CsumType::kCrc32c;
  uint8_t root_level = 0;
  uint64_t compat_flags = 0;
  uint64_t compat_ro_flags = 0;
  uint64_t incompat_flags = 0;
  uint64_t next_chunk_logical = kFirstLogical;
  uint8_t data_profile = kProfileSingle;
  uint8_t metadata_profile = kProfileSingle;
  std::string label;
  // With kIncompatChunkTree: the chunk tree's root, and the system chunks it
  // lives in (everything needed to read it); the chunk tree maps the rest.
  // Without: every chunk, and no chunk tree.
  uint64_t chunk_root = 0;
  uint64_t chunk_root_generation = 0;
  uint8_t chunk_root_level = 0;
  // The free-space cache written by a clean unmount (docs/format.md, "Free
  // space cache"): its first block, and the generation it describes. It is
  // valid only while that generation is the superblock's own.
  uint64_t space_cache = 0;
  uint64_t space_cache_generation = 0;
  bool space_cache_valid() const { return space_cache != 0 && space_cache_generation == generation; }
  // The fsync log of this generation (docs/format.md, "Fsync log"): where
  // its first write goes, and the generation it extends. Valid only while
  // that generation is the superblock's own; 0: fsync commits.
  uint64_t log_start = 0;
  uint64_t log_generation = 0;
  bool log_valid() const { return log_start != 0 && log_generation == generation; }
  std::vector<Chunk> chunks;

  bool has_chunk_tree() const { return incompat_flags & kIncompatChunkTree; }

  // Encode into a kSuperblockSize buffer, computing the checksum.
  void encode(uint8_t* buf) const;
  // Decode and validate a buffer read at physical offset `at`.
  static Result<Superblock> decode(const uint8_t* buf, uint64_t at);
  // The whole chunk map (the chunk tree's chunks, or the array without one,
  // sorted by logical address) against this superblock: chunks and stripes
  // apart, the next chunk address after the last chunk, the array equal to
  // the map's system chunks, the root tree's root in a metadata chunk.
  Status check_chunk_map(const std::vector<Chunk>& all) const;
  // Cheap test: does this buffer start like a Cairn superblock?
  static bool has_magic(const uint8_t* buf);
};

}  // namespace cairn
