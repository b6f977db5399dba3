#include "scrub/backrefs.h"

#include <algorithm>
#include <set>

#include "format/constants.h"
#include "format/items.h"

namespace cairn {

namespace {

// One name of `ino`: (parent directory, name) pairs from its INODE_REF items.
std::vector<std::pair<uint64_t, std::string>> names_of(BTree& t, uint64_t ino) {
  std::vector<std::pair<uint64_t, std::string>> out;
  Cursor c = t.cursor();
  if (!c.seek(Key{ino, kInodeRef, 0}).ok()) return out;
  for (; c.valid() && c.key().objectid == ino && c.key().type == kInodeRef; c.advance()) {
    auto refs = decode_inode_refs(c.data());
    if (!refs.ok()) continue;
    for (auto& r : refs.value()) out.emplace_back(c.key().offset, r.name);
  }
  return out;
}

// The path of a directory: directories have one name, so follow the first.
std::optional<std::string> dir_path(BTree& t, uint64_t dir) {
  std::string path;
  std::set<uint64_t> seen;  // a damaged tree could hold a cycle
  while (dir != kFirstInode) {
    if (!seen.insert(dir).second || seen.size() > 4096) return std::nullopt;
    auto names = names_of(t, dir);
    if (names.empty()) return std::nullopt;
    path = "/" + names[0].second + path;
    dir = names[0].first;
  }
  return path;
}

}  // namespace

std::vector<std::string> inode_paths(Engine& e, uint64_t root, uint64_t ino, size_t max_paths) {
  std::vector<std::string> out;
  if (!e.has_tree(root)) return out;
  BTree t = e.tree(root);
  if (ino == kFirstInode) return {"/"};
  for (auto& [parent, name] : names_of(t, ino)) {
    if (out.size() >= max_paths) break;
    if (auto p = dir_path(t, parent)) out.push_back(*p + "/" + name);
  }
  return out;
}

std::optional<std::string> subvolume_path(Engine& e, uint64_t tree) {
  std::string path;
  BTree rt = e.tree(kRootTreeId);
  for (int depth = 0; tree != kFsTreeId; depth++) {
    if (depth > 4096) return std::nullopt;  // a damaged chain could loop
    Cursor c = rt.cursor();
    if (!c.seek(Key{tree, kRootBackref, 0}).ok() || !c.valid() || c.key().objectid != tree ||
        c.key().type != kRootBackref)
      return std::nullopt;
    auto rr = RootRefItem::decode(c.data());
    if (!rr.ok()) return std::nullopt;
    const uint64_t parent = c.key().offset;
    auto dirs = inode_paths(e, parent, rr->dirid, 1);
    if (dirs.empty()) return std::nullopt;
    path = (dirs[0] == "/" ? "" : dirs[0]) + "/" + rr->name + path;
    tree = parent;
  }
  return path.empty() ? std::string("/") : path;
}

Result<std::vector<FileRange>> files_using(Engine& e, uint64_t ext_bytenr, uint64_t ext_len, uint64_t logical,
                                           uint64_t len) {
  ASSIGN_OR_RETURN(Bytes item, e.tree(kExtentTreeId).lookup(Key{ext_bytenr, kExtentItem, ext_len}));
  ASSIGN_OR_RETURN(ExtentItem ei, ExtentItem::decode(item));
  std::set<std::pair<uint64_t, uint64_t>> inodes;  // (root, ino): several refs of one file scan it once
  for (const auto& br : ei.backrefs)
    if (br.type == kExtentDataRef) inodes.insert({br.root, br.objectid});
  // A back reference names the fs tree that owns the leaf holding the file
  // extent item; snapshots sharing that leaf hold the same file at the same
  // inode number. Every other live fs tree is asked for those inodes (the
  // scan below keeps only items that point at this extent).
  std::set<uint64_t> candidates;
  for (auto& [root, ino] : inodes) candidates.insert(ino);
  for (uint64_t id : e.tree_ids()) {
    if (!is_subvolume_id(id) || (e.root_ref(id).flags & (kRootFlagDead | kRootFlagKeyValue))) continue;
    for (uint64_t ino : candidates) inodes.insert({id, ino});
  }
  std::vector<FileRange> out;
  const uint64_t rel_lo = logical - ext_bytenr, rel_hi = rel_lo + len;
  for (auto [root, ino] : inodes) {
    if (!e.has_tree(root)) continue;
    BTree t = e.tree(root);
    Cursor c = t.cursor();
    RETURN_IF_ERROR(c.seek(Key{ino, kExtentData, 0}));
    for (; c.valid() && c.key().objectid == ino && c.key().type == kExtentData; c.advance()) {
      auto fe = FileExtent::decode(c.data());
      if (!fe.ok() || fe->type == kFileExtentInline || fe->disk_bytenr != ext_bytenr) continue;
      // This file range reads disk bytes [fe.offset, fe.offset + num_bytes)
      // of the extent; a compressed one reads all of them, so damage
      // anywhere in it reaches the whole range (offsets in decoded bytes).
      const bool whole = fe->compression != kCompressNone;
      const uint64_t lo = whole ? fe->offset : std::max(rel_lo, fe->offset);
      const uint64_t hi = whole ? fe->offset + fe->num_bytes : std::min(rel_hi, fe->offset + fe->num_bytes);
      if (lo >= hi) continue;
      const uint64_t file_off = c.key().offset + (lo - fe->offset);
      if (!out.empty() && out.back().root == root && out.back().ino == ino &&
          out.back().offset + out.back().length == file_off) {
        out.back().length += hi - lo;
        continue;
      }
      FileRange r;
      r.root = root;
      r.ino = ino;
      r.paths = inode_paths(e, root, ino);
      // Paths from the top level: a subvolume's start with its own path.
      if (root != kFsTreeId)
        if (auto sub = subvolume_path(e, root))
          for (auto& p : r.paths) p = *sub + p;
      r.offset = file_off;
      r.length = hi - lo;
      out.push_back(std::move(r));
    }
    RETURN_IF_ERROR(c.status());
  }
  return out;
}

}  // namespace cairn
