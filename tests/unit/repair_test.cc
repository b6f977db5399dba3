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
