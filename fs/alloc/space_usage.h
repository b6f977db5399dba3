#pragma once
// One account of where the device's bytes are (docs/design.md, "Space
// reports"): what statfs (df), `cairnctl stats` and `cairnctl filesystem
// usage` print all come from one SpaceUsage taken under the engine mutex,
// so their figures agree with each other by construction.
//
// Every byte of the device is in exactly one of:
//   superblock reserves  (1 MiB at each superblock copy, never allocated)
//   unallocated          (no chunk yet; either type may take it)
//   a chunk, as used, pinned (freed in the running transaction, free once
//   it commits) or free; a DUP chunk holds every byte twice.
//
// "Free (estimated)" is what a writer can still put in files: free and
// pinned space of data chunks, plus the unallocated space a data chunk
// could take (halved for DUP data), less the metadata chunk held back so
// that deletes and commits never run out of tree space, less what dirty
// pages not yet written have been promised.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "alloc/chunk_map.h"
#include "alloc/space_allocator.h"

namespace cairn {

struct ChunkTypeUsage {
  uint32_t type = 0;     // kChunkData, kChunkMetadata, kChunkSystem
  uint32_t profile = 0;  // kProfileSingle, kProfileDup
  uint64_t chunks = 0;
  uint64_t size = 0;    // logical bytes in chunks of this type
  uint64_t used = 0;    // logical bytes holding extents or tree nodes
  uint64_t pinned = 0;  // logical bytes freed in the running transaction
  uint32_t copies() const { return profile == kProfileDup ? 2 : 1; }
  uint64_t free() const { return size - used - pinned; }
};

struct SpaceUsage {
  uint64_t device_size = 0;
  uint64_t superblock_reserve = 0;  // device bytes no chunk may take
  uint64_t device_allocated = 0;    // device bytes in chunks, every copy
  uint64_t device_unallocated = 0;
  uint64_t device_used = 0;         // device bytes holding data or metadata, every copy
  uint32_t data_copies = 1;
  // In data chunks, logical (what files can hold): data_free + data_pinned
  // + unallocated_for_data - metadata_held_back - dirty_reserved.
  uint64_t unallocated_for_data = 0;  // unallocated space a data chunk could use
  uint64_t metadata_held_back = 0;    // of that, kept for the next metadata chunk
  uint64_t dirty_reserved = 0;        // promised to dirty pages not yet written
  uint64_t free_estimate = 0;         // what files can still take (df's Avail)
  std::vector<ChunkTypeUsage> types;  // data, metadata, system (each present once)

  const ChunkTypeUsage& of(uint32_t type) const;
  // The df view, in bytes a file can hold (device bytes / data copies, as
  // btrfs reports a DUP-data filesystem): size, used, available. Size minus
  // used minus available is what the filesystem keeps for itself (superblock
  // reserves, metadata chunks' free space, the held-back metadata chunk).
  uint64_t df_size() const { return device_size / data_copies; }
  uint64_t df_used() const { return device_used / data_copies + dirty_reserved; }
  uint64_t df_available() const { return free_estimate; }
};

// Take the account now (engine mutex held). `dirty_reserved`: bytes the
// writeback has promised to dirty pages (0 offline).
SpaceUsage space_usage(const ChunkMap& chunks, const SpaceAllocator& alloc, uint32_t data_profile,
                       uint32_t metadata_profile, uint64_t dirty_reserved);

// The account as `cairnctl filesystem usage --json` prints it (the daemon
// sends it inside the stats reply; offline, cairnctl makes it itself).
nlohmann::json space_usage_json(const SpaceUsage& u);

}  // namespace cairn
