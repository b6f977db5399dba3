#include "tree/engine.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "alloc/space_cache.h"
#include "format/log_write.h"
#include "util/aligned_buffer.h"

namespace cairn {

namespace {
Timespec now_ts() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return Timespec{ts.tv_sec, uint32_t(ts.tv_nsec)};
}
}  // namespace

Engine::Engine(std::shared_ptr<BlockDevice> dev, Superblock sb, EngineOptions opts)
    : dev_(std::move(dev)),
      sb_(std::move(sb)),
      opts_(opts),
      chunks_(sb_.total_bytes, sb_.chunks, sb_.next_chunk_logical),
      alloc_(&chunks_, sb_.data_profile, sb_.metadata_profile, sb_.node_size),
      store_(dev_.get(), &chunks_, sb_.fsid, sb_.csum_type, sb_.node_size, opts.node_cache_bytes),
      transid_(sb_.generation + 1),
      bytes_used_(sb_.bytes_used) {
  store_.set_max_generation(sb_.generation);
  store_.set_repair(!opts.read_only);
  chunks_.set_max_chunk_size(opts.max_chunk_size);
}

Engine::~Engine() = default;

Result<Superblock> Engine::read_superblock(BlockDevice& dev, std::vector<SuperblockCopyInfo>* copies) {
  std::optional<Superblock> best;
  Status first_error = Status::Corruption("no superblock found (device too small?)");
  std::vector<uint8_t> buf(kSuperblockSize);
  for (uint64_t off : kSuperblockOffsets) {
    SuperblockCopyInfo info;
    info.offset = off;
    if (off + kSuperblockSize > dev.size()) {
      if (copies) copies->push_back(info);
      continue;
    }
    info.present = true;
    Status st = dev.read(off, buf.data(), buf.size());
    if (st.ok()) {
      auto sb = Superblock::decode(buf.data(), off);
      if (sb.ok() && off + kSuperblockSize > sb->total_bytes) {
        // A copy outside the filesystem it describes belongs to something older.
        info.present = false;
        if (copies) copies->push_back(info);
        continue;
      }
      if (sb.ok()) {
        info.generation = sb->generation;
        if (!best || sb->generation > best->generation) best = sb.value();
      } else {
        st = sb.status();
      }
    }
    info.status = st;
    if (!st.ok() && off == kSuperblockOffsets[0]) first_error = st;
    if (copies) copies->push_back(info);
  }
  if (!best) return first_error;
  // Copy locations past the end of the newest filesystem are not its copies,
  // whatever they hold (mkfs zeroes them; a smaller filesystem made on a
  // larger device or image has them beyond its end).
  if (copies)
    for (auto& c : *copies)
      if (c.offset + kSuperblockSize > best->total_bytes) c = SuperblockCopyInfo{c.offset, false, Status::Ok(), 0};
  return *best;
}

Result<std::unique_ptr<Engine>> Engine::open(std::shared_ptr<BlockDevice> dev, const EngineOptions& opts) {
  ASSIGN_OR_RETURN(Superblock sb, read_superblock(*dev));
  if (!opts.read_only && (sb.compat_ro_flags & ~kSupportedCompatRo))
    return Status::Error(EROFS, "filesystem has read-only-compatible features this version lacks; open read-only");
  // Generations only grow: at 2^63 a writable mount is refused long before
  // one could wrap to 0 (which no later mount would accept). A read-only
  // mount writes no generation and is still allowed.
  if (!opts.read_only && sb.generation >= kMaxWritableGeneration)
    return Status::Error(EROFS, "the filesystem's generation (" + std::to_string(sb.generation) +
                                    ") has reached 2^63: it can only be mounted read-only; copy the data to a new filesystem");
  if (sb.total_bytes > dev->size())
    return Status::Corruption("device (" + std::to_string(dev->size()) + " bytes) is smaller than the filesystem (" +
                              std::to_string(sb.total_bytes) + " bytes)");
  std::unique_ptr<Engine> e(new Engine(std::move(dev), std::move(sb), opts));
  if (e->sb_.has_chunk_tree()) RETURN_IF_ERROR(e->load_chunk_tree().with_context("reading the chunk tree"));
  else RETURN_IF_ERROR(e->sb_.check_chunk_map(e->sb_.chunks).with_context("checking the chunk array"));
  RETURN_IF_ERROR(e->load_roots().with_context("loading tree roots"));
  RETURN_IF_ERROR(e->rebuild_free_space().with_context("reading the extent tree"));
  return e;
}

Status Engine::load_chunk_tree() {
  roots_[kChunkTreeId] = RootRef{kChunkTreeId, sb_.chunk_root, sb_.chunk_root_level, sb_.chunk_root_generation};
  // The map holds the system chunks (the superblock's array) so far, which
  // is what reading this tree needs; every item is checked by the tree
  // checker (a valid CHUNK_ITEM at its own logical address), the whole
  // map (in key order, so by logical address) by check_chunk_map.
  BTree ct = tree(kChunkTreeId);
  Cursor c = ct.cursor();
  RETURN_IF_ERROR(c.seek(Key::Min()));
  std::vector<Chunk> all;
  for (; c.valid(); c.advance()) all.push_back(Chunk::decode(c.data().data()));
  RETURN_IF_ERROR(c.status());
  RETURN_IF_ERROR(sb_.check_chunk_map(all));
  for (const Chunk& ch : all) chunks_.load(ch);
  return Status::Ok();
}

Status Engine::load_roots() {
  // The two roots the superblock names (this one, and the chunk tree's).
  roots_[kRootTreeId] = RootRef{kRootTreeId, sb_.root, sb_.root_level, sb_.root_generation};
  BTree rt = tree(kRootTreeId);
  Cursor c = rt.cursor();
  RETURN_IF_ERROR(c.seek(Key::Min()));
  for (; c.valid(); c.advance()) {
    const Key& k = c.key();
    if (k.type == kRootItem) {
      ASSIGN_OR_RETURN(RootItem ri, RootItem::decode(c.data()));
      if (k.objectid == kChunkTreeId) return Status::Corruption("the chunk tree has a ROOT_ITEM (the superblock points at it)");
      RootRef r;
      r.id = k.objectid;
      r.bytenr = ri.bytenr;
      r.level = ri.level;
      r.generation = ri.generation;
      r.last_objectid = ri.last_objectid;
      r.flags = ri.flags;
      r.last_snapshot = ri.last_snapshot;
      if (ri.generation > sb_.generation) return Status::Corruption("root item of tree " + std::to_string(k.objectid) + " is newer than the superblock");
      roots_[k.objectid] = r;
    } else if (k.type == kDevStats) {
      ASSIGN_OR_RETURN(dev_stats_, DevStats::decode(c.data()));
    }
  }
  RETURN_IF_ERROR(c.status());
  for (uint64_t id : {kExtentTreeId, kFsTreeId, kCsumTreeId})
    if (!roots_.count(id)) return Status::Corruption("tree " + std::to_string(id) + " is missing from the root tree");
  return Status::Ok();
}

bool Engine::load_free_space_cache() {
  if (!opts_.space_cache) {
    free_space_source_ = "extent tree (nospace_cache)";
    return false;
  }
  if (!sb_.space_cache_valid()) {
    free_space_source_ = sb_.space_cache ? "extent tree (the cache is older than the last commit)"
                                         : "extent tree (no cache saved: a new filesystem, or the last mount did not end cleanly)";
    return false;
  }
  auto cache = load_space_cache(*dev_, chunks_, sb_);
  if (!cache.ok()) {
    free_space_source_ = "extent tree (cache not used: " + cache.status().message() + ")";
    std::fprintf(stderr, "cairn: free-space cache not used: %s; reading the extent tree\n", cache.status().message().c_str());
    return false;
  }
  alloc_.init_from_cache(cache->free);
  extent_items_ = cache->extent_items;
  space_cache_blocks_ = std::move(cache->blocks);
  free_space_source_ = "cache";
  return true;
}

std::shared_ptr<const FreeSpaceSnapshot> Engine::free_space_snapshot() const {
  auto s = std::make_shared<FreeSpaceSnapshot>();
  s->generation = sb_.generation;
  s->free = alloc_.free_after_commit();
  s->extent_items = extent_items_;
  s->space_cache_blocks = space_cache_blocks_;
  s->source = free_space_source_;
  return s;
}

bool Engine::take_free_space_snapshot() {
  const FreeSpaceSnapshot* s = opts_.free_space.get();
  if (!s || s->generation != sb_.generation) return false;
  alloc_.init_from_cache(s->free);
  extent_items_ = s->extent_items;
  space_cache_blocks_ = s->space_cache_blocks;
  free_space_source_ = s->source;
  return true;
}

Status Engine::rebuild_free_space() {
  if (take_free_space_snapshot() || load_free_space_cache()) {
    // The cache covers data and metadata chunks; system chunks hold the
    // chunk tree's nodes and nothing else.
    ASSIGN_OR_RETURN(auto blocks, chunk_tree_blocks());
    for (auto [b, level] : blocks) {
      const Chunk* ch = chunks_.find(b);
      if (!ch || ch->type != kChunkSystem || !alloc_.mark_used(b, sb_.node_size))
        return Status::Corruption("chunk tree node at " + std::to_string(b) + " lies outside the free space of its chunks");
    }
    return Status::Ok();
  }
  alloc_.init_from_chunks();
  // Every allocation must be free space of a chunk of its kind when it is
  // marked: an extent outside every chunk, in one of the wrong type, or on
  // top of another would let the allocator hand out space in use.
  auto refuse = [](const char* what, uint64_t at) {
    return Status::Corruption(std::string(what) + " at " + std::to_string(at) +
                              " lies outside the free space of its chunks (overlapping another, or outside a chunk of its kind)");
  };
  BTree et = tree(kExtentTreeId);
  Cursor c = et.cursor();
  RETURN_IF_ERROR(c.seek(Key::Min()));
  for (; c.valid(); c.advance()) {
    const Key& k = c.key();
    if (k.type != kExtentItem && k.type != kMetadataItem) continue;
    extent_items_++;
    const uint64_t len = k.type == kExtentItem ? k.offset : sb_.node_size;
    const Chunk* ch = chunks_.find(k.objectid);
    if (!ch || ch->type != (k.type == kExtentItem ? kChunkData : kChunkMetadata) || !alloc_.mark_used(k.objectid, len))
      return refuse(k.type == kExtentItem ? "data extent" : "tree block", k.objectid);
  }
  RETURN_IF_ERROR(c.status());
  // System chunks hold the chunk tree's nodes and nothing else.
  ASSIGN_OR_RETURN(auto blocks, chunk_tree_blocks());
  for (auto [b, level] : blocks) {
    const Chunk* ch = chunks_.find(b);
    if (!ch || ch->type != kChunkSystem || !alloc_.mark_used(b, sb_.node_size)) return refuse("chunk tree node", b);
  }
  return Status::Ok();
}

Result<std::vector<std::pair<uint64_t, uint8_t>>> Engine::chunk_tree_blocks() {
  std::vector<std::pair<uint64_t, uint8_t>> out;
  if (!roots_.count(kChunkTreeId)) return out;
  const RootRef& r = roots_.at(kChunkTreeId);
  std::vector<std::pair<uint64_t, uint8_t>> todo{{r.bytenr, r.level}};
  while (!todo.empty()) {
    auto [b, level] = todo.back();
    todo.pop_back();
    out.push_back({b, level});
    if (level == 0) continue;
    NodeExpectation ex;
    ex.bytenr = b;
    ex.level = level;
    ex.owner = kChunkTreeId;
    ASSIGN_OR_RETURN(NodePtr n, store_.read(ex));
    for (uint64_t child : n->ptrs) todo.push_back({child, uint8_t(level - 1)});
  }
  return out;
}

BTree Engine::tree(uint64_t id) { return BTree(this, &roots_.at(id)); }

std::vector<uint64_t> Engine::tree_ids() const {
  std::vector<uint64_t> ids;
  for (auto& [id, r] : roots_) ids.push_back(id);
  return ids;
}

Status Engine::init_root_directory(uint64_t id, uint32_t mode, uint32_t uid, uint32_t gid) {
  // The root directory: inode 256, its own parent ("..").
  InodeItem root;
  Timespec t = now_ts();
  root.generation = transid_;
  root.transid = transid_;
  root.mode = mode;
  root.uid = uid;
  root.gid = gid;
  root.nlink = 2;  // "." and its entry in itself as parent, as on ext4
  root.atime = root.mtime = root.ctime = root.otime = t;
  root.sequence = 2;  // directory indexes 0 and 1 are "." and ".."
  BTree fs = tree(id);
  RETURN_IF_ERROR(fs.insert(Key{kFirstInode, kInodeItem, 0}, root.encode()));
  RETURN_IF_ERROR(fs.insert(Key{kFirstInode, kInodeRef, kFirstInode}, encode_inode_refs({{0, ".."}})));
  roots_.at(id).last_objectid = kFirstInode;
  roots_.at(id).dirty = true;
  return Status::Ok();
}

Status Engine::create_tree(uint64_t id, uint64_t flags) {
  if (roots_.count(id)) return Status::Error(EEXIST, "tree " + std::to_string(id) + " exists");
  RootRef r = create_empty_tree(id);
  if (r.bytenr == 0) return Status::NoSpace("no space for a new tree");
  r.flags = flags;
  roots_[id] = r;
  return Status::Ok();
}

Result<uint64_t> Engine::alloc_tree_block(uint64_t owner, uint8_t level) {
  if (opts_.read_only) return Status::Error(EROFS, "read-only filesystem");
  // The chunk tree's nodes: in system chunks, not in the extent tree, not in bytes_used.
  if (owner == kChunkTreeId) return alloc_.alloc(kChunkSystem, sb_.node_size, sb_.node_size);
  ASSIGN_OR_RETURN(uint64_t b, alloc_.alloc(kChunkMetadata, sb_.node_size, sb_.node_size));
  delayed_refs_[b] = DelayedRef{+1, +1, owner, level, true};
  bytes_used_ += sb_.node_size;
  return b;
}

void Engine::free_tree_block(const Node& n) {
  if (n.owner == kChunkTreeId) {
    // Written by no commit yet: free now; else the last durable state
    // still reads it.
    if (n.generation == transid_) alloc_.free_now(n.bytenr, sb_.node_size);
    else alloc_.pin(n.bytenr, sb_.node_size);
    return;
  }
  bytes_used_ -= sb_.node_size;
  auto it = delayed_refs_.find(n.bytenr);
  if (it != delayed_refs_.end() && it->second.fresh && it->second.delta == 1 && n.generation == transid_) {
    // Allocated in this transaction and never recorded or written: no
    // durable state can reference it, so it is free at once.
    delayed_refs_.erase(it);
    alloc_.free_now(n.bytenr, sb_.node_size);
    return;
  }
  DelayedRef& r = delayed_refs_.try_emplace(n.bytenr, DelayedRef{0, 0, n.owner, n.level, false}).first->second;
  r.delta--;
  r.space--;
  alloc_.pin(n.bytenr, sb_.node_size);
}

Result<uint64_t> Engine::tree_block_refs(const Node& n) {
  int64_t refs = 0;
  auto it = delayed_refs_.find(n.bytenr);
  if (it == delayed_refs_.end() || !it->second.fresh) {
    ASSIGN_OR_RETURN(Bytes raw, tree(kExtentTreeId).lookup(Key{n.bytenr, kMetadataItem, n.level}));
    ASSIGN_OR_RETURN(ExtentItem ei, ExtentItem::decode(raw));
    refs = int64_t(ei.refs);
  }
  if (it != delayed_refs_.end()) refs += it->second.delta;
  if (refs < 1) return Status::Corruption("tree block " + std::to_string(n.bytenr) + " in use with no reference");
  return uint64_t(refs);
}

void Engine::add_tree_block_ref(uint64_t bytenr, uint8_t level) {
  delayed_refs_.try_emplace(bytenr, DelayedRef{0, 0, 0, level, false}).first->second.delta++;
}

void Engine::drop_tree_block_ref(const Node& n) {
  delayed_refs_.try_emplace(n.bytenr, DelayedRef{0, 0, n.owner, n.level, false}).first->second.delta--;
}

// The data extents a leaf's file extent items reference (fs trees only;
// key/value trees hold opaque items): each with its back reference as the
// leaf's owner records it.
template <typename Fn>
static Status for_each_data_ref(const Node& leaf, Fn&& fn) {
  for (size_t i = 0; i < leaf.keys.size(); i++) {
    const Key& k = leaf.keys[i];
    if (k.type != kExtentData) continue;
    ASSIGN_OR_RETURN(FileExtent fe, FileExtent::decode(leaf.items[i]));
    if (fe.type == kFileExtentInline || fe.disk_bytenr == 0) continue;
    RETURN_IF_ERROR(fn(fe.disk_bytenr, fe.disk_num_bytes, k.objectid, k.offset - fe.offset));
  }
  return Status::Ok();
}

bool Engine::holds_file_data(uint64_t tree) const {
  auto it = roots_.find(tree);
  return is_subvolume_id(tree) && (it == roots_.end() || !(it->second.flags & kRootFlagKeyValue));
}

Status Engine::leaf_shared(uint64_t owner, const Node& leaf) {
  if (!holds_file_data(owner)) return Status::Ok();
  return for_each_data_ref(leaf, [&](uint64_t b, uint64_t len, uint64_t ino, uint64_t base) {
    return add_data_ref(b, len, owner, ino, base);
  });
}

Status Engine::leaf_moved(uint64_t owner, const Node& leaf) {
  if (!holds_file_data(owner)) return Status::Ok();
  // The new reference first: the count never passes through zero.
  return for_each_data_ref(leaf, [&](uint64_t b, uint64_t len, uint64_t ino, uint64_t base) {
    RETURN_IF_ERROR(add_data_ref(b, len, owner, ino, base));
    return drop_data_ref(b, len, leaf.owner, ino, base);
  });
}

Status Engine::leaf_dropped(uint64_t tree, const Node& leaf) {
  if (!holds_file_data(tree)) return Status::Ok();
  return for_each_data_ref(leaf, [&](uint64_t b, uint64_t len, uint64_t ino, uint64_t base) {
    return drop_data_ref(b, len, leaf.owner, ino, base);
  });
}

// ---- Snapshots ----

Status Engine::snapshot_tree(uint64_t src, uint64_t dst) {
  if (opts_.read_only) return Status::Error(EROFS, "read-only filesystem");
  if (!roots_.count(src) || (roots_.at(src).flags & kRootFlagDead)) return Status::NotFound("no tree " + std::to_string(src));
  if (roots_.count(dst)) return Status::Error(EEXIST, "tree " + std::to_string(dst) + " exists");
  if (!is_subvolume_id(src) || !is_subvolume_id(dst) || dst == kFsTreeId)
    return Status::Invalid("only fs trees have snapshots");
  // The source must have no node of the running transaction: a snapshot
  // shares committed nodes only (so that a dirty node is never shared,
  // and "older than the last snapshot" finds every shared one).
  RETURN_IF_ERROR(commit());
  RootRef& s = roots_.at(src);
  RootRef d = s;
  d.id = dst;
  d.flags = s.flags & ~(kRootFlagDead | kRootFlagReadOnly);  // a snapshot is writable unless asked
  d.last_snapshot = transid_;
  d.dirty = true;
  s.last_snapshot = transid_;
  s.dirty = true;
  // O(1): the new tree's root item points at the source's root node.
  add_tree_block_ref(s.bytenr, s.level);
  roots_[dst] = d;
  sb_.incompat_flags |= kIncompatSharedTrees;
  return Status::Ok();
}

Status Engine::delete_tree(uint64_t id) {
  if (opts_.read_only) return Status::Error(EROFS, "read-only filesystem");
  if (id < kFirstSubvolumeId || !roots_.count(id)) return Status::Invalid("tree " + std::to_string(id) + " cannot be deleted");
  RootRef& r = roots_.at(id);
  r.flags |= kRootFlagDead;
  r.dirty = true;
  return Status::Ok();
}

std::vector<uint64_t> Engine::dead_trees() const {
  std::vector<uint64_t> out;
  for (auto& [id, r] : roots_)
    if (r.flags & kRootFlagDead) out.push_back(id);
  return out;
}

Result<bool> Engine::drop_tree_steps(uint64_t id, size_t steps) {
  auto it = roots_.find(id);
  if (it == roots_.end() || !(it->second.flags & kRootFlagDead)) return Status::Invalid("tree " + std::to_string(id) + " is not dead");
  BTree t = tree(id);
  for (size_t i = 0; i < steps; i++) {
    ASSIGN_OR_RETURN(bool gone, t.drop_step());
    if (gone) {
      roots_.erase(id);
      removed_roots_.insert(id);
      return true;
    }
  }
  return false;
}

Status Engine::run_delayed_refs() {
  for (int round = 0; !delayed_refs_.empty(); round++) {
    if (round > 1000) return Status::Corruption("delayed references do not converge");
    auto batch = std::move(delayed_refs_);
    delayed_refs_.clear();
    BTree et = tree(kExtentTreeId);
    for (auto& [b, r] : batch) {
      const Key k{b, kMetadataItem, r.level};
      if (r.fresh) {
        if (r.delta < 1) return Status::Corruption("new tree block " + std::to_string(b) + " with no reference");
        ExtentItem ei;
        ei.refs = uint64_t(r.delta);
        ei.generation = transid_;
        ei.flags = kExtentFlagTreeBlock;
        ei.backrefs.push_back(ExtentBackref{kTreeBlockRef, r.owner, 0, 0, 1});
        RETURN_IF_ERROR(et.insert(k, ei.encode()).with_context("recording tree block"));
        extent_items_++;
        continue;
      }
      if (r.delta == 0) continue;
      ASSIGN_OR_RETURN(Bytes raw, et.lookup(k));
      ASSIGN_OR_RETURN(ExtentItem ei, ExtentItem::decode(raw));
      const int64_t refs = int64_t(ei.refs) + r.delta;
      if (refs < 0) return Status::Corruption("tree block " + std::to_string(b) + " dropped more often than referenced");
      if (refs == 0) {
        RETURN_IF_ERROR(et.remove(k).with_context("dropping tree block " + std::to_string(b)));
        if (extent_items_) extent_items_--;
      } else {
        ei.refs = uint64_t(refs);
        RETURN_IF_ERROR(et.update(k, ei.encode()).with_context("counting tree block " + std::to_string(b)));
      }
    }
  }
  return Status::Ok();
}

Status Engine::sync_chunk_tree() {
  if (!roots_.count(kChunkTreeId)) {
    // An image from before the chunk tree: make one holding every chunk
    // (the first node allocation creates the first system chunk).
    RootRef r = create_empty_tree(kChunkTreeId);
    if (r.bytenr == 0) return Status::NoSpace("no space for the chunk tree");
    roots_[kChunkTreeId] = r;
    for (const Chunk& c : chunks_.chunks()) chunks_.mark_changed(c.logical);
  }
  BTree ct = tree(kChunkTreeId);
  // Inserting may allocate a system chunk, which is itself a change: loop.
  while (!chunks_.changed().empty()) {
    const uint64_t l = *chunks_.changed().begin();
    const Key k{kChunkItemObjectId, kChunkItem, l};
    if (const Chunk* c = chunks_.find(l); c && c->logical == l) {
      Bytes b(Chunk::kDiskSize);
      c->encode(b.data());
      RETURN_IF_ERROR(ct.upsert(k, b).with_context("recording chunk " + std::to_string(l)));
    } else {
      Status st = ct.remove(k);
      if (!st.ok() && st.code() != ENOENT) return st.with_context("dropping chunk " + std::to_string(l));
    }
    chunks_.clear_changed(l);
  }
  return Status::Ok();
}

Status Engine::update_root_items() {
  for (uint64_t id : std::exchange(removed_roots_, {})) {
    Status st = tree(kRootTreeId).remove(Key{id, kRootItem, 0});
    if (!st.ok() && st.code() != ENOENT) return st;
  }
  for (auto& [id, r] : roots_) {
    if (id == kRootTreeId || id == kChunkTreeId || !r.dirty) continue;
    r.dirty = false;
    RootItem ri;
    ri.bytenr = r.bytenr;
    ri.generation = r.generation;
    ri.level = r.level;
    ri.last_objectid = r.last_objectid;
    ri.flags = r.flags;
    ri.last_snapshot = r.last_snapshot;
    RETURN_IF_ERROR(tree(kRootTreeId).upsert(Key{id, kRootItem, 0}, ri.encode()));
  }
  if (stats_dirty_) {
    stats_dirty_ = false;
    RETURN_IF_ERROR(tree(kRootTreeId).upsert(Key{kDevStatsObjectId, kDevStats, 0}, dev_stats_.encode()));
  }
  return Status::Ok();
}

bool Engine::dirty() const {
  if (store_.dirty_count() || !delayed_refs_.empty() || stats_dirty_ || data_changed_ || alloc_.chunks_changed())
    return true;
  for (auto& [id, r] : roots_)
    if (r.dirty) return true;
  return false;
}

Status Engine::write_superblocks() {
  std::vector<uint8_t> buf(kSuperblockSize);
  int written = 0;
  Status last;
  for (uint64_t off : kSuperblockOffsets) {
    if (off + kSuperblockSize > sb_.total_bytes) continue;
    Superblock copy = sb_;
    copy.bytenr = off;
    copy.encode(buf.data());
    Status st = dev_->write(off, buf.data(), buf.size());
    if (st.ok()) written++;
    else last = st;
  }
  // One good copy is enough to mount; fsck repairs the others.
  if (written == 0) return last;
  return Status::Ok();
}

void Engine::abort(const Status& why) {
  if (!failed_) {
    abort_reason_ = why;
    // Once, loudly: everything after this fails with EROFS or EIO.
    std::fprintf(stderr, "cairn: %s: the filesystem is now read-only after an error: %s\n", dev_->name().c_str(),
                 why.message().c_str());
  }
  failed_ = true;
}

Status Engine::reserve_metadata(uint64_t nodes, bool deleting) const {
  if (failed_) return Status::Error(EROFS, "filesystem is read-only after an error: " + abort_reason_.message());
  if (opts_.read_only) return Status::Error(EROFS, "read-only filesystem");
  // Keep a reserve on top for commits and deletions: an eighth of the
  // metadata space, between 32 and 256 nodes.
  const uint64_t meta_total = chunks_.bytes_of(kChunkMetadata);
  uint64_t reserve = std::clamp<uint64_t>(meta_total / sb_.node_size / 8, 32, 256);
  if (deleting) reserve /= 2;
  const uint64_t need = (nodes + reserve + commit_cost()) * uint64_t(sb_.node_size);
  if (alloc_.metadata_available() < need) return Status::NoSpace("no space left for metadata");
  return Status::Ok();
}

uint64_t Engine::commit_cost() const {
  // Applying the delayed references rewrites extent-tree leaves: at worst
  // one per reference (nodes freed all over the tree), never more than the
  // tree has leaves, plus the leaves the new items fill and a path.
  const uint64_t pending = delayed_refs_.size();
  if (pending == 0) return 0;
  const uint64_t per_leaf = std::max<uint64_t>(1, (sb_.node_size - kNodeHeaderSize) / kExtentItemFootprint);
  const uint64_t leaves = extent_items_ / per_leaf + 1;
  return std::min(pending, leaves) + pending / per_leaf + kMaxLevel;
}

Status Engine::recount_space() {
  uint64_t used = 0;
  BTree t = tree(kExtentTreeId);
  Cursor c = t.cursor();
  RETURN_IF_ERROR(c.seek(Key::Min()));
  for (; c.valid(); c.advance()) {
    if (c.key().type == kExtentItem) used += c.key().offset;
    else if (c.key().type == kMetadataItem) used += sb_.node_size;
  }
  RETURN_IF_ERROR(c.status());
  // Nodes allocated or freed in the running transaction are not in the tree yet.
  for (auto& [b, r] : delayed_refs_) used += int64_t(r.space) * int64_t(sb_.node_size);
  if (used != bytes_used_) {
    bytes_used_ = used;
    stats_dirty_ = true;
  }
  return Status::Ok();
}

Status Engine::commit_saving_free_space() {
  if (!opts_.space_cache) return commit();
  save_space_cache_ = true;
  Status st = commit(!sb_.space_cache_valid());
  save_space_cache_ = false;
  return st;
}

Status Engine::write_free_space_cache() {
  std::vector<uint64_t> blocks;
  auto give_back = [&] {
    for (uint64_t b : blocks) alloc_.free_now(b, sb_.node_size);
  };
  // Allocating a block can split a free range, so recount until the blocks suffice.
  std::vector<std::pair<uint64_t, uint64_t>> free;
  for (;;) {
    free = alloc_.free_after_commit();
    if (blocks.size() >= space_cache_blocks_needed(free.size(), sb_.node_size)) break;
    auto b = alloc_.alloc_in_chunks(kChunkMetadata, sb_.node_size, sb_.node_size);
    if (!b.ok()) {
      give_back();
      return b.status();
    }
    blocks.push_back(*b);
  }
  AlignedBuffer buf(sb_.node_size);
  sb_.space_cache_generation = transid_;  // what the blocks are encoded for
  for (const SpaceCacheBlock& b : layout_space_cache(free, blocks, transid_, extent_items_, sb_.node_size)) {
    b.encode(sb_, buf.data());
    Status st = [&]() -> Status {
      ASSIGN_OR_RETURN(auto copies, chunks_.map(b.bytenr, sb_.node_size));
      for (uint64_t phys : copies) RETURN_IF_ERROR(dev_->write(phys, buf.data(), sb_.node_size));
      return Status::Ok();
    }();
    if (!st.ok()) {
      give_back();
      return st;
    }
  }
  sb_.space_cache = blocks.front();
  space_cache_blocks_ = std::move(blocks);
  return Status::Ok();
}

Status Engine::commit(bool even_if_clean) {
  if (opts_.read_only || (!dirty() && !even_if_clean)) return Status::Ok();
  if (failed_) return Status::IoError("filesystem is shut down after an earlier error: " + abort_reason_.message());
  // The cache the durable superblock points at is dropped by this commit:
  // its blocks are free once the commit is.
  for (uint64_t b : space_cache_blocks_) alloc_.pin(b, sb_.node_size);
  space_cache_blocks_.clear();
  sb_.space_cache = 0;
  sb_.space_cache_generation = 0;
  // Chunks emptied by the last transaction go back to unallocated space.
  alloc_.reclaim_empty();
  Status st = [&]() -> Status {
    // A chunk for the new generation's log now, while the loop below still
    // records new chunks.
    RETURN_IF_ERROR(make_room_for_log());
    for (int i = 0;; i++) {
      if (i > 100) return Status::Corruption("commit does not converge");
      RETURN_IF_ERROR(update_root_items());
      RETURN_IF_ERROR(run_delayed_refs());
      RETURN_IF_ERROR(sync_chunk_tree());
      bool any = stats_dirty_;
      for (auto& [id, r] : roots_)
        if (id != kRootTreeId && id != kChunkTreeId && r.dirty) any = true;
      if (!any && delayed_refs_.empty() && chunks_.changed().empty()) break;
    }
    // The new generation's fsync log, in chunks that exist now (a log in a
    // chunk the next commit would record could not be read after a crash);
    // before the free-space cache, which must see the old log's regions freed.
    start_log();
    // The free-space cache, last of all allocations (no chunk may appear
    // after the chunk tree is settled). Without room it is simply not saved.
    if (save_space_cache_) {
      if (Status cs = write_free_space_cache(); !cs.ok()) {
        sb_.space_cache = sb_.space_cache_generation = 0;
        std::fprintf(stderr, "cairn: free-space cache not saved (%s); the next mount reads the extent tree\n",
                     cs.message().c_str());
      }
    }
    // Order is the whole protocol: nodes, flush, superblocks, flush.
    RETURN_IF_ERROR(store_.write_dirty());
    RETURN_IF_ERROR(dev_->flush());
    const RootRef& rr = roots_.at(kRootTreeId);
    sb_.generation = transid_;
    sb_.root = rr.bytenr;
    sb_.root_level = rr.level;
    sb_.root_generation = rr.generation;
    sb_.bytes_used = bytes_used_;
    const RootRef& cr = roots_.at(kChunkTreeId);
    sb_.chunk_root = cr.bytenr;
    sb_.chunk_root_level = cr.level;
    sb_.chunk_root_generation = cr.generation;
    sb_.incompat_flags |= kIncompatChunkTree;
    sb_.chunks = chunks_.chunks_of(kChunkSystem);
    if (sb_.chunks.size() > Superblock::kMaxChunks) return Status::NoSpace("more system chunks than the superblock holds");
    sb_.next_chunk_logical = chunks_.next_logical();
    RETURN_IF_ERROR(write_superblocks());
    RETURN_IF_ERROR(dev_->flush());
    return Status::Ok();
  }();
  if (!st.ok()) {
    // The in-memory state no longer matches anything durable; refuse
    // further commits so nothing half-done can ever be written.
    abort(st);
    return st.with_context("commit failed");
  }
  alloc_.unpin_all();
  // And the chunks that emptied with it, before new allocations spread
  // into them (their CHUNK_ITEMs go at the next commit).
  alloc_.reclaim_empty();
  roots_.at(kRootTreeId).dirty = false;
  roots_.at(kChunkTreeId).dirty = false;
  data_changed_ = false;
  transid_++;
  store_.set_max_generation(sb_.generation);
  return Status::Ok();
}

void Engine::start_log() {
  // The superblock this commit replaces points at the old regions: they
  // are free once it is durable (pinned), unless a write is still filling
  // one (log_write_done releases those).
  for (auto [start, len] : log_regions_) {
    if (log_write_inflight_) log_retired_.push_back({start, len});
    else alloc_.pin(start, len);
  }
  log_regions_.clear();
  log_head_ = log_region_end_ = log_bytes_ = 0;
  log_seq_ = 1;
  sb_.log_start = sb_.log_generation = 0;
  // No log on the last commit of a mount (nothing can follow it), and none
  // when metadata is tight: a region must never be what a commit lacks.
  if (!opts_.fsync_log || save_space_cache_) return;
  auto b = alloc_log_region();
  if (!b) return;
  log_head_ = *b;
  log_region_end_ = *b + kLogRegionBytes;
  sb_.log_start = *b;
  sb_.log_generation = transid_;  // the generation this commit writes
}

std::optional<uint64_t> Engine::alloc_log_region() {
  if (alloc_.free_in_chunks(kChunkMetadata) < 4 * kLogRegionBytes ||
      !reserve_metadata(2 * kLogRegionBytes / sb_.node_size).ok())
    return std::nullopt;
  auto b = alloc_.alloc_in_chunks(kChunkMetadata, kLogRegionBytes, sb_.node_size);
  if (!b.ok()) return std::nullopt;
  log_regions_.push_back({*b, kLogRegionBytes});
  return *b;
}

Status Engine::make_room_for_log() {
  if (!opts_.fsync_log || save_space_cache_) return Status::Ok();
  // Room for what the last generation logged, twice over (at least 4 MiB,
  // at most the cap), on top of what the commit and the reserve need. The
  // space is transient: regions are freed by the commit after, and a chunk
  // left empty is given back like any other.
  const uint64_t want = std::clamp<uint64_t>(2 * log_bytes_, 4ULL << 20, kMaxLogBytes) + 4 * kLogRegionBytes;
  if (alloc_.free_in_chunks(kChunkMetadata) >= want) return Status::Ok();
  // Only while the device is far from full: near full, the space is data's,
  // and an fsync that finds no log commits (slower, never wrong).
  const uint64_t room = chunks_.device_size() / 8;
  if (chunks_.unallocated(kProfileSingle) < room + 2 * chunks_.preferred_size(kChunkMetadata)) return Status::Ok();
  return alloc_.add_chunk(kChunkMetadata);
}

Result<LogPlacement> Engine::place_log_write(uint64_t len) {
  if (failed_) return Status::IoError("filesystem is shut down after an earlier error: " + abort_reason_.message());
  if (log_head_ == 0) return Status::NoSpace("no fsync log in this generation");
  if (len == 0 || len % kSectorSize || len > LogWrite::kMaxBytes || log_write_inflight_)
    return Status::Invalid("bad fsync log write");
  if (log_bytes_ + len > kMaxLogBytes) return Status::NoSpace("fsync log full until the next commit");
  LogPlacement p;
  p.generation = sb_.generation;
  p.seq = log_seq_;
  p.logical = log_head_;
  p.next = log_head_ + len;
  // The head is always at least kMaxBytes before its region's end, so the
  // write fits; the next head must be too.
  if (log_region_end_ - p.next < LogWrite::kMaxBytes) {
    p.next = 0;
    if (auto b = alloc_log_region()) {
      p.next = *b;
      log_region_end_ = *b + kLogRegionBytes;
    }
  }
  ASSIGN_OR_RETURN(p.phys, chunks_.map(p.logical, len));
  log_head_ = p.next;
  log_seq_++;
  log_bytes_ += len;
  log_write_inflight_ = true;
  return p;
}

void Engine::log_write_done(bool ok) {
  log_write_inflight_ = false;
  if (!ok) log_head_ = 0;  // the chain ends before the failed write
  for (auto [start, len] : log_retired_) alloc_.pin(start, len);
  log_retired_.clear();
}

bool Engine::hold_log_range(uint64_t logical, uint64_t len) {
  auto ch = chunks_.find(logical);
  if (!ch || ch->type != kChunkMetadata || logical + len > ch->logical + ch->length) return false;
  if (!alloc_.mark_used(logical, len)) return false;
  log_regions_.push_back({logical, len});
  return true;
}

RootRef Engine::create_empty_tree(uint64_t id) {
  RootRef r;
  r.id = id;
  auto b = alloc_tree_block(id, 0);
  if (!b.ok()) return r;
  store_.create(b.value(), id, 0, transid_);
  r.bytenr = b.value();
  r.level = 0;
  r.generation = transid_;
  r.dirty = true;
  return r;
}

Result<std::unique_ptr<Engine>> Engine::format(std::shared_ptr<BlockDevice> dev, const MkfsParams& p) {
  uint64_t size = dev->size() / kSectorSize * kSectorSize;
  if (p.size) {
    if (p.size > dev->size()) return Status::Invalid("requested size is larger than the device");
    size = p.size / kSectorSize * kSectorSize;
  }
  if (size < kMinDeviceSize)
    return Status::Invalid("device is too small: " + std::to_string(size >> 20) + " MiB, at least " +
                           std::to_string(kMinDeviceSize >> 20) + " MiB needed");
  if (p.node_size < kMinNodeSize || p.node_size > kMaxNodeSize || (p.node_size & (p.node_size - 1)))
    return Status::Invalid("node size must be a power of two from 4096 to 65536");
  Superblock sb;
  sb.fsid = p.uuid ? *p.uuid : uuid_generate_random();
  sb.label = p.label;
  sb.csum_type = p.csum;
  sb.node_size = p.node_size;
  sb.total_bytes = size;
  sb.metadata_profile = uint8_t(p.metadata_profile);
  sb.data_profile = uint8_t(p.data_profile);
  sb.generation = 0;

  // Clear the first reserve (boot area, old signatures) and any old superblock copies.
  std::vector<uint8_t> zeros(kSuperblockReserve, 0);
  RETURN_IF_ERROR(dev->write(0, zeros.data(), zeros.size()));
  // Every copy location on the device, even past a smaller filesystem: an
  // old copy there must never be taken for the newest one.
  for (uint64_t off : kSuperblockOffsets)
    if (off + kSuperblockSize <= dev->size()) RETURN_IF_ERROR(dev->write(off, zeros.data(), kSuperblockSize));

  EngineOptions eo;
  eo.max_chunk_size = p.max_chunk_size;
  std::unique_ptr<Engine> e(new Engine(dev, sb, eo));
  RETURN_IF_ERROR(e->alloc_.add_chunk(kChunkSystem));
  RETURN_IF_ERROR(e->alloc_.add_chunk(kChunkMetadata));
  RETURN_IF_ERROR(e->alloc_.add_chunk(kChunkData));
  for (uint64_t id : {kChunkTreeId, kRootTreeId, kExtentTreeId, kFsTreeId, kCsumTreeId}) {
    e->roots_[id] = e->create_empty_tree(id);
    if (e->roots_[id].bytenr == 0) return Status::NoSpace("no space for the initial trees");
  }
  RETURN_IF_ERROR(e->init_root_directory(kFsTreeId, p.root_mode, p.root_uid, p.root_gid));
  e->stats_dirty_ = true;
  RETURN_IF_ERROR(e->commit());
  return e;
}

// ---- Data extents ----

Result<std::pair<uint64_t, uint64_t>> Engine::alloc_data(uint64_t min_len, uint64_t max_len) {
  if (opts_.read_only) return Status::Error(EROFS, "read-only filesystem");
  return alloc_.alloc_range(kChunkData, min_len, max_len, kSectorSize);
}

Status Engine::add_data_extent(uint64_t bytenr, uint64_t len, uint64_t root, uint64_t ino, uint64_t offset) {
  ExtentItem ei;
  ei.refs = 1;
  ei.generation = transid_;
  ei.flags = kExtentFlagData;
  ei.backrefs.push_back(ExtentBackref{kExtentDataRef, root, ino, offset, 1});
  RETURN_IF_ERROR(tree(kExtentTreeId).insert(Key{bytenr, kExtentItem, len}, ei.encode()));
  extent_items_++;
  bytes_used_ += len;
  data_changed_ = true;
  return Status::Ok();
}

Status Engine::add_data_ref(uint64_t bytenr, uint64_t len, uint64_t root, uint64_t ino, uint64_t offset) {
  data_changed_ = true;
  return tree(kExtentTreeId).modify(Key{bytenr, kExtentItem, len}, [&](Bytes& b) -> Status {
    ASSIGN_OR_RETURN(ExtentItem ei, ExtentItem::decode(b));
    ei.refs++;
    bool found = false;
    for (auto& r : ei.backrefs)
      if (r.type == kExtentDataRef && r.root == root && r.objectid == ino && r.offset == offset) {
        r.count++;
        found = true;
      }
    if (!found) ei.backrefs.push_back(ExtentBackref{kExtentDataRef, root, ino, offset, 1});
    b = ei.encode();
    return Status::Ok();
  });
}

Status Engine::drop_data_ref(uint64_t bytenr, uint64_t len, uint64_t root, uint64_t ino, uint64_t offset) {
  data_changed_ = true;
  const Key k{bytenr, kExtentItem, len};
  BTree et = tree(kExtentTreeId);
  ASSIGN_OR_RETURN(Bytes raw, et.lookup(k));
  ASSIGN_OR_RETURN(ExtentItem ei, ExtentItem::decode(raw));
  bool found = false;
  for (size_t i = 0; i < ei.backrefs.size(); i++) {
    auto& r = ei.backrefs[i];
    if (r.type == kExtentDataRef && r.root == root && r.objectid == ino && r.offset == offset) {
      if (--r.count == 0) ei.backrefs.erase(ei.backrefs.begin() + long(i));
      found = true;
      break;
    }
  }
  if (!found || ei.refs == 0)
    return Status::Corruption("extent " + std::to_string(bytenr) + " has no back reference from inode " + std::to_string(ino));
  if (--ei.refs > 0) return et.update(k, ei.encode());
  RETURN_IF_ERROR(et.remove(k));
  if (extent_items_) extent_items_--;
  RETURN_IF_ERROR(delete_csums(bytenr, len));
  alloc_.pin(bytenr, len);
  bytes_used_ -= len;
  return Status::Ok();
}

// ---- Checksums ----

Status Engine::insert_csums(uint64_t bytenr, const uint8_t* csums, uint64_t nsectors) {
  const size_t cs = csum_size();
  const uint64_t per_item = std::max<uint64_t>(1, tree(kCsumTreeId).half_leaf_item_size() / cs);
  BTree ct = tree(kCsumTreeId);
  data_changed_ = true;
  for (uint64_t done = 0; done < nsectors;) {
    uint64_t n = std::min(per_item, nsectors - done);
    Bytes b(csums + done * cs, csums + (done + n) * cs);
    RETURN_IF_ERROR(ct.insert(Key{kCsumObjectId, kExtentCsum, bytenr + done * kSectorSize}, b));
    done += n;
  }
  return Status::Ok();
}

Status Engine::lookup_csums(uint64_t bytenr, uint64_t nsectors, std::vector<uint8_t>* out, std::vector<bool>* present) {
  const size_t cs = csum_size();
  out->assign(nsectors * cs, 0);
  present->assign(nsectors, false);
  const uint64_t end = bytenr + nsectors * kSectorSize;
  BTree ct = tree(kCsumTreeId);
  Cursor c = ct.cursor();
  RETURN_IF_ERROR(c.seek_last_le(Key{kCsumObjectId, kExtentCsum, bytenr}));
  if (!c.valid()) RETURN_IF_ERROR(c.seek(Key{kCsumObjectId, kExtentCsum, bytenr}));
  for (; c.valid(); c.advance()) {
    const Key& k = c.key();
    if (k.objectid != kCsumObjectId || k.type != kExtentCsum) {
      if (k < Key{kCsumObjectId, kExtentCsum, bytenr}) continue;
      break;
    }
    if (k.offset >= end) break;
    const Bytes& d = c.data();
    if (d.size() % cs) return Status::Corruption("checksum item at " + std::to_string(k.offset) + " has a partial entry");
    const uint64_t item_end = k.offset + (d.size() / cs) * kSectorSize;
    for (uint64_t a = std::max(k.offset, bytenr); a < std::min(item_end, end); a += kSectorSize) {
      uint64_t i = (a - bytenr) / kSectorSize, j = (a - k.offset) / kSectorSize;
      std::memcpy(out->data() + i * cs, d.data() + j * cs, cs);
      (*present)[i] = true;
    }
  }
  return c.status();
}

Status Engine::delete_csums(uint64_t bytenr, uint64_t len) {
  const size_t cs = csum_size();
  const uint64_t end = bytenr + len;
  BTree ct = tree(kCsumTreeId);
  data_changed_ = true;
  for (;;) {
    // Find one item overlapping [bytenr, end), trim or remove it, repeat.
    Cursor c = ct.cursor();
    RETURN_IF_ERROR(c.seek_last_le(Key{kCsumObjectId, kExtentCsum, bytenr}));
    if (!c.valid() || c.key().objectid != kCsumObjectId || c.key().type != kExtentCsum)
      RETURN_IF_ERROR(c.seek(Key{kCsumObjectId, kExtentCsum, bytenr}));
    std::optional<Key> hit;
    Bytes data;
    for (; c.valid(); c.advance()) {
      const Key& k = c.key();
      if (k.objectid != kCsumObjectId || k.type != kExtentCsum || k.offset >= end) break;
      uint64_t item_end = k.offset + (c.data().size() / cs) * kSectorSize;
      if (item_end > bytenr) {
        hit = k;
        data = c.data();
        break;
      }
    }
    RETURN_IF_ERROR(c.status());
    if (!hit) return Status::Ok();
    const uint64_t s = hit->offset, e = s + (data.size() / cs) * kSectorSize;
    RETURN_IF_ERROR(ct.remove(*hit));
    if (s < bytenr) RETURN_IF_ERROR(ct.insert(*hit, Bytes(data.begin(), data.begin() + long((bytenr - s) / kSectorSize * cs))));
    if (e > end)
      RETURN_IF_ERROR(ct.insert(Key{kCsumObjectId, kExtentCsum, end},
                                Bytes(data.begin() + long((end - s) / kSectorSize * cs), data.end())));
  }
}

}  // namespace cairn
