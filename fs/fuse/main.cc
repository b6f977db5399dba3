// cairn: mount a Cairn image with FUSE.
//
//   cairn IMAGE MOUNTPOINT [-o opts] [-f] [-d] [-s]
//   mount -t fuse.cairn IMAGE MOUNTPOINT -o opts      (through mount.fuse3)
//
// The image is opened, locked and fully validated before anything is
// mounted, so a damaged or foreign image is refused with a message instead
// of producing a mount that fails later.
#include <malloc.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cairn_version.h"
#include "fuse/fuse_ops.h"
#include "fuse/init_flags.h"
#include "util/size_parse.h"

using namespace cairn;

namespace {

struct Options {
  std::string image;
  bool have_mountpoint = false;
  bool read_only = false;
  bool remount = false;  // -o remount: change the live mount's flags, start nothing
  unsigned commit_seconds = 5;
  uint64_t cache_bytes = 256ULL << 20;
  bool default_permissions = true;
  CsumMode csum = CsumMode::kAuto;
  bool dropbehind = false;
  CompressSpec compress;  // -o compress=
  uint64_t max_chunk_size = 0;
  bool space_cache = true;  // -o nospace_cache: read the extent tree at mount, save no cache
  bool fsync_log = true;    // -o nofsync_log: every fsync commits
  std::string subvol;       // -o subvol=PATH
  bool writeback_cache = false;  // the kernel's FUSE writeback cache (measured: off by default)
  bool posix_acl = true;         // -o acl (default) / -o noacl
  AtimePolicy atime = AtimePolicy::kRelatime;
  bool nodiratime = false;
  unsigned queue_depth = 64;
  unsigned readahead_kb = 16384;
  double attr_timeout = 1.0, entry_timeout = 1.0;  // -o attr_timeout=, entry_timeout= (seconds)
  bool user_threads = false, user_idle_threads = false;
  bool user_fsname = false, user_subtype = false;
  bool help = false, version = false;
  std::string error;
};

// FUSE worker threads unless -o max_threads / max_idle_threads say otherwise.
constexpr unsigned kDefaultThreads = 32;
constexpr unsigned kDefaultIdleThreads = 8;

// Options that belong to mount(8) or fstab and mean nothing to the mount
// itself. (dev, suid, exec, sync and their no- forms are kernel flags:
// libfuse sets them, and for a user mount fusermount3 decides which a user
// may have. Without dev and suid libfuse mounts nodev,nosuid, as every
// FUSE filesystem; `mount -t fuse.cairn` as root asks for dev,suid unless
// told otherwise, as mount(8) does for any filesystem.)
bool ignorable_mount_option(const std::string& o) {
  static const char* kIgnored[] = {"defaults", "auto", "noauto", "nofail", "_netdev", "user", "users",
                                   "nouser", "lazytime", "nolazytime"};
  for (const char* i : kIgnored)
    if (o == i) return true;
  return o.rfind("x-", 0) == 0 || o.rfind("comment=", 0) == 0;
}

int opt_proc(void* data, const char* arg, int key, fuse_args* outargs) {
  (void)outargs;
  auto* o = static_cast<Options*>(data);
  std::string a(arg);
  if (key == FUSE_OPT_KEY_NONOPT) {
    if (o->image.empty()) {
      o->image = a;
      return 0;
    }
    if (!o->have_mountpoint) {
      o->have_mountpoint = true;
      return 1;  // fuse_parse_cmdline takes the mount point
    }
    o->error = "unexpected argument '" + a + "'";
    return -1;
  }
  if (key == FUSE_OPT_KEY_OPT) {
    if (a == "-h" || a == "--help") { o->help = true; return 0; }
    if (a == "-V" || a == "--version") { o->version = true; return 0; }
    if (a == "ro") { o->read_only = true; return 1; }
    if (a == "remount") { o->remount = true; return 0; }
    if (a.rfind("commit=", 0) == 0) {
      char* end;
      unsigned long v = std::strtoul(a.c_str() + 7, &end, 10);
      if (*end || v == 0 || v > 86400) { o->error = "commit= wants seconds from 1 to 86400"; return -1; }
      o->commit_seconds = unsigned(v);
      return 0;
    }
    if (a.rfind("cache=", 0) == 0) {
      auto v = parse_size(a.substr(6));
      if (!v || *v < (4u << 20)) { o->error = "cache= wants a size of at least 4M"; return -1; }
      o->cache_bytes = *v;
      return 0;
    }
    if (a == "dropbehind") { o->dropbehind = true; return 0; }
    if (a == "compress" || a.rfind("compress=", 0) == 0) {
      // Bare "compress" means zstd, as btrfs's means its default (zlib).
      auto spec = parse_compress_spec(a == "compress" ? "zstd" : a.substr(9));
      if (!spec.ok()) { o->error = "compress=: " + spec.status().message(); return -1; }
      o->compress = *spec;
      return 0;
    }
    // For tests: small chunks, so a small image gets hundreds of them.
    if (a.rfind("debug_max_chunk=", 0) == 0) {
      auto v = parse_size(a.substr(16));
      if (!v || *v < (1u << 20)) { o->error = "debug_max_chunk= wants a size of at least 1M"; return -1; }
      o->max_chunk_size = *v;
      return 0;
    }
    if (a.rfind("attr_timeout=", 0) == 0 || a.rfind("entry_timeout=", 0) == 0) {
      const bool attr = a[0] == 'a';
      const std::string v = a.substr(attr ? 13 : 14);
      char* end;
      const double secs = std::strtod(v.c_str(), &end);
      if (v.empty() || *end || !(secs >= 0 && secs <= 86400)) {
        o->error = std::string(attr ? "attr_timeout=" : "entry_timeout=") + " wants seconds from 0 to 86400";
        return -1;
      }
      (attr ? o->attr_timeout : o->entry_timeout) = secs;
      return 0;
    }
    if (a.rfind("subvol=", 0) == 0) { o->subvol = a.substr(7); return 0; }
    if (a == "space_cache") { o->space_cache = true; return 0; }
    if (a == "nospace_cache") { o->space_cache = false; return 0; }
    if (a == "fsync_log") { o->fsync_log = true; return 0; }
    if (a == "nofsync_log") { o->fsync_log = false; return 0; }
    if (a == "acl") { o->posix_acl = true; return 0; }
    if (a == "noacl") { o->posix_acl = false; return 0; }
    // Access times are the daemon's (the kernel never updates atime on
    // FUSE). noatime also goes to the kernel, for /proc/mounts;
    // strictatime and nodiratime are set by a remount after mounting
    // (libfuse 3.14 passes neither).
    if (a == "relatime" || a == "atime") { o->atime = AtimePolicy::kRelatime; return 0; }
    if (a == "strictatime") { o->atime = AtimePolicy::kStrict; return 0; }
    if (a == "noatime") { o->atime = AtimePolicy::kNever; return 1; }
    if (a == "nodiratime") { o->nodiratime = true; return 0; }
    if (a == "diratime") { o->nodiratime = false; return 0; }
    if (a == "writeback_cache") { o->writeback_cache = true; return 0; }
    if (a.rfind("readahead=", 0) == 0) {
      auto v = parse_size(a.substr(10));
      if (!v || *v > (256u << 20)) { o->error = "readahead= wants a size up to 256M"; return -1; }
      o->readahead_kb = unsigned(*v / 1024);
      return 0;
    }
    if (a == "csum=auto") { o->csum = CsumMode::kAuto; return 0; }
    if (a == "csum=sync") { o->csum = CsumMode::kSync; return 0; }
    if (a == "csum=async") { o->csum = CsumMode::kAsync; return 0; }
    if (a.rfind("csum=", 0) == 0) { o->error = "csum= wants auto, sync or async"; return -1; }
    if (a.rfind("queue_depth=", 0) == 0) {
      char* end;
      unsigned long v = std::strtoul(a.c_str() + 12, &end, 10);
      if (*end || v < 8 || v > 4096) { o->error = "queue_depth= wants 8..4096"; return -1; }
      o->queue_depth = unsigned(v);
      return 0;
    }
    if (a == "default_permissions") { o->default_permissions = true; return 0; }
    if (a == "nodefault_permissions") { o->default_permissions = false; return 0; }
    if (a.rfind("max_threads=", 0) == 0) o->user_threads = true;
    if (a.rfind("max_idle_threads=", 0) == 0) o->user_idle_threads = true;
    if (a.rfind("fsname=", 0) == 0) o->user_fsname = true;
    if (a.rfind("subtype=", 0) == 0) o->user_subtype = true;
    if (ignorable_mount_option(a)) return 0;
    return 1;
  }
  return 1;
}

// Our mount at `mnt` as /proc/self/mountinfo shows it: "MAJ:MIN" and the
// per-mount flags ("rw,nosuid,nodev,relatime"). Read from there, not with
// statvfs(), which would be a request to our own, not yet running, daemon.
struct MountEntry {
  std::string bdi, flags;
};
MountEntry find_mount(const char* mnt) {
  char real[PATH_MAX];
  if (!realpath(mnt, real)) return {};
  FILE* f = std::fopen("/proc/self/mountinfo", "r");
  if (!f) return {};
  char line[4096];
  MountEntry found;
  while (std::fgets(line, sizeof line, f)) {
    char majmin[64], root[PATH_MAX], point[PATH_MAX], flags[1024];
    if (std::sscanf(line, "%*s %*s %63s %4095s %4095s %1023s", majmin, root, point, flags) == 4 &&
        std::string(point) == real && std::strstr(line, " - fuse.cairn "))
      found = {majmin, flags};  // the last match is the newest mount
  }
  std::fclose(f);
  return found;
}

void usage(const char* prog) {
  std::cout << "usage: " << prog << " IMAGE MOUNTPOINT [options]\n\n"
            << "Mount the Cairn filesystem in IMAGE (a file or block device) at MOUNTPOINT.\n\n"
            << "Cairn options:\n"
            << "    -o ro                  mount read-only\n"
            << "    -o commit=SECONDS      commit interval (default 5)\n"
            << "    -o cache=SIZE          memory for the daemon's caches (default 256M)\n"
            << "    -o csum=auto|sync|async  data checksums beside the write (async) or before it\n"
            << "    -o queue_depth=N       io_uring queue depth (default 64)\n"
            << "    -o dropbehind          written data leaves no trace in any cache (all files)\n"
            << "    -o compress=ALG        compress new data: zstd[:1-19], lz4 or none (default none)\n"
            << "    -o nospace_cache       read the extent tree at mount instead of the free-space cache\n"
            << "    -o nofsync_log         every fsync commits the whole transaction (no fsync log)\n"
            << "    -o subvol=PATH         mount the subvolume at PATH (from the top level) as the root\n"
            << "    -o writeback_cache     let the kernel cache writes (FUSE writeback cache; see cairn(8))\n"
            << "    -o readahead=SIZE      kernel readahead for the mount (default 16M)\n"
            << "    -o attr_timeout=S      seconds the kernel keeps attributes (default 1)\n"
            << "    -o entry_timeout=S     seconds the kernel keeps names, found or not (default 1)\n"
            << "    -o nodefault_permissions  let the daemon, not the kernel, check permissions\n"
            << "    -o allow_other         let other users access the mount\n"
            << "    -o noacl               no POSIX ACLs (acl: the default)\n"
            << "    -o relatime|strictatime|noatime  access time updates (default relatime), nodiratime\n"
            << "    -o dev,suid            honour device nodes and set-ID programs (root only;\n"
            << "                           the default is nodev,nosuid as for every FUSE mount)\n"
            << "    -f                     stay in the foreground\n"
            << "    -d                     debug output (implies -f)\n"
            << "    -s                     single-threaded\n"
            << "    -h, --help             this text\n"
            << "    -V, --version          print the version\n\n"
            << "FUSE options:\n";
  fuse_cmdline_help();
  fuse_lowlevel_help();
}

// The periodic commit: a transaction every `seconds`, so at most that much
// work is lost to a crash (fsync'ed data never is).
class Committer {
 public:
  Committer(Filesystem* fs, unsigned seconds) : fs_(fs), seconds_(seconds) {}
  void start() { t_ = std::thread([this] { run(); }); }
  void stop() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (t_.joinable()) t_.join();
  }
  // Commit now instead of at the end of the interval (the inode table asks
  // when too many inodes wait for a commit to be clean). Never blocks.
  void kick() {
    {
      std::lock_guard lk(mu_);
      kicked_ = true;
    }
    cv_.notify_all();
  }

 private:
  void run() {
    std::unique_lock lk(mu_);
    for (;;) {
      cv_.wait_for(lk, std::chrono::seconds(seconds_), [this] { return stop_ || kicked_; });
      if (stop_) break;
      kicked_ = false;
      lk.unlock();
      Status st = fs_->sync();
      if (!st.ok()) std::cerr << "cairn: periodic commit failed: " << st.message() << "\n";
      // Give the memory of pages that left the cache back to the system:
      // glibc keeps freed 4 KiB blocks in its arenas otherwise, and the
      // daemon's resident size would stay at its high-water mark.
      malloc_trim(0);
      lk.lock();
    }
  }
  Filesystem* fs_;
  unsigned seconds_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false, kicked_ = false;
  std::thread t_;
};

// `mount -o remount,ro|rw MOUNTPOINT` reaches us through mount.fuse3 as a
// new "mount": there is nothing to start, only the kernel's flags of the
// live mount to change (the daemon keeps running and keeps everything it
// holds). The flags not named stay as they are.
int remount(const char* mountpoint, bool read_only) {
  struct statvfs sv;
  if (statvfs(mountpoint, &sv) != 0) {
    std::cerr << "cairn: remount: " << mountpoint << ": " << std::strerror(errno) << "\n";
    return 1;
  }
  unsigned long flags = MS_REMOUNT;
  if (read_only) flags |= MS_RDONLY;
  if (sv.f_flag & ST_NOSUID) flags |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) flags |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  if (mount(nullptr, mountpoint, nullptr, flags, nullptr) != 0) {
    std::cerr << "cairn: remount of " << mountpoint << " failed: " << std::strerror(errno) << "\n";
    return 1;
  }
  return 0;
}

// The running kernel is at least MAJOR.MINOR (FUSE features the INIT reply
// does not confirm to libfuse 3.14).
bool kernel_at_least(int major, int minor) {
  struct utsname u;
  if (uname(&u) != 0) return false;
  int ma = 0, mi = 0;
  if (std::sscanf(u.release, "%d.%d", &ma, &mi) != 2) return false;
  return ma > major || (ma == major && mi >= minor);
}

// Add MS_STRICTATIME or MS_NODIRATIME to the live mount, keeping its other
// flags (a bind remount changes the mount's flags only, with no request to
// the daemon).
void set_atime_flags(const char* mountpoint, const std::string& current, bool strict, bool nodiratime) {
  unsigned long flags = MS_REMOUNT | MS_BIND;
  if (strict) flags |= MS_STRICTATIME;
  if (nodiratime) flags |= MS_NODIRATIME;
  auto has = [&](const char* f) { return ("," + current + ",").find("," + std::string(f) + ",") != std::string::npos; };
  if (has("ro")) flags |= MS_RDONLY;
  if (has("nosuid")) flags |= MS_NOSUID;
  if (has("nodev")) flags |= MS_NODEV;
  if (has("noexec")) flags |= MS_NOEXEC;
  if (has("nodiratime")) flags |= MS_NODIRATIME;
  if (has("noatime")) flags |= MS_NOATIME;
  if (has("nosymfollow")) flags |= MS_NOSYMFOLLOW;
  if (mount(nullptr, mountpoint, nullptr, flags, nullptr) != 0)
    std::cerr << "cairn: cannot show " << (strict ? "strictatime" : "nodiratime") << " in the mount's flags ("
              << std::strerror(errno) << "); access times follow it all the same\n";
}

}  // namespace

int main(int argc, char** argv) {
  // One malloc arena per core, not glibc's eight: with 32 FUSE threads each
  // taking its own arena, memory freed by one thread (evicted nodes and
  // inodes) sat in arenas others never reuse. A cold stat of 1M files:
  // 568 MiB resident with the default, 222 MiB with this (cache=256M).
  // MALLOC_ARENA_MAX in the environment still wins.
  if (!std::getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, int(std::max(2u, std::thread::hardware_concurrency())));
  fuse_args args = FUSE_ARGS_INIT(argc, argv);
  Options o;
  static const fuse_opt no_specs[] = {FUSE_OPT_END};
  if (fuse_opt_parse(&args, &o, no_specs, opt_proc) != 0) {
    std::cerr << "cairn: " << (o.error.empty() ? "bad arguments" : o.error) << "\n";
    return 2;
  }
  if (o.help) {
    usage(argv[0]);
    return 0;
  }
  if (o.version) {
    std::cout << "cairn " << CAIRN_VERSION_STRING << " (FUSE " << fuse_pkgversion() << ")\n";
    return 0;
  }
  if (o.image.empty() || !o.have_mountpoint) {
    std::cerr << "cairn: usage: cairn IMAGE MOUNTPOINT [-o options]  (--help for more)\n";
    return 2;
  }
  char abs_image[PATH_MAX];
  if (!realpath(o.image.c_str(), abs_image)) {
    std::cerr << "cairn: " << o.image << ": " << std::strerror(errno) << "\n";
    return 1;
  }
  // Defaults that the command line may override (fsname, subtype).
  std::string extra = "-o";
  std::string optstr;
  auto add = [&](const std::string& s) { optstr += (optstr.empty() ? "" : ",") + s; };
  if (!o.user_fsname) add(std::string("fsname=") + abs_image);
  if (!o.user_subtype) add("subtype=cairn");
  if (o.default_permissions) add("default_permissions");
  fuse_opt_insert_arg(&args, 1, optstr.c_str());
  fuse_opt_insert_arg(&args, 1, "-o");

  fuse_cmdline_opts cmd;
  if (fuse_parse_cmdline(&args, &cmd) != 0) return 2;
  if (!cmd.mountpoint) {
    std::cerr << "cairn: no mount point given\n";
    return 2;
  }
  if (o.remount) return remount(cmd.mountpoint, o.read_only);

  // Open, lock and validate the image before mounting anything.
  FileDeviceOptions dopts;
  dopts.read_only = o.read_only;
  dopts.exclusive_lock = true;
  auto dev = FileDevice::open(abs_image, dopts);
  if (!dev.ok()) {
    std::cerr << "cairn: " << dev.status().message() << "\n";
    return 1;
  }
  std::shared_ptr<BlockDevice> device = std::move(dev).value();
  std::shared_ptr<const FreeSpaceSnapshot> probed_free_space;
  {
    // Validate everything mount needs now, so a bad image is refused before
    // the mount exists; the real mount follows after daemonizing, because
    // fork() would not carry the engine's threads into the daemon.
    EngineOptions eo;
    eo.read_only = true;
    eo.space_cache = o.space_cache;
    auto probe = Engine::open(device, eo);
    if (!probe.ok()) {
      std::cerr << "cairn: cannot mount " << abs_image << ": " << probe.status().message() << "\n";
      return 1;
    }
    if (o.read_only) {
      // A read-only mount replays nothing: say what it does not show.
      auto chain = read_fsync_log(probe.value()->device(), probe.value()->chunk_map(), probe.value()->super());
      if (chain.ok() && !chain->writes.empty())
        std::cerr << "cairn: " << abs_image << ": the fsync log holds " << chain->writes.size()
                  << " writes that a read-write mount replays; this read-only mount shows the last commit\n";
    }
    if (!o.subvol.empty()) {
      auto root = Filesystem::resolve_subvolume(*probe.value(), o.subvol);
      if (!root.ok()) {
        std::cerr << "cairn: cannot mount " << abs_image << ": " << root.status().message() << "\n";
        return 1;
      }
    }
    // The probe read the extent tree (or the cache); the mount takes its
    // map over rather than reading it again (at 10M extents, seconds).
    probed_free_space = probe.value()->free_space_snapshot();
  }
  MountOptions mo;
  mo.read_only = o.read_only;
  mo.node_cache_bytes = o.cache_bytes / 2;
  mo.writeback.dirty_limit = o.cache_bytes / 2;
  mo.writeback.csum_mode = o.csum;
  mo.writeback.compress = o.compress;
  mo.dropbehind = o.dropbehind;
  mo.atime = o.atime;
  mo.nodiratime = o.nodiratime;
  mo.posix_acl = o.posix_acl;
  mo.max_chunk_size = o.max_chunk_size;
  mo.space_cache = o.space_cache;
  mo.fsync_log = o.fsync_log;
  mo.free_space = std::move(probed_free_space);
  mo.subvol = o.subvol;
  // About one unused inode per 4 KiB of cache= (65,536 at the default).
  mo.unused_inode_bound = o.cache_bytes / 4096;
  mo.resident_inode_bound = o.cache_bytes / 4096;
  mo.io.dontcache = true;  // probed at mount; used for dropbehind data on buffered images
  mo.writeback.queue_depth = o.queue_depth;
  mo.io.queue_depth = o.queue_depth;
  FuseContext fctx;

  fuse_session* se = fuse_session_new(&args, &cairn_fuse_ops(), sizeof(fuse_lowlevel_ops), &fctx);
  if (!se) return 1;
  if (fuse_set_signal_handlers(se) != 0) return 1;
  if (fuse_session_mount(se, cmd.mountpoint) != 0) {
    std::cerr << "cairn: cannot mount at " << cmd.mountpoint << "\n";
    return 1;
  }
  // Answered once the session loop runs: amend libfuse's INIT reply with
  // what libfuse 3.14 cannot ask for (fuse/init_flags.h). Not with the
  // writeback cache: there the kernel keeps clearing set-ID bits.
  ExtraInitFlags extra_init;
  extra_init.handle_killpriv_v2 = !o.writeback_cache;
  extra_init.direct_io_allow_mmap = true;
  request_init_flags(fuse_session_fd(se), extra_init);
  fctx.direct_io_mmap = kernel_at_least(6, 6);
  const MountEntry mounted = find_mount(cmd.mountpoint);
  fctx.bdi = mounted.bdi;
  fctx.readahead_kb = o.readahead_kb;
  fctx.read_buffers.set_keep(std::max(1u, o.readahead_kb / 1024));
  fctx.writeback_cache = o.writeback_cache;
  fctx.attr_timeout = o.attr_timeout;
  fctx.entry_timeout = o.entry_timeout;
  fctx.posix_acl = o.posix_acl;
  fctx.se = se;
  // strictatime, nodiratime: the kernel's flags, for /proc/mounts (the
  // daemon keeps the times either way). Needs root, like every change of
  // mount flags.
  if (o.atime == AtimePolicy::kStrict || o.nodiratime)
    set_atime_flags(cmd.mountpoint, mounted.flags, o.atime == AtimePolicy::kStrict, o.nodiratime);
  fuse_daemonize(cmd.foreground);
  // Threads start after daemonizing: fork() keeps only the calling thread.
  auto fs = Filesystem::mount(device, mo);
  if (!fs.ok()) {
    std::cerr << "cairn: cannot mount " << abs_image << ": " << fs.status().message() << "\n";
    fuse_session_unmount(se);
    return 1;
  }
  fctx.fs = fs.value().get();
  set_root_ino(fctx.fs->root_ino());
  fctx.fs->set_attrs_changed_hook([&fctx](uint64_t ino) { invalidate_kernel_attrs(fctx, ino); });
  Committer committer(fctx.fs, o.commit_seconds);
  std::unique_ptr<ScrubService> scrub;
  if (!o.read_only) {
    fctx.fs->set_commit_request_hook([&committer] { committer.kick(); });
    committer.start();
    scrub = std::make_unique<ScrubService>(fctx.fs->engine(), fctx.fs->io());
    fctx.scrub = scrub.get();
  }
  int rc;
  if (cmd.singlethread) {
    rc = fuse_session_loop(se);
  } else {
    fuse_loop_config* cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(cfg, cmd.clone_fd);
    // A sequential read keeps readahead/1 MiB requests in flight, each
    // holding a thread while its block I/O runs: libfuse's default of ten
    // threads would cap the 16 MiB default window at ten. Threads beyond
    // eight idle ones exit again (read buffers live in a pool, not in them).
    fuse_loop_cfg_set_max_threads(cfg, o.user_threads ? cmd.max_threads : kDefaultThreads);
    fuse_loop_cfg_set_idle_threads(cfg, o.user_idle_threads ? cmd.max_idle_threads : kDefaultIdleThreads);
    rc = fuse_session_loop_mt(se, cfg);
    fuse_loop_cfg_destroy(cfg);
  }
  // A running scrub stops first; its position is saved by the final commit.
  if (scrub) scrub->shutdown();
  committer.stop();
  fuse_session_unmount(se);
  // Unmount: everything the kernel held is released; the final commit
  // leaves the image clean before the lock is dropped at exit.
  Status st = fctx.fs->unmount();
  if (!st.ok()) std::cerr << "cairn: final commit failed: " << st.message() << "\n";
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  free(cmd.mountpoint);
  fuse_opt_free_args(&args);
  fs.value().reset();
  return (rc != 0 || !st.ok()) ? 1 : 0;
}
