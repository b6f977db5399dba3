#include "control_client.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <vector>

#include "fuse/control.h"

namespace cairn::ctl {

using nlohmann::json;

int fail(const std::string& msg, int code) {
  std::cerr << "cairnctl: " << msg << "\n";
  return code;
}

Result<json> control(const std::string& path, unsigned long cmd, const json* request) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Status::Error(errno, path + ": " + std::strerror(errno));
  std::vector<char> buf(kCtlBufferSize, 0);
  if (request) {
    std::string in = request->dump();
    std::memcpy(buf.data(), in.data(), std::min(in.size(), buf.size() - 1));
  }
  int r = ioctl(fd, cmd, buf.data());
  int e = errno;
  ::close(fd);
  if (r < 0) {
    if (e == ENOTTY || e == ENOSYS) return Status::Error(e, path + " is not on a mounted Cairn filesystem (or not its root)");
    if (e == EPERM || e == EACCES) return Status::Error(e, path + ": permission denied (root or the filesystem's owner only)");
    if (e == EBUSY) return Status::Error(e, path + ": a scrub is already running");
    if (e == ENOENT && cmd == CAIRN_IOC_SCRUB_CANCEL) return Status::Error(e, path + ": no scrub is running");
    if (e == ENOENT) return Status::Error(e, path + ": no scrub to resume");
    if (e == EALREADY) return Status::Error(e, path + ": the last scrub finished; use 'scrub start'");
    if (e == EROFS) return Status::Error(e, path + ": mounted read-only");
    return Status::Error(e, path + ": " + std::strerror(e));
  }
  auto j = json::parse(std::string(buf.data()), nullptr, false);
  if (j.is_discarded()) return Status::Error(EPROTO, "the daemon sent a malformed reply");
  return j;
}

}  // namespace cairn::ctl
