#include "util/full_io.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cairn {

Status pread_full(int fd, void* buf, size_t len, uint64_t offset, const std::string& what) {
  auto* p = static_cast<uint8_t*>(buf);
  while (len > 0) {
    const ssize_t n = ::pread(fd, p, len, off_t(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Error(errno, what + ": read at " + std::to_string(offset) + ": " + std::strerror(errno));
    if (n == 0) return Status::IoError(what + ": read past the end of the device at " + std::to_string(offset));
    p += n;
    offset += uint64_t(n);
    len -= size_t(n);
  }
  return Status::Ok();
}

Status pwrite_full(int fd, const void* buf, size_t len, uint64_t offset, const std::string& what) {
  const auto* p = static_cast<const uint8_t*>(buf);
  while (len > 0) {
    const ssize_t n = ::pwrite(fd, p, len, off_t(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = n < 0 ? errno : EIO;
      return Status::Error(e, what + ": write at " + std::to_string(offset) + ": " + std::strerror(e));
    }
    p += n;
    offset += uint64_t(n);
    len -= size_t(n);
  }
  return Status::Ok();
}

}  // namespace cairn
