// cairn-corrupt: damage an unmounted Cairn image on purpose (tests only).
//
//   cairn-corrupt IMAGE data PATH [-n N] [--seed S] [--copy K|all]
//       flip one bit in N distinct data blocks of the file at PATH (relative
//       to the filesystem root); prints "PATH OFFSET" per damaged block
//   cairn-corrupt IMAGE meta [-n N] [--seed S] [--copy K|all]
//       flip one bit in N distinct tree nodes; prints each node's address
//   cairn-corrupt IMAGE super --copy K
//       flip one bit in superblock copy K
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <random>
#include <set>
#include <sstream>

#include "format/items.h"
#include "tree/engine.h"

using namespace cairn;

namespace {

Result<uint64_t> resolve(Engine& e, const std::string& path) {
  uint64_t ino = kFirstInode;
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    ASSIGN_OR_RETURN(Bytes raw, e.tree(kFsTreeId).lookup(Key{ino, kDirItem, name_hash(part)}));
    ASSIGN_OR_RETURN(auto list, decode_dir_entries(raw));
    bool found = false;
    for (auto& de : list)
      if (de.name == part) {
        ino = de.location.objectid;
        found = true;
      }
    if (!found) return Status::NotFound(path + ": no such file");
  }
  return ino;
}

Status flip(BlockDevice& dev, uint64_t phys, uint64_t len, std::mt19937_64& rng) {
  const uint64_t at = phys + rng() % len;
  uint8_t b;
  RETURN_IF_ERROR(dev.read(at, &b, 1));
  b ^= uint8_t(1u << (rng() % 8));
  return dev.write(at, &b, 1);
}

std::vector<uint64_t> pick_copies(const std::vector<uint64_t>& all, const std::string& copy) {
  if (copy == "all") return all;
  size_t k = std::stoul(copy);
  if (k >= all.size()) return {};
  return {all[k]};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Damage an unmounted Cairn image on purpose (tests only)."};
  std::string image, what, path, copy = "0";
  unsigned n = 1;
  uint64_t seed = 1;
  app.add_option("IMAGE", image)->required();
  app.add_option("WHAT", what, "data, meta or super")->required();
  app.add_option("PATH", path, "file (for data)");
  app.add_option("-n", n, "how many blocks or nodes");
  app.add_option("--seed", seed);
  app.add_option("--copy", copy, "which copy: 0, 1 or all");
  CLI11_PARSE(app, argc, argv);
  std::mt19937_64 rng(seed);

  auto fdev = FileDevice::open(image, {});
  if (!fdev.ok()) return std::cerr << fdev.status().message() << "\n", 1;
  std::shared_ptr<BlockDevice> dev = std::move(fdev).value();
  if (what == "super") {
    size_t k = std::stoul(copy);
    if (k >= 3 || kSuperblockOffsets[k] + kSuperblockSize > dev->size()) return std::cerr << "no such copy\n", 1;
    Status st = flip(*dev, kSuperblockOffsets[k] + 64, kSuperblockSize - 64, rng);
    if (!st.ok()) return std::cerr << st.message() << "\n", 1;
    std::printf("superblock %zu\n", k);
    return 0;
  }
  auto eng = Engine::open(dev, EngineOptions{true});
  if (!eng.ok()) return std::cerr << eng.status().message() << "\n", 1;
  Engine& e = *eng.value();
  std::lock_guard lk(e.mutex());
  if (what == "data") {
    auto ino = resolve(e, path);
    if (!ino.ok()) return std::cerr << ino.status().message() << "\n", 1;
    // Every data block of the file: (file offset, logical address).
    std::vector<std::pair<uint64_t, uint64_t>> blocks;
    BTree fs = e.tree(kFsTreeId);
    Cursor c = fs.cursor();
    if (!c.seek(Key{*ino, kExtentData, 0}).ok()) return 1;
    for (; c.valid() && c.key().objectid == *ino && c.key().type == kExtentData; c.advance()) {
      auto fe = FileExtent::decode(c.data());
      if (!fe.ok() || fe->type != kFileExtentRegular || !fe->disk_bytenr) continue;
      // A compressed extent's disk blocks each hold part of the whole
      // item's range: reported at the item's file offset.
      if (fe->compression != kCompressNone)
        for (uint64_t o = 0; o < fe->disk_num_bytes; o += kSectorSize)
          blocks.push_back({c.key().offset, fe->disk_bytenr + o});
      else
        for (uint64_t o = 0; o < fe->num_bytes; o += kSectorSize)
          blocks.push_back({c.key().offset + o, fe->disk_bytenr + fe->offset + o});
    }
    if (blocks.size() < n) return std::cerr << path << " has only " << blocks.size() << " data blocks\n", 1;
    std::shuffle(blocks.begin(), blocks.end(), rng);
    blocks.resize(n);
    std::sort(blocks.begin(), blocks.end());
    for (auto& [off, logical] : blocks) {
      auto phys = e.chunk_map().map(logical, kSectorSize);
      if (!phys.ok()) return 1;
      for (uint64_t p : pick_copies(phys.value(), copy))
        if (!flip(*dev, p, kSectorSize, rng).ok()) return 1;
      std::printf("%s %llu\n", path.c_str(), static_cast<unsigned long long>(off));
    }
    return 0;
  }
  if (what == "meta") {
    std::vector<uint64_t> nodes;
    BTree et = e.tree(kExtentTreeId);
    Cursor c = et.cursor();
    if (!c.seek(Key::Min()).ok()) return 1;
    for (; c.valid(); c.advance())
      if (c.key().type == kMetadataItem) nodes.push_back(c.key().objectid);
    if (nodes.size() < n) return std::cerr << "only " << nodes.size() << " nodes\n", 1;
    std::shuffle(nodes.begin(), nodes.end(), rng);
    nodes.resize(n);
    std::sort(nodes.begin(), nodes.end());
    for (uint64_t b : nodes) {
      auto phys = e.chunk_map().map(b, e.node_size());
      if (!phys.ok()) return 1;
      for (uint64_t p : pick_copies(phys.value(), copy))
        if (!flip(*dev, p, e.node_size(), rng).ok()) return 1;
      std::printf("0x%llx\n", static_cast<unsigned long long>(b));
    }
    return 0;
  }
  std::cerr << "WHAT must be data, meta or super\n";
  return 2;
}
