// cairnctl: control and inspect Cairn filesystems.
//   cairnctl stats [--json] MOUNTPOINT
//   cairnctl scrub start|resume [-B] [--limit MiB/s] [--json] MOUNTPOINT
//   cairnctl scrub status [--json] MOUNTPOINT
//   cairnctl scrub cancel MOUNTPOINT
//   cairnctl scrub [--limit MiB/s] [--readonly] [--json] IMAGE     (offline)
//   cairnctl verify [--json] PATH...
//   cairnctl clone [--range SRC_OFFSET LENGTH DST_OFFSET] SRC DST
//   cairnctl subvolume create PATH
//   cairnctl subvolume snapshot [-r] SRC DST
//   cairnctl subvolume delete PATH...
//   cairnctl subvolume list [--json] MOUNTPOINT
//   cairnctl subvolume show [--json] PATH
//   cairnctl subvolume sync MOUNTPOINT
//   cairnctl du [--json] PATH...
//   cairnctl filesystem usage [--json] MOUNTPOINT|IMAGE
// Exit status: 0 no uncorrectable errors; 3 uncorrectable errors remain;
// 1 operational failure; 2 usage.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "cairn_version.h"
#include "control_client.h"
#include "filesystem_usage.h"
#include "check/checker.h"
#include "log/log_replay.h"
#include "dev/block_device.h"
#include "fuse/control.h"
#include "io/io_engine.h"
#include "scrub/scrub_service.h"
#include "scrub/scrubber.h"
#include "tree/engine.h"

using namespace cairn;
using namespace cairn::ctl;
using nlohmann::json;

namespace {

std::string mib(uint64_t bytes) {
  char b[64];
  std::snprintf(b, sizeof b, "%.1f MiB", double(bytes) / (1 << 20));
  return b;
}

uint64_t uncorrectable(const json& r) {
  return r["errors"]["data"]["uncorrectable"].get<uint64_t>() + r["errors"]["metadata"]["uncorrectable"].get<uint64_t>();
}

void print_damaged(const json& r) {
  for (const auto& d : r["damaged"]) {
    const bool meta = d["kind"] == "metadata";
    // A bad copy with a good twin that a read-only scrub left alone is
    // not uncorrectable: say what it is.
    const char* what = d["corrected"].get<bool>()                    ? "corrected"
                       : d.value("repairable", false)                ? "repairable (not repaired)"
                                                                      : "UNCORRECTABLE";
    std::cout << "  " << what << " " << d["kind"].get<std::string>()
              << " block at logical " << d["logical"] << " (copy " << d["copy"] << ", physical " << d["physical"]
              << "): " << d["detail"].get<std::string>() << "\n";
    if (meta) continue;
    for (const auto& f : d["files"]) {
      std::string who;
      for (const auto& p : f["paths"]) who += (who.empty() ? "" : ", ") + p.get<std::string>();
      if (who.empty()) who = "inode " + std::to_string(f["inode"].get<uint64_t>()) + " (no path)";
      std::cout << "    " << who << ": bytes " << f["offset"] << "-" << f["offset"].get<uint64_t>() + f["length"].get<uint64_t>() - 1
                << "\n";
    }
  }
  if (r.contains("damaged_not_listed")) std::cout << "  ... and " << r["damaged_not_listed"] << " more (see the system log)\n";
}

void print_report(const json& r) {
  const auto& ed = r["errors"]["data"];
  const auto& em = r["errors"]["metadata"];
  std::cout << "scrub " << r["state"].get<std::string>() << "\n"
            << "  scrubbed:  " << mib(r["bytes_scrubbed"]);
  if (r["total_bytes"].get<uint64_t>()) std::cout << " of " << mib(r["total_bytes"]) << " used";
  std::cout << " (data " << mib(r["data_bytes"]) << " in " << r["data_blocks"] << " blocks, metadata "
            << mib(r["metadata_bytes"]) << " in " << r["metadata_blocks"] << " tree nodes)";
  std::printf("\n  duration:  %.1f s, %.1f MiB/s\n", r["duration_s"].get<double>(), r["speed_mib_s"].get<double>());
  std::fflush(stdout);
  std::cout << "  data errors:     " << ed["found"] << " found, " << ed["corrected"] << " corrected, " << ed["uncorrectable"]
            << " uncorrectable\n"
            << "  metadata errors: " << em["found"] << " found, " << em["corrected"] << " corrected, "
            << em["uncorrectable"] << " uncorrectable\n";
  if (r.contains("error")) std::cout << "  stopped by an error: " << r["error"].get<std::string>() << "\n";
  print_damaged(r);
}

void progress_bar(const json& r) {
  const double total = double(std::max<uint64_t>(1, r["total_bytes"].get<uint64_t>()));
  const double f = std::min(1.0, double(r["bytes_scrubbed"].get<uint64_t>()) / total);
  const int w = 30, n = int(f * w);
  std::fprintf(stderr, "\r[%.*s%*s] %3d%%  %.0f MiB/s  errors %llu ", n, "##############################", w - n, "",
               int(f * 100), r["speed_mib_s"].get<double>(),
               static_cast<unsigned long long>(r["errors"]["data"]["found"].get<uint64_t>() +
                                               r["errors"]["metadata"]["found"].get<uint64_t>()));
  std::fflush(stderr);
}

int finish(const json& r, bool as_json) {
  if (as_json) std::cout << r.dump(2) << "\n";
  else print_report(r);
  if (r.contains("error")) return kFailed;
  return uncorrectable(r) ? kUncorrectable : kOk;
}

int stats(const std::string& mnt, bool as_json) {
  auto j = control(mnt, CAIRN_IOC_STATS);
  if (!j.ok()) return fail(j.status().message());
  if (as_json) {
    std::cout << j->dump(2) << "\n";
    return kOk;
  }
  std::cout << "device:      " << (*j)["device"].get<std::string>() << "\n"
            << "generation:  " << (*j)["generation"] << "\n";
  for (const char* group : {"errors", "space", "chunks", "inodes", "cache", "writeback", "compression", "io", "commits", "fsync_log", "data", "metadata"}) {
    std::cout << group << ":\n";
    for (auto& [k, v] : (*j)[group].items()) std::cout << "  " << k << ": " << v << "\n";
  }
  return kOk;
}

// -B in the foreground: SIGINT or SIGTERM (Ctrl-C, systemctl stop) cancels
// the scrub in the daemon rather than leaving it running unwatched.
volatile std::sig_atomic_t g_stop_signal = 0;
void on_stop_signal(int sig) { g_stop_signal = sig; }

int scrub_online(const std::string& mnt, bool resume, bool wait, double limit_mib, bool as_json) {
  json req = {{"limit_bytes_per_sec", uint64_t(limit_mib * (1 << 20))}, {"resume", resume}};
  auto j = control(mnt, CAIRN_IOC_SCRUB_START, &req);
  if (!j.ok()) return fail(j.status().message());
  if (!wait) {
    if (!as_json) std::cout << "scrub " << (resume ? "resumed" : "started") << " on " << mnt << "\n";
    else std::cout << j->dump(2) << "\n";
    return kOk;
  }
  const bool tty = !as_json && isatty(STDERR_FILENO);
  json r = j.value();
  // Poll often enough that a short scrub is not reported late (its speed is
  // measured by the daemon, but -B's wall time is what users see).
  auto last_bar = std::chrono::steady_clock::now();
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  bool cancelled = false;
  while (r["state"] == "running") {
    if (g_stop_signal && !cancelled) {
      auto c = control(mnt, CAIRN_IOC_SCRUB_CANCEL);
      if (!c.ok() && c.status().code() != ENOENT) return fail(c.status().message());
      cancelled = true;
      std::cerr << "cairnctl: " << strsignal(g_stop_signal) << ": scrub cancelled; 'cairnctl scrub resume " << mnt
                << "' continues it\n";
    }
    if (tty && std::chrono::steady_clock::now() - last_bar > std::chrono::milliseconds(250)) {
      progress_bar(r);
      last_bar = std::chrono::steady_clock::now();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto s = control(mnt, CAIRN_IOC_SCRUB_STATUS);
    if (!s.ok()) return fail(s.status().message());
    r = s.value();
  }
  if (tty) std::fprintf(stderr, "\r%60s\r", "");
  const int rc = finish(r, as_json);
  return cancelled && rc == kOk ? kFailed : rc;  // a scrub that did not finish did not prove anything
}

int scrub_status(const std::string& mnt, bool as_json) {
  auto j = control(mnt, CAIRN_IOC_SCRUB_STATUS);
  if (!j.ok()) return fail(j.status().message());
  return finish(j.value(), as_json);
}

int scrub_cancel(const std::string& mnt) {
  auto j = control(mnt, CAIRN_IOC_SCRUB_CANCEL);
  if (!j.ok()) return fail(j.status().message());
  std::cout << "scrub cancelled on " << mnt << "; 'cairnctl scrub resume' continues it\n";
  return kOk;
}

// Offline: the image must not be mounted (the daemon holds its lock).
int scrub_offline(const std::string& image, double limit_mib, bool read_only, bool as_json) {
  auto dev = FileDevice::open(image, FileDeviceOptions{read_only, true});
  if (!dev.ok()) {
    if (dev.status().code() == EWOULDBLOCK) return fail(image + " is in use (mounted?); use 'cairnctl scrub start MOUNTPOINT'");
    return fail(dev.status().message());
  }
  std::shared_ptr<BlockDevice> device = std::move(dev).value();
  EngineOptions eo;
  eo.read_only = read_only;
  auto eng = Engine::open(device, eo);
  if (eng.ok() && !read_only) {
    // A repairing scrub commits: what was fsynced after the last commit
    // goes in first (as a mount would), or the commit would lose it.
    ReplayReport rr;
    if (Status st = replay_fsync_log_offline(*eng.value(), &rr); !st.ok())
      return fail(image + ": replaying the fsync log: " + st.message());
  }
  if (!eng.ok() && !Engine::read_superblock(*device).ok())
    return fail(image + ": " + eng.status().message());  // not a Cairn image at all: nothing to scrub
  if (!eng.ok()) {
    // The trees cannot even be opened: report every damaged node fsck finds.
    std::cerr << "cairnctl: " << image << ": " << eng.status().message() << "\n";
    auto rep = check_filesystem(*device);
    json r = scrub_report_json(ScrubProgress{}, {}, 0);
    r["state"] = "failed";
    r["error"] = "cannot open the filesystem: " + eng.status().message();
    if (rep.ok()) {
      for (const auto& p : rep->problems) {
        if (p.code != "node-corrupt" && p.code != "node-io" && p.code != "superblock") continue;
        r["errors"]["metadata"]["found"] = r["errors"]["metadata"]["found"].get<uint64_t>() + 1;
        r["errors"]["metadata"]["uncorrectable"] = r["errors"]["metadata"]["uncorrectable"].get<uint64_t>() + 1;
        r["damaged"].push_back({{"kind", "metadata"}, {"logical", p.bytenr}, {"length", 0}, {"copy", 0}, {"physical", 0},
                                {"corrected", false}, {"detail", p.message}, {"files", json::array()}});
      }
    }
    if (as_json) std::cout << r.dump(2) << "\n";
    else print_report(r);
    std::cerr << "cairnctl: run fsck.cairn " << image << " for the full picture\n";
    return kUncorrectable;
  }
  Engine& e = *eng.value();
  IoEngineOptions io_opts;
  io_opts.queue_depth = 64;
  auto io = IoEngine::open(image, read_only, io_opts);
  if (!io.ok()) return fail(io.status().message());
  ScrubOptions o;
  o.limit_bytes_per_sec = uint64_t(limit_mib * (1 << 20));
  o.repair = !read_only;
  const bool tty = !as_json && isatty(STDERR_FILENO);
  const uint64_t total = e.bytes_used();
  auto t0 = std::chrono::steady_clock::now();
  if (tty)
    o.on_batch = [&](const ScrubProgress& p) {
      if (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(250)) return;
      t0 = std::chrono::steady_clock::now();
      progress_bar(scrub_report_json(p, {}, total, 0));
    };
  Scrubber s(e, *io.value(), o);
  Status st = s.run_all();
  if (tty) std::fprintf(stderr, "\r%60s\r", "");
  ScrubProgress p = s.progress();
  json r = scrub_report_json(p, s.errors(), total, 1000000);
  if (!st.ok()) r["error"] = st.message();
  if (!read_only) {
    std::lock_guard lk(e.mutex());
    Status c = ScrubService::save_locked(e, p);
    if (c.ok()) c = e.commit();
    if (!c.ok()) r["error"] = "saving the scrub result: " + c.message();
  }
  return finish(r, as_json);
}

// cairnctl verify: every regular file named or under a named directory.
// `path` if it is a regular file, or every regular file below it (symbolic
// links not followed); an error message if it cannot be read.
Result<std::vector<std::string>> regular_files(const std::string& path) {
  std::vector<std::string> files;
  std::error_code ec;
  auto st = std::filesystem::symlink_status(path, ec);
  if (ec) return Status::Error(EIO, path + ": " + ec.message());
  if (std::filesystem::is_directory(st)) {
    for (auto it = std::filesystem::recursive_directory_iterator(path, ec); !ec && it != std::filesystem::end(it);
         it.increment(ec))
      if (it->is_regular_file(ec) && !it->is_symlink(ec)) files.push_back(it->path());
    if (ec) return Status::Error(EIO, path + ": " + ec.message());
  } else if (std::filesystem::is_regular_file(st)) {
    files.push_back(path);
  }
  return files;
}

int verify(const std::vector<std::string>& paths, bool as_json) {
  std::vector<std::string> files;
  for (const auto& p : paths) {
    auto found = regular_files(p);
    if (!found.ok()) return fail(found.status().message());
    files.insert(files.end(), found->begin(), found->end());
  }
  json all = json::array();
  uint64_t bytes = 0, found = 0, corrected = 0, unc = 0, failed = 0;
  for (const auto& f : files) {
    auto r = control(f, CAIRN_IOC_VERIFY);
    if (!r.ok()) {
      std::cerr << "cairnctl: " << r.status().message() << "\n";
      failed++;
      continue;
    }
    json& j = r.value();
    bytes += j["data_bytes"].get<uint64_t>();
    found += j["errors"]["data"]["found"].get<uint64_t>();
    corrected += j["errors"]["data"]["corrected"].get<uint64_t>();
    unc += j["errors"]["data"]["uncorrectable"].get<uint64_t>();
    if (j.contains("error")) failed++;
    j["path"] = f;
    if (!as_json) {
      const uint64_t e = j["errors"]["data"]["found"].get<uint64_t>();
      if (e || j.contains("error")) {
        std::cout << f << ": " << e << " damaged block copies, " << j["errors"]["data"]["corrected"] << " corrected, "
                  << j["errors"]["data"]["uncorrectable"] << " uncorrectable"
                  << (j.contains("error") ? ", " + j["error"].get<std::string>() : "") << "\n";
        print_damaged(j);
      }
    }
    all.push_back(std::move(j));
  }
  if (as_json) {
    std::cout << json{{"files", all},
                      {"summary",
                       {{"files", files.size()}, {"bytes", bytes}, {"found", found}, {"corrected", corrected},
                        {"uncorrectable", unc}, {"failed", failed}}}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << "verified " << files.size() << " file(s), " << mib(bytes) << ": " << found << " errors, " << corrected
              << " corrected, " << unc << " uncorrectable\n";
  }
  if (failed) return kFailed;
  return unc ? kUncorrectable : kOk;
}

// cairnctl clone: DST shares SRC's blocks (a reflink), or nothing happens
// and the exit status says why; never a copy. Without --range DST becomes
// a clone of all of SRC (created, or truncated first, as cp does).
int clone(const std::string& src, const std::string& dst, const std::vector<uint64_t>& range) {
  const bool whole = range.empty();
  int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return fail(src + ": " + std::strerror(errno));
  struct stat si, so;
  if (fstat(in, &si) != 0) {
    const int e = errno;
    ::close(in);
    return fail(src + ": " + std::strerror(e));
  }
  const bool existed = ::stat(dst.c_str(), &so) == 0;
  if (whole && existed && si.st_dev == so.st_dev && si.st_ino == so.st_ino) {
    ::close(in);
    return fail("clone: " + src + " and " + dst + " are the same file");
  }
  // Not O_TRUNC: a clone that fails leaves DST as it was (a DST this
  // command created is removed again).
  int out = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
  if (out < 0) {
    const int e = errno;
    ::close(in);
    return fail(dst + ": " + std::strerror(e));
  }
  auto done = [&](int code) {
    ::close(in);
    ::close(out);
    if (code != kOk && !existed) ::unlink(dst.c_str());
    return code;
  };
  if (fstat(out, &so) != 0) return done(fail(dst + ": " + std::strerror(errno)));
  if (!S_ISREG(si.st_mode) || !S_ISREG(so.st_mode)) return done(fail("clone: SRC and DST must be regular files"));
  // copy_file_range between two filesystems is a copy the kernel makes on
  // its own: refuse before asking.
  if (si.st_dev != so.st_dev) return done(fail(src + " and " + dst + " are not on the same filesystem"));
  uint64_t off_in = whole ? 0 : range[0], len = whole ? uint64_t(si.st_size) : range[1],
           off_out = whole ? 0 : range[2];
  // A whole-file clone makes DST SRC's size. A longer DST is cut first when
  // SRC ends inside a block: that block can only be shared as DST's last.
  if (whole && so.st_size > si.st_size && si.st_size % 4096 && ::ftruncate(out, si.st_size) != 0)
    return done(fail(dst + ": truncate: " + std::strerror(errno)));
  while (len > 0) {
    std::vector<char> buf(kCtlBufferSize, 0);
    if (ioctl(out, CAIRN_IOC_CLONE_NEXT, buf.data()) < 0) {
      const int e = errno;
      if (e == ENOTTY || e == ENOSYS) return done(fail(dst + " is not on a mounted Cairn filesystem"));
      return done(fail(dst + ": " + std::strerror(e)));
    }
    loff_t a = loff_t(off_in), b = loff_t(off_out);
    const ssize_t n = copy_file_range(in, &a, out, &b, size_t(std::min<uint64_t>(len, 1ULL << 30)), 0);
    if (n < 0) {
      const int e = errno;
      if (e == EINVAL)
        return done(fail("clone: offsets and length must be multiples of 4096 (the length may end at the end of " +
                         src + "), and the ranges of one file must not overlap"));
      if (e == EMLINK) return done(fail("clone: an extent of " + src + " has no room for another reference"));
      return done(fail("clone: " + std::string(std::strerror(e))));
    }
    if (n == 0) break;  // the end of SRC
    off_in += uint64_t(n);
    off_out += uint64_t(n);
    len -= uint64_t(n);
  }
  if (whole && so.st_size > si.st_size && ::ftruncate(out, si.st_size) != 0)
    return done(fail(dst + ": truncate: " + std::strerror(errno)));
  if (::fsync(out) != 0) return done(fail(dst + ": fsync: " + std::strerror(errno)));
  return done(kOk);
}

// PATH split into its directory and last name (for the ioctls that act on
// a name in a directory).
std::pair<std::string, std::string> split_path(const std::string& path) {
  std::filesystem::path p(path);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();  // "a/b/" -> "a/b"
  std::string dir = p.parent_path().string();
  return {dir.empty() ? "." : dir, p.filename().string()};
}

std::string subvol_error(const std::string& what, const Status& st) {
  const int e = st.code();
  if (e == ENOTTY || e == ENOSYS) return what + ": not on a mounted Cairn filesystem";
  if (e == EROFS) return what + ": read-only (a read-only snapshot or mount)";
  if (e == EPERM || e == EACCES) return what + ": permission denied";
  if (e == EEXIST) return what + ": exists";
  if (e == EBUSY) return what + ": in use (files open or being written, or the mount's root)";
  if (e == ENOTEMPTY) return what + ": holds other subvolumes; delete those first";
  if (e == EINVAL) return what + ": not a subvolume";
  if (e == EOVERFLOW) return what + ": the reply does not fit one control request";
  return what + ": " + std::strerror(e);
}

int subvolume_create(const std::string& path) {
  auto [dir, name] = split_path(path);
  json req{{"name", name}};
  auto r = control(dir, CAIRN_IOC_SUBVOL_CREATE, &req);
  if (!r.ok()) return fail(subvol_error(path, r.status()));
  std::cout << "Created subvolume " << path << " (id " << r.value()["id"] << ")\n";
  return kOk;
}

int subvolume_snapshot(const std::string& src, const std::string& dst, bool read_only) {
  struct stat si;
  if (::stat(src.c_str(), &si) != 0) return fail(src + ": " + std::strerror(errno));
  if (!S_ISDIR(si.st_mode)) return fail(src + ": not a subvolume");
  // DST may name an existing directory to put the snapshot in, as btrfs.
  std::string target = dst;
  struct stat sd;
  if (::stat(dst.c_str(), &sd) == 0 && S_ISDIR(sd.st_mode))
    target = (std::filesystem::path(dst) / std::filesystem::path(src).filename()).string();
  auto [dir, name] = split_path(target);
  struct stat sp;
  if (::stat(dir.c_str(), &sp) != 0) return fail(dir + ": " + std::strerror(errno));
  if (sp.st_dev != si.st_dev) return fail(src + " and " + dir + " are not on the same filesystem");
  json req{{"name", name}, {"source", uint64_t(si.st_ino)}, {"readonly", read_only}};
  auto r = control(dir, CAIRN_IOC_SUBVOL_SNAPSHOT, &req);
  if (!r.ok()) return fail(subvol_error(src, r.status()));
  std::cout << "Created " << (read_only ? "a read-only " : "a ") << "snapshot of " << src << " in " << target
            << " (id " << r.value()["id"] << ")\n";
  return kOk;
}

int subvolume_delete(const std::vector<std::string>& paths) {
  int rc = kOk;
  for (const auto& path : paths) {
    auto [dir, name] = split_path(path);
    json req{{"name", name}};
    auto r = control(dir, CAIRN_IOC_SUBVOL_DELETE, &req);
    if (!r.ok()) {
      std::cerr << "cairnctl: " << subvol_error(path, r.status()) << "\n";
      rc = kFailed;
      continue;
    }
    std::cout << "Deleted subvolume " << path << "\n";
  }
  return rc;
}

int subvolume_list(const std::string& mnt, bool as_json) {
  auto r = control(mnt, CAIRN_IOC_SUBVOL_LIST);
  if (!r.ok()) return fail(subvol_error(mnt, r.status()));
  const json& all = r.value()["subvolumes"];
  if (as_json) {
    std::cout << all.dump(2) << "\n";
    return kOk;
  }
  for (const auto& s : all) {
    if (s["id"].get<uint64_t>() == kFsTreeId) continue;  // the top level, as btrfs lists
    std::cout << "ID " << s["id"] << " gen " << s["generation"] << " parent " << s["parent"] << " path "
              << s["path"].get<std::string>().substr(1) << (s["readonly"].get<bool>() ? " (readonly)" : "")
              << (s["deleting"].get<bool>() ? " (being deleted)" : "") << "\n";
  }
  return kOk;
}

int subvolume_show(const std::string& path, bool as_json) {
  auto r = control(path, CAIRN_IOC_SUBVOL_SHOW);
  if (!r.ok()) return fail(subvol_error(path, r.status()));
  const json& s = r.value();
  if (as_json) {
    std::cout << s.dump(2) << "\n";
    return kOk;
  }
  std::cout << s["path"].get<std::string>() << "\n"
            << "\tSubvolume ID:\t" << s["id"] << "\n"
            << "\tParent ID:\t" << s["parent"] << "\n"
            << "\tGeneration:\t" << s["generation"] << "\n"
            << "\tRead-only:\t" << (s["readonly"].get<bool>() ? "yes" : "no") << "\n"
            << "\tReferenced:\t" << mib(s["referenced_bytes"].get<uint64_t>()) << "\n"
            << "\tExclusive:\t" << mib(s["exclusive_bytes"].get<uint64_t>()) << "\n"
            << "\tShared:\t\t" << mib(s["shared_bytes"].get<uint64_t>()) << "\n";
  return kOk;
}

// cairnctl du: every regular file named or below a named directory.
// Per compression type, summed over files: compsize's three columns.
struct Usage {
  uint64_t disk = 0, uncompressed = 0, referenced = 0;
};
using UsageByType = std::map<std::string, Usage>;

void add_usage(UsageByType& to, const json& reply) {
  if (!reply.contains("compression")) return;
  for (auto& [type, u] : reply["compression"].items()) {
    Usage& t = to[type];
    t.disk += u["disk_bytes"].get<uint64_t>();
    t.uncompressed += u["uncompressed_bytes"].get<uint64_t>();
    t.referenced += u["referenced_bytes"].get<uint64_t>();
  }
}

json usage_json(const UsageByType& by) {
  json j = json::object();
  for (auto& [type, u] : by)
    j[type] = {{"disk_bytes", u.disk}, {"uncompressed_bytes", u.uncompressed}, {"referenced_bytes", u.referenced}};
  return j;
}

// As compsize prints it: the share of disk bytes to decoded bytes.
void print_usage_table(const UsageByType& by) {
  Usage total;
  for (auto& [type, u] : by) total.disk += u.disk, total.uncompressed += u.uncompressed, total.referenced += u.referenced;
  auto line = [](const std::string& name, const Usage& u) {
    const int perc = u.uncompressed ? int(100.0 * double(u.disk) / double(u.uncompressed) + 0.5) : 100;
    std::printf("%-10s %4d%%  %14s %14s %14s\n", name.c_str(), perc, mib(u.disk).c_str(), mib(u.uncompressed).c_str(),
                mib(u.referenced).c_str());
  };
  std::printf("%-10s %5s  %14s %14s %14s\n", "Type", "Perc", "Disk Usage", "Uncompressed", "Referenced");
  line("TOTAL", total);
  for (auto& [type, u] : by) line(type, u);
}

int du(const std::vector<std::string>& paths, bool as_json, bool compression) {
  json all = json::array();
  uint64_t total = 0, exclusive = 0;
  UsageByType usage_all;
  int rc = kOk;
  for (const auto& p : paths) {
    auto found = regular_files(p);
    if (!found.ok()) {
      std::cerr << "cairnctl: " << found.status().message() << "\n";
      rc = kFailed;
      continue;
    }
    const std::vector<std::string>& files = found.value();
    uint64_t t = 0, x = 0;
    UsageByType usage;
    for (const auto& f : files) {
      auto r = control(f, CAIRN_IOC_FILE_SPACE);
      if (!r.ok()) {
        std::cerr << "cairnctl: " << r.status().message() << "\n";
        rc = kFailed;
        continue;
      }
      t += r.value()["referenced_bytes"].get<uint64_t>();
      x += r.value()["exclusive_bytes"].get<uint64_t>();
      add_usage(usage, r.value());
      add_usage(usage_all, r.value());
    }
    total += t;
    exclusive += x;
    all.push_back({{"path", p}, {"files", files.size()}, {"referenced_bytes", t}, {"exclusive_bytes", x},
                   {"shared_bytes", t - x}, {"compression", usage_json(usage)}});
    if (as_json) continue;
    std::cout << mib(t) << " total, " << mib(x) << " exclusive, " << mib(t - x) << " shared\t" << p << "\n";
    if (compression) print_usage_table(usage);
  }
  if (as_json)
    std::cout << json{{"paths", all}, {"referenced_bytes", total}, {"exclusive_bytes", exclusive},
                      {"compression", usage_json(usage_all)}}
                     .dump(2)
              << "\n";
  return rc;
}

// The compression choice of files and directories (user.cairn.compress;
// what is created in a directory inherits it): shown, set or cleared.
int compress_cmd(const std::vector<std::string>& paths, const std::string& set, bool clear) {
  constexpr const char* kAttr = "user.cairn.compress";
  int rc = kOk;
  for (const auto& p : paths) {
    if (clear) {
      if (removexattr(p.c_str(), kAttr) != 0 && errno != ENODATA) {
        std::cerr << "cairnctl: " << p << ": " << std::strerror(errno) << "\n";
        rc = kFailed;
      }
      continue;
    }
    if (!set.empty()) {
      if (setxattr(p.c_str(), kAttr, set.data(), set.size(), 0) != 0) {
        std::cerr << "cairnctl: " << p << ": " << (errno == EINVAL ? "not a compression (zstd[:1-19], lz4, none)"
                                                                    : std::strerror(errno))
                  << "\n";
        rc = kFailed;
      }
      continue;
    }
    char v[64];
    const ssize_t n = getxattr(p.c_str(), kAttr, v, sizeof v);
    if (n < 0 && errno != ENODATA) {
      std::cerr << "cairnctl: " << p << ": " << std::strerror(errno) << "\n";
      rc = kFailed;
      continue;
    }
    std::cout << (n < 0 ? std::string("(mount default)") : std::string(v, size_t(n))) << "\t" << p << "\n";
  }
  return rc;
}

int subvolume_sync(const std::string& mnt) {
  auto r = control(mnt, CAIRN_IOC_SUBVOL_SYNC);
  if (!r.ok()) return fail(subvol_error(mnt, r.status()));
  return kOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Control and inspect Cairn filesystems."};
  app.set_version_flag("-V,--version", std::string("cairnctl ") + CAIRN_VERSION_STRING);
  app.require_subcommand(1);
  std::string target;
  bool as_json = false, wait = false, read_only = false;
  double limit = 0;
  std::vector<std::string> paths;

  auto* st = app.add_subcommand("stats", "Error counters (kept across mounts), cache and I/O figures");
  st->add_option("MOUNTPOINT", target, "The mount point")->required();
  st->add_flag("--json", as_json, "Machine-readable output");

  auto* sc = app.add_subcommand("scrub", "Verify every block and repair from good copies; "
                                         "'scrub IMAGE' scrubs an unmounted image");
  sc->require_subcommand(0, 1);
  sc->add_option("IMAGE", target, "An unmounted image or device (offline scrub)");
  sc->add_option("--limit", limit, "Throttle to this many MiB/s")->check(CLI::NonNegativeNumber);
  sc->add_flag("-r,--readonly", read_only, "Offline: report only, repair nothing");
  sc->add_flag("--json", as_json, "Machine-readable report");
  auto* sc_start = sc->add_subcommand("start", "Start a scrub of a mounted filesystem");
  auto* sc_resume = sc->add_subcommand("resume", "Continue a cancelled or interrupted scrub");
  for (auto* s : {sc_start, sc_resume}) {
    s->add_option("MOUNTPOINT", target, "The mount point")->required();
    s->add_flag("-B", wait, "Stay in the foreground until it ends, then report");
    s->add_option("--limit", limit, "Throttle to this many MiB/s")->check(CLI::NonNegativeNumber);
    s->add_flag("--json", as_json, "Machine-readable report");
  }
  auto* sc_status = sc->add_subcommand("status", "Progress of the running scrub, or the last one's report");
  sc_status->add_option("MOUNTPOINT", target, "The mount point")->required();
  sc_status->add_flag("--json", as_json, "Machine-readable report");
  auto* sc_cancel = sc->add_subcommand("cancel", "Stop the running scrub (its position is kept)");
  sc_cancel->add_option("MOUNTPOINT", target, "The mount point")->required();

  auto* vf = app.add_subcommand("verify", "Verify (and repair) the data of the given files and directories");
  vf->add_option("PATH", paths, "Files or directories on a mounted Cairn filesystem")->required();
  vf->add_flag("--json", as_json, "Machine-readable report");

  auto* cl = app.add_subcommand("clone", "Make DST share SRC's blocks (a reflink); never copies");
  std::string clone_src, clone_dst;
  std::vector<uint64_t> clone_range;
  cl->add_option("SRC", clone_src, "The file to clone")->required();
  cl->add_option("DST", clone_dst, "The file that receives the blocks (created if missing)")->required();
  cl->add_option("--range", clone_range, "SRC_OFFSET LENGTH DST_OFFSET: clone only this range into DST")
      ->expected(3);

  auto* sv = app.add_subcommand("subvolume", "Subvolumes and snapshots");
  sv->require_subcommand(1);
  std::string sv_path, sv_src, sv_dst;
  std::vector<std::string> sv_paths;
  bool sv_ro = false;
  auto* sv_create = sv->add_subcommand("create", "A new, empty subvolume at PATH");
  sv_create->add_option("PATH", sv_path, "Where (its parent directory must exist)")->required();
  auto* sv_snap = sv->add_subcommand("snapshot", "An instant snapshot of subvolume SRC at DST (or in directory DST)");
  sv_snap->add_flag("-r", sv_ro, "Read-only snapshot");
  sv_snap->add_option("SRC", sv_src, "A subvolume (or the mount's top level)")->required();
  sv_snap->add_option("DST", sv_dst, "The snapshot's path, or an existing directory to put it in")->required();
  auto* sv_del = sv->add_subcommand("delete", "Delete subvolumes (their space comes back in the background)");
  sv_del->add_option("PATH", sv_paths, "Subvolumes")->required();
  auto* sv_list = sv->add_subcommand("list", "Every subvolume of the filesystem");
  sv_list->add_option("MOUNTPOINT", sv_path, "The mount point")->required();
  sv_list->add_flag("--json", as_json, "Machine-readable output");
  auto* sv_show = sv->add_subcommand("show", "The subvolume holding PATH, with its referenced and exclusive data");
  sv_show->add_option("PATH", sv_path, "Any file or directory in it")->required();
  sv_show->add_flag("--json", as_json, "Machine-readable output");
  auto* sv_sync = sv->add_subcommand("sync", "Wait until deleted subvolumes have given back their space");
  sv_sync->add_option("MOUNTPOINT", sv_path, "The mount point")->required();

  auto* du_cmd = app.add_subcommand("du", "Data of files: total, exclusive (only they hold it) and shared");
  std::vector<std::string> du_paths;
  du_cmd->add_option("PATH", du_paths, "Files or directories on a mounted Cairn filesystem")->required();
  du_cmd->add_flag("--json", as_json, "Machine-readable output");
  bool du_compression = false;
  du_cmd->add_flag("-c,--compression", du_compression,
                   "Also a table per compression type: disk bytes, what they decode to, file bytes (as compsize)");

  auto* cz = app.add_subcommand("compress", "Show or set the compression of files and directories "
                                             "(new files inherit a directory's)");
  std::vector<std::string> cz_paths;
  std::string cz_set;
  bool cz_clear = false;
  cz->add_option("PATH", cz_paths, "Files or directories on a mounted Cairn filesystem")->required();
  auto* cz_set_opt = cz->add_option("--set", cz_set, "zstd[:1-19], lz4 or none (never compress)");
  cz->add_flag("--clear", cz_clear, "Back to the mount's -o compress")->excludes(cz_set_opt);

  auto* fsys = app.add_subcommand("filesystem", "The filesystem as a whole");
  fsys->require_subcommand(1);
  auto* fs_usage = fsys->add_subcommand("usage", "Where the device's bytes are: per chunk type and profile, "
                                                 "free estimate, reserves (as btrfs filesystem usage)");
  fs_usage->add_option("TARGET", target, "A mount point, or an unmounted image or device")->required();
  fs_usage->add_flag("--json", as_json, "Machine-readable output");

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kUsage;
  }
  if (*st) return stats(target, as_json);
  if (*fs_usage) return filesystem_usage(target, as_json);
  if (*vf) return verify(paths, as_json);
  if (*cl) return clone(clone_src, clone_dst, clone_range);
  if (*sv_create) return subvolume_create(sv_path);
  if (*sv_snap) return subvolume_snapshot(sv_src, sv_dst, sv_ro);
  if (*sv_del) return subvolume_delete(sv_paths);
  if (*sv_list) return subvolume_list(sv_path, as_json);
  if (*sv_show) return subvolume_show(sv_path, as_json);
  if (*sv_sync) return subvolume_sync(sv_path);
  if (*du_cmd) return du(du_paths, as_json, du_compression);
  if (*cz) return compress_cmd(cz_paths, cz_set, cz_clear);
  if (*sc_start) return scrub_online(target, false, wait, limit, as_json);
  if (*sc_resume) return scrub_online(target, true, wait, limit, as_json);
  if (*sc_status) return scrub_status(target, as_json);
  if (*sc_cancel) return scrub_cancel(target);
  if (target.empty()) return fail("scrub: give IMAGE, or start|resume|status|cancel MOUNTPOINT", kUsage);
  struct stat sb;
  if (::stat(target.c_str(), &sb) == 0 && S_ISDIR(sb.st_mode))
    return fail(target + " is a directory; for a mounted filesystem use 'cairnctl scrub start " + target + "'", kUsage);
  return scrub_offline(target, limit, read_only, as_json);
}
