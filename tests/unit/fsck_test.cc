// fsck core: a clean fresh image, and one flipped byte in each node, in
// turn, must be reported naming that node.
#include <catch2/catch.hpp>
#include <cstdio>
#include <random>

#include "check/checker.h"
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
