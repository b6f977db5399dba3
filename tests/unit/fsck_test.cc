// fsck core: a clean fresh image, and one flipped byte in each node, in
// turn, must be reported naming that node.
#include <catch2/catch.hpp>
#include <cstdio>
#include <map>
#include <optional>
#include <random>

#include "check/checker.h"
#include "format/items.h"
#include "test_helpers.h"

using namespace cairn;
using namespace cairn::test;

namespace {
std::string hex(uint64_t v) {
  char b[32];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

// Every tree block (logical address) and its physical copies.
std::vector<std::pair<uint64_t, std::vector<uint64_t>>> all_nodes(std::shared_ptr<BlockDevice> dev) {
  auto e = open_engine(dev, true);
  std::vector<std::pair<uint64_t, std::vector<uint64_t>>> out;
  BTree et = e->tree(kExtentTreeId);
  Cursor c = et.cursor();
  REQUIRE(c.seek(Key::Min()).ok());
  for (; c.valid(); c.advance())
    if (c.key().type == kMetadataItem) {
      auto phys = e->chunk_map().map(c.key().objectid, e->node_size());
      REQUIRE(phys.ok());
      out.push_back({c.key().objectid, phys.value()});
    }
  return out;
}
}  // namespace

TEST_CASE("fsck: a fresh image is clean for every checksum and profile", "[fsck]") {
  for (auto ct : {CsumType::kCrc32c, CsumType::kXxhash64, CsumType::kSha256, CsumType::kBlake2b})
    for (uint32_t prof : {kProfileSingle, kProfileDup}) {
      MkfsParams p;
      p.csum = ct;
      p.metadata_profile = prof;
      auto dev = make_formatted_memory(p);
      auto rep = check_filesystem(*dev);
      REQUIRE(rep.ok());
      for (auto& pr : rep->problems) UNSCOPED_INFO(pr.message);
      CHECK(rep->clean());
      CHECK(rep->stats.trees == 5);
    }
}

TEST_CASE("fsck: one flipped byte in each node is found and named", "[fsck]") {
  for (uint32_t prof : {kProfileSingle, kProfileDup}) {
    MkfsParams p;
    p.metadata_profile = prof;
    auto dev = make_formatted_memory(p);
    {
      // Some content, so there is more than one node per tree.
      add_kv_tree(dev, 300);
      auto e = open_engine(dev);
      std::lock_guard lk(e->mutex());
      BTree t = e->tree(300);
      for (uint64_t i = 0; i < 600; i++) REQUIRE(t.insert(Key{1000 + i, 1, 0}, Bytes(100, uint8_t(i))).ok());
      REQUIRE(e->commit().ok());
    }
    auto clean = dev->snapshot();
    auto nodes = all_nodes(dev);
    REQUIRE(nodes.size() > 5);
    std::mt19937 rng(5);
    int checked = 0;
    for (auto& [bytenr, copies] : nodes) {
      for (uint64_t phys : copies) {
        auto img = clean;
        img[phys + rng() % 16384] ^= uint8_t(1 + rng() % 255);
        MemoryDevice bad(std::move(img));
        auto rep = check_filesystem(bad);
        REQUIRE(rep.ok());
        INFO("node " << hex(bytenr) << " physical " << hex(phys));
        REQUIRE_FALSE(rep->clean());
        bool named = false;
        for (auto& pr : rep->problems)
          if (pr.bytenr == bytenr && pr.message.find(hex(bytenr)) != std::string::npos) named = true;
        CHECK(named);
        checked++;
      }
    }
    CHECK(checked == int(nodes.size() * (prof == kProfileDup ? 2 : 1)));
  }
}

TEST_CASE("fsck: damaged superblock copies are reported and the newest good one is used", "[fsck]") {
  auto dev = make_formatted_memory({}, 128ULL << 20);  // copies at 64 KiB and 64 MiB
  auto img = dev->snapshot();
  img[kSuperblockOffsets[0] + 100] ^= 0x40;
  MemoryDevice bad(img);
  auto rep = check_filesystem(bad);
  REQUIRE(rep.ok());
  REQUIRE(rep->problems.size() == 1);
  CHECK(rep->problems[0].code == "superblock-copy");
  // The engine still opens it from the second copy.
  auto e = Engine::open(std::make_shared<MemoryDevice>(img), EngineOptions{true});
  CHECK(e.ok());
  img[kSuperblockOffsets[1] + 100] ^= 0x40;
  MemoryDevice worse(img);
  auto rep2 = check_filesystem(worse);
  REQUIRE(rep2.ok());
  CHECK_FALSE(rep2->clean());
  CHECK_FALSE(Engine::open(std::make_shared<MemoryDevice>(img), EngineOptions{true}).ok());
}

TEST_CASE("fsck: names whose hashes collide share one DIR_ITEM, and each is matched to its own index entry", "[fsck]") {
  // Two names with one crc32c name hash (found by search: 32 bits collide
  // within a few hundred thousand names).
  std::map<uint64_t, std::string> seen;
  std::string a, b;
  for (uint64_t i = 0; a.empty(); i++) {
    std::string n = "collide-" + std::to_string(i);
    auto [it, fresh] = seen.emplace(name_hash(n), n);
    if (!fresh) a = it->second, b = n;
  }
  REQUIRE(name_hash(a) == name_hash(b));
  TempImage img;
  {
    auto fs = img.mount();
    new_file(*fs, a, pattern(100, 1));
    new_file(*fs, b, pattern(100, 2));
    new_file(*fs, "other", pattern(100, 3));
    REQUIRE(fs->lookup(kFirstInode, a).ok());
    REQUIRE(fs->lookup(kFirstInode, b).ok());
    REQUIRE(fs->unmount().ok());
  }
  check_clean(img.path);
  // Drop the index entry of the second name only: fsck names that one, and
  // not its partner in the same DIR_ITEM.
  {
    auto e = open_engine(img.open_device());
    std::lock_guard lk(e->mutex());
    BTree fs = e->tree(kFsTreeId);
    Cursor c = fs.cursor();
    REQUIRE(c.seek(Key{kFirstInode, kDirIndex, 0}).ok());
    std::optional<Key> victim;
    for (; c.valid() && c.key().objectid == kFirstInode && c.key().type == kDirIndex; c.advance())
      visit_dir_entries(c.data(), [&](const DirEntryView& v) {
        if (v.name == b) victim = c.key();
      });
    REQUIRE(victim);
    REQUIRE(fs.remove(*victim).ok());
    REQUIRE(e->commit().ok());
  }
  auto rep = check_report(img.path);
  std::vector<std::string> missing;
  for (const Problem& p : rep.problems)
    if (p.code == "dir-index") missing.push_back(p.message);
  REQUIRE(missing.size() == 1);
  CHECK(missing[0].find("\"" + b + "\"") != std::string::npos);
}
