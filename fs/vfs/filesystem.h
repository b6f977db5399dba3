#pragma once
// Filesystem: POSIX semantics on top of the engine (docs/design.md, "VFS").
//
// Every method returns errno-style results through Status (the FUSE layer
// turns them into replies). Directory entries follow btrfs: a DIR_ITEM keyed
// by name hash for lookup, a DIR_INDEX keyed by a per-directory sequence
// number for readdir (so readdir offsets are stable while the directory
// changes), and an INODE_REF from the child back to each parent name.
//
// Thread-safety: all methods may be called concurrently from FUSE worker
// threads. Metadata changes run under the engine mutex; file data I/O runs
// under the inode's io_lock with the engine mutex held only to map and
// record extents (see fs/data/file_data.h).

#include <condition_variable>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "alloc/space_usage.h"
#include "data/file_data.h"
#include "data/writeback.h"
#include "io/io_engine.h"
#include "log/fsync_log.h"
#include "log/log_replay.h"
#include "tree/engine.h"
#include "tree/tree_space.h"
#include "vfs/caller.h"
#include "vfs/inode.h"

namespace cairn {


struct Entry {
  uint64_t ino = 0;
  uint64_t generation = 0;
  InodeItem attr;
};

// Which attributes setattr changes (the FUSE_SET_ATTR_* meaning).
struct SetAttr {
  bool mode = false, uid = false, gid = false, size = false, atime = false, mtime = false, ctime = false;
  bool atime_now = false, mtime_now = false;
  uint32_t new_mode = 0, new_uid = 0, new_gid = 0;
  uint64_t new_size = 0;
  Timespec new_atime, new_mtime, new_ctime;
};

struct FsStats {
  uint64_t total_bytes, free_bytes, avail_bytes, files, files_free;
  uint32_t block_size, name_max;
};

struct DirEntryOut {
  std::string name;
  uint64_t ino;
  uint8_t type;
  uint64_t next_offset;  // the offset to pass to continue after this entry
  Entry entry;           // readdirplus: full attributes (the lookup count is taken)
};

enum class AtimePolicy { kRelatime, kStrict, kNever };

struct MountOptions {
  bool read_only = false;
  size_t node_cache_bytes = 64ULL << 20;
  WritebackOptions writeback;
  IoEngineOptions io;
  bool dropbehind = false;  // every file: written data leaves no trace in any cache
  // Inodes the kernel no longer references may stay resident until their
  // state is in the tree; past this many, an early commit is requested
  // (docs/design.md, "Inode table").
  size_t unused_inode_bound = 65536;
  // Past this many Inode objects, idle ones the kernel still references
  // are parked: only their lookup count stays (docs/design.md, "Inode
  // table", "Parked inodes").
  size_t resident_inode_bound = 65536;
  // Access times (docs/design.md, "Access times"): the daemon keeps them,
  // the kernel never updates atime on a FUSE mount.
  AtimePolicy atime = AtimePolicy::kRelatime;
  bool nodiratime = false;
  bool posix_acl = true;  // -o noacl: system.posix_acl_* are refused, nothing inherited
  bool space_cache = true;      // -o nospace_cache: EngineOptions::space_cache
  bool fsync_log = true;        // -o nofsync_log: EngineOptions::fsync_log
  std::string subvol;           // -o subvol=PATH: mount this subvolume as the root
  uint64_t max_chunk_size = 0;  // test knob (-o debug_max_chunk=): EngineOptions::max_chunk_size
  // The probe's free-space map (EngineOptions::free_space): the extent tree
  // is read once per mount, not twice.
  std::shared_ptr<const FreeSpaceSnapshot> free_space = nullptr;
};

// The inode table, for `cairnctl stats` and tests.
struct InodeTableStats {
  uint64_t resident = 0;       // Inode objects in the table
  uint64_t unused = 0;         // of those, not referenced by the kernel (kept for unwritten state)
  uint64_t evicted = 0;        // dropped from the table since mount
  uint64_t parked = 0;         // referenced by the kernel, held as a lookup count only
  uint64_t parked_total = 0;   // parked since mount
  uint64_t errors_kept = 0;    // writeback errors of evicted inodes, waiting for a later fsync/close
  uint64_t errors_dropped = 0; // ... beyond kMaxKeptErrors (logged)
};

// One subvolume (cairnctl subvolume list / show).
struct SubvolumeInfo {
  uint64_t id = 0;
  uint64_t parent = 0;  // the subvolume holding its entry (0: tree 5, which has none)
  std::string path;     // from the top-level subvolume
  bool read_only = false;
  bool dead = false;    // deleted, being dropped
  uint64_t generation = 0;
  // show only: data extents it references, and those only it references.
  uint64_t referenced_bytes = 0, exclusive_bytes = 0;
};

struct CommitStats {
  uint64_t requests = 0, commits = 0;  // fsync-style requests and the commits that served them
};

class Filesystem {
 public:
  static Result<std::unique_ptr<Filesystem>> mount(std::shared_ptr<BlockDevice> dev, const MountOptions& opts);
  ~Filesystem();

  Engine& engine() { return *engine_; }
  FileData& data() { return *data_; }
  Writeback& writeback() { return *writeback_; }
  IoEngine& io() { return *io_; }
  CommitStats commit_stats();
  FsyncLogStats fsync_log_stats() { return log_->stats(); }
  // What the mount replayed from the fsync log of the generation it opened.
  const ReplayReport& log_replay() const { return replayed_; }
  InodeTableStats inode_table_stats();
  // Called (without locks held, must not block) when the unused inodes pass
  // their bound: the daemon's committer then runs a commit early, after
  // which the clean ones are evicted.
  void set_commit_request_hook(std::function<void()> fn) { request_commit_ = std::move(fn); }
  // Called (without locks held, must not block) when the filesystem changed
  // an inode's attributes on its own, in a request whose reply carries no
  // attributes (a write clearing set-ID bits): the kernel's cached copy is
  // stale. The daemon drops it (notify_inval_inode); with SB_NOSEC
  // (FUSE_HANDLE_KILLPRIV_V2) the kernel does not refetch them by itself.
  void set_attrs_changed_hook(std::function<void(uint64_t ino)> fn) { attrs_changed_hook_ = std::move(fn); }
  // A reference to a (possibly newly loaded) inode: for tools and tests.
  Result<std::shared_ptr<Inode>> inode_ref(uint64_t ino) {
    std::lock_guard lk(engine_->mutex());
    return get_inode(ino);
  }

  // ---- Lookup and attributes ----
  Result<Entry> lookup(uint64_t parent, const std::string& name);
  void forget(uint64_t ino, uint64_t nlookup);
  Result<InodeItem> getattr(uint64_t ino);
  // `c`: who asks (the set-ID rules of chown, chmod and truncate).
  Result<InodeItem> setattr(uint64_t ino, const SetAttr& sa, const Caller& c = Caller{});
  Result<std::string> readlink(uint64_t ino);

  // ---- Namespace ----
  Result<Entry> mknod(uint64_t parent, const std::string& name, uint32_t mode, uint64_t rdev, const Caller& c);
  Result<Entry> mkdir(uint64_t parent, const std::string& name, uint32_t mode, const Caller& c);
  Result<Entry> symlink(uint64_t parent, const std::string& name, const std::string& target, const Caller& c);
  Result<Entry> link(uint64_t ino, uint64_t new_parent, const std::string& new_name);
  Status unlink(uint64_t parent, const std::string& name);
  Status rmdir(uint64_t parent, const std::string& name);
  Status rename(uint64_t parent, const std::string& name, uint64_t new_parent, const std::string& new_name,
                unsigned flags);
  // List from `offset` (0 = start); `emit` returns false when the reply buffer is full.
  // With `plus`, every entry emitted (except "." and "..") counts as a lookup.
  // Entries whose index is `end_index` or later were added after the
  // directory was opened (opendir's result) and are not listed: a read
  // ends even while every name is renamed away and back during it.
  Status readdir(uint64_t ino, uint64_t offset, bool plus, const std::function<bool(const DirEntryOut&)>& emit,
                 uint64_t end_index = ~uint64_t(0));
  // The directory's next index (for readdir's `end_index`). With
  // `atime_changed`, also an access of the directory (atime), and whether
  // it moved atime; without (O_NOATIME, rewinddir), no access.
  Result<uint64_t> opendir(uint64_t ino, bool* atime_changed = nullptr);

  // ---- Files ----
  Status open(uint64_t ino, bool truncate, const Caller& c = Caller{});
  // An open for reading: an access (atime, by the mount's policy). The
  // kernel answers reads from its page cache without asking, so the access
  // is counted here, once per open, and again by every read that reaches
  // the daemon. Returns whether atime moved.
  Result<bool> access_at_open(uint64_t ino);
  void release(uint64_t ino);
  // Data is read O_DIRECT from the image: reads leave no trace in the
  // host's cache, dropbehind or not (FileData::device_read).
  Result<size_t> read(uint64_t ino, uint64_t off, size_t len, char* out, bool noatime = false);
  // The same bytes without a copy: they start at span.data() + off % 4096
  // (FileData::read_span).
  Result<size_t> read_span(uint64_t ino, uint64_t off, size_t len, AlignedBuffer& span, bool noatime = false);
  // `c`: the writer, for the set-ID rule (a write by someone without
  // CAP_FSETID clears SUID, and SGID as the kernel would).
  Result<size_t> write(uint64_t ino, uint64_t off, const char* buf, size_t len, bool dropbehind = false,
                       const Caller& c = Caller{});
  // Does this file want dropbehind (its flag, or the mount option)?
  bool wants_dropbehind(uint64_t ino);
  Status fsync(uint64_t ino, bool datasync);
  // close(2): reports a writeback error already known (it does not wait).
  Status flush(uint64_t ino);
  Status fallocate(uint64_t ino, int mode, uint64_t off, uint64_t len, const Caller& c = Caller{});
  Result<uint64_t> lseek(uint64_t ino, uint64_t off, int whence);
  // copy_file_range(2), and `cairnctl clone` with kShareOnly (docs/design.md,
  // "Reflinks"): whole blocks at the same place in a block in both files
  // become shared references to the same disk extents; with kShareOrCopy
  // the partial blocks at either end (and everything, when the two offsets
  // sit at different places in a block) are copied. kShareOnly refuses
  // what it cannot share (EINVAL: offsets or length not whole blocks,
  // EMLINK: an extent has no room for another reference) and copies nothing.
  // Returns the bytes done; never more than kMaxCopyFileRange per call.
  enum class CopyMode { kShareOrCopy, kShareOnly };
  static constexpr size_t kMaxCopyFileRange = (1ULL << 31) - 4096;  // FUSE replies carry a u32 count
  Result<size_t> copy_file_range(uint64_t ino_in, uint64_t off_in, uint64_t ino_out, uint64_t off_out, size_t len,
                                 const Caller& c = Caller{}, CopyMode mode = CopyMode::kShareOrCopy);

  // ---- Extended attributes ----
  Status setxattr(uint64_t ino, const std::string& name, const Bytes& value, int flags, const Caller& c = Caller{});
  Result<Bytes> getxattr(uint64_t ino, const std::string& name);
  // trusted.* names are listed only for privileged callers.
  Result<std::vector<std::string>> listxattr(uint64_t ino, bool privileged);
  Status removexattr(uint64_t ino, const std::string& name);

  // ---- Subvolumes and snapshots (vfs/subvolume.cc) ----
  // A new empty subvolume named `name` in directory `parent`.
  Result<Entry> create_subvolume(uint64_t parent, const std::string& name, const Caller& c = Caller{});
  // A snapshot of the subvolume whose root directory is `source`, named
  // `name` in `parent` (anywhere, even inside the source). Durable when it
  // returns. Root or the owner of the source only.
  Result<Entry> snapshot_subvolume(uint64_t source, uint64_t parent, const std::string& name, bool read_only,
                                   const Caller& c = Caller{});
  // Remove the subvolume named `name` in `parent` from the namespace now
  // and drop its tree in the background. EBUSY while its files are open
  // or being written, ENOTEMPTY while it holds subvolumes.
  Status delete_subvolume(uint64_t parent, const std::string& name, const Caller& c = Caller{});
  // Until every deleted subvolume has been dropped, then commit.
  Status wait_subvolumes_dropped();
  Result<std::vector<SubvolumeInfo>> list_subvolumes();
  // The subvolume holding `ino`, with its space (walks the whole tree).
  Result<SubvolumeInfo> subvolume_show(uint64_t ino);
  // A file's data: referenced and exclusive bytes (cairnctl du).
  Result<TreeSpace> file_space(uint64_t ino);
  // A few steps of the background drop (true: more to do). For tests.
  Result<bool> drop_dead_subvolumes(size_t steps);
  // The root directory of the subvolume at `path` from the top level
  // (-o subvol=): its mount-wide number.
  static Result<uint64_t> resolve_subvolume(Engine& e, const std::string& path);
  // The mount's root directory (FUSE node 1).
  uint64_t root_ino() const { return root_vino_; }

  FsStats statfs();
  // Where the device's bytes are (df, cairnctl stats and filesystem usage).
  SpaceUsage space_usage();
  SpaceUsage space_usage_locked();  // engine mutex held
  // Write back every dirty page, then commit (the periodic commit, syncfs).
  Status sync();
  // Commit, joining any commit requested concurrently (group commit).
  Status group_commit();
  // Final commit at unmount: everything in use is released first.
  Status unmount();

 private:
  explicit Filesystem(std::unique_ptr<Engine> engine);
  // The inode to read data from (takes the engine mutex); EISDIR for a directory.
  Result<std::shared_ptr<Inode>> file_for_read(uint64_t ino, bool noatime);
  // An access of `in` (engine mutex held): atime moves if the mount's
  // policy says so (relatime: atime not newer than mtime or ctime, or a
  // day old). Returns whether it moved.
  bool touch_atime(Inode& in);
  // After a change of the file's data by `c` (takes the engine mutex):
  // ctime (and mtime), the set-ID rule, dirty; the kernel's cached
  // attributes dropped if the mode changed.
  void data_changed(Inode& in, const Caller& c, bool mtime);
  // The set-ID part (engine mutex held): SUID/SGID as vfs/setid.h says.
  // Cheap unless the file carries a set-ID bit. Returns whether the mode
  // changed (then call attrs_changed without the mutex).
  bool data_changed_by(Inode& in, const Caller& c);
  void attrs_changed(uint64_t ino);
  // All other private helpers require the engine mutex held.
  Result<std::shared_ptr<Inode>> get_inode(uint64_t ino);
  Result<std::shared_ptr<Inode>> new_inode(uint32_t mode, uint64_t rdev, const Caller& c, const Inode& parent);
  void mark_dirty(Inode& in) {
    in.dirty = true;
    in.dirty_atime_only = false;
  }
  // A just-loaded or just-released inode: evicted once it is clean.
  void note_unused(uint64_t ino);
  // Under the engine mutex: ask the committer for an early commit (once per
  // transaction), e.g. when dirty tree nodes pass dirty_node_bound_.
  void ask_for_commit_locked();
  void bound_dirty_nodes_locked();
  Status flush_dirty_inodes();
  // copy_file_range's parts: bytes through the data path, and shared blocks.
  Result<size_t> copy_bytes(uint64_t ino_in, uint64_t off_in, uint64_t ino_out, uint64_t off_out, size_t len,
                            const Caller& c);
  Result<size_t> share_blocks(const std::shared_ptr<Inode>& src, uint64_t off_in, const std::shared_ptr<Inode>& dst,
                              uint64_t off_out, size_t len, CopyMode mode, const Caller& c);
  Status write_inode_item(Inode& in);
  Result<std::optional<DirEntry>> find_entry(const Inode& dir, const std::string& name);
  // The mount-wide number an entry of `dir` leads to.
  static uint64_t entry_vino(const Inode& dir, const DirEntry& de);
  // A name in `dir` (DIR_ITEM and DIR_INDEX) leading to `location`; its index.
  Result<uint64_t> insert_dir_entry(Inode& dir, const std::string& name, const Key& location, uint8_t type);
  Status erase_dir_entry(Inode& dir, const std::string& name, uint64_t index);
  Status add_entry(Inode& dir, const std::string& name, Inode& child);
  Status remove_entry(Inode& dir, const std::string& name, uint64_t child_ino);
  Status drop_link(Inode& in);
  // Drop an inode the kernel no longer references from the table if all of
  // its state is in the tree; delete it if its last link is gone.
  Status try_evict(uint64_t ino);
  // try_evict every unused inode (after a commit has made them clean).
  void evict_unused();
  Status delete_inode(Inode& in);
  Status process_orphans();
  // The directory `parent` when a new `name` may go there (a valid name,
  // a live writable directory without it).
  Result<std::shared_ptr<Inode>> dir_for_new_name(uint64_t parent, const std::string& name);
  Result<Entry> create_common(uint64_t parent, const std::string& name, uint32_t mode, uint64_t rdev,
                              const Caller& c, const std::string* symlink_target);
  Status chmod_acl(Inode& in);
  Status inherit_acl(Inode& parent, Inode& child, uint32_t* mode, const Caller& c);
  Result<bool> dir_is_empty(const Inode& dir);
  Result<uint64_t> parent_of(const Inode& dir);
  Result<bool> is_ancestor(uint64_t maybe_ancestor, uint64_t dir);
  Status check_name(const std::string& name) const;
  // Attributes as stat(2) shows them: blocks include dirty data awaiting
  // allocation over holes, as delayed allocation does elsewhere (not over
  // data or preallocated space, which are counted already).
  static InodeItem attr_of(const Inode& in) {
    InodeItem a = in.item;
    a.nbytes += in.cache.dirty_hole_pages.load() * kPageSize;
    return a;
  }
  Entry entry_of(const Inode& in) const { return Entry{in.vino(), in.item.generation, attr_of(in)}; }
  // Run a modifying operation: metadata reservation first, abort on a half-done failure.
  // `deleting`: the operation frees space and may use part of the reserve.
  Status modify(uint64_t nodes, const std::function<Status()>& fn, bool deleting = false);

  Status commit_now();
  // Subvolume helpers (engine mutex held).
  Status writable(const Inode& in) const;  // EROFS for a read-only mount or snapshot
  Result<std::optional<std::pair<uint64_t, RootRefItem>>> subvolume_backref(uint64_t tree);
  Result<uint64_t> subvolume_parent(uint64_t tree);
  uint64_t next_subvolume_id() const;
  Status add_subvolume_entry(Inode& dir, const std::string& name, uint64_t tree);
  Status remove_subvolume_entry(Inode& dir, const std::string& name, uint64_t tree);
  Status rename_subvolume_entry(Inode& sdir, const std::string& name, Inode& ddir, const std::string& new_name,
                                uint64_t tree);
  // The subvolumes whose entries are in `tree`: (id, entry).
  Result<std::vector<std::pair<uint64_t, RootRefItem>>> nested_subvolumes(uint64_t tree);
  // A new subvolume's root, with the lookup reference its creator returns.
  Result<Entry> subvolume_root_entry(uint64_t tree);
  Result<SubvolumeInfo> subvolume_info_locked(uint64_t tree);
  Status commit_locked();
  // The background drop of deleted subvolumes (a thread from mount to unmount).
  void clean_dead_subvolumes();
  Status do_unlink(uint64_t parent, const std::string& name);
  Status do_rename(uint64_t parent, const std::string& name, uint64_t new_parent, const std::string& new_name,
                       unsigned flags);
  // Drop the cached pages of inodes deleted under the engine mutex.
  void discard_deleted();

  std::unique_ptr<Engine> engine_;
  // The mount's root directory (FUSE node 1): tree 5's, or a subvolume's
  // (-o subvol=).
  uint64_t root_vino_ = kFirstInode;
  bool dropbehind_all_ = false;
  AtimePolicy atime_ = AtimePolicy::kRelatime;
  bool nodiratime_ = false;
  bool posix_acl_ = true;
  std::unique_ptr<FileData> data_;
  std::unique_ptr<IoEngine> io_;
  std::unique_ptr<Writeback> writeback_;
  std::unique_ptr<FsyncLog> log_;
  ReplayReport replayed_;
  // Inodes dropped from the table (evicted, parked) whose fsync must
  // commit in the running transaction (FsyncLogState::needs_commit),
  // remembered until it ends: without this, a file created, renamed or
  // given an xattr, then forgotten by the kernel and opened again, would be
  // logged without the names the last commit lacks.
  std::unordered_set<uint64_t> unlogged_dropped_;
  uint64_t unlogged_trans_ = 0;
  void remember_log_state(const Inode& in);
  void restore_log_state(Inode& in);
  std::mutex gc_mu_;
  std::condition_variable gc_cv_;
  uint64_t gc_requested_ = 0, gc_completed_ = 0, gc_commits_ = 0;
  bool gc_running_ = false;
  Status gc_status_;
  // The inode table (engine mutex). One object per inode number: an entry
  // leaves only through try_evict, which checks that nothing else holds it.
  std::unordered_map<uint64_t, std::shared_ptr<Inode>> inodes_;
  // Parked inodes: the kernel holds them (nlookup > 0) but nothing else is
  // in memory: no dirty item, no pages, no handle, no other holder, no
  // error. Only the lookup count is kept; get_inode loads the item again
  // and takes the count back. An inode number is never in both maps.
  std::unordered_map<uint64_t, uint64_t> parked_;  // ino -> nlookup
  size_t resident_bound_ = 65536;
  size_t next_park_at_ = 0;
  uint64_t parked_total_ = 0;
  // When the table is over resident_bound_, park idle inodes down to 3/4
  // of it. Called where a request starts and holds no inode yet.
  void maybe_park();
  // Resident inodes with no kernel reference and no open handle, waiting to
  // be clean (engine mutex). May also hold numbers that were referenced
  // again since: try_evict drops those.
  std::unordered_set<uint64_t> unused_;
  size_t unused_bound_ = 65536;
  // Bytes of dirty tree nodes (counted at node_size) past which an
  // operation asks for a commit: the node cache bounds clean nodes only,
  // and dirty ones wait in memory, decoded, for the commit that writes them.
  uint64_t dirty_node_bound_ = 32ULL << 20;
  bool commit_requested_ = false;  // engine mutex; cleared by the next commit
  std::function<void()> request_commit_;
  std::function<void(uint64_t)> attrs_changed_hook_;
  // Writeback errors of inodes evicted before anyone asked: handed back to
  // the inode when it is loaded again, so a later fsync or close reports
  // them (engine mutex).
  static constexpr size_t kMaxKeptErrors = 65536;
  std::unordered_map<uint64_t, Status> kept_errors_;
  uint64_t evicted_ = 0, errors_dropped_ = 0;
  std::vector<std::shared_ptr<Inode>> pending_discard_;  // engine mutex
  std::mutex cleaner_mu_;
  std::condition_variable cleaner_cv_;
  bool cleaner_stop_ = false;
  std::thread cleaner_;
  void stop_cleaner();
};

Timespec current_time();
uint8_t dtype_of(uint32_t mode);

}  // namespace cairn
