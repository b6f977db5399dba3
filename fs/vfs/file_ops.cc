// Filesystem: open files. Data goes through FileData under the inode's io_lock.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>

#include <mutex>
#include <vector>

#include "vfs/filesystem.h"
#include "vfs/setid.h"

namespace cairn {

Status Filesystem::open(uint64_t ino, bool truncate, const Caller& c) {
  std::shared_ptr<Inode> in;
  {
    std::lock_guard lk(engine_->mutex());
    ASSIGN_OR_RETURN(in, get_inode(ino));
    if (truncate && in->is_reg()) RETURN_IF_ERROR(writable(*in));
    in->open_count++;
  }
  if (truncate && in->is_reg()) {
    std::unique_lock io(in->io_lock);
    Status st = data_->truncate(*in, 0);
    if (!st.ok()) {
      release(ino);
      return st;
    }
    data_changed(*in, c, true);
  }
  return Status::Ok();
}

Result<bool> Filesystem::access_at_open(uint64_t ino) {
  std::lock_guard lk(engine_->mutex());
  ASSIGN_OR_RETURN(auto in, get_inode(ino));
  return touch_atime(*in);
}

bool Filesystem::touch_atime(Inode& in) {
  if (atime_ == AtimePolicy::kNever || !writable(in).ok()) return false;
  if (nodiratime_ && in.is_dir()) return false;
  const Timespec now = current_time();
  InodeItem& it = in.item;
  // relatime_need_update() of the kernel.
  constexpr int64_t kDay = 24 * 60 * 60;
  if (atime_ == AtimePolicy::kRelatime && it.mtime < it.atime && it.ctime < it.atime && now.sec - it.atime.sec < kDay)
    return false;
  if (it.atime == now) return false;
  it.atime = now;
  if (!in.dirty) in.dirty_atime_only = true;
  in.dirty = true;
  return true;
}

void Filesystem::data_changed(Inode& in, const Caller& c, bool mtime) {
  bool mode_changed;
  {
    std::lock_guard lk(engine_->mutex());
    const Timespec now = current_time();
    in.item.ctime = now;
    if (mtime) in.item.mtime = now;
    mode_changed = data_changed_by(in, c);
    mark_dirty(in);
  }
  if (mode_changed) attrs_changed(in.ino);
}

bool Filesystem::data_changed_by(Inode& in, const Caller& c) {
  if (!(in.item.mode & (S_ISUID | S_ISGID))) return false;
  const uint32_t m = mode_after(SetidChange::kData, in.item.mode, in.item.gid, c);
  if (m == in.item.mode) return false;
  in.item.mode = m;
  in.item.ctime = current_time();
  mark_dirty(in);
  return true;
}

void Filesystem::attrs_changed(uint64_t ino) {
  if (attrs_changed_hook_) attrs_changed_hook_(ino);
}

void Filesystem::release(uint64_t ino) {
  {
    std::lock_guard lk(engine_->mutex());
    auto it = inodes_.find(ino);
    if (it == inodes_.end()) return;
    if (it->second->open_count > 0) it->second->open_count--;
    Status st = try_evict(ino);
    if (!st.ok()) engine_->abort(st);
  }
  discard_deleted();
}

Result<std::shared_ptr<Inode>> Filesystem::file_for_read(uint64_t ino, bool noatime) {
  std::shared_ptr<Inode> in;
  {
    std::lock_guard lk(engine_->mutex());
    ASSIGN_OR_RETURN(in, get_inode(ino));
    if (in->is_dir()) return Status::Error(EISDIR, "is a directory");
    if (!noatime) touch_atime(*in);
  }
  return in;
}

Result<size_t> Filesystem::read(uint64_t ino, uint64_t off, size_t len, char* out, bool noatime) {
  ASSIGN_OR_RETURN(auto in, file_for_read(ino, noatime));
  std::shared_lock io(in->io_lock);
  return data_->read(*in, off, len, out);
}

Result<size_t> Filesystem::read_span(uint64_t ino, uint64_t off, size_t len, AlignedBuffer& span, bool noatime) {
  ASSIGN_OR_RETURN(auto in, file_for_read(ino, noatime));
  std::shared_lock io(in->io_lock);
  return data_->read_span(*in, off, len, span);
}

bool Filesystem::wants_dropbehind(uint64_t ino) {
  if (dropbehind_all_) return true;
  std::lock_guard lk(engine_->mutex());
  auto in = get_inode(ino);
  return in.ok() && (in.value()->item.flags & kInodeFlagDropbehind);
}

Result<size_t> Filesystem::write(uint64_t ino, uint64_t off, const char* buf, size_t len, bool dropbehind,
                                 const Caller& c) {
  std::shared_ptr<Inode> in;
  {
    std::lock_guard lk(engine_->mutex());
    ASSIGN_OR_RETURN(in, get_inode(ino));
    RETURN_IF_ERROR(writable(*in));
  }
  if (!in->is_reg()) return Status::Error(EINVAL, "not a regular file");
  std::shared_lock io(in->io_lock);
  ASSIGN_OR_RETURN(size_t n, writeback_->write(in, off, buf, len,
                                               dropbehind || dropbehind_all_ || (in->item.flags & kInodeFlagDropbehind)));
  data_changed(*in, c, true);
  return n;
}

Status Filesystem::fsync(uint64_t ino, bool datasync) {
  (void)datasync;  // the log record is as small as the change either way
  std::shared_ptr<Inode> in;
  {
    std::lock_guard lk(engine_->mutex());
    ASSIGN_OR_RETURN(in, get_inode(ino));
  }
  if (engine_->read_only()) return Status::Ok();
  if (in->is_dir()) {
    // A directory whose names and inode item (but its atime) are as the
    // last commit left them is durable already: nothing to commit.
    // sqlite's journal mode fsyncs the directory right after the journal's
    // fsync, which committed it (opendir moved only the atime).
    std::lock_guard lk(engine_->mutex());
    if ((!in->dirty || in->dirty_atime_only) && in->item.transid <= engine_->last_committed()) return Status::Ok();
  }
  Status wb = writeback_->flush_inode(in, true);
  Status err = writeback_->take_error(*in);
  if (!wb.ok() || !err.ok()) return Status::IoError("writeback failed: " + (!wb.ok() ? wb : err).message());
  // The file's data is on disk; a log write (or a commit, for what the log
  // cannot carry) makes the tree point at it.
  if (in->is_reg()) {
    auto logged = log_->persist(*in);
    if (logged.ok() && logged.value()) return Status::Ok();
  }
  return group_commit();
}

Status Filesystem::flush(uint64_t ino) {
  std::shared_ptr<Inode> in;
  {
    std::lock_guard lk(engine_->mutex());
    auto it = inodes_.find(ino);
    if (it == inodes_.end()) return Status::Ok();
    in = it->second;
  }
  Status err = writeback_->take_error(*in);
  if (!err.ok()) return Status::IoError("writeback failed: " + err.message());
  return Status::Ok();
}

Status Filesystem::fallocate(uint64_t ino, int mode, uint64_t off, uint64_t len, const Caller& c) {
  const int known = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
  if (mode & ~known) return Status::Error(EOPNOTSUPP, "fallocate mode not supported");
  if ((mode & FALLOC_FL_PUNCH_HOLE) && (mode & FALLOC_FL_ZERO_RANGE)) return Status::Error(EOPNOTSUPP, "bad mode");
  if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE)) return Status::Error(EOPNOTSUPP, "bad mode");
  if (len == 0) return Status::Invalid("zero length");
  std::shared_ptr<Inode> in;
  {
    std::lock_guard lk(engine_->mutex());
    ASSIGN_OR_RETURN(in, get_inode(ino));
    RETURN_IF_ERROR(writable(*in));
  }
  if (in->is_dir()) return Status::Error(EISDIR, "is a directory");
  if (!in->is_reg()) return Status::Error(ENODEV, "not a regular file");
  std::unique_lock io(in->io_lock);
  RETURN_IF_ERROR(writeback_->flush_inode(in, true));
  const bool keep = mode & FALLOC_FL_KEEP_SIZE;
  if (mode & FALLOC_FL_PUNCH_HOLE) RETURN_IF_ERROR(data_->punch_hole(*in, off, len));
  else if (mode & FALLOC_FL_ZERO_RANGE) RETURN_IF_ERROR(data_->zero_range(*in, off, len, keep));
  else RETURN_IF_ERROR(data_->preallocate(*in, off, len, keep));
  // file_modified() in the kernel: the set-ID rule for every mode; only
  // punching and zeroing change the bytes (mtime).
  data_changed(*in, c, mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE));
  return Status::Ok();
}

Result<uint64_t> Filesystem::lseek(uint64_t ino, uint64_t off, int whence) {
  std::shared_ptr<Inode> in;
  {
    std::lock_guard lk(engine_->mutex());
    ASSIGN_OR_RETURN(in, get_inode(ino));
  }
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return Status::Invalid("unsupported whence");
  std::unique_lock io(in->io_lock);
  RETURN_IF_ERROR(writeback_->flush_inode(in, true));
  return data_->seek(*in, off, whence);
}

}  // namespace cairn
