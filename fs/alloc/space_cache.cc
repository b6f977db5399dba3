// Free-space cache: loading with its checks, and the layout a commit writes.
#include "alloc/space_cache.h"

#include <algorithm>

#include "util/aligned_buffer.h"
#include "util/hex.h"

namespace cairn {

namespace {

Result<SpaceCacheBlock> read_block(BlockDevice& dev, const ChunkMap& chunks, const Superblock& sb, uint64_t bytenr) {
  const Chunk* c = chunks.find(bytenr);
  if (bytenr % sb.node_size || !c || c->type != kChunkMetadata || !c->contains(bytenr, sb.node_size))
    return Status::Corruption("free-space cache block " + hex(bytenr) + " is not in a metadata chunk");
  ASSIGN_OR_RETURN(auto copies, chunks.map(bytenr, sb.node_size));
  AlignedBuffer buf(sb.node_size);
  Status first;
  // Any good copy will do (DUP metadata has two).
  for (uint64_t phys : copies) {
    Status st = dev.read(phys, buf.data(), sb.node_size);
    if (st.ok()) {
      auto b = SpaceCacheBlock::decode(sb, buf.data(), bytenr);
      if (b.ok()) return b;
      st = b.status();
    }
    if (first.ok()) first = st;
  }
  return first;
}

}  // namespace

Result<LoadedSpaceCache> load_space_cache(BlockDevice& dev, const ChunkMap& chunks, const Superblock& sb,
                                          bool check_totals) {
  LoadedSpaceCache out;
  const uint64_t max_blocks = chunks.bytes_of(kChunkMetadata) / sb.node_size;
  uint32_t total_blocks = 0;
  uint64_t total_ranges = 0;
  for (uint64_t at = sb.space_cache, i = 0; at != 0; i++) {
    ASSIGN_OR_RETURN(SpaceCacheBlock b, read_block(dev, chunks, sb, at));
    if (i == 0) {
      total_blocks = b.total_blocks;
      total_ranges = b.total_ranges;
      out.extent_items = b.extent_items;
      if (total_blocks == 0 || total_blocks > max_blocks)
        return Status::Corruption("free-space cache claims " + std::to_string(total_blocks) + " blocks");
      out.free.reserve(std::min<uint64_t>(total_ranges, uint64_t(total_blocks) * SpaceCacheBlock::capacity(sb.node_size)));
    }
    // The index and the totals tie every block to its place: a loop or a
    // block from another cache stops here.
    if (b.index != i || b.total_blocks != total_blocks || b.total_ranges != total_ranges || i >= total_blocks)
      return Status::Corruption("free-space cache block " + hex(at) + " is out of place in the chain");
    out.blocks.push_back(at);
    for (auto [s, l] : b.ranges) {
      const uint64_t prev_end = out.free.empty() ? 0 : out.free.back().first + out.free.back().second;
      const Chunk* c = chunks.find(s);
      if (l == 0 || s % kSectorSize || l % kSectorSize || (!out.free.empty() && s <= prev_end) || !c ||
          (c->type != kChunkData && c->type != kChunkMetadata) || !c->contains(s, l))
        return Status::Corruption("free-space cache range " + hex(s) + "+" + std::to_string(l) +
                                  " is not a free range of one data or metadata chunk after the last");
      out.free.emplace_back(s, l);
    }
    at = b.next;
  }
  if (out.blocks.size() != total_blocks || out.free.size() != total_ranges)
    return Status::Corruption("free-space cache ends early: " + std::to_string(out.blocks.size()) + " of " +
                              std::to_string(total_blocks) + " blocks");
  // The cache's blocks are in use, once each.
  std::vector<uint64_t> sorted = out.blocks;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); i++) {
    if (i && sorted[i] == sorted[i - 1]) return Status::Corruption("free-space cache block " + hex(sorted[i]) + " appears twice");
    auto it = std::upper_bound(out.free.begin(), out.free.end(), std::make_pair(sorted[i], UINT64_MAX));
    if (it != out.free.begin() && std::prev(it)->first + std::prev(it)->second > sorted[i])
      return Status::Corruption("free-space cache block " + hex(sorted[i]) + " lies in a range it calls free");
  }
  if (!check_totals) return out;
  // What the ranges leave in use is what the superblock says is in use,
  // plus the cache itself.
  uint64_t free = 0;
  for (auto [s, l] : out.free) free += l;
  const uint64_t chunk_bytes = chunks.bytes_of(kChunkData) + chunks.bytes_of(kChunkMetadata);
  const uint64_t in_use = sb.bytes_used + uint64_t(total_blocks) * sb.node_size;
  if (free > chunk_bytes || chunk_bytes - free != in_use)
    return Status::Corruption("free-space cache leaves " + std::to_string(chunk_bytes - std::min(free, chunk_bytes)) +
                              " bytes in use; the superblock and the cache account for " + std::to_string(in_use));
  return out;
}

uint32_t space_cache_blocks_needed(uint64_t ranges, uint32_t node_size) {
  const uint64_t cap = SpaceCacheBlock::capacity(node_size);
  return uint32_t(std::max<uint64_t>(1, (ranges + cap - 1) / cap));
}

std::vector<SpaceCacheBlock> layout_space_cache(const FreeRanges& free, const std::vector<uint64_t>& blocks,
                                                uint64_t generation, uint64_t extent_items, uint32_t node_size) {
  const size_t cap = SpaceCacheBlock::capacity(node_size);
  std::vector<SpaceCacheBlock> out(blocks.size());
  for (size_t i = 0; i < blocks.size(); i++) {
    SpaceCacheBlock& b = out[i];
    b.bytenr = blocks[i];
    b.generation = generation;
    b.next = i + 1 < blocks.size() ? blocks[i + 1] : 0;
    b.index = uint32_t(i);
    b.total_blocks = uint32_t(blocks.size());
    b.total_ranges = free.size();
    b.extent_items = extent_items;
    const size_t from = std::min(free.size(), i * cap), to = std::min(free.size(), from + cap);
    b.ranges.assign(free.begin() + from, free.begin() + to);
  }
  return out;
}

}  // namespace cairn
