#include "populate.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <vector>

#include "vfs/filesystem.h"

namespace cairn {

namespace {

constexpr size_t kCopyChunk = 1 << 20;
// A sync (writeback and commit) this often keeps the dirty pages, the
// inode table and the running transaction bounded for any tree size.
constexpr uint64_t kSyncEveryBytes = 512ULL << 20;
constexpr uint64_t kSyncEveryEntries = 50000;

Status sys_error(const std::string& path, const char* what) {
  return Status::Error(errno, path + ": " + what + ": " + std::strerror(errno));
}

Timespec ts(const struct timespec& t) { return Timespec{int64_t(t.tv_sec), uint32_t(t.tv_nsec)}; }

class Populator {
 public:
  // The first progress report comes with the first entry, then every 250 ms.
  Populator(Filesystem& fs, const PopulateOptions& o) : fs_(fs), opts_(o) {
    caller_.uid = 0;
    caller_.gid = 0;
    caller_.umask = 0;  // modes exactly as in the source
  }

  Status run() {
    struct stat st;
    if (::lstat(opts_.rootdir.c_str(), &st) != 0) return sys_error(opts_.rootdir, "cannot read");
    if (!S_ISDIR(st.st_mode)) return Status::Invalid(opts_.rootdir + ": not a directory");
    const uint64_t root = fs_.root_ino();
    RETURN_IF_ERROR(copy_xattrs(opts_.rootdir, root, false));
    RETURN_IF_ERROR(copy_directory(opts_.rootdir, root, has_xattrs(root)));
    RETURN_IF_ERROR(set_attrs(opts_.rootdir, root, st, false));
    return fs_.sync();
  }

  const PopulateProgress& progress() const { return done_; }

 private:
  bool has_xattrs(uint64_t ino) {
    auto names = fs_.listxattr(ino, true);
    return names.ok() && !names->empty();
  }

  // Every entry of `dir` (sorted by name, so the same tree gives the same
  // layout), then the directory's own times (its children changed them).
  Status copy_directory(const std::string& dir, uint64_t ino, bool parent_inherits) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return sys_error(dir, "cannot list");
    std::vector<std::string> names;
    errno = 0;
    while (dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      names.emplace_back(e->d_name);
    }
    const int err = errno;
    ::closedir(d);
    if (err) {
      errno = err;
      return sys_error(dir, "cannot list");
    }
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) RETURN_IF_ERROR(copy_entry(dir + "/" + name, ino, name, parent_inherits));
    return Status::Ok();
  }

  Status copy_entry(const std::string& path, uint64_t parent, const std::string& name, bool parent_inherits) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) return sys_error(path, "cannot read");
    // A second name of an inode already copied: a hard link to it.
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
      auto seen = links_.find({st.st_dev, st.st_ino});
      if (seen != links_.end()) {
        auto e = fs_.link(seen->second, parent, name);
        if (!e.ok()) return e.status().with_context(path);
        fs_.forget(e->ino, 1);
        count_entry();
        return Status::Ok();
      }
    }
    const uint32_t perms = st.st_mode & 07777;
    Result<Entry> made = Status::Invalid("not made");
    if (S_ISDIR(st.st_mode)) {
      made = fs_.mkdir(parent, name, perms, caller_);
    } else if (S_ISLNK(st.st_mode)) {
      std::string target(size_t(st.st_size) + 1, '\0');
      const ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
      if (n < 0) return sys_error(path, "cannot read the link");
      target.resize(size_t(n));
      made = fs_.symlink(parent, name, target, caller_);
    } else if (S_ISREG(st.st_mode) || S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode) ||
               S_ISSOCK(st.st_mode)) {
      const uint64_t rdev = (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) ? uint64_t(st.st_rdev) : 0;
      made = fs_.mknod(parent, name, (st.st_mode & S_IFMT) | perms, rdev, caller_);
    } else {
      return Status::Invalid(path + ": a kind of file Cairn cannot hold");
    }
    if (!made.ok()) return made.status().with_context(path);
    const uint64_t ino = made->ino;
    Status st_copy = copy_inode(path, ino, st, parent_inherits);
    fs_.forget(ino, 1);
    RETURN_IF_ERROR(st_copy);
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) links_[{st.st_dev, st.st_ino}] = ino;
    count_entry();
    return Status::Ok();
  }

  Status copy_inode(const std::string& path, uint64_t ino, const struct stat& st, bool parent_inherits) {
    const bool is_link = S_ISLNK(st.st_mode);
    // What the new inode inherited from its parent (a default ACL, a
    // compression choice) but the source does not have goes again.
    RETURN_IF_ERROR(copy_xattrs(path, ino, parent_inherits));
    if (S_ISREG(st.st_mode)) RETURN_IF_ERROR(copy_data(path, ino, st));
    if (S_ISDIR(st.st_mode)) RETURN_IF_ERROR(copy_directory(path, ino, has_xattrs(ino)));
    return set_attrs(path, ino, st, is_link);
  }

  Status copy_xattrs(const std::string& path, uint64_t ino, bool drop_inherited) {
    std::vector<char> list;
    ssize_t n = ::llistxattr(path.c_str(), nullptr, 0);
    if (n < 0 && errno != ENOTSUP) return sys_error(path, "cannot list extended attributes");
    std::vector<std::string> names;
    if (n > 0) {
      list.resize(size_t(n));
      n = ::llistxattr(path.c_str(), list.data(), list.size());
      if (n < 0) return sys_error(path, "cannot list extended attributes");
      for (size_t i = 0; i < size_t(n); i += std::strlen(list.data() + i) + 1) names.emplace_back(list.data() + i);
    }
    if (drop_inherited) {
      auto have = fs_.listxattr(ino, true);
      if (have.ok())
        for (const std::string& h : have.value())
          if (std::find(names.begin(), names.end(), h) == names.end()) RETURN_IF_ERROR(fs_.removexattr(ino, h));
    }
    for (const std::string& name : names) {
      std::vector<char> value;
      ssize_t len = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
      if (len < 0) return sys_error(path, ("cannot read " + name).c_str());
      value.resize(size_t(len));
      len = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
      if (len < 0) return sys_error(path, ("cannot read " + name).c_str());
      Bytes b(value.begin(), value.begin() + len);
      Status st = fs_.setxattr(ino, name, b, 0, caller_);
      if (!st.ok()) return st.with_context(path + ": " + name);
    }
    return Status::Ok();
  }

  // The data ranges only (SEEK_DATA/SEEK_HOLE): holes stay holes, and the
  // size is set at the end for a file that ends in one.
  Status copy_data(const std::string& path, uint64_t ino, const struct stat& st) {
    int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
    if (fd < 0 && errno == EPERM) fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return sys_error(path, "cannot open");
    uint64_t end = 0;  // where the data written ends
    Status result = fs_.open(ino, false, caller_);
    if (result.ok()) {
      result = copy_ranges(fd, path, ino, uint64_t(st.st_size), &end);
      fs_.release(ino);
    }
    ::close(fd);
    RETURN_IF_ERROR(result);
    // A truncate waits for the file's writeback: only a file that ends in a
    // hole (or shrank while read) needs its size set.
    if (end == uint64_t(st.st_size)) return Status::Ok();
    SetAttr sa;
    sa.size = true;
    sa.new_size = uint64_t(st.st_size);
    return fs_.setattr(ino, sa, caller_).status().with_context(path);
  }

  Status copy_ranges(int fd, const std::string& path, uint64_t ino, uint64_t size, uint64_t* end) {
    buf_.resize(kCopyChunk);
    uint64_t off = 0;
    while (off < size) {
      off_t data = ::lseek(fd, off_t(off), SEEK_DATA);
      if (data < 0 && errno == ENXIO) break;  // a hole to the end
      if (data < 0) data = off_t(off);        // no SEEK_DATA here: copy everything
      off_t hole = ::lseek(fd, data, SEEK_HOLE);
      if (hole < 0) hole = off_t(size);
      for (uint64_t pos = uint64_t(data); pos < uint64_t(hole);) {
        const size_t want = size_t(std::min<uint64_t>(kCopyChunk, uint64_t(hole) - pos));
        const ssize_t n = ::pread(fd, buf_.data(), want, off_t(pos));
        if (n < 0) return sys_error(path, "cannot read");
        if (n == 0) return Status::Ok();  // shrank while being copied
        auto w = fs_.write(ino, pos, buf_.data(), size_t(n), false, caller_);
        if (!w.ok()) return w.status().with_context(path);
        pos += uint64_t(n);
        *end = pos;
        done_.bytes += uint64_t(n);
        since_sync_bytes_ += uint64_t(n);
        RETURN_IF_ERROR(maybe_sync());
      }
      off = uint64_t(hole);
    }
    return Status::Ok();
  }

  Status set_attrs(const std::string& path, uint64_t ino, const struct stat& st, bool is_link) {
    SetAttr sa;
    sa.uid = sa.gid = true;
    sa.new_uid = st.st_uid;
    sa.new_gid = st.st_gid;
    // chown clears set-ID bits, so the mode goes after it (a link has none).
    if (!is_link) {
      sa.mode = true;
      sa.new_mode = st.st_mode & 07777;
    }
    sa.atime = sa.mtime = true;
    sa.new_atime = ts(st.st_atim);
    sa.new_mtime = ts(st.st_mtim);
    return fs_.setattr(ino, sa, caller_).status().with_context(path);
  }

  void count_entry() {
    done_.entries++;
    since_sync_entries_++;
    (void)maybe_sync();
  }

  Status maybe_sync() {
    if (opts_.on_progress && std::chrono::steady_clock::now() - last_report_ > std::chrono::milliseconds(250)) {
      last_report_ = std::chrono::steady_clock::now();
      opts_.on_progress(done_);
    }
    if (since_sync_bytes_ < kSyncEveryBytes && since_sync_entries_ < kSyncEveryEntries) return Status::Ok();
    since_sync_bytes_ = since_sync_entries_ = 0;
    return fs_.sync();
  }

  Filesystem& fs_;
  const PopulateOptions& opts_;
  Caller caller_;
  PopulateProgress done_;
  std::map<std::pair<dev_t, ino_t>, uint64_t> links_;  // source inode -> ours, for hard links
  std::vector<char> buf_;
  uint64_t since_sync_bytes_ = 0, since_sync_entries_ = 0;
  std::chrono::steady_clock::time_point last_report_{};
};

}  // namespace

Result<PopulateProgress> populate_from_directory(std::shared_ptr<BlockDevice> dev, const PopulateOptions& opts) {
  MountOptions mo;
  ASSIGN_OR_RETURN(auto fs, Filesystem::mount(std::move(dev), mo));
  Populator p(*fs, opts);
  Status st = p.run();
  // Unmount either way: what was copied is committed, and the image is a
  // valid filesystem (short of what did not fit).
  Status um = fs->unmount();
  if (!st.ok() && st.code() == ENOSPC)
    return Status::NoSpace(st.message() + " (the filesystem is full after " + std::to_string(p.progress().entries) +
                           " entries and " + std::to_string(p.progress().bytes) + " data bytes: give a larger -s)");
  RETURN_IF_ERROR(st);
  RETURN_IF_ERROR(um);
  return p.progress();
}

}  // namespace cairn
