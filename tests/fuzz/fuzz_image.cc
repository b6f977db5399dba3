// libFuzzer target: a whole filesystem. The input (image_dump.h: a
// superblock and tree nodes, checksums made valid) is laid out on a small
// in-memory device; the engine opens it, every tree is walked and every
// item decoded, every inode's file extents are mapped and its checksums
// looked up; then fsck's checks run on the same image. Nothing may crash,
// hang or read out of bounds; errors are the expected outcome.
#include <memory>

#include "check/checker.h"
#include "format/constants.h"
#include "format/items.h"
#include "image_dump.h"
#include "tree/engine.h"

using namespace cairn;

namespace {

void walk(Engine& e) {
  for (uint64_t id : {kRootTreeId, kExtentTreeId, kFsTreeId, kCsumTreeId}) {
    BTree t = e.tree(id);
    Cursor c = t.cursor();
    if (!c.seek(Key::Min()).ok()) continue;
    size_t budget = 1 << 20;  // the tree is finite; the budget guards the test itself
    for (; c.valid() && budget; c.advance(), budget--) {
      const Key k = c.key();
      const Bytes& d = c.data();
      if (k.type == kInodeItem) (void)InodeItem::decode(d);
      if (k.type == kExtentData) {
        auto fe = FileExtent::decode(d);
        if (fe.ok() && fe->disk_bytenr) {
          std::vector<uint8_t> sums;
          std::vector<bool> present;
          (void)e.lookup_csums(fe->disk_bytenr + fe->offset, std::min<uint64_t>(fe->num_bytes / kSectorSize, 256),
                               &sums, &present);
        }
      }
      if (k.type == kDirItem || k.type == kDirIndex || k.type == kXattrItem) (void)decode_dir_entries(d);
      if (k.type == kInodeRef) (void)decode_inode_refs(d);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // One device for every run, cleared where the last run wrote (a fresh
  // 64 MiB device per run would be most of the time spent).
  static MemoryDevice device(kMinDeviceSize);
  static const std::shared_ptr<MemoryDevice> dev(&device, [](MemoryDevice*) {});
  std::vector<std::pair<uint64_t, uint64_t>> written;
  if (fuzz::image_from_dump(data, size, device, &written)) {
    EngineOptions o;
    o.read_only = true;
    o.node_cache_bytes = 1 << 20;
    if (auto e = Engine::open(dev, o); e.ok()) walk(*e.value());
    (void)check_filesystem(device);
  }
  for (auto [at, len] : written) {
    const std::vector<uint8_t> zeros(len, 0);
    (void)device.write(at, zeros.data(), len);
  }
  return 0;
}
