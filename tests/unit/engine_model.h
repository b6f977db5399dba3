#pragma once
// A key/value tree and data extents driven straight through the engine,
// with the model they are checked against: for engine tests that need
// allocations of both kinds without the VFS (chunks, free-space cache).
#include <catch2/catch.hpp>
#include <map>

#include "check/checker.h"
#include "tree/engine.h"

namespace cairn::test {

constexpr uint64_t kTestTree = 300;
constexpr uint64_t kMiB = 1ULL << 20;

using KvModel = std::map<Key, Bytes>;
using ExtentModel = std::map<uint64_t, uint64_t>;  // bytenr -> length

// Open with these options, or fail the test.
inline std::unique_ptr<Engine> open_engine_with(std::shared_ptr<BlockDevice> dev, const EngineOptions& eo) {
  auto e = Engine::open(std::move(dev), eo);
  INFO(e.status().message());
  REQUIRE(e.ok());
  return std::move(e).value();
}

inline KvModel dump_kv(Engine& e, uint64_t tree = kTestTree) {
  KvModel m;
  BTree t = e.tree(tree);
  Cursor c = t.cursor();
  REQUIRE(c.seek(Key::Min()).ok());
  for (; c.valid(); c.advance()) m[c.key()] = c.data();
  REQUIRE(c.status().ok());
  return m;
}

inline ExtentModel dump_extents(Engine& e) {
  ExtentModel m;
  BTree t = e.tree(kExtentTreeId);
  Cursor c = t.cursor();
  REQUIRE(c.seek(Key::Min()).ok());
  for (; c.valid(); c.advance())
    if (c.key().type == kExtentItem) m[c.key().objectid] = c.key().offset;
  REQUIRE(c.status().ok());
  return m;
}

// fsck finds nothing but the test's own construction: its data extents are
// referenced from a key/value tree, not by files, so fsck calls them leaked
// ("extent-leak" on data extents, and only that).
inline void require_clean(BlockDevice& dev) {
  auto rep = check_filesystem(dev);
  REQUIRE(rep.ok());
  size_t real = 0;
  for (auto& p : rep->problems) {
    if (p.code == "extent-leak" && p.data_extent) continue;
    UNSCOPED_INFO(p.code << ": " << p.message);
    if (!p.warning) real++;
  }
  REQUIRE(real == 0);
}

// One data extent of up to `max` bytes, recorded; false at ENOSPC.
inline bool add_extent(Engine& e, ExtentModel& m, uint64_t max) {
  if (!e.reserve_metadata(8).ok()) return false;
  auto ext = e.alloc_data(4096, max);
  if (!ext.ok()) {
    REQUIRE(ext.status().code() == ENOSPC);
    return false;
  }
  REQUIRE(e.add_data_extent(ext->first, ext->second, kTestTree, 1, ext->first).ok());
  m[ext->first] = ext->second;
  return true;
}

inline void drop_extent(Engine& e, ExtentModel& m, ExtentModel::iterator it) {
  REQUIRE(e.drop_data_ref(it->first, it->second, kTestTree, 1, it->first).ok());
  m.erase(it);
}

// One key/value item of `size` bytes; false at ENOSPC (checked before any change).
inline bool add_kv(Engine& e, KvModel& m, uint64_t id, size_t size) {
  if (!e.reserve_metadata(8).ok()) return false;
  const Key k{id, 1, 0};
  Bytes v(size, uint8_t(id));
  REQUIRE(e.tree(kTestTree).upsert(k, v).ok());
  m[k] = v;
  return true;
}


}  // namespace cairn::test
