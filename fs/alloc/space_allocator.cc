#include "alloc/space_allocator.h"

#include <algorithm>

namespace cairn {

SpaceAllocator::SpaceAllocator(ChunkMap* chunks, uint32_t data_profile, uint32_t meta_profile, uint32_t node_size)
    : chunks_(chunks), data_profile_(data_profile), meta_profile_(meta_profile), node_size_(node_size) {}

void SpaceAllocator::init_from_chunks() {
  data_free_ = meta_free_ = system_free_ = FreeMap{};
  for (const Chunk& c : chunks_->chunks()) insert_free(map_for(c.type), c.logical, c.length);
}

void SpaceAllocator::init_from_cache(const std::vector<std::pair<uint64_t, uint64_t>>& free) {
  data_free_ = meta_free_ = system_free_ = FreeMap{};
  for (const Chunk& c : chunks_->chunks_of(kChunkSystem)) insert_free(system_free_, c.logical, c.length);
  for (auto [s, l] : free)
    if (const Chunk* c = chunks_->find(s)) insert_free(map_for(c->type), s, l);
}

std::vector<std::pair<uint64_t, uint64_t>> SpaceAllocator::free_after_commit() const {
  std::vector<std::pair<uint64_t, uint64_t>> all;
  all.reserve(data_free_.ranges.size() + meta_free_.ranges.size() + pinned_.size());
  for (auto& r : data_free_.ranges) all.push_back(r);
  for (auto& r : meta_free_.ranges) all.push_back(r);
  for (auto [s, l] : pinned_) {
    const Chunk* c = chunks_->find(s);
    if (c && c->type != kChunkSystem) all.emplace_back(s, l);
  }
  std::sort(all.begin(), all.end());
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (auto [s, l] : all) {
    if (!out.empty() && out.back().first + out.back().second == s) out.back().second += l;
    else out.emplace_back(s, l);
  }
  return out;
}

void SpaceAllocator::insert_free(FreeMap& fm, uint64_t start, uint64_t len) {
  if (len == 0) return;
  fm.bytes += len;
  auto& m = fm.ranges;
  auto next = m.lower_bound(start);
  if (next != m.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == start) {
      start = prev->first;
      len += prev->second;
      m.erase(prev);
    }
  }
  next = m.lower_bound(start);
  if (next != m.end() && start + len == next->first) {
    len += next->second;
    m.erase(next);
  }
  m[start] = len;
}

bool SpaceAllocator::take(FreeMap& fm, uint64_t start, uint64_t len) {
  auto& m = fm.ranges;
  auto it = m.upper_bound(start);
  if (it == m.begin()) return false;
  --it;
  uint64_t fs = it->first, fl = it->second;
  if (start < fs || start + len > fs + fl) return false;
  m.erase(it);
  if (start > fs) m[fs] = start - fs;
  if (start + len < fs + fl) m[start + len] = fs + fl - (start + len);
  fm.bytes -= len;
  return true;
}

bool SpaceAllocator::mark_used(uint64_t start, uint64_t len) {
  const Chunk* c = chunks_->find(start);
  return c && c->contains(start, len) && take(map_for(c->type), start, len);
}

Status SpaceAllocator::grow(uint32_t type, uint64_t min_len) {
  uint32_t profile = profile_for(type);
  // Empty chunks of the other types first: their space may be what is missing.
  // (unallocated(profile) is already in the profile's logical bytes.)
  if (chunks_->unallocated(profile) < std::max(min_len, chunks_->preferred_size(type))) reclaim_empty();
  uint64_t max_len = UINT64_MAX;
  if (type == kChunkData) {
    // Keep room for one more metadata chunk: running out of metadata space
    // is what turns a full disk into an unmountable one. The same rule as
    // data_available(), in device bytes, so that every byte a writer was
    // promised can be allocated; and the chunk itself is cut so that it
    // leaves that room (its preferred size could otherwise eat it).
    const uint64_t copies = profile == kProfileDup ? 2 : 1;
    const uint64_t unalloc = chunks_->unallocated(kProfileSingle), room = metadata_room_device_bytes();
    if (unalloc < min_len * copies + room) return Status::NoSpace("no space left for data");
    max_len = (unalloc - room) / copies;
  }
  ASSIGN_OR_RETURN(Chunk c, chunks_->allocate(type, profile, min_len, max_len));
  insert_free(map_for(type), c.logical, c.length);
  return Status::Ok();
}

size_t SpaceAllocator::reclaim_empty() {
  size_t n = 0;
  for (uint32_t type : {kChunkData, kChunkMetadata}) {
    std::vector<Chunk> of = chunks_->chunks_of(type);
    size_t left = of.size();
    FreeMap& fm = map_for(type);
    auto& m = fm.ranges;
    for (const Chunk& c : of) {
      if (left <= 1) break;
      if (c.logical == chunks_->last_logical()) continue;
      // Chunks never touch (a logical gap lies between them), so a free
      // range equal to the chunk means the chunk is wholly free.
      auto it = m.find(c.logical);
      if (it == m.end() || it->second != c.length) continue;
      m.erase(it);
      fm.bytes -= c.length;
      chunks_->remove(c.logical);
      if (cursor_[type] >= c.logical && cursor_[type] < c.logical + c.length) cursor_[type] = 0;
      left--;
      n++;
    }
  }
  chunks_reclaimed_ += n;
  return n;
}

Result<uint64_t> SpaceAllocator::alloc(uint32_t type, uint64_t len, uint64_t align) {
  ASSIGN_OR_RETURN(auto r, alloc_range(type, len, len, align));
  return r.first;
}

Result<uint64_t> SpaceAllocator::alloc_in_chunks(uint32_t type, uint64_t len, uint64_t align) {
  ASSIGN_OR_RETURN(auto r, alloc_range_impl(type, len, len, align, false));
  return r.first;
}

Result<std::pair<uint64_t, uint64_t>> SpaceAllocator::alloc_range(uint32_t type, uint64_t min_len, uint64_t max_len,
                                                                  uint64_t align) {
  return alloc_range_impl(type, min_len, max_len, align, true);
}

Result<std::pair<uint64_t, uint64_t>> SpaceAllocator::alloc_range_impl(uint32_t type, uint64_t min_len, uint64_t max_len,
                                                                       uint64_t align, bool may_grow) {
  for (int attempt = 0; attempt < 2; attempt++) {
    FreeMap& fm = map_for(type);
    auto& m = fm.ranges;
    uint64_t cur = cursor_[type];
    // Next fit from the cursor (sequential writes stay contiguous), wrapping
    // once; remember the largest run >= min_len in case nothing fits max_len.
    std::pair<uint64_t, uint64_t> best{0, 0};
    using It = std::map<uint64_t, uint64_t>::iterator;
    auto scan = [&](It from, It to) -> bool {
      for (auto it = from; it != to; ++it) {
        uint64_t s = (it->first + align - 1) / align * align;
        if (s >= it->first + it->second) continue;
        uint64_t avail = (it->first + it->second - s) / align * align;
        if (avail >= max_len) {
          best = {s, max_len};
          return true;
        }
        if (avail >= min_len && avail > best.second) best = {s, avail};
      }
      return false;
    };
    auto start = m.lower_bound(cur);
    if (start != m.begin()) {
      auto p = std::prev(start);
      if (p->first + p->second > cur) start = p;
    }
    if (!scan(start, m.end())) scan(m.begin(), start);
    if (best.second >= min_len) {
      take(fm, best.first, best.second);
      cursor_[type] = best.first + best.second;
      return best;
    }
    if (attempt == 0 && may_grow) {
      // A chunk of the type's size unless the request needs more (a
      // shorter extent than max_len is fine).
      Status st = grow(type, std::max(min_len, std::min(max_len, chunks_->preferred_size(type))));
      if (!st.ok() && max_len != min_len) st = grow(type, min_len);
      if (!st.ok()) return Status::NoSpace(type == kChunkData ? "no space left for data" : "no space left for metadata");
    }
  }
  return Status::NoSpace("no space left on device");
}

void SpaceAllocator::free_now(uint64_t start, uint64_t len) {
  const Chunk* c = chunks_->find(start);
  if (c) insert_free(map_for(c->type), start, len);
}

void SpaceAllocator::pin(uint64_t start, uint64_t len) {
  pinned_.push_back({start, len});
  pinned_bytes_ += len;
  const Chunk* c = chunks_->find(start);
  pinned_by_type_[type_index(c ? c->type : kChunkMetadata)] += len;
}

void SpaceAllocator::unpin_all() {
  for (auto [s, l] : pinned_) free_now(s, l);
  pinned_.clear();
  pinned_bytes_ = 0;
  for (auto& b : pinned_by_type_) b = 0;
}

uint64_t SpaceAllocator::metadata_reserve() const { return uint64_t(node_size_) * 256; }

uint64_t SpaceAllocator::metadata_room_device_bytes() const {
  // Free metadata space is logical bytes; so is the chunk it is compared with.
  const uint64_t meta_chunk = chunks_->preferred_size(kChunkMetadata);
  if (free_in_chunks(kChunkMetadata) >= meta_chunk / 2) return 0;
  return meta_chunk * (meta_profile_ == kProfileDup ? 2 : 1);
}

uint64_t SpaceAllocator::metadata_chunk_held_back() const {
  // In the bytes data could have had (unallocated(data_profile_)): the
  // metadata chunk's device bytes over the data copies.
  return std::min(metadata_room_device_bytes() / (data_profile_ == kProfileDup ? 2 : 1),
                  chunks_->unallocated(data_profile_));
}

uint64_t SpaceAllocator::data_available() const {
  return free_in_chunks(kChunkData) + chunks_->unallocated(data_profile_) - metadata_chunk_held_back();
}

uint64_t SpaceAllocator::metadata_available() const {
  return free_in_chunks(kChunkMetadata) + chunks_->unallocated(meta_profile_);
}

}  // namespace cairn
