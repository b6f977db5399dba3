#pragma once
// The superblock and its chunk array (docs/format.md, "Superblock", "Chunk array").

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "csum/checksum.h"
#include "format/constants.h"
#include "util/status.h"

namespace cairn {

using Uuid = std::array<uint8_t, 16>;
std::string uuid_to_string(const Uuid& u);
bool uuid_parse(const std::string& s, Uuid* out);
Uuid uuid_generate_random();

// One chunk: a range of logical addresses and where its copies live on the device.
struct Chunk {
  static constexpr size_t kDiskSize = 48;
  uint64_t logical = 0;
  uint64_t length = 0;
  uint32_t type = 0;     // ChunkType
  uint32_t profile = 0;  // Profile
  uint32_t num_stripes = 0;
  uint64_t physical[2] = {0, 0};

  bool contains(uint64_t l, uint64_t len) const { return l >= logical && l + len <= logical + length && l + len >= l; }
};

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
  std::vector<Chunk> chunks;

  // Encode into a kSuperblockSize buffer, computing the checksum.
  void encode(uint8_t* buf) const;
  // Decode and validate a buffer read at physical offset `at`.
  static Result<Superblock> decode(const uint8_t* buf, uint64_t at);
  // Cheap test: does this buffer start like a Cairn superblock?
  static bool has_magic(const uint8_t* buf);
};

}  // namespace cairn
