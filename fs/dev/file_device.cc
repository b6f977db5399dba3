#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "dev/block_device.h"
#include "util/full_io.h"

namespace cairn {

Result<std::unique_ptr<FileDevice>> FileDevice::open(const std::string& path, FileDeviceOptions opts) {
  int fd = ::open(path.c_str(), (opts.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) return Status::Error(errno, path + ": " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return Status::Error(e, path + ": " + std::strerror(e));
  }
  uint64_t size = 0;
  bool blk = S_ISBLK(st.st_mode);
  if (blk) {
    if (ioctl(fd, BLKGETSIZE64, &size) != 0) {
      int e = errno;
      ::close(fd);
      return Status::Error(e, path + ": cannot read block device size: " + std::strerror(e));
    }
  } else if (S_ISREG(st.st_mode)) {
    size = uint64_t(st.st_size);
  } else {
    ::close(fd);
    return Status::Invalid(path + ": not a regular file or block device");
  }
  if (opts.exclusive_lock && flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    ::close(fd);
    if (e == EWOULDBLOCK) return Status::Error(EBUSY, path + ": in use by another process (is it mounted?)");
    return Status::Error(e, path + ": cannot lock: " + std::strerror(e));
  }
  return std::unique_ptr<FileDevice>(new FileDevice(fd, path, size, blk));
}

FileDevice::~FileDevice() { ::close(fd_); }

Status FileDevice::read(uint64_t offset, void* buf, size_t len) { return pread_full(fd_, buf, len, offset, path_); }

void FileDevice::prefetch(uint64_t offset, size_t len) {
  // Asynchronous readahead into the page cache (a block device's too).
  (void)::posix_fadvise(fd_, off_t(offset), off_t(len), POSIX_FADV_WILLNEED);
}

Status FileDevice::write(uint64_t offset, const void* buf, size_t len) {
  return pwrite_full(fd_, buf, len, offset, path_);
}

Status FileDevice::flush() {
  if (::fdatasync(fd_) != 0) return Status::Error(errno, path_ + ": flush: " + std::strerror(errno));
  return Status::Ok();
}

}  // namespace cairn
