// mkfs.cairn: make a Cairn filesystem on an image file or block device.
// A thin front end: the first trees are built by the engine (Engine::format),
// never encoded here by hand.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "cairn_version.h"
#include "dev/block_device.h"
#include "populate.h"
#include "format/superblock.h"
#include "tree/engine.h"
#include "util/endian.h"
#include "util/size_parse.h"

using namespace cairn;

namespace {

// A filesystem we would destroy: Cairn's own, or one blkid would name.
std::string existing_signature(BlockDevice& dev) {
  uint8_t buf[4096];
  for (uint64_t off : kSuperblockOffsets)
    if (off + sizeof buf <= dev.size() && dev.read(off, buf, sizeof buf).ok() && Superblock::has_magic(buf))
      return "a Cairn filesystem";
  if (dev.size() >= 65536 + 4096 && dev.read(65536, buf, sizeof buf).ok() && std::memcmp(buf + 64, "_BHRfS_M", 8) == 0)
    return "a btrfs filesystem";
  if (dev.size() >= 4096 && dev.read(0, buf, sizeof buf).ok()) {
    if (get_le16(buf + 1024 + 56) == 0xEF53) return "an ext2/3/4 filesystem";
    if (std::memcmp(buf, "XFSB", 4) == 0) return "an XFS filesystem";
    if (std::memcmp(buf + 4086, "SWAPSPACE2", 10) == 0) return "swap space";
  }
  return "";
}

int fail(const std::string& msg) {
  std::cerr << "mkfs.cairn: " << msg << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Make a Cairn copy-on-write, checksumming filesystem on IMAGE (a file or block device)."};
  app.set_version_flag("-V,--version", std::string("mkfs.cairn ") + CAIRN_VERSION_STRING);
  std::string image, size_str, label, uuid_str, csum = "crc32c", meta = "dup", data = "single";
  uint32_t nodesize = kDefaultNodeSize;
  std::string rootdir;
  bool force = false, quiet = false;
  app.add_option("IMAGE", image, "Image file (created if missing) or block device")->required();
  app.add_option("-s,--size", size_str, "Filesystem size (e.g. 8G); creates or extends a regular file");
  app.add_option("-L,--label", label, "Filesystem label (up to 255 bytes)");
  app.add_option("-U,--uuid", uuid_str, "Filesystem UUID (default: random)");
  app.add_option("--csum", csum, "Data and metadata checksum: crc32c, xxhash64, sha256, blake2b")->capture_default_str();
  app.add_option("-n,--nodesize", nodesize, "Tree node size in bytes: 4096..65536, a power of two")->capture_default_str();
  // DUP metadata by default, as btrfs-progs since 5.15: one bad sector in a
  // tree node must not take what hangs below it.
  app.add_option("-m,--metadata", meta, "Metadata profile: dup (two copies of every tree node) or single")
      ->capture_default_str();
  app.add_option("-d,--data", data, "Data profile: single or dup")->capture_default_str();
  app.add_option("-r,--rootdir", rootdir, "Fill the new filesystem from this directory (its tree, owners, modes, "
                                          "times, extended attributes, hard links, holes)");
  app.add_flag("-f,--force", force, "Overwrite an existing filesystem");
  app.add_flag("-q,--quiet", quiet, "Print nothing on success");
  CLI11_PARSE(app, argc, argv);

  MkfsParams p;
  p.label = label;
  p.node_size = nodesize;
  if (label.size() > 255) return fail("label is longer than 255 bytes");
  auto ct = csum_from_name(csum);
  if (!ct) return fail("unknown checksum algorithm '" + csum + "' (crc32c, xxhash64, sha256, blake2b)");
  p.csum = *ct;
  if (nodesize < kMinNodeSize || nodesize > kMaxNodeSize || (nodesize & (nodesize - 1)))
    return fail("bad node size " + std::to_string(nodesize) + ": a power of two from 4096 to 65536");
  auto profile = [](const std::string& s) -> int { return s == "single" ? int(kProfileSingle) : s == "dup" ? int(kProfileDup) : -1; };
  if (profile(meta) < 0) return fail("unknown metadata profile '" + meta + "' (single, dup)");
  if (profile(data) < 0) return fail("unknown data profile '" + data + "' (single, dup)");
  p.metadata_profile = uint32_t(profile(meta));
  p.data_profile = uint32_t(profile(data));
  if (!uuid_str.empty()) {
    Uuid u;
    if (!uuid_parse(uuid_str, &u)) return fail("bad UUID '" + uuid_str + "'");
    p.uuid = u;
  }
  std::optional<uint64_t> size;
  if (!size_str.empty()) {
    size = parse_size(size_str);
    if (!size) return fail("bad size '" + size_str + "'");
    if (*size < kMinDeviceSize) return fail("size " + format_size(*size) + " is too small: at least 64 MiB");
  }

  if (!rootdir.empty()) {
    // Checked before anything is written: a typo must not cost the image.
    struct stat rs;
    if (::stat(rootdir.c_str(), &rs) != 0) return fail("--rootdir " + rootdir + ": " + std::strerror(errno));
    if (!S_ISDIR(rs.st_mode)) return fail("--rootdir " + rootdir + ": not a directory");
  }
  struct stat st;
  bool exists = ::stat(image.c_str(), &st) == 0;
  if (!exists) {
    if (!size) return fail(image + " does not exist; give -s SIZE to create an image file");
    int fd = ::open(image.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) return fail(image + ": " + std::strerror(errno));
    ::close(fd);
  } else if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    return fail(image + ": not a regular file or block device");
  }
  if (size && (!exists || S_ISREG(st.st_mode)) && (!exists || uint64_t(st.st_size) < *size)) {
    if (::truncate(image.c_str(), off_t(*size)) != 0) return fail(image + ": cannot resize: " + std::strerror(errno));
  }
  auto dev = FileDevice::open(image, FileDeviceOptions{false, true});
  if (!dev.ok()) return fail(dev.status().message());
  if (size) p.size = *size;
  if (exists && !force) {
    std::string sig = existing_signature(*dev.value());
    if (!sig.empty()) return fail(image + " contains " + sig + "; use -f to overwrite it");
  }
  std::shared_ptr<BlockDevice> bdev = std::move(dev).value();
  auto eng = Engine::format(bdev, p);
  if (!eng.ok()) return fail(image + ": " + eng.status().message());
  const Superblock& sb = eng.value()->super();
  const std::string profile_line = meta == "dup" ? " (two copies of every tree node; -m single for one)" : "";
  const Superblock sb_copy = sb;
  std::optional<PopulateProgress> filled;
  if (!rootdir.empty()) {
    // The new filesystem is mounted (without FUSE) and the tree copied in
    // through the same calls the daemon makes.
    eng.value().reset();
    bdev.reset();
    FileDeviceOptions dopts;
    dopts.exclusive_lock = true;
    auto again = FileDevice::open(image, dopts);
    if (!again.ok()) return fail(again.status().message());
    PopulateOptions po;
    po.rootdir = rootdir;
    const bool tty = !quiet && isatty(STDERR_FILENO);
    if (tty)
      po.on_progress = [](const PopulateProgress& p) {
        std::fprintf(stderr, "\rcopying: %llu entries, %s   ", static_cast<unsigned long long>(p.entries),
                     format_size(p.bytes).c_str());
        std::fflush(stderr);
      };
    auto r = populate_from_directory(std::move(again).value(), po);
    if (tty) std::fprintf(stderr, "\r%60s\r", "");
    if (!r.ok()) return fail(image + ": filling from " + rootdir + ": " + r.status().message());
    filled = r.value();
  }
  if (!quiet) {
    const Superblock& sb = sb_copy;
    std::cout << "Created a Cairn filesystem on " << image << "\n"
              << "  label:      " << (sb.label.empty() ? "(none)" : sb.label) << "\n"
              << "  uuid:       " << uuid_to_string(sb.fsid) << "\n"
              << "  size:       " << format_size(sb.total_bytes) << " (" << sb.total_bytes << " bytes)\n"
              << "  node size:  " << sb.node_size << "\n"
              << "  checksum:   " << csum_name(sb.csum_type) << "\n"
              << "  metadata:   " << meta << profile_line << "\n"
              << "  data:       " << data << "\n";
    if (filled)
      std::cout << "  rootdir:    " << rootdir << ": " << filled->entries << " entries, " << format_size(filled->bytes)
                << " of data\n";
  }
  return 0;
}
