#include "alloc/chunk_map.h"

#include <algorithm>

namespace cairn {

namespace {
constexpr uint64_t kMiB = 1ULL << 20;
constexpr uint64_t kChunkLogicalGap = kMiB;
uint64_t clamp_mib(uint64_t v, uint64_t lo, uint64_t hi) { return std::clamp(v / kMiB * kMiB, lo, hi); }
}  // namespace

ChunkMap::ChunkMap(uint64_t device_size, const std::vector<Chunk>& chunks, uint64_t next_logical)
    : device_size_(device_size), next_logical_(next_logical) {
  const uint64_t end = device_size_ / kMiB * kMiB;
  if (end) release(0, end);
  for (uint64_t sb : kSuperblockOffsets)
    // The first reserve starts at 0 so boot sectors and foreign signatures stay clear too.
    if (sb < end) carve(sb == kSuperblockOffsets[0] ? 0 : sb, kSuperblockReserve);
  for (const Chunk& c : chunks) load(c);
}

void ChunkMap::carve(uint64_t start, uint64_t len) {
  const uint64_t end = start + len;
  auto it = gaps_.upper_bound(start);
  if (it != gaps_.begin()) --it;
  while (it != gaps_.end() && it->first < end) {
    const uint64_t gs = it->first, ge = it->first + it->second;
    if (ge <= start) {
      ++it;
      continue;
    }
    it = gaps_.erase(it);
    free_total_ -= ge - gs;
    if (gs < start) {
      gaps_[gs] = start - gs;
      free_total_ += start - gs;
    }
    if (ge > end) {
      gaps_[end] = ge - end;
      free_total_ += ge - end;
      break;
    }
  }
}

void ChunkMap::release(uint64_t start, uint64_t len) {
  if (len == 0) return;
  carve(start, len);  // never count a byte twice, whatever the caller says
  auto next = gaps_.lower_bound(start);
  if (next != gaps_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == start) {
      start = prev->first;
      len += prev->second;
      free_total_ -= prev->second;
      gaps_.erase(prev);
    }
  }
  next = gaps_.lower_bound(start);
  if (next != gaps_.end() && start + len == next->first) {
    len += next->second;
    free_total_ -= next->second;
    gaps_.erase(next);
  }
  gaps_[start] = len;
  free_total_ += len;
}

void ChunkMap::load(const Chunk& c) {
  if (auto it = chunks_.find(c.logical); it != chunks_.end()) bytes_of_[it->second.type] -= it->second.length;
  chunks_[c.logical] = c;
  bytes_of_[c.type] += c.length;
  for (uint32_t s = 0; s < c.num_stripes && s < 2; s++) carve(c.physical[s], c.length);
}

const Chunk* ChunkMap::find(uint64_t logical) const {
  auto it = chunks_.upper_bound(logical);
  if (it == chunks_.begin()) return nullptr;
  --it;
  const Chunk& c = it->second;
  return logical - c.logical < c.length ? &c : nullptr;
}

std::vector<Chunk> ChunkMap::chunks() const {
  std::vector<Chunk> out;
  out.reserve(chunks_.size());
  for (auto& [l, c] : chunks_) out.push_back(c);
  return out;
}

std::vector<Chunk> ChunkMap::chunks_of(uint32_t type) const {
  std::vector<Chunk> out;
  for (auto& [l, c] : chunks_)
    if (c.type == type) out.push_back(c);
  return out;
}

void ChunkMap::remove(uint64_t logical) {
  auto it = chunks_.find(logical);
  if (it == chunks_.end()) return;
  const Chunk c = it->second;
  bytes_of_[c.type] -= c.length;
  chunks_.erase(it);
  for (uint32_t s = 0; s < c.num_stripes && s < 2; s++) release(c.physical[s], c.length);
  changed_.insert(logical);
}

Result<std::vector<uint64_t>> ChunkMap::map(uint64_t logical, uint64_t len) const {
  const Chunk* c = find(logical);
  if (!c || !c->contains(logical, len))
    return Status::Corruption("address " + std::to_string(logical) + "+" + std::to_string(len) + " is not mapped by any chunk");
  std::vector<uint64_t> out;
  for (uint32_t s = 0; s < c->num_stripes && s < 2; s++) out.push_back(c->physical[s] + (logical - c->logical));
  return out;
}

uint64_t ChunkMap::preferred_size(uint32_t type) const {
  // Small enough that the space a chunk type holds back (one partly used
  // chunk of each, and the metadata reserve) stays near 1 % of any device,
  // large enough that a 64 TiB device has some ten thousand chunks, a chunk
  // tree of a few dozen leaves (docs/design.md, "Chunks").
  uint64_t size;
  if (type == kChunkSystem) size = clamp_mib(device_size_ / 2048, 1 * kMiB, 32 * kMiB);
  else if (type == kChunkMetadata) size = clamp_mib(device_size_ / 256, 8 * kMiB, 1024 * kMiB);
  else size = clamp_mib(device_size_ / 64, 16 * kMiB, 4096 * kMiB);
  if (max_chunk_size_) size = std::max(kMiB, std::min(size, max_chunk_size_ / kMiB * kMiB));
  return size;
}

uint64_t ChunkMap::unallocated(uint32_t profile) const {
  // Two copies: at best half of it (the allocator finds the pair of ranges).
  if (profile == kProfileDup) return free_total_ / 2 / kMiB * kMiB;
  return free_total_;
}

Result<Chunk> ChunkMap::allocate(uint32_t type, uint32_t profile, uint64_t min_len, uint64_t max_len) {
  min_len = std::max<uint64_t>((min_len + kMiB - 1) / kMiB * kMiB, kMiB);
  if (max_len / kMiB * kMiB < min_len) return Status::NoSpace("no room for a chunk of the size asked");
  const uint64_t want = std::max(std::min(preferred_size(type), max_len / kMiB * kMiB), min_len);
  const auto& gaps = gaps_;
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
      // Spread the copies: the first fitting range and the last one.
      uint64_t fits = 0, first = 0, last = 0;
      for (auto& g : gaps) {
        const uint64_t n = g.second / len;
        if (n == 0) continue;
        if (fits == 0) first = g.first;
        last = g.first + (n - 1) * len;
        fits += n;
      }
      if (fits >= 2) {
        c.physical[0] = first;
        c.physical[1] = last;
        c.length = len;
        break;
      }
      if (len <= kMiB) break;
    }
    if (c.length == 0) return Status::NoSpace("no unallocated device space for a new DUP chunk");
  }
  c.logical = next_logical_;
  // A gap between chunks keeps free ranges of neighbouring chunks from
  // merging in the allocator, so no extent ever spans two chunks.
  next_logical_ += c.length + kChunkLogicalGap;
  load(c);
  changed_.insert(c.logical);
  return c;
}

}  // namespace cairn
