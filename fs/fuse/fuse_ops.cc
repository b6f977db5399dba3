#include "fuse/fuse_ops.h"

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "fuse/control.h"
#include "util/aligned_buffer.h"
#include <sys/statvfs.h>
#include <fcntl.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

namespace cairn {

namespace {

// FUSE calls the root 1; the daemon calls it by its mount-wide number:
// 256 (tree 5's root directory), or a subvolume's root with -o subvol=.
// Set once before the session runs.
uint64_t g_root_ino = kFirstInode;
uint64_t in_ino(fuse_ino_t ino) { return ino == FUSE_ROOT_ID ? g_root_ino : ino; }
fuse_ino_t out_ino(uint64_t ino) { return ino == g_root_ino ? FUSE_ROOT_ID : ino; }

FuseContext& ctx(fuse_req_t req) { return *static_cast<FuseContext*>(fuse_req_userdata(req)); }
Filesystem& fsys(fuse_req_t req) { return *ctx(req).fs; }

int errno_of(const Status& st) {
  int e = st.code();
  if (e == EUCLEAN) return EIO;  // corruption reaches applications as EIO
  return e > 0 ? e : EIO;
}

void reply_err(fuse_req_t req, const Status& st) { fuse_reply_err(req, errno_of(st)); }

struct stat to_stat(uint64_t ino, const InodeItem& it) {
  struct stat st;
  std::memset(&st, 0, sizeof st);
  st.st_ino = ino;
  st.st_mode = it.mode;
  st.st_nlink = it.nlink;
  st.st_uid = it.uid;
  st.st_gid = it.gid;
  st.st_rdev = it.rdev;
  st.st_size = off_t(it.size);
  st.st_blksize = 4096;
  st.st_blocks = blkcnt_t(it.nbytes / 512);
  st.st_atim = {it.atime.sec, long(it.atime.nsec)};
  st.st_mtim = {it.mtime.sec, long(it.mtime.nsec)};
  st.st_ctim = {it.ctime.sec, long(it.ctime.nsec)};
  return st;
}

fuse_entry_param to_entry(fuse_req_t req, const Entry& e) {
  fuse_entry_param p;
  std::memset(&p, 0, sizeof p);
  p.ino = out_ino(e.ino);
  p.generation = e.generation;
  p.attr = to_stat(e.ino, e.attr);
  p.attr_timeout = ctx(req).attr_timeout;
  p.entry_timeout = ctx(req).entry_timeout;
  return p;
}

void reply_entry(fuse_req_t req, const Result<Entry>& r) {
  if (!r.ok()) return reply_err(req, r.status());
  fuse_entry_param p = to_entry(req, r.value());
  fuse_reply_entry(req, &p);
}

Caller caller_of(fuse_req_t req) {
  const fuse_ctx* c = fuse_req_ctx(req);
  Caller out;
  out.uid = c->uid;
  out.gid = c->gid;
  out.umask = c->umask;
  out.pid = uint32_t(c->pid);
  return out;
}

// See invalidate_kernel_attrs (fuse_ops.h).
void invalidate_attrs(fuse_req_t req, uint64_t ino) { invalidate_kernel_attrs(ctx(req), ino); }

// fi->fh of a file handle: what the open asked for.
constexpr uint64_t kDropbehindHandle = 1;  // written data leaves no trace in any cache
constexpr uint64_t kDirectHandle = 2;      // O_DIRECT: the kernel's direct I/O path, see op_open
constexpr uint64_t kNoatimeHandle = 4;     // O_NOATIME: reads are not accesses
constexpr uint64_t kUncachedHandle = 8;    // opened FOPEN_DIRECT_IO: no page of its I/O is in the page cache

// fi->fh of a directory handle.
struct DirHandle {
  std::atomic<uint64_t> end_index;  // readdir lists indexes below this (Filesystem::readdir)
};

void op_init(void* userdata, fuse_conn_info* conn) {
  auto* c = static_cast<FuseContext*>(userdata);
  // The kernel enforces ACLs; we inherit default ACLs and apply the umask ourselves.
  if (c->posix_acl && (conn->capable & FUSE_CAP_POSIX_ACL)) conn->want |= FUSE_CAP_POSIX_ACL;
  else conn->want &= ~unsigned(FUSE_CAP_POSIX_ACL);  // -o noacl
  if (conn->capable & FUSE_CAP_DONT_MASK) conn->want |= FUSE_CAP_DONT_MASK;
  if (conn->capable & FUSE_CAP_EXPORT_SUPPORT) conn->want |= FUSE_CAP_EXPORT_SUPPORT;
  // The kernel's writeback cache is off unless asked for: measured, it did
  // not help (docs/performance.md), and without it every write reaches the
  // daemon, which keeps size and times authoritative.
  const bool wb_cache = c->writeback_cache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE);
  if (wb_cache) conn->want |= FUSE_CAP_WRITEBACK_CACHE;
  else conn->want &= ~unsigned(FUSE_CAP_WRITEBACK_CACHE);
  // Set-ID bits are cleared by the daemon on write, truncate, fallocate and
  // chown, under the one rule of vfs/setid.h, with the writer's groups and
  // capabilities. Without this the kernel sends its own racy mode change,
  // computed by an older rule, and nothing at all for O_DIRECT writes. With
  // the writeback cache the daemon never sees who wrote (pages arrive
  // later, from the flusher), so the kernel keeps the job there.
  if (!wb_cache && (conn->capable & FUSE_CAP_HANDLE_KILLPRIV)) conn->want |= FUSE_CAP_HANDLE_KILLPRIV;
  else conn->want &= ~unsigned(FUSE_CAP_HANDLE_KILLPRIV);
  conn->max_write = unsigned(c->max_write);
  conn->max_readahead = 1 << 20;
  // Sequential reads arrive as the kernel's asynchronous readahead: let more
  // of them be in flight at once (FUSE's default is 12), so the daemon's
  // threads overlap their image reads and checksum checks.
  conn->max_background = 64;
  conn->congestion_threshold = 48;
}

void op_destroy(void*) {}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  apply_readahead(ctx(req));
  auto r = fsys(req).lookup(in_ino(parent), name);
  if (!r.ok() && r.status().is_not_found()) {
    // A negative entry the kernel may cache: all changes pass through it.
    fuse_entry_param p;
    std::memset(&p, 0, sizeof p);
    p.entry_timeout = ctx(req).entry_timeout;
    fuse_reply_entry(req, &p);
    return;
  }
  reply_entry(req, r);
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t n) {
  fsys(req).forget(in_ino(ino), n);
  fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; i++) fsys(req).forget(in_ino(forgets[i].ino), forgets[i].nlookup);
  fuse_reply_none(req);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  apply_readahead(ctx(req));
  auto r = fsys(req).getattr(in_ino(ino));
  if (!r.ok()) return reply_err(req, r.status());
  struct stat st = to_stat(in_ino(ino), r.value());
  fuse_reply_attr(req, &st, ctx(req).attr_timeout);
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  SetAttr sa;
  sa.mode = to_set & FUSE_SET_ATTR_MODE;
  sa.uid = to_set & FUSE_SET_ATTR_UID;
  sa.gid = to_set & FUSE_SET_ATTR_GID;
  sa.size = to_set & FUSE_SET_ATTR_SIZE;
  sa.atime = to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW);
  sa.mtime = to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW);
  sa.atime_now = to_set & FUSE_SET_ATTR_ATIME_NOW;
  sa.mtime_now = to_set & FUSE_SET_ATTR_MTIME_NOW;
  sa.ctime = to_set & FUSE_SET_ATTR_CTIME;
  sa.new_mode = attr->st_mode;
  sa.new_uid = attr->st_uid;
  sa.new_gid = attr->st_gid;
  sa.new_size = uint64_t(attr->st_size);
  sa.new_atime = {attr->st_atim.tv_sec, uint32_t(attr->st_atim.tv_nsec)};
  sa.new_mtime = {attr->st_mtim.tv_sec, uint32_t(attr->st_mtim.tv_nsec)};
  sa.new_ctime = {attr->st_ctim.tv_sec, uint32_t(attr->st_ctim.tv_nsec)};
  auto r = fsys(req).setattr(in_ino(ino), sa, caller_of(req));
  if (!r.ok()) return reply_err(req, r.status());
  struct stat st = to_stat(in_ino(ino), r.value());
  fuse_reply_attr(req, &st, ctx(req).attr_timeout);
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  auto r = fsys(req).readlink(in_ino(ino));
  if (!r.ok()) return reply_err(req, r.status());
  fuse_reply_readlink(req, r->c_str());
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  reply_entry(req, fsys(req).mknod(in_ino(parent), name, mode, rdev, caller_of(req)));
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  reply_entry(req, fsys(req).mkdir(in_ino(parent), name, mode, caller_of(req)));
}

void op_symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  reply_entry(req, fsys(req).symlink(in_ino(parent), name, target, caller_of(req)));
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  reply_entry(req, fsys(req).link(in_ino(ino), in_ino(newparent), newname));
}

void reply_status(fuse_req_t req, const Status& st) { fuse_reply_err(req, st.ok() ? 0 : errno_of(st)); }

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) { reply_status(req, fsys(req).unlink(in_ino(parent), name)); }

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) { reply_status(req, fsys(req).rmdir(in_ino(parent), name)); }

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
               unsigned int flags) {
  reply_status(req, fsys(req).rename(in_ino(parent), name, in_ino(newparent), newname, flags));
}

// How a file handle meets the kernel's page cache. Every change passes
// through this kernel, so its cache stays valid across opens (keep_cache).
//  - a dropbehind file, -o dropbehind, and O_DIRECT where the kernel lets
//    such handles be mapped (Linux 6.6, FUSE_DIRECT_IO_ALLOW_MMAP:
//    fuse/init_flags.h): FOPEN_DIRECT_IO, so the data never enters the page
//    cache, and the daemon drops what other handles or mappings cached of
//    each range written (op_write).
//  - O_DIRECT on older kernels: the kernel's own direct I/O path (no
//    FOPEN_DIRECT_IO), which can be mapped and keeps the cache coherent
//    around synchronous direct writes (not asynchronous ones, see
//    docs/design.md). Its writes of unaligned tails fall back to the page
//    cache with the pages locked while the daemon answers, so the daemon
//    must not invalidate anything from those requests.
void set_open_mode(fuse_req_t req, uint64_t ino, fuse_file_info* fi) {
  fi->fh = 0;
  if (fi->flags & O_NOATIME) fi->fh |= kNoatimeHandle;
  const bool o_direct = fi->flags & O_DIRECT;
  if (o_direct) fi->fh |= kDirectHandle | kDropbehindHandle;
  if ((o_direct && ctx(req).direct_io_mmap) || (!o_direct && fsys(req).wants_dropbehind(ino))) {
    fi->direct_io = 1;
    fi->fh |= kUncachedHandle | kDropbehindHandle;
  } else {
    fi->keep_cache = 1;
  }
}

// An open for reading is an access (Filesystem::access_at_open).
void access_at_open(fuse_req_t req, uint64_t ino, const fuse_file_info* fi) {
  if ((fi->flags & O_ACCMODE) == O_WRONLY || (fi->flags & O_NOATIME)) return;
  auto moved = fsys(req).access_at_open(ino);
  if (moved.ok() && moved.value()) invalidate_attrs(req, ino);
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Status st = fsys(req).open(in_ino(ino), (fi->flags & O_TRUNC) != 0, caller_of(req));
  if (!st.ok()) return reply_err(req, st);
  set_open_mode(req, in_ino(ino), fi);
  access_at_open(req, in_ino(ino), fi);
  if (fuse_reply_open(req, fi) != 0) fsys(req).release(in_ino(ino));
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  auto r = fsys(req).mknod(in_ino(parent), name, S_IFREG | (mode & 07777), 0, caller_of(req));
  if (!r.ok()) return reply_err(req, r.status());
  Status st = fsys(req).open(r->ino, false);
  if (!st.ok()) {
    fsys(req).forget(r->ino, 1);
    return reply_err(req, st);
  }
  set_open_mode(req, r->ino, fi);
  fuse_entry_param p = to_entry(req, r.value());
  if (fuse_reply_create(req, &p, fi) != 0) {
    fsys(req).release(r->ino);
    fsys(req).forget(r->ino, 1);
  }
}

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  // The data is read into a pooled buffer and sent from it, with no copy in
  // between.
  auto span = ctx(req).read_buffers.lend();
  auto r = fsys(req).read_span(in_ino(ino), uint64_t(off), size, *span, fi && (fi->fh & kNoatimeHandle));
  if (!r.ok()) return reply_err(req, r.status());
  fuse_reply_buf(req, reinterpret_cast<const char*>(span->data()) + uint64_t(off) % 4096, r.value());
}

void op_write(fuse_req_t req, fuse_ino_t ino, const char* data, size_t size, off_t off, fuse_file_info* fi) {
  const uint64_t fh = fi ? fi->fh : 0;
  auto r = fsys(req).write(in_ino(ino), uint64_t(off), data, size, fh & kDropbehindHandle, caller_of(req));
  if (!r.ok()) return reply_err(req, r.status());
  // A write through a FOPEN_DIRECT_IO handle bypassed the page cache:
  // pages other handles or mappings cached for this range are stale now.
  // The new bytes are already what the daemon returns, so a read racing
  // with this gets them. Only from requests that hold no page of the file:
  // not the kernel's writeback of a mapping's pages (fi->writepage), and
  // not writes of handles that use the page cache at all (the fallback of
  // unaligned O_DIRECT tails) — invalidating would wait for the page the
  // request itself holds (both deadlocks were found by generic/085, 067).
  if ((fh & kUncachedHandle) && !(fi && fi->writepage) && ctx(req).se && r.value() > 0)
    fuse_lowlevel_notify_inval_inode(ctx(req).se, ino, off, off_t(r.value()));
  fuse_reply_write(req, r.value());
}

void op_flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) { reply_status(req, fsys(req).flush(in_ino(ino))); }

void op_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  fsys(req).release(in_ino(ino));
  fuse_reply_err(req, 0);
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info*) {
  reply_status(req, fsys(req).fsync(in_ino(ino), datasync != 0));
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  bool moved = false;
  auto r = fsys(req).opendir(in_ino(ino), (fi->flags & O_NOATIME) ? nullptr : &moved);
  if (!r.ok()) return reply_err(req, r.status());
  if (moved) invalidate_attrs(req, in_ino(ino));
  auto* h = new DirHandle{r.value()};
  fi->fh = reinterpret_cast<uint64_t>(h);
  fi->cache_readdir = 0;
  if (fuse_reply_open(req, fi) != 0) delete h;
}

void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  auto* h = reinterpret_cast<DirHandle*>(fi->fh);
  if (off == 0) {
    // rewinddir(): the listing starts over and shows what is there now
    // (opendir counted the access).
    auto r = fsys(req).opendir(in_ino(ino));
    if (!r.ok()) return reply_err(req, r.status());
    h->end_index = r.value();
  }
  std::vector<char> buf(size);
  size_t used = 0;
  Status st = fsys(req).readdir(in_ino(ino), uint64_t(off), plus, [&](const DirEntryOut& e) {
    size_t need;
    if (plus) {
      fuse_entry_param p = to_entry(req, e.entry);
      need = fuse_add_direntry_plus(req, buf.data() + used, size - used, e.name.c_str(), &p, off_t(e.next_offset));
    } else {
      struct stat st;
      std::memset(&st, 0, sizeof st);
      st.st_ino = e.ino;
      st.st_mode = uint32_t(e.type) << 12;
      need = fuse_add_direntry(req, buf.data() + used, size - used, e.name.c_str(), &st, off_t(e.next_offset));
    }
    if (need > size - used) return false;
    used += need;
    return true;
  }, h->end_index.load());
  if (!st.ok() && used == 0) return reply_err(req, st);
  fuse_reply_buf(req, buf.data(), used);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  readdir_common(req, ino, size, off, fi, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  readdir_common(req, ino, size, off, fi, true);
}

void op_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  delete reinterpret_cast<DirHandle*>(fi->fh);
  fuse_reply_err(req, 0);
}

void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info*) {
  reply_status(req, fsys(req).fsync(in_ino(ino), datasync != 0));
}

void op_statfs(fuse_req_t req, fuse_ino_t) {
  FsStats s = fsys(req).statfs();
  struct statvfs v;
  std::memset(&v, 0, sizeof v);
  v.f_bsize = s.block_size;
  v.f_frsize = s.block_size;
  v.f_blocks = s.total_bytes / s.block_size;
  v.f_bfree = s.free_bytes / s.block_size;
  v.f_bavail = s.avail_bytes / s.block_size;
  v.f_files = s.files;
  v.f_ffree = s.files_free;
  v.f_favail = s.files_free;
  v.f_namemax = s.name_max;
  fuse_reply_statfs(req, &v);
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  reply_status(req, fsys(req).setxattr(in_ino(ino), name, Bytes(value, value + size), flags, caller_of(req)));
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  auto r = fsys(req).getxattr(in_ino(ino), name);
  if (!r.ok()) return reply_err(req, r.status());
  if (size == 0) return void(fuse_reply_xattr(req, r->size()));
  if (r->size() > size) return void(fuse_reply_err(req, ERANGE));
  fuse_reply_buf(req, reinterpret_cast<const char*>(r->data()), r->size());
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  auto r = fsys(req).listxattr(in_ino(ino), fuse_req_ctx(req)->uid == 0);
  if (!r.ok()) return reply_err(req, r.status());
  std::string all;
  for (auto& n : r.value()) {
    all += n;
    all.push_back('\0');
  }
  if (size == 0) return void(fuse_reply_xattr(req, all.size()));
  if (all.size() > size) return void(fuse_reply_err(req, ERANGE));
  fuse_reply_buf(req, all.data(), all.size());
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  reply_status(req, fsys(req).removexattr(in_ino(ino), name));
}

void op_access(fuse_req_t req, fuse_ino_t ino, int) {
  // default_permissions makes the kernel check modes and ACLs; existence is ours.
  auto r = fsys(req).getattr(in_ino(ino));
  reply_status(req, r.status());
}

void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, fuse_file_info*) {
  if (off < 0 || len <= 0) return void(fuse_reply_err(req, EINVAL));
  reply_status(req, fsys(req).fallocate(in_ino(ino), mode, uint64_t(off), uint64_t(len), caller_of(req)));
}

void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info*) {
  // Linux: SEEK_DATA and SEEK_HOLE at a negative offset are ENXIO (there
  // is no data or hole there), not EINVAL.
  if (off < 0) return void(fuse_reply_err(req, (whence == SEEK_DATA || whence == SEEK_HOLE) ? ENXIO : EINVAL));
  auto r = fsys(req).lseek(in_ino(ino), uint64_t(off), whence);
  if (!r.ok()) return reply_err(req, r.status());
  fuse_reply_lseek(req, off_t(r.value()));
}

void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info*, fuse_ino_t ino_out,
                        off_t off_out, fuse_file_info*, size_t len, int flags) {
  if (flags != 0) return void(fuse_reply_err(req, EINVAL));
  const bool clone = ctx(req).clone_intents.take(fuse_req_ctx(req)->pid, in_ino(ino_out));
  auto r = fsys(req).copy_file_range(in_ino(ino_in), uint64_t(off_in), in_ino(ino_out), uint64_t(off_out), len,
                                     caller_of(req),
                                     clone ? Filesystem::CopyMode::kShareOnly : Filesystem::CopyMode::kShareOrCopy);
  // The kernel copies on its own when told EOPNOTSUPP or EXDEV: a clone
  // that must not become a copy never answers with those.
  if (!r.ok() && clone && (r.status().code() == EOPNOTSUPP || r.status().code() == EXDEV))
    return void(fuse_reply_err(req, EINVAL));
  if (!r.ok()) return reply_err(req, r.status());
  fuse_reply_write(req, r.value());
}

nlohmann::json stats_json(Filesystem& fs) {
  nlohmann::json j;
  Engine& e = fs.engine();
  const DataStats& d = fs.data().stats();
  const WritebackStats& w = fs.writeback().stats();
  const CommitStats cs = fs.commit_stats();
  {
    std::lock_guard lk(e.mutex());
    const SpaceUsage u = fs.space_usage_locked();
    const DevStats& ds = e.dev_stats();
    j["device"] = e.device().name();
    j["generation"] = e.last_committed();
    j["errors"] = {{"read", ds.read_errors},         {"write", ds.write_errors},
                   {"checksum", ds.csum_errors},     {"corrected", ds.corrected},
                   {"uncorrectable", ds.uncorrectable}};
    const NodeStoreStats& ns = e.store().stats();
    j["metadata"] = {{"node_reads", ns.reads}, {"node_cache_hits", ns.cache_hits}, {"node_writes", ns.writes}};
    // The same account df and `cairnctl filesystem usage` show.
    j["space"] = {{"total_bytes", u.df_size()}, {"used_bytes", u.df_used()}, {"available_bytes", u.df_available()},
                  {"referenced_bytes", e.bytes_used()}};
    j["usage"] = space_usage_json(u);
    const ChunkMap& cm = e.chunk_map();
    const SpaceAllocator& sa = e.allocator();
    j["chunks"] = {{"count", cm.count()},
                   {"data_bytes", cm.bytes_of(kChunkData)},
                   {"metadata_bytes", cm.bytes_of(kChunkMetadata)},
                   {"system_bytes", cm.bytes_of(kChunkSystem)},
                   {"data_free_bytes", sa.free_in_chunks(kChunkData)},
                   {"metadata_free_bytes", sa.free_in_chunks(kChunkMetadata)},
                   {"unallocated_bytes", cm.unallocated(kProfileSingle)},
                   {"reclaimed", sa.chunks_reclaimed()},
                   {"free_space_from", e.free_space_source()}};
  }
  j["data"] = {{"bytes_read", d.bytes_read.load()}, {"bytes_written", d.bytes_written.load()}};
  j["cache"] = {{"dirty_bytes", fs.writeback().dirty_bytes()}, {"dontcache_writes", w.dontcache_writes.load()},
                {"cached_bytes", fs.writeback().cached_bytes()},
                {"reserved_bytes", fs.writeback().reserved_bytes()},
                {"dropped_behind_pages", w.dropped_behind.load()}};
  j["writeback"] = {{"ordered_extents", w.extents.load()}, {"bytes", w.bytes.load()},
                    {"async_checksums", w.async_csums.load()}, {"sync_checksums", w.sync_csums.load()},
                    {"io_errors", w.io_errors.load()}};
  j["compression"] = {{"mount_default", compress_spec_name(fs.writeback().options().compress)},
                      {"extents", w.compressed_extents.load()},
                      {"bytes_in", w.compressed_in.load()},
                      {"bytes_out", w.compressed_out.load()},
                      {"rejected_bytes", w.compress_rejected.load()},
                      {"guessed_incompressible_bytes", w.compress_guessed.load()},
                      {"skipped_bytes", w.compress_skipped.load()},
                      {"backoffs", w.compress_backoffs.load()}};
  j["io"] = {{"io_uring_completions", fs.io().completions()}, {"sync_reads", fs.io().sync_reads()},
             {"queue_depth", fs.io().queue_depth()},          {"o_direct", fs.io().direct()},
             {"rwf_dontcache", fs.io().dontcache_supported()}};
  j["commits"] = {{"requests", cs.requests}, {"commits", cs.commits}};
  const FsyncLogStats ls = fs.fsync_log_stats();
  const ReplayReport& rp = fs.log_replay();
  j["fsync_log"] = {{"fsyncs_logged", ls.fsyncs}, {"writes", ls.writes},   {"bytes", ls.bytes},
                    {"fallbacks", ls.fallbacks},  {"replayed_writes", rp.writes}, {"replayed_files", rp.files},
                    {"fallback_reasons",
                     {{"changed_in_transaction", ls.fallback_changed},
                      {"new_data_chunk", ls.fallback_new_chunk},
                      {"unloggable", ls.fallback_unloggable},
                      {"too_big", ls.fallback_too_big},
                      {"no_log_space", ls.fallback_no_log}}}};
  const InodeTableStats it = fs.inode_table_stats();
  j["inodes"] = {{"resident", it.resident},       {"unused", it.unused},
                 {"evicted", it.evicted},         {"parked", it.parked},
                 {"parked_total", it.parked_total}, {"errors_kept", it.errors_kept},
                 {"errors_dropped", it.errors_dropped}};
  return j;
}

void reply_json(fuse_req_t req, const nlohmann::json& j, size_t out_bufsz) {
  std::string out = j.dump();
  if (out.size() + 1 > out_bufsz) return void(fuse_reply_err(req, EOVERFLOW));
  std::vector<char> buf(out_bufsz, 0);
  std::memcpy(buf.data(), out.data(), out.size());
  fuse_reply_ioctl(req, 0, buf.data(), buf.size());
}

// cairnctl verify: the file's data blocks, every copy, with repair.
void verify_file(fuse_req_t req, fuse_ino_t ino, size_t out_bufsz) {
  Filesystem& fs = fsys(req);
  ScrubOptions o;
  o.repair = !fs.engine().read_only();
  Scrubber s(fs.engine(), fs.io(), o);
  Status st = s.run_inode(root_of_vino(in_ino(ino)), ino_of_vino(in_ino(ino)));
  nlohmann::json j = scrub_report_json(s.progress(), s.errors(), 0, 40);
  if (!st.ok()) j["error"] = st.message();
  reply_json(req, j, out_bufsz);
}

nlohmann::json subvolume_json(const SubvolumeInfo& s) {
  return {{"id", s.id},          {"parent", s.parent},   {"path", s.path},
          {"readonly", s.read_only}, {"deleting", s.dead}, {"generation", s.generation}};
}

// May `c` add or remove names in the directory (write and search permission)?
bool may_change_dir(const InodeItem& d, const Caller& c) {
  if (c.uid == 0) return true;
  const uint32_t bits = c.uid == d.uid ? (d.mode >> 6) : c.in_group(d.gid) ? (d.mode >> 3) : d.mode;
  return (bits & 3) == 3;
}

// cairnctl subvolume: see control.h.
void subvolume_ioctl(fuse_req_t req, fuse_ino_t fino, unsigned cmd, const void* in_buf, size_t in_bufsz,
                     size_t out_bufsz) {
  Filesystem& fs = fsys(req);
  const uint64_t ino = in_ino(fino);
  const Caller c = caller_of(req);
  nlohmann::json args = nlohmann::json::object();
  if (_IOC_DIR(cmd) & _IOC_WRITE) {
    std::string in(static_cast<const char*>(in_buf), strnlen(static_cast<const char*>(in_buf), in_bufsz));
    args = nlohmann::json::parse(in, nullptr, false);
    if (args.is_discarded() || !args.is_object()) return void(fuse_reply_err(req, EINVAL));
  }
  if (cmd == CAIRN_IOC_SUBVOL_LIST) {
    auto r = fs.list_subvolumes();
    if (!r.ok()) return reply_err(req, r.status());
    nlohmann::json all = nlohmann::json::array();
    for (const auto& s : r.value()) all.push_back(subvolume_json(s));
    return reply_json(req, {{"subvolumes", all}}, out_bufsz);
  }
  if (cmd == CAIRN_IOC_SUBVOL_SHOW) {
    auto r = fs.subvolume_show(ino);
    if (!r.ok()) return reply_err(req, r.status());
    nlohmann::json j = subvolume_json(r.value());
    j["referenced_bytes"] = r->referenced_bytes;
    j["exclusive_bytes"] = r->exclusive_bytes;
    j["shared_bytes"] = r->referenced_bytes - r->exclusive_bytes;
    return reply_json(req, j, out_bufsz);
  }
  if (cmd == CAIRN_IOC_SUBVOL_SYNC) {
    Status st = fs.wait_subvolumes_dropped();
    if (!st.ok()) return reply_err(req, st);
    return reply_json(req, {{"synced", true}}, out_bufsz);
  }
  const std::string name = args.value("name", std::string());
  auto dir = fs.getattr(ino);
  if (!dir.ok()) return reply_err(req, dir.status());
  if (!S_ISDIR(dir->mode)) return void(fuse_reply_err(req, ENOTDIR));
  if (!may_change_dir(dir.value(), c)) return void(fuse_reply_err(req, EACCES));
  Result<Entry> made = Status::Ok();
  if (cmd == CAIRN_IOC_SUBVOL_CREATE) {
    made = fs.create_subvolume(ino, name, c);
  } else if (cmd == CAIRN_IOC_SUBVOL_SNAPSHOT) {
    made = fs.snapshot_subvolume(args.value("source", uint64_t(0)), ino, name, args.value("readonly", false), c);
  } else {
    Status st = fs.delete_subvolume(ino, name, c);
    if (!st.ok()) return reply_err(req, st);
    // The kernel's dentry (and everything below it) goes.
    if (ctx(req).se) fuse_lowlevel_notify_inval_entry(ctx(req).se, fino, name.c_str(), name.size());
    invalidate_attrs(req, ino);
    return reply_json(req, {{"deleted", name}}, out_bufsz);
  }
  if (!made.ok()) return reply_err(req, made.status());
  // The lookup reference the call took is not the kernel's: give it back.
  fs.forget(made->ino, 1);
  // A negative dentry the kernel may hold for the name is stale now.
  if (ctx(req).se) fuse_lowlevel_notify_inval_entry(ctx(req).se, fino, name.c_str(), name.size());
  invalidate_attrs(req, ino);
  return reply_json(req, {{"id", root_of_vino(made->ino)}, {"ino", made->ino}}, out_bufsz);
}

void op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void*, fuse_file_info*, unsigned flags,
              const void* in_buf, size_t in_bufsz, size_t out_bufsz) {
  if (flags & FUSE_IOCTL_COMPAT) return void(fuse_reply_err(req, ENOSYS));
  if (cmd == CAIRN_IOC_VERIFY) return verify_file(req, ino, out_bufsz);
  if (cmd == CAIRN_IOC_FILE_SPACE) {
    auto r = fsys(req).file_space(in_ino(ino));
    if (!r.ok()) return reply_err(req, r.status());
    nlohmann::json j{{"referenced_bytes", r->referenced},
                     {"exclusive_bytes", r->exclusive},
                     {"shared_bytes", r->referenced - r->exclusive}};
    for (auto& [type, u] : r->by_compression)
      j["compression"][compress_type_name(type)] = {
          {"disk_bytes", u.disk}, {"uncompressed_bytes", u.uncompressed}, {"referenced_bytes", u.referenced}};
    return reply_json(req, j, out_bufsz);
  }
  if (cmd == CAIRN_IOC_SUBVOL_CREATE || cmd == CAIRN_IOC_SUBVOL_SNAPSHOT || cmd == CAIRN_IOC_SUBVOL_DELETE ||
      cmd == CAIRN_IOC_SUBVOL_LIST || cmd == CAIRN_IOC_SUBVOL_SHOW || cmd == CAIRN_IOC_SUBVOL_SYNC)
    return subvolume_ioctl(req, ino, cmd, in_buf, in_bufsz, out_bufsz);
  if (cmd == CAIRN_IOC_CLONE_NEXT) {
    ctx(req).clone_intents.expect(fuse_req_ctx(req)->pid, in_ino(ino));
    return reply_json(req, nlohmann::json{{"clone_next", true}}, out_bufsz);
  }
  if (cmd != CAIRN_IOC_STATS && cmd != CAIRN_IOC_SCRUB_START && cmd != CAIRN_IOC_SCRUB_STATUS &&
      cmd != CAIRN_IOC_SCRUB_CANCEL)
    return void(fuse_reply_err(req, ENOTTY));
  if (ino != FUSE_ROOT_ID) return void(fuse_reply_err(req, ENOTTY));
  // Root, or whoever owns the filesystem's root directory.
  const fuse_ctx* c = fuse_req_ctx(req);
  auto root = fsys(req).getattr(kFirstInode);
  if (c->uid != 0 && (!root.ok() || root->uid != c->uid)) return void(fuse_reply_err(req, EPERM));
  if (cmd == CAIRN_IOC_STATS) return reply_json(req, stats_json(fsys(req)), out_bufsz);
  ScrubService* scrub = ctx(req).scrub;
  if (!scrub) return void(fuse_reply_err(req, EROFS));
  if (cmd == CAIRN_IOC_SCRUB_START) {
    std::string in(static_cast<const char*>(in_buf), strnlen(static_cast<const char*>(in_buf), in_bufsz));
    auto args = nlohmann::json::parse(in, nullptr, false);
    if (args.is_discarded() || !args.is_object()) return void(fuse_reply_err(req, EINVAL));
    Status st = scrub->start(args.value("limit_bytes_per_sec", uint64_t(0)), args.value("resume", false));
    if (!st.ok()) return reply_err(req, st);
  } else if (cmd == CAIRN_IOC_SCRUB_CANCEL) {
    Status st = scrub->cancel();
    if (!st.ok()) return reply_err(req, st);
  }
  reply_json(req, scrub->status(), out_bufsz);
}

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops o;
  std::memset(&o, 0, sizeof o);
  o.init = op_init;
  o.destroy = op_destroy;
  o.lookup = op_lookup;
  o.forget = op_forget;
  o.forget_multi = op_forget_multi;
  o.getattr = op_getattr;
  o.setattr = op_setattr;
  o.readlink = op_readlink;
  o.mknod = op_mknod;
  o.mkdir = op_mkdir;
  o.symlink = op_symlink;
  o.link = op_link;
  o.unlink = op_unlink;
  o.rmdir = op_rmdir;
  o.rename = op_rename;
  o.open = op_open;
  o.create = op_create;
  o.read = op_read;
  o.write = op_write;
  o.flush = op_flush;
  o.release = op_release;
  o.fsync = op_fsync;
  o.opendir = op_opendir;
  o.readdir = op_readdir;
  o.readdirplus = op_readdirplus;
  o.releasedir = op_releasedir;
  o.fsyncdir = op_fsyncdir;
  o.statfs = op_statfs;
  o.setxattr = op_setxattr;
  o.getxattr = op_getxattr;
  o.listxattr = op_listxattr;
  o.removexattr = op_removexattr;
  o.access = op_access;
  o.fallocate = op_fallocate;
  o.lseek = op_lseek;
  o.copy_file_range = op_copy_file_range;
  o.ioctl = op_ioctl;
  return o;
}

}  // namespace

void invalidate_kernel_attrs(FuseContext& c, uint64_t ino) {
  if (c.se) fuse_lowlevel_notify_inval_inode(c.se, out_ino(ino), -1, 0);
}

void apply_readahead(FuseContext& c) {
  static std::once_flag once;
  std::call_once(once, [&] {
    if (c.bdi.empty() || c.readahead_kb == 0) return;
    std::string path = "/sys/class/bdi/" + c.bdi + "/read_ahead_kb";
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f) return;  // not root, or no sysfs: the kernel's default stays
    std::fprintf(f, "%u\n", c.readahead_kb);
    std::fclose(f);
  });
}

void set_root_ino(uint64_t ino) { g_root_ino = ino; }

const fuse_lowlevel_ops& cairn_fuse_ops() {
  static const fuse_lowlevel_ops ops = make_ops();
  return ops;
}

}  // namespace cairn
