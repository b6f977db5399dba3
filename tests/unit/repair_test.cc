// fsck --repair's structural fixes, against damage made through the engine
// (so checksums are valid and only the meaning is wrong): wrong link counts,
// wrong data reference counts and back references, a leaked data extent, an
// orphan item for a missing inode, a wrong space count. Random subsets of
// them per seed; the checker must name each one, and after the repair the
// image must be clean and every file read back intact.
#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <set>

#include "check/checker.h"
#include "check/repair.h"
#include "format/constants.h"
#include "test_helpers.h"

using namespace cairn;
using cairn::test::TempImage;

namespace {

// The error codes (warnings aside) the checker reports.
std::set<std::string> codes(const std::string& path) {
  std::set<std::string> out;
  for (auto& p : cairn::test::check_report(path).problems)
    if (!p.warning) out.insert(p.code);
  return out;
}

}  // namespace

TEST_CASE("fsck repair fixes link counts, data references, leaks, orphans and the space count", "[fsck][repair]") {
  for (uint32_t seed = 1; seed <= 6; seed++) {
    DYNAMIC_SECTION("seed " << seed) {
      std::mt19937 rng(seed);
      TempImage img;
      std::map<std::string, std::vector<char>> model;
      std::vector<uint64_t> inos;
      {
        auto fs = img.mount();
        for (int f = 0; f < 6; f++) {
          const std::string name = "f" + std::to_string(f);
          auto data = cairn::test::pattern(1 + rng() % 300000, seed * 10 + f);
          inos.push_back(cairn::test::new_file(*fs, name, data));
          model[name] = data;
        }
        REQUIRE(fs->link(inos[0], kFirstInode, "hard").ok());
        REQUIRE(fs->unmount().ok());
      }
      cairn::test::check_clean(img.path);
      // Damage, a random subset of the kinds (at least one).
      std::set<std::string> want;
      {
        auto e = cairn::test::open_engine(img.open_device());
        std::lock_guard lk(e->mutex());
        const unsigned kinds = 1 + rng() % 31;
        if (kinds & 1) {  // a wrong link count
          REQUIRE(e->tree(kFsTreeId).modify(Key{inos[rng() % inos.size()], kInodeItem, 0}, [](Bytes& b) -> Status {
            ASSIGN_OR_RETURN(InodeItem ii, InodeItem::decode(b));
            ii.nlink += 3;
            b = ii.encode();
            return Status::Ok();
          }).ok());
          want.insert("link-count");
        }
        std::vector<Key> extents;
        {
          BTree t = e->tree(kExtentTreeId);
          Cursor c = t.cursor();
          REQUIRE(c.seek(Key::Min()).ok());
          for (; c.valid(); c.advance())
            if (c.key().type == kExtentItem) extents.push_back(c.key());
        }
        REQUIRE(!extents.empty());
        if (kinds & 2) {  // a wrong reference count
          REQUIRE(e->tree(kExtentTreeId).modify(extents[0], [](Bytes& b) -> Status {
            ASSIGN_OR_RETURN(ExtentItem ei, ExtentItem::decode(b));
            ei.refs += 2;
            b = ei.encode();
            return Status::Ok();
          }).ok());
          want.insert("extent-refs");
        }
        if (kinds & 4) {  // a back reference naming the wrong inode
          REQUIRE(e->tree(kExtentTreeId).modify(extents.back(), [](Bytes& b) -> Status {
            ASSIGN_OR_RETURN(ExtentItem ei, ExtentItem::decode(b));
            ei.backrefs[0].objectid += 1000;
            b = ei.encode();
            return Status::Ok();
          }).ok());
          want.insert("extent-backref");
        }
        if (kinds & 8) {  // a data extent nobody references
          auto a = e->alloc_data(8192, 8192);
          REQUIRE(a.ok());
          REQUIRE(e->add_data_extent(a->first, a->second, kFsTreeId, 999999, 0).ok());
          want.insert("extent-leak");
        }
        if (kinds & 16) {  // an orphan item for an inode that does not exist
          REQUIRE(e->tree(kFsTreeId).insert(Key{kOrphanObjectId, kOrphanItem, 888888}, {}).ok());
          want.insert("orphan-missing");
        }
        REQUIRE(e->commit().ok());
      }
      const auto found = codes(img.path);
      for (const auto& w : want) CHECK(found.count(w));
      {
        auto e = cairn::test::open_engine(img.open_device());
        std::lock_guard lk(e->mutex());
        std::vector<std::string> changes;
        REQUIRE(repair_structures(*e, cairn::test::check_report(img.path), &changes).ok());
        REQUIRE(e->commit().ok());
        CHECK(!changes.empty());
      }
      cairn::test::check_clean(img.path);
      auto fs = img.mount();
      cairn::test::check_files(*fs, model);
      REQUIRE(fs->unmount().ok());
    }
  }
}

// The three ways of a name must agree: a name whose DIR_INDEX is gone (its
// DIR_ITEM and INODE_REF say so), one whose DIR_ITEM is gone and one whose
// INODE_REF is gone are each named, in a directory of 3,000 names (the DIR_ITEM check now marks names
// from the index instead of scanning the directory's index per name).
TEST_CASE("fsck names a missing DIR_INDEX, DIR_ITEM or back reference in a large directory", "[fsck]") {
  for (const char* damage : {"dir-index", "dir-item", "inode-ref"}) {
    DYNAMIC_SECTION(damage) {
      TempImage copy;
      {
        auto fs = copy.mount();
        for (int i = 0; i < 3000; i++) REQUIRE(fs->mknod(kFirstInode, "name-" + std::to_string(i), S_IFREG | 0644, 0, Caller{}).ok());
        REQUIRE(fs->unmount().ok());
      }
      cairn::test::check_clean(copy.path);
      {
        auto e = cairn::test::open_engine(copy.open_device());
        std::lock_guard lk(e->mutex());
        BTree t = e->tree(kFsTreeId);
        // The entry of the 1,234th name, found by its index item.
        std::optional<Key> index_key, item_key, ref_key;
        {
          Cursor c = t.cursor();
          REQUIRE(c.seek(Key{kFirstInode, kDirIndex, 0}).ok());
          for (int n = 0; c.valid() && c.key().type == kDirIndex; c.advance(), n++)
            if (n == 1234) {
              index_key = c.key();
              auto list = decode_dir_entries(c.data());
              REQUIRE(list.ok());
              item_key = Key{kFirstInode, kDirItem, name_hash(list->front().name)};
              ref_key = Key{list->front().location.objectid, kInodeRef, kFirstInode};
              break;
            }
        }
        REQUIRE(index_key);
        const std::string d = damage;
        REQUIRE(t.remove(d == "dir-index" ? *index_key : d == "dir-item" ? *item_key : *ref_key).ok());
        REQUIRE(e->commit().ok());
      }
      const auto found = codes(copy.path);
      if (std::string(damage) == "inode-ref") {
        // The index entry has no back reference (found by the pass over
        // index entries and sorted back references together).
        CHECK(found.count("name-missing"));
      } else {
        CHECK(found.count(damage));
      }
      if (std::string(damage) == "dir-index") CHECK(found.count("name-missing"));  // the back reference names it too
    }
  }
}
