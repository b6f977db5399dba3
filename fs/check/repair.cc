#include "check/repair.h"

#include <map>
#include <set>
#include <tuple>

#include "format/constants.h"
#include "format/items.h"

namespace cairn {

namespace {

using RefKey = std::tuple<uint64_t, uint64_t, uint64_t>;  // root, ino, offset (file offset - extent offset)

// Every reference the fs trees make to data extent `bytenr`: what its
// EXTENT_ITEM must say.
Result<std::map<uint64_t, std::map<RefKey, uint32_t>>> file_references(Engine& e, const std::set<uint64_t>& wanted) {
  std::map<uint64_t, std::map<RefKey, uint32_t>> out;
  for (uint64_t id : e.tree_ids()) {
    if (id == kRootTreeId || id == kExtentTreeId || id == kCsumTreeId || id == kChunkTreeId) continue;
    if (e.root_ref(id).flags & kRootFlagKeyValue) continue;
    BTree t = e.tree(id);
    Cursor c = t.cursor();
    RETURN_IF_ERROR(c.seek(Key::Min()));
    for (; c.valid(); c.advance()) {
      if (c.key().type != kExtentData) continue;
      auto fe = FileExtent::decode(c.data());
      if (!fe.ok() || fe->type == kFileExtentInline || !fe->disk_bytenr || !wanted.count(fe->disk_bytenr)) continue;
      out[fe->disk_bytenr][RefKey{id, c.key().objectid, c.key().offset - fe->offset}]++;
    }
    RETURN_IF_ERROR(c.status());
  }
  return out;
}

Status fix_data_extents(Engine& e, const std::set<uint64_t>& bad, std::vector<std::string>* changes) {
  ASSIGN_OR_RETURN(auto refs, file_references(e, bad));
  BTree et = e.tree(kExtentTreeId);
  for (uint64_t bytenr : bad) {
    // The item's key holds its length: find it.
    Key key;
    {
      Cursor c = et.cursor();
      RETURN_IF_ERROR(c.seek(Key{bytenr, kExtentItem, 0}));
      if (!c.valid() || c.key().objectid != bytenr || c.key().type != kExtentItem) continue;
      key = c.key();
    }
    auto found = refs.find(bytenr);
    if (found == refs.end()) {
      // Nothing points at it: give the space back (and its checksums).
      RETURN_IF_ERROR(et.remove(key));
      RETURN_IF_ERROR(e.delete_csums(bytenr, key.offset));
      changes->push_back("data extent " + std::to_string(bytenr) + " referenced by no file: removed");
      continue;
    }
    ExtentItem ei;
    ei.flags = kExtentFlagData;
    ei.generation = e.transid();
    {
      ASSIGN_OR_RETURN(Bytes old, et.lookup(key));
      auto prev = ExtentItem::decode(old);
      if (prev.ok()) ei.generation = prev->generation;
    }
    for (auto& [k, n] : found->second) {
      ExtentBackref br;
      br.type = kExtentDataRef;
      br.root = std::get<0>(k);
      br.objectid = std::get<1>(k);
      br.offset = std::get<2>(k);
      br.count = n;
      ei.backrefs.push_back(br);
      ei.refs += n;
    }
    RETURN_IF_ERROR(et.update(key, ei.encode()));
    changes->push_back("data extent " + std::to_string(bytenr) + ": reference count and back references rebuilt (" +
                       std::to_string(ei.refs) + " references)");
  }
  return Status::Ok();
}

}  // namespace

// Rewrite the inode item a problem names, changed by `fix`.
template <typename Fix>
Status fix_inode(Engine& e, const Problem& p, Fix&& fix) {
  return e.tree(p.tree).modify(Key{p.key.objectid, kInodeItem, 0}, [&](Bytes& b) -> Status {
    ASSIGN_OR_RETURN(InodeItem ii, InodeItem::decode(b));
    fix(ii);
    b = ii.encode();
    return Status::Ok();
  });
}

bool repairable(const Problem& p) {
  static const std::set<std::string> kCodes = {"link-count", "orphan-missing", "space-accounting", "superblock-copy",
                                               "superblock-stale", "extent-refs", "extent-backref", "extent-leak",
                                               "space-cache", "inode-nbytes", "dir-size"};
  return kCodes.count(p.code) != 0;
}

Status repair_structures(Engine& e, const CheckReport& r, std::vector<std::string>* changes) {
  std::set<uint64_t> bad_data_extents;
  for (const Problem& p : r.problems) {
    if (p.code == "link-count" && p.has_key && e.has_tree(p.tree)) {
      const uint32_t want = uint32_t(p.expected);
      RETURN_IF_ERROR(fix_inode(e, p, [&](InodeItem& ii) { ii.nlink = want; }));
      changes->push_back("inode " + std::to_string(p.key.objectid) + ": link count set to " + std::to_string(want));
    } else if (p.code == "dir-size" && p.has_key && e.has_tree(p.tree)) {
      RETURN_IF_ERROR(fix_inode(e, p, [&](InodeItem& ii) { ii.size = p.expected; }));
      changes->push_back("directory " + std::to_string(p.key.objectid) + ": size set to " + std::to_string(p.expected));
    } else if (p.code == "inode-nbytes" && p.has_key && e.has_tree(p.tree)) {
      RETURN_IF_ERROR(fix_inode(e, p, [&](InodeItem& ii) { ii.nbytes = p.expected; }));
      changes->push_back("inode " + std::to_string(p.key.objectid) + ": space in use set to " +
                         std::to_string(p.expected) + " bytes");
    } else if (p.code == "orphan-missing" && p.has_key && e.has_tree(p.tree)) {
      RETURN_IF_ERROR(e.tree(p.tree).remove(Key{kOrphanObjectId, kOrphanItem, p.key.objectid}));
      changes->push_back("removed the orphan item of missing inode " + std::to_string(p.key.objectid));
    } else if ((p.code == "extent-refs" || p.code == "extent-backref" || p.code == "extent-leak") && p.data_extent) {
      bad_data_extents.insert(p.bytenr);
    } else if (p.code == "space-accounting") {
      changes->push_back("space in use recounted from the extent tree");
    } else if (p.code == "space-cache") {
      // The repair's commit points the superblock at no cache.
      changes->push_back("free-space cache dropped (the next mount reads the extent tree)");
    } else if (p.code == "superblock-copy" || p.code == "superblock-stale") {
      changes->push_back("superblock copy at " + std::to_string(p.bytenr) + " rewritten");
    }
  }
  if (!bad_data_extents.empty()) RETURN_IF_ERROR(fix_data_extents(e, bad_data_extents, changes));
  RETURN_IF_ERROR(e.recount_space());
  e.force_commit();
  return Status::Ok();
}

}  // namespace cairn
