// fsck.cairn: check an unmounted Cairn filesystem. Exit codes as fsck(8):
// 0 clean, 1 errors corrected, 4 errors left uncorrected, 8 operational
// error, 16 usage error.
#include <sys/file.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "cairn_version.h"
#include "check/checker.h"
#include "dev/block_device.h"

using namespace cairn;

namespace {
enum Exit { kClean = 0, kCorrected = 1, kUncorrected = 4, kOperational = 8, kUsage = 16 };
}

int main(int argc, char** argv) {
  CLI::App app{"Check a Cairn filesystem (unmounted) for consistency."};
  app.set_version_flag("-V,--version", std::string("fsck.cairn ") + CAIRN_VERSION_STRING);
  std::string image;
  bool no_write = false, json = false, verbose = false, force = false, preen = false;
  app.add_option("IMAGE", image, "Image file or block device")->required();
  app.add_flag("-n,--no-write", no_write, "Never write (the default: this version only checks)");
  app.add_flag("-f,--force", force, "Check even if it looks clean (always done)");
  app.add_flag("-p,--preen", preen, "Non-interactive, as fsck -p (checking only)");
  app.add_flag("--json", json, "Print a machine-readable report");
  app.add_flag("-v,--verbose", verbose, "Print statistics");
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kUsage;
  }
  auto dev = FileDevice::open(image, FileDeviceOptions{true, false});
  if (!dev.ok()) {
    std::cerr << "fsck.cairn: " << dev.status().message() << "\n";
    return kOperational;
  }
  // The daemon holds an exclusive lock while mounted: checking a live image
  // would report the running transaction's half-written state as damage.
  if (flock(dev.value()->fd(), LOCK_SH | LOCK_NB) != 0) {
    std::cerr << "fsck.cairn: " << image << " is in use (mounted?); unmount it first\n";
    return kOperational;
  }
  CheckOptions opts;
  const bool tty = !json && isatty(STDERR_FILENO);
  if (tty)
    opts.progress = [](double f) {
      std::fprintf(stderr, "\rChecking: %3d%%", int(f * 100));
      std::fflush(stderr);
    };
  auto rep = check_filesystem(*dev.value(), opts);
  if (tty) std::fprintf(stderr, "\r              \r");
  if (!rep.ok()) {
    std::cerr << "fsck.cairn: " << image << ": " << rep.status().message() << "\n";
    return kOperational;
  }
  const CheckReport& r = rep.value();
  if (json) {
    auto j = r.to_json();
    j["device"] = image;
    std::cout << j.dump(2) << "\n";
  } else {
    for (const auto& p : r.problems) std::cout << (p.warning ? "WARNING: " : "ERROR: ") << p.message << "\n";
    if (verbose || !r.clean())
      std::cout << image << ": generation " << r.stats.generation << ", " << r.stats.trees << " trees, " << r.stats.nodes
                << " nodes, " << r.stats.items << " items, " << r.stats.inodes << " inodes, " << r.stats.data_extents
                << " data extents\n";
    std::cout << image << ": " << (r.clean() ? "clean" : std::to_string(r.problems.size()) + " problem(s) found") << "\n";
  }
  return r.clean() ? kClean : kUncorrected;
}
