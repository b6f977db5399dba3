#include "tree/tree_space.h"

#include <map>
#include <set>

namespace cairn {

namespace {
struct Walk {
  Engine& e;
  BTree t;
  uint64_t last_snapshot;
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> own;  // extent -> references from unshared leaves
  std::set<std::pair<uint64_t, uint64_t>> shared;         // extents referenced from shared leaves
  std::map<std::pair<uint64_t, uint64_t>, std::pair<uint8_t, uint64_t>> compressed;  // extent -> type, decoded size
  std::map<uint8_t, uint64_t> file_bytes;                  // compression type -> bytes of items

  // Only the items in [lo, hi] (a whole tree by default).
  Key lo = Key::Min(), hi = Key::Max();

  Status visit(const NodePtr& n, bool shared_above) {
    bool is_shared = shared_above;
    if (!is_shared && last_snapshot && n->generation < last_snapshot) {
      ASSIGN_OR_RETURN(uint64_t refs, e.tree_block_refs(*n));
      is_shared = refs > 1;
    }
    if (n->is_leaf()) {
      for (size_t i = 0; i < n->keys.size(); i++) {
        if (n->keys[i].type != kExtentData || n->keys[i] < lo || hi < n->keys[i]) continue;
        ASSIGN_OR_RETURN(FileExtent fe, FileExtent::decode(n->items[i]));
        if (fe.type == kFileExtentInline || fe.disk_bytenr == 0) continue;
        const std::pair<uint64_t, uint64_t> ext{fe.disk_bytenr, fe.disk_num_bytes};
        file_bytes[fe.compression] += fe.num_bytes;
        if (fe.compression) compressed[ext] = {fe.compression, fe.ram_bytes};
        if (is_shared) shared.insert(ext);
        else own[ext]++;
      }
      return Status::Ok();
    }
    for (int s = 0; s < int(n->ptrs.size()); s++) {
      // Child s holds keys from keys[s] up to (not including) keys[s + 1].
      if (hi < n->keys[size_t(s)]) break;
      if (size_t(s) + 1 < n->keys.size() && !(lo < n->keys[size_t(s) + 1])) continue;
      ASSIGN_OR_RETURN(NodePtr c, t.read_child(*n, s));
      RETURN_IF_ERROR(visit(c, is_shared));
    }
    return Status::Ok();
  }
};
}  // namespace

Result<TreeSpace> tree_data_space(Engine& e, uint64_t tree) { return data_space_of(e, tree, Key::Min(), Key::Max()); }

Result<TreeSpace> file_data_space(Engine& e, uint64_t tree, uint64_t ino) {
  return data_space_of(e, tree, Key{ino, kExtentData, 0}, Key{ino, kExtentData, ~0ULL});
}

Result<TreeSpace> data_space_of(Engine& e, uint64_t tree, const Key& lo, const Key& hi) {
  Walk w{e, e.tree(tree), e.root_ref(tree).last_snapshot, {}, {}, {}, {}, lo, hi};
  ASSIGN_OR_RETURN(NodePtr root, w.t.read_root());
  RETURN_IF_ERROR(w.visit(root, false));
  TreeSpace s;
  BTree et = e.tree(kExtentTreeId);
  auto distinct = [&](const std::pair<uint64_t, uint64_t>& ext) {
    s.referenced += ext.second;
    auto c = w.compressed.find(ext);
    CompressionUsage& u = s.by_compression[c == w.compressed.end() ? kCompressNone : c->second.first];
    u.disk += ext.second;
    u.uncompressed += c == w.compressed.end() ? ext.second : c->second.second;
  };
  for (auto& [type, bytes] : w.file_bytes) s.by_compression[type].referenced += bytes;
  for (auto& ext : w.shared) distinct(ext);
  for (auto& [ext, count] : w.own) {
    if (w.shared.count(ext)) continue;
    distinct(ext);
    ASSIGN_OR_RETURN(Bytes raw, et.lookup(Key{ext.first, kExtentItem, ext.second}));
    ASSIGN_OR_RETURN(ExtentItem ei, ExtentItem::decode(raw));
    if (ei.refs == count) s.exclusive += ext.second;
  }
  return s;
}

}  // namespace cairn
