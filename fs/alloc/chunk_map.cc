#include "alloc/chunk_map.h"

#include <algorithm>

namespace cairn {

namespace {
constexpr uint64_t kMiB = 1ULL << 20;
constexpr uint64_t kChunkLogicalGap = kMiB;
uint64_t clamp_mib(uint64_t v, uint64_t lo, uint64_t hi) { return std::clamp(v / kMiB * kMiB, lo, hi); }
}  // namespace

const Chunk* ChunkMap::find(uint64_t logical) const {
  for (const Chunk& c : chunks_)
    if (logical >= c.logical && logical < c.logical + c.length) return &c;
  return nullptr;
}

Result<std::vector<uint64_t>> ChunkMap::map(uint64_t logical, uint64_t len) const {
  const Chunk* c = find(logical);
  if (!c || !c->contains(logical, len))
    return Status::Corruption("address " + std::to_string(logical) + "+" + std::to_string(len) + " is not mapped by any chunk");
  std::vector<uint64_t> out;
  for (uint32_t s = 0; s < c->num_stripes; s++) out.push_back(c->physical[s] + (logical - c->logical));
  return out;
}

uint64_t ChunkMap::preferred_size(uint32_t type) const {
  // Sized so the chunk array never outgrows the superblock: at most ~32
  // metadata and ~16 data chunks fill any device (docs/design.md).
  if (type == kChunkMetadata) return clamp_mib(device_size_ / 32, 8 * kMiB, 1024 * kMiB);
  return clamp_mib(device_size_ / 16, 16 * kMiB, 8192 * kMiB);
}

std::vector<std::pair<uint64_t, uint64_t>> ChunkMap::physical_gaps() const {
  std::vector<std::pair<uint64_t, uint64_t>> used;
  for (uint64_t sb : kSuperblockOffsets)
    // The first reserve starts at 0 so boot sectors and foreign signatures stay clear too.
    if (sb < device_size_) used.push_back({sb == kSuperblockOffsets[0] ? 0 : sb, kSuperblockReserve});
  for (const Chunk& c : chunks_)
    for (uint32_t s = 0; s < c.num_stripes; s++) used.push_back({c.physical[s], c.length});
  std::sort(used.begin(), used.end());
  std::vector<std::pair<uint64_t, uint64_t>> gaps;
  uint64_t pos = 0;
  for (auto [start, len] : used) {
    if (start > pos) gaps.push_back({pos, start - pos});
    pos = std::max(pos, start + len);
  }
  uint64_t end = device_size_ / kMiB * kMiB;
  if (end > pos) gaps.push_back({pos, end - pos});
  return gaps;
}

uint64_t ChunkMap::unallocated(uint32_t profile) const {
  auto gaps = physical_gaps();
  if (profile == kProfileDup) {
    // Two copies: the best we can do is the largest pair of gaps (or halves of one).
    uint64_t total = 0;
    for (auto& g : gaps) total += g.second;
    return total / 2 / kMiB * kMiB;
  }
  uint64_t total = 0;
  for (auto& g : gaps) total += g.second;
  return total;
}

Result<Chunk> ChunkMap::allocate(uint32_t type, uint32_t profile, uint64_t min_len) {
  if (chunks_.size() >= Superblock::kMaxChunks) return Status::NoSpace("chunk array is full");
  min_len = std::max<uint64_t>((min_len + kMiB - 1) / kMiB * kMiB, kMiB);
  const uint64_t want = std::max(preferred_size(type), min_len);
  auto gaps = physical_gaps();
  Chunk c;
  c.type = type;
  c.profile = profile;
  c.num_stripes = profile == kProfileDup ? 2 : 1;
  if (profile == kProfileSingle) {
    // First gap that fits the preferred size, else the largest gap that fits the minimum.
    std::pair<uint64_t, uint64_t> best{0, 0};
    for (auto& g : gaps) {
      if (g.second >= want) {
        best = {g.first, want};
        break;
      }
      if (g.second >= min_len && g.second > best.second) best = g;
    }
    if (best.second == 0) return Status::NoSpace("no unallocated device space for a new chunk");
    c.length = best.second;
    c.physical[0] = best.first;
  } else {
    // DUP: two ranges, preferably in different gaps so the copies lie far apart.
    uint64_t len = want;
    for (; len >= min_len; len = len / 2 / kMiB * kMiB) {
      std::vector<uint64_t> starts;
      for (auto& g : gaps) {
        uint64_t fits = g.second / len;
        for (uint64_t k = 0; k < fits && starts.size() < 2; k++) starts.push_back(g.first + k * len);
        if (starts.size() == 2) break;
      }
      if (starts.size() == 2) {
        // Spread the copies: take the first fitting range and the last one.
        std::vector<uint64_t> all;
        for (auto& g : gaps)
          for (uint64_t k = 0; k < g.second / len; k++) all.push_back(g.first + k * len);
        c.physical[0] = all.front();
        c.physical[1] = all.back();
        c.length = len;
        break;
      }
      if (len == kMiB) break;
    }
    if (c.length == 0) return Status::NoSpace("no unallocated device space for a new DUP chunk");
  }
  c.logical = next_logical_;
  // A gap between chunks keeps free ranges of neighbouring chunks from
  // merging in the allocator, so no extent ever spans two chunks.
  next_logical_ += c.length + kChunkLogicalGap;
  chunks_.push_back(c);
  return c;
}

}  // namespace cairn
