// Seed corpora for the fuzz targets, from a real image:
//   cairn-fuzz-seeds IMAGE OUTDIR
// writes OUTDIR/image/seed (image_dump.h), OUTDIR/superblock/seed and one
// OUTDIR/node/N and OUTDIR/items/N per tree node / item.
#include <filesystem>
#include <fstream>
#include <iostream>

#include "compress/codec.h"
#include "dev/block_device.h"
#include "format/constants.h"
#include "format/log_write.h"
#include "format/node.h"
#include "image_dump.h"
#include "util/endian.h"

using namespace cairn;

namespace {
void put(const std::filesystem::path& p, const uint8_t* d, size_t n) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(d), std::streamsize(n));
}
// An fsync log write of two records, one with a written piece (the header
// fields fuzz_log fixes itself).
void put_log_seed(const std::filesystem::path& p) {
  Superblock sb;
  LogWrite w;
  LogRecord r;
  r.root = kFsTreeId;
  r.ino = 257;
  r.item.generation = 2;
  r.item.transid = 3;
  r.item.mode = 0100644;
  r.item.nlink = 1;
  r.item.size = r.item.nbytes = 8192;
  LoggedRange rg{0, 8192, {}};
  LoggedPiece piece;
  piece.file_off = 4096;
  piece.extent.generation = 3;
  piece.extent.ram_bytes = piece.extent.disk_num_bytes = piece.extent.num_bytes = 4096;
  piece.extent.disk_bytenr = kFirstLogical + (8 << 20);
  piece.csums.assign(4, 0x5a);
  rg.pieces.push_back(piece);
  r.ranges.push_back(rg);
  w.records = {r, r};
  w.records[1].ino = 258;
  const Bytes b = w.encode(sb);
  put(p, b.data(), b.size());
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: cairn-fuzz-seeds IMAGE OUTDIR\n";
    return 2;
  }
  FileDeviceOptions fo;
  fo.read_only = true;
  auto dev = FileDevice::open(argv[1], fo);
  if (!dev.ok()) {
    std::cerr << dev.status().message() << "\n";
    return 1;
  }
  std::shared_ptr<BlockDevice> d = std::move(dev).value();
  auto dump = fuzz::dump_from_image(d);
  if (!dump.ok()) {
    std::cerr << dump.status().message() << "\n";
    return 1;
  }
  const std::filesystem::path out = argv[2];
  put(out / "image" / "seed", dump->data(), dump->size());
  put(out / "superblock" / "seed", dump->data(), kSuperblockSize);
  put_log_seed(out / "log" / "seed");
  const uint32_t ns = get_le32(dump->data() + 112);
  size_t n = 0, items = 0;
  for (size_t at = kSuperblockSize; at + 8 + ns <= dump->size(); at += 8 + ns, n++) {
    const uint8_t* node = dump->data() + at + 8;
    // The node target uses 4 KiB nodes: the first 4 KiB hold the header and the item headers.
    put(out / "node" / std::to_string(n), node, std::min<uint32_t>(ns, 4096));
    const uint64_t owner = get_le64(node + 72);
    const uint8_t level = node[84];
    const uint32_t nritems = get_le32(node + 80);
    if (level != 0) continue;
    for (uint32_t i = 0; i < nritems && items < 2000; i++) {
      const uint8_t* ih = node + kNodeHeaderSize + size_t(i) * kLeafItemHeaderSize;
      const uint32_t off = get_le32(ih + Key::kDiskSize), size = get_le32(ih + Key::kDiskSize + 4);
      if (size_t(off) + size > ns) continue;
      std::vector<uint8_t> it;
      it.push_back(owner == kRootTreeId ? 0 : owner == kExtentTreeId ? 1 : owner == kFsTreeId ? 2 : 3);
      it.insert(it.end(), ih, ih + Key::kDiskSize);
      it.insert(it.end(), node + off, node + off + size);
      put(out / "items" / std::to_string(items++), it.data(), it.size());
    }
  }
  // The compressed target: real extents of both algorithms (text-like
  // data of a few sizes), in its input layout: type selector, decoded
  // blocks - 1, then the disk extent.
  size_t compressed = 0;
  for (uint8_t sel : {0, 1}) {
    for (size_t blocks : {2, 8, 32}) {
      std::vector<uint8_t> plain(blocks * kSectorSize);
      for (size_t i = 0; i < plain.size(); i++) plain[i] = uint8_t("cairn checksums every block "[i % 28] + (i / 997) % 3);
      AlignedBuffer enc;
      const size_t len = compress_extent(CompressSpec{sel == 0 ? kCompressZstd : kCompressLz4, 0}, plain.data(),
                                         plain.size(), enc);
      if (!len) continue;
      std::vector<uint8_t> seed{sel, uint8_t(blocks - 1)};
      seed.insert(seed.end(), enc.data(), enc.data() + len);
      put(out / "compressed" / std::to_string(compressed++), seed.data(), seed.size());
    }
  }
  std::cout << "seeds: 1 image, " << n << " nodes, " << items << " items, " << compressed << " compressed extents\n";
  return 0;
}
