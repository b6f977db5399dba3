#include "alloc/space_usage.h"

#include <algorithm>

namespace cairn {

const ChunkTypeUsage& SpaceUsage::of(uint32_t type) const {
  for (const auto& t : types)
    if (t.type == type) return t;
  static const ChunkTypeUsage none;
  return none;
}

SpaceUsage space_usage(const ChunkMap& chunks, const SpaceAllocator& alloc, uint32_t data_profile,
                       uint32_t metadata_profile, uint64_t dirty_reserved) {
  SpaceUsage u;
  u.device_size = chunks.device_size();
  u.data_copies = data_profile == kProfileDup ? 2 : 1;
  for (uint32_t type : {uint32_t(kChunkData), uint32_t(kChunkMetadata), uint32_t(kChunkSystem)}) {
    ChunkTypeUsage t;
    t.type = type;
    t.profile = type == kChunkData ? data_profile : metadata_profile;
    for (const Chunk& c : chunks.chunks_of(type)) {
      t.chunks++;
      t.profile = c.profile;  // what is on disk, whatever the superblock prefers
    }
    t.size = chunks.bytes_of(type);
    t.pinned = std::min(alloc.pinned_of(type), t.size);
    t.used = t.size - std::min(t.size, alloc.free_in_chunks(type) + t.pinned);
    u.device_allocated += t.size * t.copies();
    u.device_used += t.used * t.copies();
    u.types.push_back(t);
  }
  u.device_unallocated = chunks.unallocated(kProfileSingle);
  const uint64_t accounted = u.device_allocated + u.device_unallocated;
  u.superblock_reserve = u.device_size > accounted ? u.device_size - accounted : 0;
  u.unallocated_for_data = chunks.unallocated(data_profile);
  u.metadata_held_back = alloc.metadata_chunk_held_back();
  u.dirty_reserved = dirty_reserved;
  // Space freed in the running transaction is free from the user's point of
  // view: the next commit (forced by an allocation that needs it) releases it.
  const ChunkTypeUsage& d = u.of(kChunkData);
  const uint64_t have = d.free() + d.pinned + u.unallocated_for_data - u.metadata_held_back;
  u.free_estimate = have > dirty_reserved ? have - dirty_reserved : 0;
  return u;
}

nlohmann::json space_usage_json(const SpaceUsage& u) {
  nlohmann::json types = nlohmann::json::array();
  for (const auto& t : u.types)
    types.push_back({{"type", chunk_type_name(t.type)},
                     {"profile", t.profile == kProfileDup ? "dup" : "single"},
                     {"chunks", t.chunks},
                     {"size_bytes", t.size},
                     {"used_bytes", t.used},
                     {"pinned_bytes", t.pinned},
                     {"free_bytes", t.free()},
                     {"device_bytes", t.size * t.copies()}});
  return {{"device_size", u.device_size},
          {"device_allocated", u.device_allocated},
          {"device_unallocated", u.device_unallocated},
          {"superblock_reserve", u.superblock_reserve},
          {"device_used", u.device_used},
          {"data_copies", u.data_copies},
          {"unallocated_for_data", u.unallocated_for_data},
          {"metadata_held_back", u.metadata_held_back},
          {"dirty_reserved", u.dirty_reserved},
          {"free_estimate", u.free_estimate},
          {"df", {{"size", u.df_size()}, {"used", u.df_used()}, {"available", u.df_available()}}},
          {"chunk_types", types}};
}

}  // namespace cairn
