#pragma once
// Engine: one open Cairn filesystem (docs/design.md, "Engine and
// transactions").
//
// It owns the device, the superblock, the chunk map, the space allocator,
// the node store and the roots of every tree, and runs the transaction
// protocol: all changes join the one running transaction; commit() writes
// every dirty node to newly allocated space, flushes, writes every
// superblock copy, flushes again, and only then returns the space freed in
// that transaction to the allocator.
//
// Tree blocks are recorded in the extent tree (METADATA_ITEM) through
// delayed references: allocating or freeing a node only notes it, and
// commit applies the notes until none are left (applying them modifies the
// extent tree, which may allocate nodes in turn). The chunk tree is the
// exception: its nodes live in system chunks, are not in the extent tree,
// and its root is in the superblock, so that chunk allocation during a
// commit never recurses into the extent tree.
//
// Thread-safety: every method requires mutex() held by the caller, except
// open/format. One lock for all trees is deliberate for now: FUSE requests
// spend their time in data I/O, which runs outside it (docs/design.md).

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "alloc/chunk_map.h"
#include "alloc/space_allocator.h"
#include "dev/block_device.h"
#include "format/constants.h"
#include "format/items.h"
#include "format/superblock.h"
#include "tree/btree.h"
#include "tree/node_store.h"

namespace cairn {

struct MkfsParams {
  uint64_t size = 0;  // filesystem size; 0 = the whole device
  std::string label;
  std::optional<Uuid> uuid;
  CsumType csum = CsumType::kCrc32c;
  uint32_t node_size = kDefaultNodeSize;
  uint32_t metadata_profile = kProfileSingle;
  uint32_t data_profile = kProfileSingle;
  uint32_t root_uid = 0, root_gid = 0, root_mode = 040755;
  uint64_t max_chunk_size = 0;  // test knob, as EngineOptions::max_chunk_size
};

// The free-space map one open built, for a second open of the same image
// to take over instead of reading the extent tree again (the mount's
// probe hands it to the mount, fuse/main.cc). Used only when it describes
// the superblock the second open reads.
struct FreeSpaceSnapshot {
  uint64_t generation = 0;
  std::vector<std::pair<uint64_t, uint64_t>> free;  // data and metadata chunks, sorted, merged
  uint64_t extent_items = 0;
  std::vector<uint64_t> space_cache_blocks;
  std::string source;
};

struct EngineOptions {
  bool read_only = false;
  size_t node_cache_bytes = 64ULL << 20;
  // Test knob: no new chunk larger than this (0: sized from the device), so
  // small images get hundreds of chunks (docs/design.md, "Chunks").
  uint64_t max_chunk_size = 0;
  // Load the free-space cache a clean unmount saved, and let
  // commit_saving_free_space() write one (-o nospace_cache: neither; the
  // extent tree is read at every open).
  bool space_cache = true;
  // Give each generation an fsync log (docs/design.md, "Fsync log"); off:
  // every fsync commits.
  bool fsync_log = true;
  // A map an earlier open of this image built (see FreeSpaceSnapshot).
  std::shared_ptr<const FreeSpaceSnapshot> free_space = nullptr;
};

// Where one fsync log write goes (Engine::place_log_write).
struct LogPlacement {
  uint64_t generation = 0;  // the committed generation the log extends
  uint64_t seq = 0;
  uint64_t logical = 0;
  uint64_t next = 0;        // where the write after it goes (0: the chain ends)
  std::vector<uint64_t> phys;  // every copy (DUP metadata: two)
};

// Which superblock copies exist and what each holds (fsck reports them).
struct SuperblockCopyInfo {
  uint64_t offset = 0;
  bool present = false;  // fits on the device
  Status status;         // decode result
  uint64_t generation = 0;
};

class Engine : public TreeContext {
 public:
  static Result<std::unique_ptr<Engine>> format(std::shared_ptr<BlockDevice> dev, const MkfsParams& params);
  static Result<std::unique_ptr<Engine>> open(std::shared_ptr<BlockDevice> dev, const EngineOptions& opts);
  // Read every superblock copy; pick the newest valid one.
  static Result<Superblock> read_superblock(BlockDevice& dev, std::vector<SuperblockCopyInfo>* copies = nullptr);
  ~Engine() override;

  std::mutex& mutex() { return mu_; }
  const Superblock& super() const { return sb_; }
  // Mutex held: an incompat feature is now in use (written by the next commit).
  void set_incompat(uint64_t bit) { sb_.incompat_flags |= bit; }
  bool read_only() const { return opts_.read_only; }
  BlockDevice& device() { return *dev_; }
  std::shared_ptr<BlockDevice> device_ptr() { return dev_; }
  ChunkMap& chunk_map() { return chunks_; }
  SpaceAllocator& allocator() { return alloc_; }

  // TreeContext
  NodeStore& store() override { return store_; }
  uint64_t transid() const override { return transid_; }
  Result<uint64_t> alloc_tree_block(uint64_t owner, uint8_t level) override;
  void free_tree_block(const Node& n) override;
  Result<uint64_t> tree_block_refs(const Node& n) override;
  void add_tree_block_ref(uint64_t bytenr, uint8_t level) override;
  void drop_tree_block_ref(const Node& n) override;
  Status leaf_shared(uint64_t owner, const Node& leaf) override;
  Status leaf_moved(uint64_t owner, const Node& leaf) override;
  Status leaf_dropped(uint64_t tree, const Node& leaf) override;

  // ---- Snapshots (docs/design.md, "Snapshots") ----
  // Tree `dst` becomes a snapshot of fs tree `src`: it shares src's root
  // node, O(1) whatever the tree's size. Commits first (a snapshot shares
  // committed nodes only); the caller commits after to make it durable.
  Status snapshot_tree(uint64_t src, uint64_t dst);
  // Mark a tree dead: nothing reads it any more; drop_tree_steps frees
  // what only it references, a bounded amount of work per call, and
  // removes it when done. A crash in between resumes from the committed
  // (smaller, exact) state.
  Status delete_tree(uint64_t id);
  Result<bool> drop_tree_steps(uint64_t id, size_t steps);
  std::vector<uint64_t> dead_trees() const;

  BTree tree(uint64_t id);
  // Every node of the chunk tree (address, level): they are not in the
  // extent tree, so scrub and the free-space rebuild find them here.
  Result<std::vector<std::pair<uint64_t, uint8_t>>> chunk_tree_blocks();
  bool has_tree(uint64_t id) const { return roots_.count(id) != 0; }
  RootRef& root_ref(uint64_t id) { return roots_.at(id); }
  std::vector<uint64_t> tree_ids() const;
  // A new empty tree, recorded in the root tree at the next commit.
  Status create_tree(uint64_t id, uint64_t flags);
  // An fs tree's root directory (inode 256) in the empty tree `id`: mkfs's,
  // and a new subvolume's.
  Status init_root_directory(uint64_t id, uint32_t mode, uint32_t uid, uint32_t gid);

  // Commit the running transaction (a no-op when nothing changed, unless
  // `even_if_clean`: a read-write mount commits once at once, so that no
  // transaction number a crash lost is ever handed out again; inode
  // generations, and with them file handles, rely on that).
  Status commit(bool even_if_clean = false);
  // The last commit of a mount: as commit(), and it saves the free-space
  // map for the next open (docs/design.md, "Space"). Nothing may be
  // allocated outside the extent tree when it runs (writeback drained).
  Status commit_saving_free_space();
  // Where this open's free-space map came from, for `cairnctl stats`:
  // "cache", or "extent tree" with the reason the cache was not used.
  const std::string& free_space_source() const { return free_space_source_; }
  // The blocks of the cache the last durable superblock points at (in use
  // until the next commit).
  const std::vector<uint64_t>& space_cache_blocks() const { return space_cache_blocks_; }
  // The free-space map as this open built it, for another open of the same
  // image (EngineOptions::free_space). Only before anything is allocated or
  // freed: a read-only open.
  std::shared_ptr<const FreeSpaceSnapshot> free_space_snapshot() const;
  bool dirty() const;
  // Tree nodes the running transaction holds dirty, in node bytes.
  uint64_t dirty_node_bytes() const { return uint64_t(store_.dirty_count()) * sb_.node_size; }
  // Abandon the running transaction after an operation failed half-way:
  // nothing more is ever committed, so the image keeps its last committed
  // state (the caller reports the error; the filesystem turns read-only).
  void abort(const Status& why);
  bool aborted() const { return failed_; }
  const Status& abort_reason() const { return abort_reason_; }
  // Refuse to start an operation that might need more than `nodes` new
  // tree nodes when metadata space is that tight (ENOSPC before any change).
  // Deletions may use half of the fixed reserve: freeing space must work
  // on a full filesystem.
  Status reserve_metadata(uint64_t nodes, bool deleting = false) const;
  uint64_t last_committed() const { return sb_.generation; }
  // Would a commit make room? (Freed space is pinned until one, and the
  // delayed references it applies are counted in every reservation.)
  bool commit_makes_room() const { return alloc_.pinned_bytes() > 0 || !delayed_refs_.empty(); }

  // ---- Data extents (extent tree EXTENT_ITEM with EXTENT_DATA_REF backrefs) ----
  Result<std::pair<uint64_t, uint64_t>> alloc_data(uint64_t min_len, uint64_t max_len);
  // Record a new data extent [bytenr, bytenr+len) referenced once by (root, ino, offset).
  Status add_data_extent(uint64_t bytenr, uint64_t len, uint64_t root, uint64_t ino, uint64_t offset);
  Status add_data_ref(uint64_t bytenr, uint64_t len, uint64_t root, uint64_t ino, uint64_t offset);
  // Drop one reference; at zero the extent and its checksums go, and its space is pinned.
  Status drop_data_ref(uint64_t bytenr, uint64_t len, uint64_t root, uint64_t ino, uint64_t offset);
  // Return a data extent allocated in this transaction but never referenced.
  void release_unused_data(uint64_t bytenr, uint64_t len) { alloc_.free_now(bytenr, len); }

  // ---- Checksums (csum tree, EXTENT_CSUM items) ----
  Status insert_csums(uint64_t bytenr, const uint8_t* csums, uint64_t nsectors);
  // Checksums of sectors [bytenr, bytenr + nsectors*4K); false entries in
  // `present` where none is recorded.
  Status lookup_csums(uint64_t bytenr, uint64_t nsectors, std::vector<uint8_t>* out, std::vector<bool>* present);
  Status delete_csums(uint64_t bytenr, uint64_t len);

  // ---- Fsync log space (docs/design.md, "Fsync log") ----
  // Log writes go into regions of existing metadata chunks that are
  // allocated but not in the extent tree (like the free-space cache): the
  // commit that starts a generation allocates the first and names it in the
  // superblock, and each write names where the next goes, a new region
  // when the current one has less than LogWrite::kMaxBytes left. The next
  // commit releases them (pinned: the superblock it replaces still points
  // at them).
  static constexpr uint64_t kLogRegionBytes = 512ULL << 10;
  // Log bytes one generation may take; past them fsync commits.
  static constexpr uint64_t kMaxLogBytes = 64ULL << 20;
  // Place a write of `len` bytes (a multiple of 4096, at most
  // LogWrite::kMaxBytes) at the head of this generation's log. NoSpace: no
  // log now (none this generation, the last write failed, or it is full):
  // commit instead. One write may be placed at a time: the caller writes
  // it and calls log_write_done before placing the next.
  Result<LogPlacement> place_log_write(uint64_t len);
  // The placed write is durable (ok) or failed (the log ends before it: no
  // more writes this generation).
  void log_write_done(bool ok);
  // Replay: [logical, logical + len) holds a write of the durable log; keep
  // it from being allocated until the next commit is durable. False: it is
  // not free space of one metadata chunk (the log lies).
  bool hold_log_range(uint64_t logical, uint64_t len);

  // ---- Error counters, persisted in the root tree at commit ----
  DevStats& dev_stats() { return dev_stats_; }
  void note_stats_changed() { stats_dirty_ = true; }

  uint64_t bytes_used() const { return bytes_used_; }
  // fsck --repair: recompute the space in use from the extent tree (the
  // superblock's count is only a cache of it) and commit it next time.
  Status recount_space();
  // Make the next commit happen even with nothing else changed (fsck
  // --repair rewrites every superblock copy this way).
  void force_commit() { stats_dirty_ = true; }
  uint32_t node_size() const { return sb_.node_size; }
  CsumType csum_type() const { return sb_.csum_type; }
  size_t csum_size() const { return cairn::csum_size(sb_.csum_type); }

 private:
  Engine(std::shared_ptr<BlockDevice> dev, Superblock sb, EngineOptions opts);
  Status load_chunk_tree();
  Status load_roots();
  Status rebuild_free_space();
  // The free-space map from the cache, if it is valid and holds up (see
  // alloc/space_cache.h); false (with free_space_source_ saying why) if the
  // extent tree must be read instead.
  bool load_free_space_cache();
  // The map EngineOptions::free_space holds, if it is this superblock's.
  bool take_free_space_snapshot();
  // Allocate blocks for the free-space cache in existing metadata chunks
  // and write it; the caller points the superblock at it.
  Status write_free_space_cache();
  // Bring the chunk tree up to date with the chunk map's changes (creating
  // it, with a first system chunk, on an image that has none yet).
  Status sync_chunk_tree();
  Status run_delayed_refs();
  Status update_root_items();
  Status write_superblocks();
  RootRef create_empty_tree(uint64_t id);
  // Nodes the next commit may need to apply the delayed references (an
  // upper bound, counted in every reserve_metadata).
  uint64_t commit_cost() const;
  // A leaf item of the extent tree with one back reference: header and item.
  static constexpr uint64_t kExtentItemFootprint = 80;

  // Pending changes to one tree block's METADATA_ITEM, applied at commit.
  struct DelayedRef {
    int64_t delta = 0;   // references added minus dropped
    int space = 0;       // +1 allocated, -1 freed (bytes_used moved by a node)
    uint64_t owner = 0;  // the allocating tree (the TREE_BLOCK_REF of a new item)
    uint8_t level = 0;
    bool fresh = false;  // allocated in this transaction: no item yet
  };
  // Is `tree` an fs tree whose leaves hold file extent items?
  bool holds_file_data(uint64_t tree) const;

  std::mutex mu_;
  std::shared_ptr<BlockDevice> dev_;
  Superblock sb_;
  EngineOptions opts_;
  ChunkMap chunks_;
  SpaceAllocator alloc_;
  NodeStore store_;
  std::map<uint64_t, RootRef> roots_;
  std::map<uint64_t, DelayedRef> delayed_refs_;
  std::set<uint64_t> removed_roots_;  // trees dropped: their ROOT_ITEMs go at the next commit
  uint64_t transid_ = 0;
  uint64_t bytes_used_ = 0;
  uint64_t extent_items_ = 0;  // EXTENT_ITEMs and METADATA_ITEMs (an estimate's input)
  DevStats dev_stats_;
  bool stats_dirty_ = false;
  bool data_changed_ = false;
  bool save_space_cache_ = false;  // inside commit_saving_free_space
  // Blocks of the cache the last durable superblock points at: freed by the
  // next commit (which points at none, or at a new cache).
  std::vector<uint64_t> space_cache_blocks_;
  std::string free_space_source_;
  // The regions of this generation's log, and older ones a write in flight
  // may still be filling (released when it is done).
  std::vector<std::pair<uint64_t, uint64_t>> log_regions_, log_retired_;
  uint64_t log_head_ = 0;        // where the next write goes (0: no log now)
  uint64_t log_region_end_ = 0;  // end of the region log_head_ is in
  uint64_t log_seq_ = 0, log_bytes_ = 0;
  bool log_write_inflight_ = false;
  // Commit: release the old generation's regions, start the new one's.
  void start_log();
  // A new log region in existing metadata chunks, or nothing when metadata
  // is tight (a region must never be what a commit lacks).
  std::optional<uint64_t> alloc_log_region();
  // Commit, before the chunk tree is settled: give metadata a new chunk when
  // the next generation's log would not fit in the free space of the
  // existing ones and the device has ample unallocated space.
  Status make_room_for_log();
  bool failed_ = false;  // a commit or an operation failed half-way: no further commits
  Status abort_reason_;
};

}  // namespace cairn
