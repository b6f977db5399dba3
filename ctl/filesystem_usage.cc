#include "filesystem_usage.h"

#include <sys/stat.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "alloc/space_usage.h"
#include "control_client.h"
#include "dev/block_device.h"
#include "fuse/control.h"
#include "tree/engine.h"
#include "util/size_parse.h"

namespace cairn::ctl {

using nlohmann::json;

namespace {

// The account of an image nobody has mounted: open it read-only (the
// free-space map comes from the saved cache or a scan of the extent tree,
// as at mount); nothing is written.
Result<json> offline_usage(const std::string& image) {
  auto dev = FileDevice::open(image, FileDeviceOptions{true, true});
  if (!dev.ok()) {
    if (dev.status().code() == EWOULDBLOCK)
      return Status::Error(EBUSY, image + " is in use (mounted?); give its mount point instead");
    return dev.status();
  }
  std::shared_ptr<BlockDevice> device = std::move(dev).value();
  EngineOptions eo;
  eo.read_only = true;
  auto eng = Engine::open(device, eo);
  if (!eng.ok()) return Status::Error(eng.status().code(), image + ": " + eng.status().message());
  Engine& e = *eng.value();
  std::lock_guard lk(e.mutex());
  const Superblock& sb = e.super();
  return space_usage_json(space_usage(e.chunk_map(), e.allocator(), sb.data_profile, sb.metadata_profile, 0));
}

std::string size(const json& v) { return format_size(v.get<uint64_t>()); }

std::string title(const std::string& type) {
  return type.empty() ? type : std::string(1, char(std::toupper(static_cast<unsigned char>(type[0])))) + type.substr(1);
}

void print(const json& u) {
  auto row = [](const char* name, const std::string& value, const char* note = "") {
    std::printf("    %-24s %14s%s%s\n", name, value.c_str(), *note ? "   " : "", note);
  };
  std::printf("Overall:\n");
  row("Device size:", size(u["device_size"]));
  row("Device allocated:", size(u["device_allocated"]), "(in chunks, every copy)");
  row("Device unallocated:", size(u["device_unallocated"]));
  row("Superblock reserves:", size(u["superblock_reserve"]), "(never allocated)");
  row("Used:", size(u["device_used"]), "(data and metadata, every copy)");
  row("Free (estimated):", size(u["free_estimate"]), "(what files can still take: df's Avail)");
  row("Data copies:", std::to_string(u["data_copies"].get<uint32_t>()));
  row("Metadata held back:", size(u["metadata_held_back"]), "(unallocated room kept for a metadata chunk)");
  row("Dirty data reserved:", size(u["dirty_reserved"]), "(promised to pages not yet written)");
  const json& df = u["df"];
  std::printf("    %-24s %14s used, %s available of %s\n", "df:", size(df["used"]).c_str(),
              size(df["available"]).c_str(), size(df["size"]).c_str());
  std::printf("\n");
  for (const auto& t : u["chunk_types"]) {
    const uint64_t sz = t["size_bytes"].get<uint64_t>(), used = t["used_bytes"].get<uint64_t>();
    const std::string profile = t["profile"] == "dup" ? "DUP" : "single";
    std::printf("%s,%s: Size:%s, Used:%s (%.2f%%), Chunks:%llu", title(t["type"].get<std::string>()).c_str(),
                profile.c_str(), size(t["size_bytes"]).c_str(), size(t["used_bytes"]).c_str(),
                sz ? 100.0 * double(used) / double(sz) : 0.0, static_cast<unsigned long long>(t["chunks"].get<uint64_t>()));
    if (t["pinned_bytes"].get<uint64_t>()) std::printf(", freed at the next commit:%s", size(t["pinned_bytes"]).c_str());
    std::printf("\n");
  }
}

}  // namespace

int filesystem_usage(const std::string& target, bool as_json) {
  struct stat st;
  if (::stat(target.c_str(), &st) != 0) return fail(target + ": " + std::strerror(errno));
  json u;
  if (S_ISDIR(st.st_mode)) {
    auto j = control(target, CAIRN_IOC_STATS);
    if (!j.ok()) return fail(j.status().message());
    if (!j->contains("usage")) return fail(target + ": the daemon is older than this cairnctl (no space account)");
    u = (*j)["usage"];
  } else if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) {
    auto r = offline_usage(target);
    if (!r.ok()) return fail(r.status().message());
    u = std::move(r).value();
  } else {
    return fail(target + ": not a mount point, an image file or a block device", kUsage);
  }
  if (as_json) std::cout << u.dump(2) << "\n";
  else print(u);
  return kOk;
}

}  // namespace cairn::ctl
