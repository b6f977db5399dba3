#include "check/checker.h"

#include "format/tree_checker.h"
#include "util/endian.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <string_view>
#include <tuple>
#include <sys/stat.h>

#include "alloc/chunk_map.h"
#include "alloc/space_cache.h"
#include "log/log_replay.h"
#include "format/constants.h"
#include "format/items.h"
#include "format/node.h"
#include "format/superblock.h"
#include "tree/engine.h"
#include "util/hex.h"

namespace cairn {

namespace {

std::string tree_name(uint64_t id) {
  switch (id) {
    case kRootTreeId: return "root tree";
    case kExtentTreeId: return "extent tree";
    case kFsTreeId: return "fs tree";
    case kCsumTreeId: return "checksum tree";
    case kChunkTreeId: return "chunk tree";
  }
  return "tree " + std::to_string(id);
}

struct TreeBlockSeen {
  uint64_t owner;     // the node's owner (walk), the TREE_BLOCK_REF root (extent tree)
  uint8_t level;
  uint64_t refs = 1;  // pointers found to it (walk), its count (extent tree)
  std::vector<uint64_t> trees{};  // fs trees that walked it (shared blocks: once each)
};

struct InodeSeen {
  uint32_t nlink;
  uint32_t mode;
  uint64_t nbytes = 0;      // the inode item's count (st_blocks * 512)
  uint64_t referenced = 0;  // bytes its file extent items reference
  uint64_t size = 0;        // the inode item's size (a directory: twice its names' bytes)
  uint64_t name_bytes = 0;  // a directory: the bytes of its DIR_INDEX names
};

// One name: a directory entry, a directory index entry or an inode back
// reference. Compact (the name itself lives once in the tree's arena) and
// kept in sorted vectors, not maps: a directory of a million names costs
// some 40 bytes per name and source, not several hundred.
struct NameLink {
  uint64_t dir, ino, index;
  uint64_t name_off;  // in FsTreeState::arena
  uint16_t name_len;
  uint8_t type;
  bool indexed = false;  // DIR_ITEM: a DIR_INDEX entry of the same directory has this name
  bool subvol = false;   // names a subvolume: `ino` is its tree id (ROOT_REF, not INODE_REF)
};

// What the walk gathered from one fs tree for the namespace checks.
struct FsTreeState {
  std::string arena;  // every name once, NameLink::name_off into it
  std::vector<std::pair<uint64_t, InodeSeen>> inodes;  // sorted by check_namespace
  std::vector<NameLink> refs;       // INODE_REF names
  std::vector<NameLink> dir_items;  // DIR_ITEM names (index: the name hash), by (dir, hash, name) once sorted
  std::vector<NameLink> dir_index;  // DIR_INDEX entries, by (dir, index) once sorted
  std::set<uint64_t> orphans;
  std::vector<uint64_t> item_owners;  // objectids that carry items other than the inode item (sorted, unique later)
  // The previous file extent (keys come in order: one inode's extents together).
  uint64_t last_extent_ino = 0, last_extent_end = 0;
  // Spilled xattrs: (ino, name hash) -> (name, value length), and the
  // XATTR_CHUNK pieces found: (ino, name hash) -> index -> size.
  std::map<std::pair<uint64_t, uint64_t>, std::pair<std::string, uint64_t>> spilled;
  std::map<std::pair<uint64_t, uint64_t>, std::map<uint64_t, uint64_t>> xattr_chunks;

  NameLink link(uint64_t dir, uint64_t ino, uint64_t index, std::string_view name, uint8_t type) {
    NameLink l{dir, ino, index, arena.size(), uint16_t(name.size()), type};
    arena += name;
    return l;
  }
  std::string_view name(const NameLink& l) const { return std::string_view(arena).substr(l.name_off, l.name_len); }
  std::string str(const NameLink& l) const { return std::string(name(l)); }
  const InodeSeen* inode(uint64_t ino) const {
    if (!dense.empty()) {
      // Inode numbers are handed out in order, so they are nearly dense: a
      // direct index instead of a binary search per name (millions of them).
      if (ino < dense_base || ino - dense_base >= dense.size() || dense[ino - dense_base] == kNone) return nullptr;
      return &inodes[dense[ino - dense_base]].second;
    }
    auto it = std::lower_bound(inodes.begin(), inodes.end(), ino, [](const auto& a, uint64_t i) { return a.first < i; });
    return it != inodes.end() && it->first == ino ? &it->second : nullptr;
  }
  // After `inodes` is sorted: the direct index, when the numbers are dense
  // enough for it to cost no more than 16 bytes per inode.
  void index_inodes() {
    dense.clear();
    if (inodes.empty()) return;
    const uint64_t lo = inodes.front().first, span = inodes.back().first - lo + 1;
    if (span > 4 * inodes.size() + 1024 || inodes.size() >= kNone) return;
    dense_base = lo;
    dense.assign(span, kNone);
    for (size_t i = 0; i < inodes.size(); i++) dense[inodes[i].first - lo] = uint32_t(i);
  }
  static constexpr uint32_t kNone = ~0u;
  std::vector<uint32_t> dense;  // inode number - dense_base -> position in `inodes`
  uint64_t dense_base = 0;
};

struct CsumNeed {
  uint64_t start, len;  // sectors a file extent reads
  uint64_t tree, ino, file_offset;
};

struct DataRefKey {
  uint64_t root, ino, offset;
  auto operator<=>(const DataRefKey&) const = default;
};

// A data EXTENT_ITEM, its back references flattened into one vector:
// millions of extents without a heap block each.
struct DataItemSeen {
  uint64_t bytenr, len, refs;
  uint32_t first_backref, backrefs;  // into Checker::data_backrefs_
};
struct DataBackrefSeen {
  DataRefKey ref;
  uint32_t count;
};
// One file extent item's reference to a data extent.
struct FileRef {
  uint64_t bytenr, len;
  DataRefKey ref;
  auto operator<=>(const FileRef&) const = default;
};

class Checker {
 public:
  Checker(BlockDevice& dev, const CheckOptions& opts) : dev_(dev), opts_(opts) {}

  Result<CheckReport> run() {
    if (!check_superblocks()) return std::move(report_);
    if (!load_chunk_map()) return std::move(report_);
    walk(kRootTreeId, sb_.root, sb_.root_level, sb_.root_generation, Key::Min(), std::nullopt, true);
    for (auto& [id, ri] : roots_) {
      if (opts_.progress) opts_.progress(0.2 + 0.6 * double(report_.stats.trees) / double(roots_.size() + 1));
      walk(id, ri.bytenr, ri.level, ri.generation, Key::Min(), std::nullopt, true);
    }
    for (uint64_t id : {kExtentTreeId, kFsTreeId, kCsumTreeId})
      if (!roots_.count(id)) add("tree-missing", tree_name(id) + " is missing from the root tree", kRootTreeId, 0);
    cross_check_extents();
    check_csums();
    for (auto& [tree, st] : fs_trees_) {
      // With part of a tree unreadable, every name in it would look broken:
      // the damaged node is the error, reported already.
      if (unreadable_trees_.count(tree)) {
        add("namespace-skipped", tree_name(tree) + ": names and link counts not checked (unreadable nodes)", tree, 0);
        report_.problems.back().warning = true;
        continue;
      }
      // A dead tree is half dropped by design: its names point anywhere.
      if (auto r = roots_.find(tree); r != roots_.end() && (r->second.flags & kRootFlagDead)) continue;
      check_namespace(tree, st);
      check_xattr_chunks(tree, st);
    }
    check_subvolumes();
    if (opts_.progress) opts_.progress(1.0);
    return std::move(report_);
  }

  // Every subvolume named once, from a live parent, the same way from both
  // sides; the directory entries matched their ROOT_REFs in the namespace
  // checks (subvol_entries_seen_).
  void check_subvolumes() {
    auto live = [&](uint64_t id) {
      auto r = roots_.find(id);
      return r != roots_.end() && !(r->second.flags & (kRootFlagDead | kRootFlagKeyValue));
    };
    for (auto& [pc, rr] : root_refs_) {
      const auto [parent, sub] = pc;
      auto back = root_backrefs_.find({sub, parent});
      if (back == root_backrefs_.end() || back->second.dirid != rr.dirid || back->second.sequence != rr.sequence ||
          back->second.name != rr.name)
        add("subvolume-ref", "ROOT_REF of subvolume " + std::to_string(sub) + " in " + tree_name(parent) +
                                 " has no matching ROOT_BACKREF", kRootTreeId, 0);
      if (!live(sub))
        add("subvolume-ref", "ROOT_REF names subvolume " + std::to_string(sub) + ", which does not exist", kRootTreeId, 0);
      if (live(parent) && !unreadable_trees_.count(parent) && !subvol_entries_seen_.count(pc))
        add("subvolume-ref", "subvolume " + std::to_string(sub) + " has a ROOT_REF but no directory entry in " +
                                 tree_name(parent), kRootTreeId, 0);
    }
    for (auto& [cp, rr] : root_backrefs_)
      if (!root_refs_.count({cp.second, cp.first}))
        add("subvolume-ref", "ROOT_BACKREF of subvolume " + std::to_string(cp.first) + " has no ROOT_REF", kRootTreeId, 0);
    std::map<uint64_t, int> names;
    for (auto& [cp, rr] : root_backrefs_) names[cp.first]++;
    for (auto& [id, ri] : roots_) {
      if (id < kFirstSubvolumeId || !live(id)) continue;
      if (names[id] > 1) add("subvolume-ref", "subvolume " + std::to_string(id) + " is named more than once", kRootTreeId, 0);
      if (names[id] == 0) {
        // Its data is consistent, but nothing leads to it.
        add("subvolume-unnamed", "subvolume " + std::to_string(id) + " has no name in any directory", kRootTreeId, 0);
        report_.problems.back().warning = true;
      }
    }
  }

 private:
  void add(std::string code, std::string msg, uint64_t tree, uint64_t bytenr, const Key* key = nullptr,
           bool data_extent = false) {
    Problem p;
    p.data_extent = data_extent;
    p.code = std::move(code);
    p.message = std::move(msg);
    p.tree = tree;
    p.bytenr = bytenr;
    if (key) {
      p.has_key = true;
      p.key = *key;
    }
    report_.problems.push_back(std::move(p));
  }

  // The chunk map: the superblock's system chunks are enough to read the
  // chunk tree, whose items give the rest. Without a usable map no other
  // tree can be read.
  bool load_chunk_map() {
    chunks_ = std::make_unique<ChunkMap>(sb_.total_bytes, sb_.chunks, sb_.next_chunk_logical);
    std::vector<Chunk> all = sb_.chunks;
    if (sb_.has_chunk_tree()) {
      walk(kChunkTreeId, sb_.chunk_root, sb_.chunk_root_level, sb_.chunk_root_generation, Key::Min(), std::nullopt, true);
      all = chunk_items_;
    }
    Status st = sb_.check_chunk_map(all);
    if (!st.ok()) add("chunk-map", "chunk map: " + st.message(), kChunkTreeId, 0);
    if (unreadable_trees_.count(kChunkTreeId)) {
      add("chunk-map", "the chunk tree is unreadable: no other tree can be checked", kChunkTreeId, 0);
      return false;
    }
    for (const Chunk& c : all) chunks_->load(c);
    report_.stats.chunks = all.size();
    return true;
  }

  bool check_superblocks() {
    std::vector<SuperblockCopyInfo> copies;
    auto best = Engine::read_superblock(dev_, &copies);
    if (!best.ok()) {
      add("superblock", "no valid superblock: " + best.status().message(), 0, 0);
      return false;
    }
    sb_ = best.value();
    report_.stats.generation = sb_.generation;
    for (const auto& c : copies) {
      if (!c.present) continue;
      if (!c.status.ok()) add("superblock-copy", "superblock copy at " + hex(c.offset) + ": " + c.status.message(), 0, c.offset);
      else if (c.generation != sb_.generation) {
        // A crash between the copies' writes leaves this; the next commit heals it.
        add("superblock-stale", "superblock copy at " + hex(c.offset) + " has generation " + std::to_string(c.generation) +
                                    ", newest is " + std::to_string(sb_.generation), 0, c.offset);
        report_.problems.back().warning = true;
      }
    }
    if (sb_.total_bytes > dev_.size()) add("superblock", "filesystem is larger than the device", 0, 0);
    if (sb_.generation >= kMaxWritableGeneration)
      add("superblock", "generation " + std::to_string(sb_.generation) +
                            " has reached 2^63: the filesystem can only be mounted read-only", 0, 0);
    return true;
  }

  // Read every copy of a node; report each bad one; return the first good.
  std::optional<Node> read_node(uint64_t tree, uint64_t bytenr, int level, uint64_t gen) {
    auto copies = chunks_->map(bytenr, sb_.node_size);
    if (!copies.ok()) {
      add("node-address", tree_name(tree) + ": node " + hex(bytenr) + ": " + copies.status().message(), tree, bytenr);
      return std::nullopt;
    }
    const Chunk* c = chunks_->find(bytenr);
    if ((tree == kChunkTreeId) != (c->type == kChunkSystem) || c->type == kChunkData)
      add("node-address", tree_name(tree) + ": node " + hex(bytenr) + " lies in a " + chunk_type_name(c->type) + " chunk", tree, bytenr);
    NodeExpectation e;
    e.bytenr = bytenr;
    e.level = level;
    // Where trees share blocks, a subvolume's node may be another's.
    e.owner = shares_blocks(tree) ? 0 : tree;
    e.generation = gen;
    e.max_generation = sb_.generation;
    std::optional<Node> good;
    std::vector<uint8_t> buf(sb_.node_size), good_raw;
    for (size_t i = 0; i < copies->size(); i++) {
      uint64_t phys = (*copies)[i];
      Status st = dev_.read(phys, buf.data(), buf.size());
      if (!st.ok()) {
        add("node-io", tree_name(tree) + ": node " + hex(bytenr) + " copy " + std::to_string(i) + ": " + st.message(), tree, bytenr);
        continue;
      }
      // A DUP copy byte for byte the same as one that decoded and checked
      // is as good: no second decode (half of fsck's CPU on DUP metadata).
      if (good && buf == good_raw) continue;
      auto n = decode_node(buf.data(), sb_.fsid, sb_.csum_type, sb_.node_size, e);
      if (!n.ok()) {
        std::string which = copies->size() > 1 ? " (copy " + std::to_string(i) + " at physical " + hex(phys) + ")" : "";
        add("node-corrupt", tree_name(tree) + ": " + n.status().message() + which, tree, bytenr);
        continue;
      }
      if (!good) {
        good = std::move(n).value();
        good_raw.swap(buf);
        buf.resize(sb_.node_size);
      }
    }
    if (good && good->owner != tree && !is_subvolume_id(good->owner)) {
      add("node-corrupt", tree_name(tree) + ": node " + hex(bytenr) + " is owned by " + tree_name(good->owner), tree, bytenr);
      return std::nullopt;
    }
    return good;
  }

  bool shares_blocks(uint64_t tree) const { return (sb_.incompat_flags & kIncompatSharedTrees) && is_subvolume_id(tree); }

  // `account`: the first visit of the node, which counts its references,
  // space and checksums; a shared node reached again from another tree is
  // walked again for that tree's namespace only.
  void walk(uint64_t tree, uint64_t bytenr, int level, uint64_t gen, const Key& lo, std::optional<Key> hi, bool is_root,
            bool account = true) {
    if (is_root) report_.stats.trees++;
    if (auto it = blocks_.find(bytenr); it != blocks_.end()) {
      TreeBlockSeen& seen = it->second;
      if (!shares_blocks(tree)) {
        add("node-shared", tree_name(tree) + ": node " + hex(bytenr) + " is referenced twice", tree, bytenr);
        return;
      }
      if (account) seen.refs++;
      // Once per tree: a node two parents of one tree point at is counted
      // (the extent tree's count shows the lie), not walked twice.
      if (std::find(seen.trees.begin(), seen.trees.end(), tree) != seen.trees.end()) return;
      seen.trees.push_back(tree);
      account = false;
    } else if (!account) {
      return;  // below a shared node the first walk found everything
    } else {
      blocks_[bytenr] = TreeBlockSeen{tree, uint8_t(level), 1, {tree}};
    }
    auto n = read_node(tree, bytenr, level, gen);
    if (!n) {
      unreadable_trees_.insert(tree);
      return;
    }
    if (!account) return walk_again(tree, *n, hi);
    blocks_[bytenr].owner = n->owner;
    report_.stats.nodes++;
    if (!is_root && n->keys.empty()) add("node-empty", tree_name(tree) + ": node " + hex(bytenr) + " is empty", tree, bytenr);
    if (!n->keys.empty()) {
      if (n->keys.front() < lo || (!is_root && n->keys.front() != lo))
        add("key-order", tree_name(tree) + ": node " + hex(bytenr) + " first key " + n->keys.front().to_string() +
                             " does not match its parent's " + lo.to_string(), tree, bytenr);
      if (hi && !(n->keys.back() < *hi))
        add("key-order", tree_name(tree) + ": node " + hex(bytenr) + " last key " + n->keys.back().to_string() +
                             " is not below the next parent key " + hi->to_string(), tree, bytenr);
    }
    if (n->is_leaf()) {
      // The engine's own rules for every item (it refuses this leaf whole
      // if any fails); then fsck's cross-item checks on what decodes.
      const TreeCheckContext tc{sb_.node_size, sb_.csum_type, sb_.generation, sb_.next_chunk_logical, sb_.total_bytes};
      for (const std::string& v : check_leaf(*n, tc, SIZE_MAX)) add("item-corrupt", tree_name(tree) + ": " + v, tree, bytenr);
      for (size_t i = 0; i < n->keys.size(); i++) {
        report_.stats.items++;
        check_item(tree, *n, n->keys[i], n->items[i]);
      }
      return;
    }
    prefetch_children(*n);
    for (size_t i = 0; i < n->keys.size(); i++) {
      std::optional<Key> child_hi = i + 1 < n->keys.size() ? std::optional<Key>(n->keys[i + 1]) : hi;
      walk(tree, n->ptrs[i], level - 1, n->ptr_gens[i], n->keys[i], child_hi, false);
    }
  }

  // Every copy of every child of an internal node is read next, one after
  // the other: ask for them all at once so the device works on them
  // together (a cold fsck waited for each 16 KiB read in turn).
  void prefetch_children(const Node& n) {
    for (uint64_t child : n.ptrs) {
      auto copies = chunks_->map(child, sb_.node_size);
      if (!copies.ok()) continue;  // read_node reports it
      for (uint64_t phys : *copies) dev_.prefetch(phys, sb_.node_size);
    }
  }

  // A shared node seen before from another tree: its items once more for
  // this tree's namespace (nothing is counted twice), its children walked
  // the same way.
  void walk_again(uint64_t tree, const Node& n, std::optional<Key> hi) {
    if (n.is_leaf()) {
      if (auto r = roots_.find(tree); r != roots_.end() && (r->second.flags & kRootFlagKeyValue)) return;
      for (size_t i = 0; i < n.keys.size(); i++) check_fs_item(tree, n.owner, n.keys[i], n.items[i], false);
      return;
    }
    for (size_t i = 0; i < n.keys.size(); i++) {
      std::optional<Key> child_hi = i + 1 < n.keys.size() ? std::optional<Key>(n.keys[i + 1]) : hi;
      walk(tree, n.ptrs[i], n.level - 1, n.ptr_gens[i], n.keys[i], child_hi, false, false);
    }
  }

  void check_item(uint64_t tree, const Node& leaf, const Key& k, const Bytes& d) {
    const uint64_t node = leaf.bytenr;
    auto bad = [&](const Status& st) {
      add("item-corrupt", tree_name(tree) + ": item " + k.to_string() + " in node " + hex(node) + ": " + st.message(), tree, node, &k);
    };
    // What a single item must be (it decodes, its type belongs to the tree,
    // its fields are aligned and in range) the tree checker has reported
    // already (walk); an item breaking it is only kept out of the
    // bookkeeping here. What follows checks what the tree checker cannot:
    // items against each other.
    if (tree == kChunkTreeId) {
      // Only chunks that hold up on their own (the tree checker has named
      // the others): the map must never index a stripe that is not there.
      if (k.type != kChunkItem || d.size() != Chunk::kDiskSize) return;
      const Chunk c = Chunk::decode(d.data());
      if (validate_chunk(c, sb_.total_bytes, sb_.node_size, sb_.next_chunk_logical).ok()) chunk_items_.push_back(c);
    } else if (tree == kRootTreeId) {
      if (k.type == kRootItem) {
        auto ri = RootItem::decode(d);
        if (!ri.ok() || k.objectid == kRootTreeId) return;
        roots_[k.objectid] = ri.value();
      } else if (k.type == kRootRef || k.type == kRootBackref) {
        auto rr = RootRefItem::decode(d);
        if (!rr.ok()) return;
        if (k.type == kRootRef) root_refs_[{k.objectid, k.offset}] = rr.value();
        else root_backrefs_[{k.objectid, k.offset}] = rr.value();
      }
    } else if (tree == kExtentTreeId) {
      auto ei = ExtentItem::decode(d);
      if (!ei.ok()) return;
      if (k.type == kMetadataItem) {
        // Shared tree blocks (snapshots) count their parents; one back
        // reference names the tree that allocated the block either way.
        const bool shared_ok = sb_.incompat_flags & kIncompatSharedTrees;
        if (ei->flags != kExtentFlagTreeBlock || ei->refs == 0 || (ei->refs != 1 && !shared_ok) ||
            ei->backrefs.size() != 1 || ei->backrefs[0].type != kTreeBlockRef)
          return bad(Status::Corruption("tree block item must have one tree reference"));
        if (k.offset >= kMaxLevel) return;
        meta_items_[k.objectid] = TreeBlockSeen{ei->backrefs[0].root, uint8_t(k.offset), ei->refs};
      } else if (k.type == kExtentItem) {
        if (ei->flags != kExtentFlagData || k.offset == 0 || k.offset % kSectorSize || k.objectid % kSectorSize) return;
        uint64_t sum = 0;
        for (auto& r : ei->backrefs) {
          if (r.type != kExtentDataRef) return bad(Status::Corruption("data extent with a tree reference"));
          sum += r.count;
        }
        if (sum != ei->refs)
          add("extent-refs", "data extent " + hex(k.objectid) + ": reference count " + std::to_string(ei->refs) +
                                 " but back references sum to " + std::to_string(sum), tree, k.objectid, &k, true);
        data_items_.push_back({k.objectid, k.offset, ei->refs, uint32_t(data_backrefs_.size()), uint32_t(ei->backrefs.size())});
        for (auto& r : ei->backrefs) data_backrefs_.push_back({DataRefKey{r.root, r.objectid, r.offset}, r.count});
        report_.stats.data_extents++;
        report_.stats.data_bytes += k.offset;
      }
    } else if (tree == kCsumTreeId) {
      const size_t cs = csum_size(sb_.csum_type);
      if (k.objectid != kCsumObjectId || k.type != kExtentCsum || d.empty() || d.size() % cs) return;
      csum_ranges_.push_back({k.offset, d.size() / cs * kSectorSize});
      report_.stats.csum_items++;
    } else if (auto r = roots_.find(tree); r != roots_.end() && (r->second.flags & kRootFlagKeyValue)) {
      // Opaque items: the structure checks above are all there is.
    } else {
      check_fs_item(tree, leaf.owner, k, d, true);
    }
  }

  // `owner`: of the leaf holding the item (a file extent item counts
  // under the back reference of the leaf's owner); `account`: the leaf's
  // first visit (references and checksums are counted once per leaf).
  void check_fs_item(uint64_t tree, uint64_t owner, const Key& k, const Bytes& d, bool account) {
    FsTreeState& fs = fs_trees_[tree];
    if (k.type != kOrphanItem && k.type != kInodeItem && (fs.item_owners.empty() || fs.item_owners.back() != k.objectid))
      fs.item_owners.push_back(k.objectid);
    switch (k.type) {
      case kInodeItem: {
        auto ii = InodeItem::decode(d);
        if (!ii.ok()) return;
        report_.stats.inodes++;
        fs.inodes.push_back({k.objectid, InodeSeen{ii->nlink, ii->mode, ii->nbytes, 0, ii->size, 0}});
        break;
      }
      case kInodeRef: {
        auto r = decode_inode_refs(d);
        if (!r.ok()) return;
        for (auto& e : r.value()) fs.refs.push_back(fs.link(k.offset, k.objectid, e.index, e.name, 0));
        break;
      }
      case kDirItem:
      case kXattrItem: {
        // A malformed item (the tree checker reports it) adds nothing;
        // names after one whose hash is not the key's are left out.
        std::vector<DirEntryView>& entries = entries_scratch_;
        entries.clear();
        if (!visit_dir_entries(d, [&](const DirEntryView& de) { entries.push_back(de); })) return;
        for (const DirEntryView& de : entries) {
          if (name_hash(de.name) != k.offset) return;
          if (k.type == kDirItem) {
            fs.dir_items.push_back(fs.link(k.objectid, de.location.objectid, k.offset, de.name, de.type));
            fs.dir_items.back().subvol = de.location.type == kRootItem;
          }
          if (k.type == kXattrItem && de.type == kXattrSpilled && de.data_len == 4)
            fs.spilled[{k.objectid, k.offset}] = {std::string(de.name), get_le32(de.data)};
        }
        break;
      }
      case kDirIndex: {
        int n = 0;
        DirEntryView one;
        if (!visit_dir_entries(d, [&](const DirEntryView& de) { one = de, n++; }) || n != 1) return;
        fs.dir_index.push_back(fs.link(k.objectid, one.location.objectid, k.offset, one.name, one.type));
        fs.dir_index.back().subvol = one.location.type == kRootItem;
        // A directory's items follow its inode item in key order.
        if (!fs.inodes.empty() && fs.inodes.back().first == k.objectid) fs.inodes.back().second.name_bytes += one.name.size();
        break;
      }
      case kExtentData: {
        auto fe = FileExtent::decode(d);
        if (!fe.ok()) return;
        const uint64_t len = fe->type == kFileExtentInline ? fe->ram_bytes : fe->num_bytes;
        if (fs.last_extent_ino == k.objectid && k.offset < fs.last_extent_end)
          add("file-extent-overlap", "inode " + std::to_string(k.objectid) + ": file extent at " + std::to_string(k.offset) +
                                         " overlaps the previous one (ends at " + std::to_string(fs.last_extent_end) + ")",
              tree, 0, &k);
        fs.last_extent_ino = k.objectid;
        fs.last_extent_end = k.offset + len;
        if (fe->compression != kCompressNone && !(sb_.incompat_flags & kIncompatCompression))
          add("compression-feature",
              "inode " + std::to_string(k.objectid) + ": compressed file extent at " + std::to_string(k.offset) +
                  " but the superblock lacks the compression feature flag",
              tree, 0, &k);
        if (fe->type != kFileExtentInline && fe->disk_bytenr) {
          // An inode's items follow its inode item in key order.
          if (!fs.inodes.empty() && fs.inodes.back().first == k.objectid) fs.inodes.back().second.referenced += fe->num_bytes;
          if (!account) break;
          file_refs_.push_back({fe->disk_bytenr, fe->disk_num_bytes, DataRefKey{owner, k.objectid, k.offset - fe->offset}});
          // Written data must be checksummed, sector by sector; a
          // compressed extent over all of its disk bytes (its range is in
          // decoded bytes, and a read verifies the whole extent).
          if (fe->type == kFileExtentRegular && fe->compression != kCompressNone)
            csum_needed_.push_back({fe->disk_bytenr, fe->disk_num_bytes, tree, k.objectid, k.offset});
          else if (fe->type == kFileExtentRegular)
            csum_needed_.push_back({fe->disk_bytenr + fe->offset / kSectorSize * kSectorSize,
                                    (fe->offset % kSectorSize + fe->num_bytes + kSectorSize - 1) / kSectorSize * kSectorSize,
                                    tree, k.objectid, k.offset});
        }
        break;
      }
      case kOrphanItem:
        if (k.objectid != kOrphanObjectId) return;
        fs.orphans.insert(k.offset);
        break;
      case kXattrChunk:
        fs.xattr_chunks[{k.objectid, k.offset >> 20}][k.offset & ((1u << 20) - 1)] = d.size();
        break;
      default:
        break;  // the tree checker reported it
    }
  }

  void cross_check_extents() {
    // Tree blocks found by walking vs METADATA_ITEMs.
    for (auto& [b, seen] : blocks_) {
      auto it = meta_items_.find(b);
      // The chunk tree's blocks live in system chunks, outside the extent tree.
      if (seen.owner == kChunkTreeId) {
        if (it != meta_items_.end())
          add("extent-backref", "extent tree records chunk tree node " + hex(b), kExtentTreeId, b);
        continue;
      }
      if (it == meta_items_.end()) {
        add("extent-missing", tree_name(seen.owner) + ": node " + hex(b) + " is not recorded in the extent tree", kExtentTreeId, b);
      } else if (it->second.owner != seen.owner || it->second.level != seen.level) {
        add("extent-backref", "extent tree records node " + hex(b) + " as " + tree_name(it->second.owner) + " level " +
                                  std::to_string(it->second.level) + ", found in " + tree_name(seen.owner) + " level " +
                                  std::to_string(seen.level), kExtentTreeId, b);
      } else if (it->second.refs != seen.refs && unreadable_trees_.empty()) {
        add("extent-refs", "tree block " + hex(b) + ": reference count " + std::to_string(it->second.refs) + ", found " +
                               std::to_string(seen.refs) + " pointers to it", kExtentTreeId, b);
      }
    }
    // Below an unreadable node, nothing was walked: the leaks and missing
    // references that follow from it are not further damage.
    const bool partial = !unreadable_trees_.empty();
    if (partial) {
      add("extent-checks-partial", "reference checks skipped: some tree nodes are unreadable", kExtentTreeId, 0);
      report_.problems.back().warning = true;
    }
    for (auto& [b, m] : meta_items_)
      if (!partial && !blocks_.count(b))
        add("extent-leak", "extent tree records node " + hex(b) + " that no tree uses", kExtentTreeId, b);
    // Data extents vs file extent items: both sorted, the file references
    // in runs per extent, so each check is a run or a binary search.
    sort_data_items();
    std::sort(file_refs_.begin(), file_refs_.end());
    for (size_t i = 0, j; i < file_refs_.size() && !partial; i = j) {
      const uint64_t b = file_refs_[i].bytenr, len = file_refs_[i].len;
      for (j = i; j < file_refs_.size() && file_refs_[j].bytenr == b && file_refs_[j].len == len; j++) {
      }
      const DataItemSeen* it = data_item(b);
      if (!it || it->len != len) {
        add("extent-missing", "file data at " + hex(b) + " is not recorded in the extent tree", kExtentTreeId, b);
        continue;
      }
      const uint64_t total = j - i;
      if (total != it->refs)
        add("extent-refs", "data extent " + hex(b) + ": reference count " + std::to_string(it->refs) + ", found " +
                               std::to_string(total) + " file references", kExtentTreeId, b, nullptr, true);
      for (uint32_t r = 0; r < it->backrefs; r++) {
        const DataBackrefSeen& br = data_backrefs_[it->first_backref + r];
        auto [lo, hi] = std::equal_range(file_refs_.begin() + long(i), file_refs_.begin() + long(j), FileRef{b, len, br.ref});
        if (uint64_t(hi - lo) != br.count)
          add("extent-backref", "data extent " + hex(b) + ": back reference to inode " + std::to_string(br.ref.ino) +
                                    " offset " + std::to_string(br.ref.offset) + " does not match the file", kExtentTreeId, b, nullptr, true);
      }
    }
    for (const DataItemSeen& item : data_items_) {
      if (partial) break;
      auto f = std::lower_bound(file_refs_.begin(), file_refs_.end(), FileRef{item.bytenr, item.len, DataRefKey{0, 0, 0}});
      if (f == file_refs_.end() || f->bytenr != item.bytenr || f->len != item.len)
        add("extent-leak", "data extent " + hex(item.bytenr) + " is referenced by no file", kExtentTreeId, item.bytenr, nullptr, true);
    }

    // Allocations must not overlap and must sit in chunks of their type.
    std::vector<std::tuple<uint64_t, uint64_t, uint32_t>> all;  // start, len, chunk type
    for (auto& [b, m] : meta_items_) all.emplace_back(b, sb_.node_size, kChunkMetadata);
    for (const DataItemSeen& item : data_items_) all.emplace_back(item.bytenr, item.len, kChunkData);
    std::sort(all.begin(), all.end());
    uint64_t used = 0, prev_end = 0;
    for (auto& [s, l, t] : all) {
      used += l;
      if (s < prev_end) add("extent-overlap", "allocation " + hex(s) + "+" + std::to_string(l) + " overlaps the previous one", kExtentTreeId, s);
      prev_end = std::max(prev_end, s + l);
      const Chunk* c = chunks_->find(s);
      if (!c || !c->contains(s, l)) add("extent-chunk", "allocation " + hex(s) + " lies outside every chunk", kExtentTreeId, s);
      else if (c->type != t) add("extent-chunk", "allocation " + hex(s) + " lies in a chunk of the wrong type", kExtentTreeId, s);
    }
    report_.stats.tree_bytes = meta_items_.size() * sb_.node_size;
    if (used != sb_.bytes_used)
      add("space-accounting", "superblock says " + std::to_string(sb_.bytes_used) + " bytes used, extents add up to " +
                                  std::to_string(used), 0, 0);
    if (!partial) check_space_cache(all);
    if (!partial) check_fsync_log(all);
  }

  // The fsync log of this generation (docs/design.md, "Fsync log"): every
  // write that checks is what the next read-write mount replays (a state a
  // crash leaves: a warning); its blocks must lie in space the extent tree
  // leaves free, or replay would refuse it.
  void check_fsync_log(const std::vector<std::tuple<uint64_t, uint64_t, uint32_t>>& used) {
    auto chain = read_fsync_log(dev_, *chunks_, sb_);
    if (!chain.ok()) {
      add("fsync-log", "fsync log: " + chain.status().message(), 0, sb_.log_start);
      return;
    }
    report_.stats.log_writes = chain->writes.size();
    report_.stats.log_records = chain->records();
    if (chain->writes.empty()) return;
    for (auto [at, len] : chain->extents) {
      auto it = std::lower_bound(used.begin(), used.end(), std::make_tuple(at + len, uint64_t(0), uint32_t(0)));
      if (it != used.begin() && std::get<0>(*std::prev(it)) + std::get<1>(*std::prev(it)) > at)
        add("fsync-log", "fsync log write at " + hex(at) + " overlaps allocated space", 0, at);
    }
    add("fsync-log", "the fsync log holds " + std::to_string(chain->writes.size()) + " writes (" +
                         std::to_string(chain->records()) + " file records) the next read-write mount replays" +
                         (chain->dropped_last ? "; its last write was dropped, its data not on disk" : ""),
        0, sb_.log_start);
    report_.problems.back().warning = true;
  }

  // A valid free-space cache must say exactly what the extent tree says:
  // every data and metadata chunk's space minus its allocations and the
  // cache's own blocks. The mount trusts a cache that passes its cheap
  // checks, so this comparison is the one that catches a plausible lie.
  void check_space_cache(std::vector<std::tuple<uint64_t, uint64_t, uint32_t>> used) {
    if (!sb_.space_cache_valid()) return;
    if (auto full = load_space_cache(dev_, *chunks_, sb_); !full.ok())
      add("space-cache", "free-space cache: " + full.status().message() + " (the next mount reads the extent tree)", 0, 0);
    // Its ranges, compared one by one below, say where it is wrong.
    auto cache = load_space_cache(dev_, *chunks_, sb_, false);
    if (!cache.ok()) return;
    report_.stats.space_cache_ranges = cache->free.size();
    for (uint64_t b : cache->blocks) used.emplace_back(b, sb_.node_size, kChunkMetadata);
    std::sort(used.begin(), used.end());
    FreeRanges expect;
    auto add_free = [&](uint64_t s, uint64_t e) {
      if (s >= e) return;
      if (!expect.empty() && expect.back().first + expect.back().second == s) expect.back().second += e - s;
      else expect.emplace_back(s, e - s);
    };
    size_t i = 0;
    for (const Chunk& c : chunks_->chunks()) {
      if (c.type == kChunkSystem) continue;
      uint64_t at = c.logical;
      while (i < used.size() && std::get<0>(used[i]) < c.logical) i++;
      for (; i < used.size() && std::get<0>(used[i]) < c.logical + c.length; i++) {
        add_free(at, std::get<0>(used[i]));
        at = std::max(at, std::get<0>(used[i]) + std::get<1>(used[i]));
      }
      add_free(at, c.logical + c.length);
    }
    if (expect == cache->free) return;
    size_t d = 0;
    while (d < expect.size() && d < cache->free.size() && expect[d] == cache->free[d]) d++;
    auto range = [](const FreeRanges& r, size_t at) {
      return at < r.size() ? hex(r[at].first) + "+" + std::to_string(r[at].second) : std::string("nothing");
    };
    add("space-cache", "free-space cache differs from the extent tree: free range " + std::to_string(d) + " is " +
                           range(cache->free, d) + " in the cache, " + range(expect, d) + " by the extent tree",
        0, 0);
  }

  void check_csums() {
    sort_data_items();
    const size_t cs = csum_size(sb_.csum_type);
    (void)cs;
    std::sort(csum_ranges_.begin(), csum_ranges_.end());
    uint64_t prev_end = 0;
    for (const auto& range : csum_ranges_) {
      // Named copies, not a structured binding: the lambda below captures
      // them, which clang 14 (the compiler with libFuzzer) does not allow
      // for bindings.
      const uint64_t s = range.first, l = range.second;
      if (s < prev_end) add("csum-overlap", "checksum items overlap at " + hex(s), kCsumTreeId, s);
      prev_end = std::max(prev_end, s + l);
      // The covering data extent: the last one starting at or before s.
      auto it = std::upper_bound(data_items_.begin(), data_items_.end(), s,
                                 [](uint64_t x, const DataItemSeen& d) { return x < d.bytenr; });
      bool ok = it != data_items_.begin() && [&] {
        --it;
        return s + l <= it->bytenr + it->len;
      }();
      if (!ok) add("csum-orphan", "checksums for " + hex(s) + "+" + std::to_string(l) + " cover no data extent", kCsumTreeId, s);
    }
    // Every sector a file's written extent reads has its checksum.
    std::sort(csum_needed_.begin(), csum_needed_.end(), [](const CsumNeed& a, const CsumNeed& b) { return a.start < b.start; });
    for (const CsumNeed& n : csum_needed_) {
      auto it = std::upper_bound(csum_ranges_.begin(), csum_ranges_.end(), std::pair<uint64_t, uint64_t>(n.start, ~uint64_t(0)));
      uint64_t covered = n.start;
      if (it != csum_ranges_.begin()) --it;
      for (; it != csum_ranges_.end() && it->first <= covered && covered < n.start + n.len; ++it)
        covered = std::max(covered, it->first + it->second);
      if (covered < n.start + n.len)
        add("csum-missing", "inode " + std::to_string(n.ino) + " file offset " + std::to_string(n.file_offset) +
                                ": data at " + hex(covered) + " has no checksum", kCsumTreeId, covered);
    }
  }

  // Inodes against directory entries: every name three ways (DIR_ITEM,
  // DIR_INDEX, INODE_REF), link counts, no dangling or unreachable inode.
  // A spilled xattr's pieces are numbered 0, 1, ... without gaps and add up
  // to its length; a piece belongs to a spilled xattr.
  void check_xattr_chunks(uint64_t tree, FsTreeState& fs) {
    for (const auto& [where, nl] : fs.spilled) {
      const auto& [name, len] = nl;
      uint64_t sum = 0, next = 0;
      if (auto it = fs.xattr_chunks.find(where); it != fs.xattr_chunks.end())
        for (const auto& [idx, size] : it->second) {
          if (idx != next) break;
          sum += size;
          next++;
        }
      if (sum != len)
        add("xattr-chunks", "inode " + std::to_string(where.first) + ": xattr \"" + name + "\" has " + std::to_string(sum) +
                                " bytes in its chunks, its entry says " + std::to_string(len), tree, 0);
    }
    for (const auto& [where, pieces] : fs.xattr_chunks)
      if (!fs.spilled.count(where))
        add("xattr-chunks", "inode " + std::to_string(where.first) + ": xattr chunks of no spilled xattr (" +
                                std::to_string(pieces.size()) + " pieces)", tree, 0);
  }

  void check_namespace(uint64_t tree, FsTreeState& fs) {
    auto ino_s = [](uint64_t i) { return "inode " + std::to_string(i); };
    auto problem = [&](const char* code, const std::string& msg, uint64_t ino, uint64_t expected = 0) {
      Key k{ino, kInodeItem, 0};
      add(code, tree_name(tree) + ": " + msg, tree, 0, &k);
      report_.problems.back().expected = expected;
    };
    // Everything sorted once (the walk gave key order already, unless the
    // tree is damaged); then every cross-check is a binary search.
    // (Sorting what is already sorted is skipped: a check is O(n).)
    auto sort = [](auto& v, auto less) {
      if (!std::is_sorted(v.begin(), v.end(), less)) std::stable_sort(v.begin(), v.end(), less);
    };
    auto by_ino = [](const auto& a, const auto& b) { return a.first < b.first; };
    sort(fs.inodes, by_ino);
    fs.index_inodes();
    auto dir_index_less = [](const NameLink& a, const NameLink& b) {
      return std::tie(a.dir, a.index) < std::tie(b.dir, b.index);
    };
    sort(fs.dir_index, dir_index_less);
    // By (directory, name hash, name): the walk's key order, names compared
    // only within one hash.
    auto dir_item_less = [&fs](const NameLink& a, const NameLink& b) {
      if (a.dir != b.dir) return a.dir < b.dir;
      if (a.index != b.index) return a.index < b.index;
      return fs.name(a) < fs.name(b);
    };
    sort(fs.dir_items, dir_item_less);
    std::sort(fs.item_owners.begin(), fs.item_owners.end());
    fs.item_owners.erase(std::unique(fs.item_owners.begin(), fs.item_owners.end()), fs.item_owners.end());

    std::vector<uint64_t> named;    // the inode of every INODE_REF name (one per name)
    std::vector<uint64_t> subdirs;  // the parent of every directory's name
    std::vector<std::pair<uint64_t, uint64_t>> ref_set;  // (dir, index) named by an INODE_REF
    named.reserve(fs.refs.size());
    ref_set.reserve(fs.refs.size());
    for (const NameLink& r : fs.refs) {
      // The root directory's back reference to itself ("..", as btrfs) has no entry.
      if (r.ino == kFirstInode && r.dir == kFirstInode) continue;
      named.push_back(r.ino);
      ref_set.push_back({r.dir, r.index});
      NameLink probe{r.dir, 0, r.index, 0, 0, 0};
      auto di = std::lower_bound(fs.dir_index.begin(), fs.dir_index.end(), probe, dir_index_less);
      if (di == fs.dir_index.end() || di->dir != r.dir || di->index != r.index || di->ino != r.ino || fs.name(*di) != fs.name(r))
        problem("name-missing", ino_s(r.ino) + " is named \"" + fs.str(r) + "\" in directory " + std::to_string(r.dir) +
                                    " but that directory has no matching index entry", r.ino);
      if (const InodeSeen* in = fs.inode(r.ino); in && S_ISDIR(in->mode)) subdirs.push_back(r.dir);
    }
    std::sort(named.begin(), named.end());
    std::sort(subdirs.begin(), subdirs.end());
    std::sort(ref_set.begin(), ref_set.end());
    auto count_of = [](const std::vector<uint64_t>& v, uint64_t x) {
      auto [a, b] = std::equal_range(v.begin(), v.end(), x);
      return uint64_t(b - a);
    };
    // Each index entry's name-hash item, found by a merge: the entries put
    // in the items' order (directory, name hash, name), then both walked
    // together. A binary search per entry was a quarter of fsck's time for
    // a directory of a million names (random access into the whole list).
    std::vector<uint32_t> item_of(fs.dir_index.size(), FsTreeState::kNone);
    {
      struct ByHash {
        uint64_t dir, hash;
        uint32_t pos;
      };
      std::vector<ByHash> order(fs.dir_index.size());
      for (size_t i = 0; i < fs.dir_index.size(); i++)
        order[i] = ByHash{fs.dir_index[i].dir, name_hash(fs.name(fs.dir_index[i])), uint32_t(i)};
      std::sort(order.begin(), order.end(),
                [](const ByHash& a, const ByHash& b) { return std::tie(a.dir, a.hash, a.pos) < std::tie(b.dir, b.hash, b.pos); });
      size_t j = 0;
      for (const ByHash& o : order) {
        while (j < fs.dir_items.size() && std::pair(fs.dir_items[j].dir, fs.dir_items[j].index) < std::pair(o.dir, o.hash)) j++;
        // Names of one hash (a collision: rare) side by side.
        const std::string_view name = fs.name(fs.dir_index[o.pos]);
        for (size_t k = j; k < fs.dir_items.size() && fs.dir_items[k].dir == o.dir && fs.dir_items[k].index == o.hash; k++)
          if (fs.name(fs.dir_items[k]) == name) {
            item_of[o.pos] = uint32_t(k);
            break;
          }
      }
    }
    // Index entries come in key order, (dir, index), as the sorted back
    // references do: one pass over both instead of a binary search per
    // name (random access into a million pairs). A hostile tree out of
    // order (reported by the walk) falls back to the search.
    const bool index_in_order =
        std::is_sorted(fs.dir_index.begin(), fs.dir_index.end(),
                       [](const NameLink& a, const NameLink& b) { return std::tie(a.dir, a.index) < std::tie(b.dir, b.index); });
    size_t ref_at = 0;
    auto has_back_ref = [&](const NameLink& e) {
      const std::pair<uint64_t, uint64_t> want{e.dir, e.index};
      if (!index_in_order) return std::binary_search(ref_set.begin(), ref_set.end(), want);
      while (ref_at < ref_set.size() && ref_set[ref_at] < want) ref_at++;
      return ref_at < ref_set.size() && ref_set[ref_at] == want;
    };
    for (size_t i = 0; i < fs.dir_index.size(); i++) {
      const NameLink& e = fs.dir_index[i];
      NameLink* di = item_of[i] == FsTreeState::kNone ? nullptr : &fs.dir_items[item_of[i]];
      if (e.subvol) {
        if (di) di->indexed = true;
        // A subvolume's entry: the ROOT_REF must say the same.
        auto rr = root_refs_.find({tree, e.ino});
        if (rr == root_refs_.end() || rr->second.dirid != e.dir || rr->second.sequence != e.index ||
            rr->second.name != fs.name(e))
          problem("subvolume-ref", "directory " + std::to_string(e.dir) + " entry \"" + fs.str(e) + "\" names subvolume " +
                                       std::to_string(e.ino) + " but its ROOT_REF disagrees or is missing", e.dir);
        else
          subvol_entries_seen_.insert({tree, e.ino});
        if (!di || di->ino != e.ino || !di->subvol)
          problem("dir-item", "directory " + std::to_string(e.dir) + " entry \"" + fs.str(e) + "\" is in the index but not in the name hash items", e.dir);
        continue;
      }
      const InodeSeen* in = fs.inode(e.ino);
      if (!in) {
        problem("dangling-entry", "directory " + std::to_string(e.dir) + " entry \"" + fs.str(e) + "\" points to missing " +
                                      ino_s(e.ino), e.ino);
        continue;
      }
      if (!has_back_ref(e))
        problem("name-missing", "directory " + std::to_string(e.dir) + " entry \"" + fs.str(e) + "\" has no back reference in " +
                                    ino_s(e.ino), e.ino);
      if (di) di->indexed = true;
      if (!di || di->ino != e.ino)
        problem("dir-item", "directory " + std::to_string(e.dir) + " entry \"" + fs.str(e) + "\" is in the index but not in the name hash items", e.ino);
      if (e.type != mode_to_dt(in->mode))
        problem("dir-type", "directory " + std::to_string(e.dir) + " entry \"" + fs.str(e) + "\" has the wrong file type", e.ino);
    }
    // Marked by the index loop above: one look-up per index entry, not a
    // scan of the directory's index per name (that was quadratic in the
    // size of a directory: 6 minutes for 200,000 names).
    for (const NameLink& e : fs.dir_items) {
      if (!e.indexed)
        problem("dir-index", "directory " + std::to_string(e.dir) + " entry \"" + fs.str(e) + "\" is missing from the directory index", e.ino);
    }
    for (auto& [ino, in] : fs.inodes) {
      const uint64_t n = count_of(named, ino);
      const bool orphan = fs.orphans.count(ino) != 0;
      if (ino == kFirstInode) {
        if (!S_ISDIR(in.mode)) problem("root-dir", "the root directory is not a directory", ino);
      } else if (n == 0 && !orphan) {
        problem("unreachable", ino_s(ino) + " has no name and is not an orphan", ino);
        continue;
      }
      // st_blocks: what the file's extents reference, shared or not (du
      // counts a reflinked block in every file, as on btrfs).
      if (S_ISREG(in.mode) && in.nbytes != in.referenced)
        problem("inode-nbytes", ino_s(ino) + " counts " + std::to_string(in.nbytes) + " bytes of extents, its items reference " +
                                    std::to_string(in.referenced), ino, in.referenced);
      // A directory's size is twice the bytes of its names, as in btrfs.
      if (S_ISDIR(in.mode) && in.size != 2 * in.name_bytes)
        problem("dir-size", ino_s(ino) + " has size " + std::to_string(in.size) + ", its names make " +
                                std::to_string(2 * in.name_bytes), ino, 2 * in.name_bytes);
      const uint64_t want = S_ISDIR(in.mode) ? 2 + count_of(subdirs, ino) : n;
      if (in.nlink != want && !(orphan && in.nlink == 0))
        problem("link-count", ino_s(ino) + " has link count " + std::to_string(in.nlink) + ", found " + std::to_string(want), ino, want);
    }
    for (uint64_t o : fs.orphans)
      if (!fs.inode(o)) problem("orphan-missing", "orphan item for missing " + ino_s(o), o);
    for (uint64_t owner : fs.item_owners)
      if (owner != kOrphanObjectId && !fs.inode(owner))
        problem("item-without-inode", "items of " + ino_s(owner) + " but no inode item", owner);
  }

  static uint8_t mode_to_dt(uint32_t mode) { return uint8_t((mode & S_IFMT) >> 12); }

  BlockDevice& dev_;
  std::vector<DirEntryView> entries_scratch_;  // one item's entries, reused
  CheckOptions opts_;
  CheckReport report_;
  Superblock sb_;
  std::unique_ptr<ChunkMap> chunks_;
  std::vector<Chunk> chunk_items_;  // the chunk tree's items, in key order
  std::map<uint64_t, RootItem> roots_;
  // Subvolume entries: ROOT_REF (parent, subvolume) and ROOT_BACKREF
  // (subvolume, parent), and the (parent, subvolume) entries the
  // namespace walk matched to their ROOT_REF.
  std::map<std::pair<uint64_t, uint64_t>, RootRefItem> root_refs_, root_backrefs_;
  std::set<std::pair<uint64_t, uint64_t>> subvol_entries_seen_;
  std::map<uint64_t, TreeBlockSeen> blocks_;
  std::map<uint64_t, TreeBlockSeen> meta_items_;
  std::vector<DataItemSeen> data_items_;  // by bytenr once sort_data_items ran (key order already)
  std::vector<DataBackrefSeen> data_backrefs_;
  std::vector<FileRef> file_refs_;  // sorted by the cross-check
  // Key order from the walk, unless the tree is damaged; one item per
  // address (a repeated address keeps the last, as a map would).
  void sort_data_items() {
    auto less = [](const DataItemSeen& a, const DataItemSeen& b) { return a.bytenr < b.bytenr; };
    if (std::is_sorted(data_items_.begin(), data_items_.end(), less) &&
        std::adjacent_find(data_items_.begin(), data_items_.end(), [](auto& a, auto& b) { return a.bytenr == b.bytenr; }) ==
            data_items_.end())
      return;
    std::stable_sort(data_items_.begin(), data_items_.end(), less);
    std::vector<DataItemSeen> unique;
    for (const DataItemSeen& d : data_items_) {
      if (!unique.empty() && unique.back().bytenr == d.bytenr) unique.back() = d;
      else unique.push_back(d);
    }
    data_items_ = std::move(unique);
  }
  const DataItemSeen* data_item(uint64_t bytenr) const {
    auto it = std::lower_bound(data_items_.begin(), data_items_.end(), bytenr,
                               [](const DataItemSeen& d, uint64_t x) { return d.bytenr < x; });
    return it != data_items_.end() && it->bytenr == bytenr ? &*it : nullptr;
  }
  std::vector<std::pair<uint64_t, uint64_t>> csum_ranges_;
  std::map<uint64_t, FsTreeState> fs_trees_;
  std::set<uint64_t> unreadable_trees_;
  std::vector<CsumNeed> csum_needed_;
};

}  // namespace

nlohmann::json CheckReport::to_json() const {
  nlohmann::json j;
  j["clean"] = clean();
  j["generation"] = stats.generation;
  j["stats"] = {{"trees", stats.trees},           {"nodes", stats.nodes},
                {"items", stats.items},           {"inodes", stats.inodes},
                {"data_extents", stats.data_extents}, {"data_bytes", stats.data_bytes},
                {"tree_bytes", stats.tree_bytes}, {"csum_items", stats.csum_items},
                {"chunks", stats.chunks}, {"space_cache_ranges", stats.space_cache_ranges},
                {"log_writes", stats.log_writes}, {"log_records", stats.log_records}};
  j["problems"] = nlohmann::json::array();
  for (const auto& p : problems) {
    nlohmann::json e = {{"code", p.code}, {"message", p.message}, {"severity", p.warning ? "warning" : "error"}};
    if (p.tree) e["tree"] = p.tree;
    if (p.bytenr) e["bytenr"] = p.bytenr;
    if (p.has_key) e["key"] = {p.key.objectid, p.key.type, p.key.offset};
    j["problems"].push_back(e);
  }
  return j;
}

Result<CheckReport> check_filesystem(BlockDevice& dev, const CheckOptions& opts) { return Checker(dev, opts).run(); }

}  // namespace cairn
