#pragma once
// NodeStore: reads, caches and writes tree nodes (docs/design.md, "Node cache").
//
// Reads map a node's logical address through the chunk map, try each copy
// in turn (DUP), and decode with full validation; a copy that fails is
// reported to the error counters and, when another copy is good, rewritten
// from it (read-repair; the good bytes are exactly what the checksum
// covers, so the rewrite cannot make things worse).
// Nodes modified in the running transaction are "dirty" and pinned in
// memory until commit writes them; clean nodes live in an LRU bounded by
// `cache_bytes`.
//
// Thread-safety: guarded by the engine's tree lock.

#include <cstdint>
#include <functional>
#include <list>
#include <utility>
#include <vector>
#include <memory>
#include <unordered_map>

#include "alloc/chunk_map.h"
#include "dev/block_device.h"
#include "format/node.h"

namespace cairn {

using NodePtr = std::shared_ptr<Node>;

struct NodeStoreStats {
  uint64_t reads = 0, cache_hits = 0, writes = 0;
  uint64_t csum_errors = 0, corrected = 0, uncorrectable = 0, read_errors = 0, write_errors = 0;
};

class NodeStore {
 public:
  NodeStore(BlockDevice* dev, const ChunkMap* chunks, Uuid fsid, CsumType ct, uint32_t node_size, size_t cache_bytes);

  Result<NodePtr> read(const NodeExpectation& expect);
  // A new node at `bytenr`, dirty, owned by the running transaction.
  NodePtr create(uint64_t bytenr, uint64_t owner, uint8_t level, uint64_t transid);
  // A dirty copy of `src` at a new address (copy-on-write).
  NodePtr clone(const Node& src, uint64_t bytenr, uint64_t transid);
  // Forget a node that was allocated and freed in the running transaction.
  void forget(uint64_t bytenr);
  // Write every dirty node (all copies) and mark them clean.
  Status write_dirty();
  size_t dirty_count() const { return dirty_.size(); }
  void drop_clean_cache();
  void set_max_generation(uint64_t g) { max_generation_ = g; }
  // Read-only opens never write, not even a read-repair.
  void set_repair(bool on) { repair_ = on; }

  uint32_t node_size() const { return node_size_; }
  const NodeStoreStats& stats() const { return stats_; }
  // Read one raw copy of a node (no validation): fsck and scrub look at copies.
  Status read_copy(uint64_t physical, uint8_t* buf);
  Result<Node> decode(const uint8_t* buf, const NodeExpectation& expect) const;
  Status write_node(const Node& n);

  // Every bad node copy a read met (and whether read-repair fixed it).
  // Scrub drains the log, so damage found by ordinary reads (at mount,
  // before scrub gets there) still appears in its report.
  struct BadCopy {
    uint64_t bytenr;
    uint64_t physical;
    bool corrected;
    bool had_good;  // another copy was good (repairable even where not repaired)
  };
  std::vector<BadCopy> take_bad_copies() { return std::exchange(bad_copy_log_, {}); }

 private:
  void touch(uint64_t bytenr, NodePtr n);
  void log_bad_copy(uint64_t bytenr, uint64_t physical, bool corrected, bool had_good);
  void evict();

  BlockDevice* dev_;
  const ChunkMap* chunks_;
  Uuid fsid_;
  CsumType csum_;
  uint32_t node_size_;
  // Clean nodes are charged what they take in memory decoded (a leaf's
  // items are one heap block each: several times node_size for small
  // items), so that cache= bounds the daemon's memory, not a node count.
  size_t cache_capacity_;  // bytes
  size_t cached_bytes_ = 0;
  uint64_t max_generation_ = 0;
  bool repair_ = true;
  std::unordered_map<uint64_t, NodePtr> dirty_;
  struct Cached {
    uint64_t bytenr;
    NodePtr node;
    size_t charge;  // memory_of(*node) when cached (clean nodes never change)
  };
  std::list<Cached> lru_;  // front = most recent
  std::unordered_map<uint64_t, std::list<Cached>::iterator> clean_;
  void drop(std::list<Cached>::iterator it);
  NodeStoreStats stats_;
  std::vector<BadCopy> bad_copy_log_;  // bounded (log_bad_copy)
};

}  // namespace cairn
