// fsck.cairn: check an unmounted Cairn filesystem, and with --repair fix
// what can be fixed without guessing. Exit codes as fsck(8): 0 clean,
// 1 errors corrected, 4 errors left uncorrected, 8 operational error,
// 16 usage error.
#include <sys/file.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <algorithm>
#include <set>

#include "cairn_version.h"
#include "check/checker.h"
#include "check/compressed_extents.h"
#include "check/repair.h"
#include "dev/block_device.h"
#include "format/constants.h"
#include "io/io_engine.h"
#include "log/log_replay.h"
#include "scrub/scrubber.h"
#include "tree/engine.h"

using namespace cairn;

namespace {
enum Exit { kClean = 0, kCorrected = 1, kUncorrected = 4, kOperational = 8, kUsage = 16 };

struct Args {
  std::string image;
  bool json = false, verbose = false, check_data = false, repair = false;
};

std::function<void(double)> progress_printer(const char* what, bool enabled) {
  if (!enabled) return {};
  return [what](double f) {
    std::fprintf(stderr, "\r%s: %3d%%", what, int(f * 100));
    std::fflush(stderr);
  };
}

void clear_progress(bool enabled) {
  if (enabled) std::fprintf(stderr, "\r%40s\r", "");
}

Result<CheckReport> check_structures(const std::string& image, bool tty) {
  ASSIGN_OR_RETURN(auto dev, FileDevice::open(image, FileDeviceOptions{true, false}));
  // The daemon holds an exclusive lock while mounted: checking a live image
  // would report the running transaction's half-written state as damage.
  if (flock(dev->fd(), LOCK_SH | LOCK_NB) != 0)
    return Status::Error(EBUSY, image + " is in use (mounted?); unmount it first");
  CheckOptions opts;
  opts.progress = progress_printer("Checking", tty);
  auto rep = check_filesystem(*dev, opts);
  clear_progress(tty);
  return rep;
}

// Scrub the data (and every node copy) through the engine; with repair,
// bad copies are rewritten from good ones. Data errors become problems.
Status scrub_pass(const std::string& image, bool repair, bool tty, CheckReport* report, std::vector<std::string>* changes) {
  ASSIGN_OR_RETURN(auto dev, FileDevice::open(image, FileDeviceOptions{!repair, true}));
  std::shared_ptr<BlockDevice> device = std::move(dev);
  EngineOptions eo;
  eo.read_only = !repair;
  // fsck trusts the extent tree, never a cache of it (a repair allocates).
  eo.space_cache = false;
  ASSIGN_OR_RETURN(auto eng, Engine::open(device, eo));
  // A repair commits, and a commit makes the log obsolete: what was
  // fsynced since the last commit goes into the tree first. Replayed and
  // not committed (nothing repaired here), the log stays, and the
  // structural repair or the next mount replays it.
  ReplayReport rr;
  if (repair) RETURN_IF_ERROR(replay_fsync_log_offline(*eng, &rr).with_context("replaying the fsync log"));
  ASSIGN_OR_RETURN(auto io, IoEngine::open(image, !repair, IoEngineOptions{}));
  ScrubOptions so;
  so.repair = repair;
  const uint64_t total = std::max<uint64_t>(1, eng->bytes_used());
  if (tty)
    so.on_batch = [total](const ScrubProgress& p) {
      std::fprintf(stderr, "\rChecking data: %3d%%", int(100.0 * double(p.data_bytes + p.metadata_bytes) / double(total)));
      std::fflush(stderr);
    };
  Scrubber s(*eng, *io, so);
  Status st = s.run_all();
  clear_progress(tty);
  RETURN_IF_ERROR(st);
  const std::vector<ScrubError> errors = s.errors();
  for (const ScrubError& e : errors) {
    if (e.corrected) {
      changes->push_back(std::string(e.metadata ? "tree node" : "data block") + " at logical " + std::to_string(e.logical) +
                         " copy " + std::to_string(e.copy) + ": rewritten from the good copy");
      continue;
    }
    if (e.metadata) continue;  // the structure check reports bad node copies itself
    Problem p;
    p.code = "data-csum";
    std::string who;
    for (const auto& f : e.files)
      who += (who.empty() ? "" : "; ") + (f.paths.empty() ? "inode " + std::to_string(f.ino) : f.paths[0]) + " bytes " +
             std::to_string(f.offset) + "-" + std::to_string(f.offset + f.length - 1);
    p.message = "data block at logical " + std::to_string(e.logical) + " copy " + std::to_string(e.copy) + ": " + e.detail +
                (who.empty() ? "" : " (" + who + ")");
    p.bytenr = e.logical;
    report->problems.push_back(std::move(p));
  }
  // Verified bytes must also decode: compressed extents, once each.
  CompressedCheckStats cs;
  RETURN_IF_ERROR(check_compressed_extents(*eng, &report->problems, &cs));
  // Commit only what was repaired: damage without a good copy leaves the
  // image exactly as it was.
  const bool repaired = std::any_of(errors.begin(), errors.end(), [](const ScrubError& e) { return e.corrected; });
  if (repair && repaired) {
    std::lock_guard lk(eng->mutex());
    RETURN_IF_ERROR(eng->commit());
    if (rr.records) changes->push_back("replayed the fsync log: " + std::to_string(rr.files) + " files");
  }
  return Status::Ok();
}

// The structural repairs (fs/check/repair.h), then a commit that also
// rewrites every superblock copy.
Status repair(const std::string& image, const CheckReport& r, std::vector<std::string>* changes) {
  ASSIGN_OR_RETURN(auto dev, FileDevice::open(image, FileDeviceOptions{false, true}));
  std::shared_ptr<BlockDevice> device = std::move(dev);
  EngineOptions eo;
  eo.space_cache = false;  // the extent tree is the truth a repair allocates by
  ASSIGN_OR_RETURN(auto eng, Engine::open(device, eo));
  // What was fsynced after the last commit first: the repair's commit would
  // make the log obsolete.
  ReplayReport rr;
  RETURN_IF_ERROR(replay_fsync_log_offline(*eng, &rr).with_context("replaying the fsync log"));
  if (rr.records) changes->push_back("replayed the fsync log: " + std::to_string(rr.files) + " files");
  std::lock_guard lk(eng->mutex());
  RETURN_IF_ERROR(repair_structures(*eng, r, changes));
  return eng->commit();
}

void print_report(const Args& a, const CheckReport& r, const std::vector<std::string>& changes) {
  if (a.json) {
    auto j = r.to_json();
    j["device"] = a.image;
    j["repaired"] = changes;
    std::cout << j.dump(2) << "\n";
    return;
  }
  for (const auto& c : changes) std::cout << "REPAIRED: " << c << "\n";
  for (const auto& p : r.problems) std::cout << (p.warning ? "WARNING: " : "ERROR: ") << p.message << "\n";
  if (a.verbose || !r.clean())
    std::cout << a.image << ": generation " << r.stats.generation << ", " << r.stats.chunks << " chunks, " << r.stats.trees << " trees, " << r.stats.nodes
              << " nodes, " << r.stats.items << " items, " << r.stats.inodes << " inodes, " << r.stats.data_extents
              << " data extents\n";
  std::cout << a.image << ": " << (r.clean() ? "clean" : std::to_string(r.problems.size()) + " problem(s) found") << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Check a Cairn filesystem (unmounted) for consistency, and repair it on request."};
  app.set_version_flag("-V,--version", std::string("fsck.cairn ") + CAIRN_VERSION_STRING);
  Args a;
  bool no_write = false, force = false, preen = false, yes = false;
  app.add_option("IMAGE", a.image, "Image file or block device")->required();
  app.add_flag("-n,--no-write", no_write, "Never write (the default without --repair)");
  app.add_flag("-r,--repair", a.repair, "Fix what can be fixed without guessing (writes copy-on-write)");
  app.add_flag("-y,--yes", yes, "Same as --repair (fsck -y)");
  app.add_flag("--check-data", a.check_data, "Also verify every data block's checksum, every copy (as scrub)");
  app.add_flag("-f,--force", force, "Check even if it looks clean (always done)");
  // fsck(8) at boot (fstab pass > 0, as fsck.fuse.cairn) passes -a or -p.
  app.add_flag("-p,-a,--preen", preen, "Non-interactive, as fsck -p or -a (checking only unless --repair)");
  app.add_flag("--json", a.json, "Print a machine-readable report");
  app.add_flag("-v,--verbose", a.verbose, "Print statistics");
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kUsage;
  }
  if ((a.repair || yes) && no_write) {
    std::cerr << "fsck.cairn: --repair and --no-write contradict each other\n";
    return kUsage;
  }
  a.repair = a.repair || yes;
  const bool tty = !a.json && isatty(STDERR_FILENO);
  auto rep = check_structures(a.image, tty);
  if (!rep.ok()) {
    std::cerr << "fsck.cairn: " << a.image << ": " << rep.status().message() << "\n";
    return kOperational;
  }
  CheckReport r = std::move(rep).value();
  std::vector<std::string> changes;
  auto opens = [&](const CheckReport& cr) {
    for (const auto& p : cr.problems)
      if (p.code == "superblock") return false;
    return true;
  };
  if (a.check_data && opens(r)) {
    Status st = scrub_pass(a.image, a.repair, tty, &r, &changes);
    if (!st.ok()) std::cerr << "fsck.cairn: checking data: " << st.message() << "\n";
  }
  if (!a.repair || r.problems.empty()) {
    print_report(a, r, changes);
    if (!r.clean()) return kUncorrected;
    return changes.empty() ? kClean : kCorrected;
  }
  // Repair: first bad copies from their good twins (DUP), then the
  // structural fixes, then check again and report what is left.
  if (!a.check_data) {
    Status st = scrub_pass(a.image, true, tty, &r, &changes);
    if (!st.ok()) std::cerr << "fsck.cairn: cannot repair copies: " << st.message() << "\n";
  }
  if (std::any_of(r.problems.begin(), r.problems.end(), repairable)) {
    Status st = repair(a.image, r, &changes);
    if (!st.ok()) std::cerr << "fsck.cairn: cannot repair: " << st.message() << "\n";
  }
  auto again = check_structures(a.image, tty);
  if (!again.ok()) {
    std::cerr << "fsck.cairn: " << a.image << ": " << again.status().message() << "\n";
    return kOperational;
  }
  CheckReport after = std::move(again).value();
  // Data damage without a good copy stays: report it again.
  for (const auto& p : r.problems)
    if (p.code == "data-csum") after.problems.push_back(p);
  print_report(a, after, changes);
  if (!after.clean()) return kUncorrected;
  return changes.empty() ? kClean : kCorrected;
}
