// cairnctl: talk to a mounted Cairn filesystem.
//   cairnctl stats [--json] MOUNTPOINT
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <vector>

#include "cairn_version.h"
#include "fuse/control.h"

using namespace cairn;

namespace {

int fail(const std::string& msg, int code = 1) {
  std::cerr << "cairnctl: " << msg << "\n";
  return code;
}

int stats(const std::string& mnt, bool json) {
  int fd = ::open(mnt.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail(mnt + ": " + std::strerror(errno));
  std::vector<char> buf(kCtlBufferSize, 0);
  int r = ioctl(fd, CAIRN_IOC_STATS, buf.data());
  int e = errno;
  ::close(fd);
  if (r < 0) {
    if (e == ENOTTY || e == ENOSYS) return fail(mnt + " is not the root of a mounted Cairn filesystem");
    if (e == EPERM || e == EACCES) return fail(mnt + ": permission denied (root or the filesystem's owner only)");
    return fail(mnt + ": " + std::strerror(e));
  }
  auto j = nlohmann::json::parse(std::string(buf.data()), nullptr, false);
  if (j.is_discarded()) return fail("the daemon sent a malformed reply");
  if (json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "device:      " << j["device"].get<std::string>() << "\n"
            << "generation:  " << j["generation"] << "\n";
  for (const char* group : {"errors", "space", "cache", "writeback", "io", "commits", "data", "metadata"}) {
    std::cout << group << ":\n";
    for (auto& [k, v] : j[group].items()) std::cout << "  " << k << ": " << v << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Control and inspect a mounted Cairn filesystem."};
  app.set_version_flag("-V,--version", std::string("cairnctl ") + CAIRN_VERSION_STRING);
  app.require_subcommand(1);
  std::string mnt;
  bool json = false;
  auto* st = app.add_subcommand("stats", "Error counters (kept across mounts), cache and I/O figures");
  st->add_option("MOUNTPOINT", mnt, "The mount point")->required();
  st->add_flag("--json", json, "Machine-readable output");
  CLI11_PARSE(app, argc, argv);
  if (*st) return stats(mnt, json);
  return 2;
}
