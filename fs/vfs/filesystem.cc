// Filesystem: mount, the inode table, attributes, sync and unmount.
#include "vfs/filesystem.h"
#include "vfs/setid.h"

#include <dirent.h>
#include <sys/stat.h>

#include <cstdio>
#include <mutex>

namespace cairn {

Timespec current_time() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return Timespec{ts.tv_sec, uint32_t(ts.tv_nsec)};
}

uint8_t dtype_of(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return DT_REG;
    case S_IFDIR: return DT_DIR;
    case S_IFLNK: return DT_LNK;
    case S_IFCHR: return DT_CHR;
    case S_IFBLK: return DT_BLK;
    case S_IFIFO: return DT_FIFO;
    case S_IFSOCK: return DT_SOCK;
  }
  return DT_UNKNOWN;
}

Filesystem::Filesystem(std::unique_ptr<Engine> engine)
    : engine_(std::move(engine)),
      data_(std::make_unique<FileData>(*engine_)),
      log_(std::make_unique<FsyncLog>(*engine_)) {
  data_->set_commit_hook([this]() -> Status {
    RETURN_IF_ERROR(flush_dirty_inodes());
    return engine_->commit();
  });
}

Filesystem::~Filesystem() { stop_cleaner(); }

void Filesystem::stop_cleaner() {
  {
    std::lock_guard lk(cleaner_mu_);
    cleaner_stop_ = true;
  }
  cleaner_cv_.notify_all();
  if (cleaner_.joinable()) cleaner_.join();
}

Result<std::unique_ptr<Filesystem>> Filesystem::mount(std::shared_ptr<BlockDevice> dev, const MountOptions& opts) {
  EngineOptions eo;
  eo.read_only = opts.read_only;
  eo.node_cache_bytes = opts.node_cache_bytes;
  eo.max_chunk_size = opts.max_chunk_size;
  eo.space_cache = opts.space_cache;
  eo.fsync_log = opts.fsync_log;
  eo.free_space = opts.free_space;
  const std::string path = dev->name();
  if (dev->fd() < 0) return Status::Invalid("the data path needs an image file or block device");
  ASSIGN_OR_RETURN(auto engine, Engine::open(std::move(dev), eo));
  std::unique_ptr<Filesystem> fs(new Filesystem(std::move(engine)));
  ASSIGN_OR_RETURN(fs->io_, IoEngine::open(path, opts.read_only, opts.io));
  fs->data_->set_io(fs->io_.get());
  fs->writeback_ = std::make_unique<Writeback>(*fs->engine_, *fs->data_, *fs->io_, opts.writeback);
  // Ordered extents put their items in the tree from completion workers,
  // not through modify(): the same bound applies to what they dirty.
  fs->writeback_->set_after_record_hook([f = fs.get()] { f->bound_dirty_nodes_locked(); });
  fs->dropbehind_all_ = opts.dropbehind;
  fs->atime_ = opts.atime;
  fs->nodiratime_ = opts.nodiratime;
  fs->posix_acl_ = opts.posix_acl;
  fs->unused_bound_ = std::max<size_t>(opts.unused_inode_bound, 64);
  // Dirty nodes up to half the node cache's bytes (counted at node_size;
  // decoded they take a few times more). Measured renames over a directory
  // of a million names: a quarter took 14 s at 200 MiB peak, the whole
  // 11.4 s at 340 MiB, no bound 9.4 s at 590 MiB, 64 nodes 38 s.
  fs->dirty_node_bound_ = std::max<uint64_t>(opts.node_cache_bytes / 2, 64ULL * fs->engine_->node_size());
  fs->resident_bound_ = std::max<size_t>(opts.resident_inode_bound, 64);
  if (!opts.subvol.empty()) {
    ASSIGN_OR_RETURN(fs->root_vino_, resolve_subvolume(*fs->engine_, opts.subvol));
  }
  std::lock_guard lk(fs->engine_->mutex());
  auto root = fs->get_inode(fs->root_vino_);
  if (!root.ok()) return root.status().with_context("reading the root directory");
  if (!root.value()->is_dir()) return Status::Corruption("the root inode is not a directory");
  if (opts.read_only) {
    // Nothing is replayed: this mount shows the last commit.
    auto chain = read_fsync_log(fs->engine_->device(), fs->engine_->chunk_map(), fs->engine_->super());
    if (chain.ok() && !chain->writes.empty())
      std::fprintf(stderr, "cairn: the fsync log holds %zu writes a read-write mount replays; this read-only mount shows the last commit\n",
                   chain->writes.size());
  } else {
    // What was fsynced after the last commit, before anything else changes.
    RETURN_IF_ERROR(replay_fsync_log(*fs->engine_, *fs->data_, &fs->replayed_).with_context("replaying the fsync log"));
    if (fs->replayed_.records)
      std::fprintf(stderr, "cairn: replayed the fsync log: %llu writes, %llu files\n",
                   (unsigned long long)fs->replayed_.writes, (unsigned long long)fs->replayed_.files);
    RETURN_IF_ERROR(fs->process_orphans().with_context("removing orphan inodes"));
    // Always a new generation: inodes created in a transaction that a crash
    // lost may have had the numbers and generation the next ones get, and a
    // file handle of a lost file would then open a new one (generic/076).
    RETURN_IF_ERROR(fs->engine_->commit(/*even_if_clean=*/true));
    // Subvolumes deleted before (a crash may have cut their drop short).
    Filesystem* self = fs.get();
    fs->cleaner_ = std::thread([self] { self->clean_dead_subvolumes(); });
  }
  return fs;
}

Result<std::shared_ptr<Inode>> Filesystem::get_inode(uint64_t ino) {
  if (auto it = inodes_.find(ino); it != inodes_.end()) return it->second;
  // A subvolume deleted (or never made) has no inodes any more.
  const uint64_t tree = root_of_vino(ino);
  if (!engine_->has_tree(tree) || (engine_->root_ref(tree).flags & (kRootFlagDead | kRootFlagKeyValue)))
    return Status::NotFound("no inode " + std::to_string(ino));
  auto raw = engine_->tree(tree).lookup(Key{ino_of_vino(ino), kInodeItem, 0});
  if (!raw.ok()) {
    if (raw.status().is_not_found()) return Status::NotFound("no inode " + std::to_string(ino));
    return raw.status();
  }
  ASSIGN_OR_RETURN(InodeItem item, InodeItem::decode(raw.value()));
  auto in = std::make_shared<Inode>(ino);
  in->item = item;
  in->disk_size = item.size;
  restore_log_state(*in);
  if (auto p = parked_.find(ino); p != parked_.end()) {
    // The kernel's references come back with the object.
    in->nlookup = p->second;
    parked_.erase(p);
  }
  if (auto e = kept_errors_.find(ino); e != kept_errors_.end()) {
    // Not shared yet: no cache lock needed.
    in->cache.error = e->second;
    kept_errors_.erase(e);
  }
  inodes_[ino] = in;
  // Loaded for a lookup (which takes a reference next) or only for a
  // moment (a parent's attributes, a rename target): either way the table
  // must not keep it once nobody uses it.
  note_unused(ino);
  return in;
}

void Filesystem::note_unused(uint64_t ino) {
  unused_.insert(ino);
  if (unused_.size() > unused_bound_) ask_for_commit_locked();
}

void Filesystem::ask_for_commit_locked() {
  if (commit_requested_ || !request_commit_) return;
  commit_requested_ = true;
  request_commit_();
}

void Filesystem::bound_dirty_nodes_locked() {
  // Changes spread over many leaves (renames across a million files,
  // random writes over a large file) dirty a node each: commit early
  // rather than hold them all until the period ends (a 5 s period of
  // renames at 1M files held 590 MiB of daemon memory, most of it dirty
  // nodes).
  if (engine_->dirty_node_bytes() > dirty_node_bound_) ask_for_commit_locked();
}

Status Filesystem::write_inode_item(Inode& in) {
  in.item.transid = engine_->transid();
  // A file's recorded size never runs ahead of its data on disk (a
  // directory's size is its names': no data to wait for).
  InodeItem rec = in.item;
  if (in.is_reg()) rec.size = std::min(in.item.size, in.disk_size);
  RETURN_IF_ERROR(engine_->tree(in.root).update(Key{in.ino, kInodeItem, 0}, rec.encode()));
  in.dirty = false;
  in.dirty_atime_only = false;
  return Status::Ok();
}

Status Filesystem::flush_dirty_inodes() {
  for (auto& [ino, in] : inodes_) {
    if (!in->dirty || (in->item.nlink == 0 && !in->orphan)) continue;
    Status st = write_inode_item(*in);
    if (!st.ok()) {
      engine_->abort(st);
      return st;
    }
  }
  return Status::Ok();
}

Status Filesystem::modify(uint64_t nodes, const std::function<Status()>& fn, bool deleting) {
  Status room = engine_->reserve_metadata(nodes, deleting);
  if (room.code() == ENOSPC && engine_->commit_makes_room()) {
    // Space freed since the last commit is pinned until one, and the
    // commit's own cost is reserved until it runs: commit, retry.
    RETURN_IF_ERROR(flush_dirty_inodes());
    RETURN_IF_ERROR(engine_->commit());
    room = engine_->reserve_metadata(nodes, deleting);
  }
  RETURN_IF_ERROR(room);
  Status st = fn();
  bound_dirty_nodes_locked();
  // Errors a check can raise before anything changed are fine; anything
  // else left the transaction half-done and must never be committed.
  if (!st.ok() && st.code() != ENOENT && st.code() != EEXIST && st.code() != ENOTEMPTY && st.code() != ENOTDIR &&
      st.code() != EISDIR && st.code() != EINVAL && st.code() != ENAMETOOLONG && st.code() != EPERM &&
      st.code() != ENODATA && st.code() != ERANGE && st.code() != EMLINK && st.code() != ENOSPC && st.code() != E2BIG &&
      st.code() != EROFS && st.code() != EXDEV && st.code() != EBUSY && st.code() != EACCES)
    engine_->abort(st);
  return st;
}

Result<InodeItem> Filesystem::getattr(uint64_t ino) {
  std::lock_guard lk(engine_->mutex());
  ASSIGN_OR_RETURN(auto in, get_inode(ino));
  return attr_of(*in);
}

Result<InodeItem> Filesystem::setattr(uint64_t ino, const SetAttr& sa, const Caller& c) {
  std::shared_ptr<Inode> in;
  {
    std::lock_guard lk(engine_->mutex());
    ASSIGN_OR_RETURN(in, get_inode(ino));
    RETURN_IF_ERROR(writable(*in));
  }
  if (sa.size) {
    if (in->is_dir()) return Status::Error(EISDIR, "is a directory");
    if (!in->is_reg()) return Status::Invalid("not a regular file");
    std::unique_lock io(in->io_lock);
    // Cached data first: truncation works on the extents.
    RETURN_IF_ERROR(writeback_->flush_inode(in, true));
    RETURN_IF_ERROR(data_->truncate(*in, sa.new_size));
  }
  std::lock_guard lk(engine_->mutex());
  RETURN_IF_ERROR(engine_->reserve_metadata(4));
  Timespec now = current_time();
  InodeItem& it = in->item;
  if (sa.mode) {
    const uint32_t group = sa.gid ? sa.new_gid : it.gid;
    it.mode = mode_after(SetidChange::kMode, (it.mode & S_IFMT) | (sa.new_mode & 07777), group, c);
    Status st = chmod_acl(*in);
    if (!st.ok()) {
      engine_->abort(st);
      return st;
    }
  }
  // An explicit mode in the same request is what the kernel computed
  // itself (without FUSE_CAP_HANDLE_KILLPRIV): it wins.
  if ((sa.uid || sa.gid) && !sa.mode) it.mode = mode_after(SetidChange::kOwner, it.mode, it.gid, c);
  else if (sa.size && !sa.mode) it.mode = mode_after(SetidChange::kData, it.mode, it.gid, c);
  if (sa.uid) it.uid = sa.new_uid;
  if (sa.gid) it.gid = sa.new_gid;
  if (sa.size) it.mtime = now;
  if (sa.atime) it.atime = sa.atime_now ? now : sa.new_atime;
  if (sa.mtime) it.mtime = sa.mtime_now ? now : sa.new_mtime;
  it.ctime = sa.ctime ? sa.new_ctime : now;
  mark_dirty(*in);
  return attr_of(*in);
}

Result<std::string> Filesystem::readlink(uint64_t ino) {
  std::lock_guard lk(engine_->mutex());
  ASSIGN_OR_RETURN(auto in, get_inode(ino));
  if (!in->is_lnk()) return Status::Invalid("not a symbolic link");
  return data_->get_inline_locked(*in);
}

void Filesystem::forget(uint64_t ino, uint64_t nlookup) {
  {
    std::lock_guard lk(engine_->mutex());
    auto it = inodes_.find(ino);
    if (it == inodes_.end()) {
      if (auto p = parked_.find(ino); p != parked_.end()) {
        p->second = nlookup > p->second ? 0 : p->second - nlookup;
        if (p->second == 0) parked_.erase(p);  // clean by construction: nothing to write
      }
      return;
    }
    Inode& in = *it->second;
    in.nlookup = nlookup > in.nlookup ? 0 : in.nlookup - nlookup;
    Status st = try_evict(ino);
    if (!st.ok()) engine_->abort(st);
  }
  discard_deleted();
}

// The one way out of the table. The kernel forgetting an inode says nothing
// about its state: an inode stays while its item is dirty, while it has
// pages (dirty or in flight), or while anyone else holds the object
// (writeback's dirty list, an ordered extent, a request in progress).
// `use_count() == 1` under the engine mutex proves the last: every other
// reference was taken from the table under this mutex, and none can be
// taken while we hold it. So there is never a second object for one inode.
Status Filesystem::try_evict(uint64_t ino) {
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) {
    unused_.erase(ino);
    return Status::Ok();
  }
  Inode& in = *it->second;
  if (in.nlookup > 0 || in.open_count > 0 || ino == root_vino_) {
    unused_.erase(ino);  // referenced again; noted when the count drops
    return Status::Ok();
  }
  note_unused(ino);
  if (in.item.nlink == 0) {
    // Deleted: no name leads here and the items are gone, so no lookup can
    // load it again; ordered extents still in flight hold the object and
    // give their space back (FileCache::deleted).
    RETURN_IF_ERROR(delete_inode(in));
  } else {
    if (in.dirty) return Status::Ok();                // the next commit writes the item
    if (it->second.use_count() > 1) return Status::Ok();
    // Lock order is cache before engine: only try (never wait) here.
    std::unique_lock ck(in.cache.mu, std::try_to_lock);
    if (!ck.owns_lock() || !in.cache.pages.empty() || in.cache.inflight_extents > 0) return Status::Ok();
    if (!in.cache.error.ok()) {
      if (kept_errors_.size() < kMaxKeptErrors) {
        kept_errors_[ino] = in.cache.error;
      } else {
        errors_dropped_++;
        std::fprintf(stderr, "cairn: inode %llu: writeback error not kept for a later fsync (%zu kept): %s\n",
                     (unsigned long long)ino, kept_errors_.size(), in.cache.error.message().c_str());
      }
    }
  }
  remember_log_state(in);
  inodes_.erase(it);
  unused_.erase(ino);
  evicted_++;
  return Status::Ok();
}

void Filesystem::remember_log_state(const Inode& in) {
  const uint64_t t = engine_->transid();
  if (unlogged_trans_ != t) unlogged_dropped_.clear(), unlogged_trans_ = t;
  if (in.log.needs_commit >= t) unlogged_dropped_.insert(in.vino());
}

void Filesystem::restore_log_state(Inode& in) {
  const uint64_t t = engine_->transid();
  if (unlogged_trans_ == t && unlogged_dropped_.erase(in.vino())) in.log.needs_commit = t;
}

void Filesystem::maybe_park() {
  if (inodes_.size() <= resident_bound_ || inodes_.size() < next_park_at_) return;
  const size_t target = resident_bound_ / 4 * 3;
  for (auto it = inodes_.begin(); it != inodes_.end() && inodes_.size() > target;) {
    Inode& in = *it->second;
    // The same proof as try_evict's: use_count() == 1 under the engine
    // mutex means no request, writeback list or ordered extent holds it.
    bool idle = in.nlookup > 0 && in.open_count == 0 && in.vino() != root_vino_ && !in.dirty && !in.orphan &&
                in.item.nlink > 0 && it->second.use_count() == 1;
    if (idle) {
      std::unique_lock ck(in.cache.mu, std::try_to_lock);
      idle = ck.owns_lock() && in.cache.pages.empty() && in.cache.inflight_extents == 0 && in.cache.error.ok();
    }
    if (!idle) {
      ++it;
      continue;
    }
    parked_[in.vino()] = in.nlookup;
    remember_log_state(in);
    unused_.erase(in.vino());
    parked_total_++;
    it = inodes_.erase(it);
  }
  // Inodes that cannot be parked (open, dirty) are not scanned again until
  // the table has grown by a quarter of the bound: the cost stays O(1) per
  // inode loaded.
  next_park_at_ = inodes_.size() + resident_bound_ / 4;
}

void Filesystem::evict_unused() {
  std::vector<uint64_t> todo(unused_.begin(), unused_.end());
  for (uint64_t ino : todo) {
    Status st = try_evict(ino);
    if (!st.ok()) {
      engine_->abort(st);
      return;
    }
  }
}

InodeTableStats Filesystem::inode_table_stats() {
  std::lock_guard lk(engine_->mutex());
  InodeTableStats s;
  s.resident = inodes_.size();
  s.unused = unused_.size();
  s.evicted = evicted_;
  s.parked = parked_.size();
  s.parked_total = parked_total_;
  s.errors_kept = kept_errors_.size();
  s.errors_dropped = errors_dropped_;
  return s;
}

Status Filesystem::delete_inode(Inode& in) {
  if (engine_->read_only() || engine_->aborted()) return Status::Ok();
  // Ordered extents still in flight see this and give their space back;
  // dirty pages are dropped once the engine mutex is released.
  in.cache.deleted = true;
  if (auto it = inodes_.find(in.vino()); it != inodes_.end()) pending_discard_.push_back(it->second);
  if (in.is_reg()) RETURN_IF_ERROR(data_->drop_all_locked(in));
  ASSIGN_OR_RETURN(uint64_t n, engine_->tree(in.root).remove_range(Key{in.ino, 0, 0}, Key{in.ino, 0xFF, ~0ULL}));
  (void)n;
  if (in.orphan) {
    Status st = engine_->tree(in.root).remove(Key{kOrphanObjectId, kOrphanItem, in.ino});
    if (!st.ok() && !st.is_not_found()) return st;
    in.orphan = false;
  }
  in.dirty = false;
  return Status::Ok();
}

void Filesystem::discard_deleted() {
  std::vector<std::shared_ptr<Inode>> todo;
  {
    std::lock_guard lk(engine_->mutex());
    todo.swap(pending_discard_);
  }
  if (writeback_)
    for (auto& in : todo) writeback_->discard(*in);
}

Status Filesystem::process_orphans() {
  // Every live subvolume keeps its own orphans.
  for (uint64_t tree : engine_->tree_ids()) {
    if (!is_subvolume_id(tree) || (engine_->root_ref(tree).flags & (kRootFlagDead | kRootFlagKeyValue))) continue;
    std::vector<uint64_t> orphans;
    BTree fs = engine_->tree(tree);
    Cursor c = fs.cursor();
    RETURN_IF_ERROR(c.seek(Key{kOrphanObjectId, kOrphanItem, 0}));
    for (; c.valid() && c.key().objectid == kOrphanObjectId && c.key().type == kOrphanItem; c.advance())
      orphans.push_back(c.key().offset);
    RETURN_IF_ERROR(c.status());
    for (uint64_t ino : orphans) {
      const uint64_t v = vino_of(tree, ino);
      auto in = get_inode(v);
      if (in.ok() && in.value()->item.nlink == 0) {
        in.value()->orphan = true;
        RETURN_IF_ERROR(delete_inode(*in.value()));
        inodes_.erase(v);
        unused_.erase(v);
      } else {
        RETURN_IF_ERROR(fs.remove(Key{kOrphanObjectId, kOrphanItem, ino}));
        if (in.ok()) in.value()->orphan = false;
      }
    }
  }
  return Status::Ok();
}

SpaceUsage Filesystem::space_usage_locked() {
  const Superblock& sb = engine_->super();
  return cairn::space_usage(engine_->chunk_map(), engine_->allocator(), sb.data_profile, sb.metadata_profile,
                            writeback_ ? writeback_->reserved_bytes() : 0);
}

SpaceUsage Filesystem::space_usage() {
  std::lock_guard lk(engine_->mutex());
  return space_usage_locked();
}

FsStats Filesystem::statfs() {
  std::lock_guard lk(engine_->mutex());
  const SpaceUsage u = space_usage_locked();
  FsStats s{};
  s.block_size = kSectorSize;
  s.name_max = 255;
  // df's Used is what data and metadata occupy, Avail what files can still
  // take; the difference from Size is what the filesystem keeps for itself
  // (docs/design.md, "Space reports").
  s.total_bytes = u.df_size();
  s.avail_bytes = u.df_available();
  s.free_bytes = std::max(s.avail_bytes, s.total_bytes - std::min(s.total_bytes, u.df_used()));
  const uint64_t meta_free = engine_->allocator().free_in_chunks(kChunkMetadata);
  // Inodes are not preallocated: estimate from metadata space, as btrfs does.
  s.files_free = meta_free / 512 + s.avail_bytes / 4096;
  s.files = s.files_free + engine_->root_ref(kFsTreeId).last_objectid;
  return s;
}

Status Filesystem::commit_now() {
  {
    std::lock_guard lk(engine_->mutex());
    if (engine_->read_only()) return Status::Ok();
    RETURN_IF_ERROR(flush_dirty_inodes());
    RETURN_IF_ERROR(engine_->commit());
    // Items are in the tree now: unused inodes without pages can go.
    commit_requested_ = false;
    evict_unused();
  }
  discard_deleted();
  return Status::Ok();
}

Status Filesystem::group_commit() {
  std::unique_lock lk(gc_mu_);
  const uint64_t ticket = ++gc_requested_;
  while (gc_completed_ < ticket) {
    if (gc_running_) {
      gc_cv_.wait(lk);
      continue;
    }
    // Lead a commit for every request so far; later ones wait for the next.
    gc_running_ = true;
    const uint64_t batch = gc_requested_;
    lk.unlock();
    Status st = commit_now();
    lk.lock();
    gc_running_ = false;
    gc_commits_++;
    gc_status_ = st;
    gc_completed_ = batch;
    gc_cv_.notify_all();
  }
  return gc_status_;
}

CommitStats Filesystem::commit_stats() {
  std::lock_guard lk(gc_mu_);
  return CommitStats{gc_requested_, gc_commits_};
}

Status Filesystem::sync() {
  if (engine_->read_only()) return Status::Ok();
  RETURN_IF_ERROR(writeback_->flush_all(true));
  // Every ordered extent has finished, but a completion worker may still be
  // between waking the waiters and dropping its reference to the inode;
  // after this no ordered extent holds one, so the commit's sweep can evict
  // every clean unused inode now rather than at the next commit.
  writeback_->workers().drain();
  return group_commit();
}

Status Filesystem::unmount() {
  // A drop not finished goes on at the next mount.
  stop_cleaner();
  if (engine_->read_only()) return Status::Ok();
  Status wb = writeback_->flush_all(true);
  writeback_->wait_idle();
  writeback_->workers().drain();
  std::lock_guard lk(engine_->mutex());
  if (!wb.ok()) std::fprintf(stderr, "cairn: writeback at unmount: %s\n", wb.message().c_str());
  // The kernel has let go of everything; unlinked files die now.
  std::vector<uint64_t> all;
  for (auto& [ino, in] : inodes_) all.push_back(ino);
  for (uint64_t ino : all) {
    auto it = inodes_.find(ino);
    if (it == inodes_.end()) continue;
    it->second->nlookup = 0;
    it->second->open_count = 0;
    Status st = try_evict(ino);
    if (!st.ok()) engine_->abort(st);
  }
  RETURN_IF_ERROR(flush_dirty_inodes());
  return engine_->commit_saving_free_space();
}

}  // namespace cairn
