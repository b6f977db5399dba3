// Chunk record codec and checks: implements docs/format.md, "Chunks".
#include "format/chunk.h"

#include <algorithm>
#include <cstdio>

#include "util/endian.h"
#include "util/hex.h"

namespace cairn {

void Chunk::encode(uint8_t* p) const {
  put_le64(p + 0, logical);
  put_le64(p + 8, length);
  put_le32(p + 16, type);
  put_le32(p + 20, profile);
  put_le32(p + 24, num_stripes);
  put_le32(p + 28, 0);
  put_le64(p + 32, physical[0]);
  put_le64(p + 40, physical[1]);
}

Chunk Chunk::decode(const uint8_t* p) {
  Chunk c;
  c.logical = get_le64(p + 0);
  c.length = get_le64(p + 8);
  c.type = get_le32(p + 16);
  c.profile = get_le32(p + 20);
  c.num_stripes = get_le32(p + 24);
  c.physical[0] = get_le64(p + 32);
  c.physical[1] = get_le64(p + 40);
  return c;
}

std::string chunk_type_name(uint32_t type) {
  switch (type) {
    case kChunkData: return "data";
    case kChunkMetadata: return "metadata";
    case kChunkSystem: return "system";
  }
  return "type " + std::to_string(type);
}

Status validate_chunk(const Chunk& c, uint64_t total_bytes, uint32_t node_size, uint64_t logical_end) {
  const std::string cw = "chunk " + hex(c.logical);
  if (c.length == 0 || c.length % node_size || c.logical % node_size) return Status::Corruption(cw + ": misaligned");
  if (c.type != kChunkData && c.type != kChunkMetadata && c.type != kChunkSystem)
    return Status::Corruption(cw + ": unknown type");
  if (c.profile > kProfileDup || c.num_stripes != (c.profile == kProfileDup ? 2u : 1u))
    return Status::Corruption(cw + ": bad profile/stripe count");
  if (c.logical < kFirstLogical || c.logical + c.length < c.logical || (logical_end && c.logical + c.length > logical_end))
    return Status::Corruption(cw + ": logical range out of bounds");
  for (uint32_t s = 0; s < c.num_stripes; s++) {
    if (c.physical[s] % kSectorSize)
      return Status::Corruption(cw + " stripe " + std::to_string(s) + ": physical address not sector-aligned");
    if (c.physical[s] + c.length > total_bytes || c.physical[s] + c.length < c.physical[s])
      return Status::Corruption(cw + ": beyond the end of the device");
  }
  for (uint32_t s = c.num_stripes; s < 2; s++)
    if (c.physical[s]) return Status::Corruption(cw + ": unused stripe is not zero");
  return Status::Ok();
}

Status validate_chunk_set(const std::vector<Chunk>& chunks, uint64_t total_bytes) {
  for (size_t i = 1; i < chunks.size(); i++)
    if (chunks[i].logical < chunks[i - 1].logical + chunks[i - 1].length)
      return Status::Corruption("chunk " + hex(chunks[i].logical) + ": overlaps another chunk");
  // Every physical range in use, sorted: superblock reserves (the first one
  // starts at 0, as the allocator places it) and every stripe.
  struct Range {
    uint64_t start, len, chunk;
    bool operator<(const Range& o) const { return start < o.start; }
  };
  std::vector<Range> taken;
  for (uint64_t off : kSuperblockOffsets)
    if (off < total_bytes) taken.push_back({off == kSuperblockOffsets[0] ? 0 : off, kSuperblockReserve, ~0ULL});
  for (const Chunk& c : chunks)
    for (uint32_t s = 0; s < c.num_stripes && s < 2; s++) taken.push_back({c.physical[s], c.length, c.logical});
  std::sort(taken.begin(), taken.end());
  for (size_t i = 1; i < taken.size(); i++)
    if (taken[i].start < taken[i - 1].start + taken[i - 1].len) {
      const Range& r = taken[i].chunk == ~0ULL ? taken[i - 1] : taken[i];
      return Status::Corruption("chunk " + hex(r.chunk) + ": a stripe overlaps another stripe or a superblock reserve");
    }
  return Status::Ok();
}

}  // namespace cairn
