#pragma once
// The copy-on-write B+tree (docs/design.md, "B-tree"; docs/format.md, "Trees").
//
// Items are (key, payload) pairs in leaves; internal nodes hold the first
// key of each child. Every modification first copies the nodes on its path
// unless they were already copied in the running transaction (their
// generation equals the transaction id), exactly as btrfs does: the
// committed tree is never modified, so a crash always finds it intact.
// Inserts split full nodes bottom-up; deletes merge underfull neighbours.
//
// Thread-safety: none of its own; callers hold the engine's tree lock.

#include <cstdint>
#include <functional>
#include <optional>

#include "format/items.h"
#include "format/key.h"
#include "tree/node_store.h"

namespace cairn {

// A tree's root as the engine tracks it (stored in a ROOT_ITEM, or for the
// root tree itself in the superblock).
struct RootRef {
  uint64_t id = 0;
  uint64_t bytenr = 0;
  uint8_t level = 0;
  uint64_t generation = 0;
  uint64_t last_objectid = 0;
  uint64_t flags = 0;  // RootItem flags
  uint64_t last_snapshot = 0;  // RootItem::last_snapshot
  bool dirty = false;
};

// What the tree needs from the engine: nodes, the transaction id, and
// tree-block allocation (which the engine turns into extent-tree updates).
class TreeContext {
 public:
  virtual ~TreeContext() = default;
  virtual NodeStore& store() = 0;
  virtual uint64_t transid() const = 0;
  virtual Result<uint64_t> alloc_tree_block(uint64_t owner, uint8_t level) = 0;
  // The node's last reference goes (its space is freed once durable).
  virtual void free_tree_block(const Node& n) = 0;
  // Shared tree blocks (snapshots; docs/design.md, "Snapshots"): how many
  // parents and roots point at the node, pending changes included; one
  // more pointer to a node; one pointer fewer (never the last).
  virtual Result<uint64_t> tree_block_refs(const Node& n) = 0;
  virtual void add_tree_block_ref(uint64_t bytenr, uint8_t level) = 0;
  virtual void drop_tree_block_ref(const Node& n) = 0;
  // What a leaf's items reference outside the tree (data extents) follows
  // the leaf: a copy of a shared leaf now owned by `owner` references them
  // once more; a leaf copied away from another owner moves them to `owner`;
  // a leaf of a dropped tree lets them go.
  virtual Status leaf_shared(uint64_t owner, const Node& leaf) = 0;
  virtual Status leaf_moved(uint64_t owner, const Node& leaf) = 0;
  virtual Status leaf_dropped(uint64_t tree, const Node& leaf) = 0;
};

struct PathLevel {
  NodePtr node;
  int slot = 0;
};
struct Path {
  PathLevel lv[kMaxLevel];
  int top = 0;  // level of the root in this path
  NodePtr& leaf() { return lv[0].node; }
  int& slot() { return lv[0].slot; }
};

class BTree;

// Read-only iteration in key order, either direction. Valid while the tree
// lock is held and the tree is not modified.
class Cursor {
 public:
  Cursor(BTree* tree) : tree_(tree) {}
  Status seek(const Key& k);           // first item >= k
  Status seek_last_le(const Key& k);   // last item <= k
  bool valid() const { return valid_; }
  const Key& key() const { return path_.lv[0].node->keys[path_.lv[0].slot]; }
  const Bytes& data() const { return path_.lv[0].node->items[path_.lv[0].slot]; }
  Status next();
  Status prev();
  // Loop-friendly forms: on an error the cursor becomes invalid and
  // status() keeps the error, to be checked after the loop.
  void advance() { keep(next()); }
  void retreat() { keep(prev()); }
  const Status& status() const { return status_; }

 private:
  Status normalize_forward();
  void keep(Status st) {
    if (!st.ok()) {
      status_ = st;
      valid_ = false;
    }
  }
  BTree* tree_;
  Status status_;
  Path path_;
  bool valid_ = false;
};

class BTree {
 public:
  BTree(TreeContext* ctx, RootRef* root) : ctx_(ctx), root_(root) {}

  // Point operations. lookup returns NotFound when the key is absent.
  Result<Bytes> lookup(const Key& k);
  Status insert(const Key& k, const Bytes& data);      // EEXIST if present
  Status update(const Key& k, const Bytes& data);      // ENOENT if absent
  Status upsert(const Key& k, const Bytes& data);
  Status remove(const Key& k);                         // ENOENT if absent
  // Modify an item's bytes in place (after copy-on-write of its path); the
  // callback may resize it.
  Status modify(const Key& k, const std::function<Status(Bytes&)>& fn);
  // Remove every item with lo <= key <= hi; returns how many.
  Result<uint64_t> remove_range(const Key& lo, const Key& hi);

  Cursor cursor() { return Cursor(this); }
  // Search: fills `p` down to the leaf. With cow, every node on the path is
  // copied into the running transaction. Returns whether the key exists.
  Result<bool> search(const Key& k, Path& p, bool cow);
  Result<NodePtr> read_child(const Node& parent, int slot);
  Result<NodePtr> read_root();

  // One step of dropping this (dead) tree: the leftmost subtree that is
  // shared with another tree loses this tree's pointer, or the leftmost
  // leaf goes with the references its items hold; emptied nodes go too.
  // Every step leaves a valid, smaller tree with exact reference counts,
  // so the drop can stop at any commit and resume after a crash. True
  // when the whole tree is gone (the caller forgets its root).
  Result<bool> drop_step();

  RootRef& root() { return *root_; }
  size_t max_item_size() const { return NodeGeometry{ctx_->store().node_size()}.max_item_size(); }
  size_t half_leaf_item_size() const { return NodeGeometry{ctx_->store().node_size()}.half_leaf_item_size(); }

 private:
  Result<NodePtr> cow(NodePtr n, Path& p, int level);
  // A node read for this tree (its owner may be another fs tree where
  // trees share blocks).
  Result<NodePtr> read_node(NodeExpectation e);
  // Does another tree (or parent) point at `n` too?
  Result<bool> shared(const Node& n);
  // The new copy of `n` this transaction writes instead (copy-on-write),
  // with the references it takes over or adds.
  Result<NodePtr> copy_node(const NodePtr& n);
  Result<bool> drop_first_ptr(Path& p, int level);
  Status make_room(Path& p, const Key& k, size_t need);
  Status split_leaf_at(Path& p, size_t at, const Key& empty_key);
  Status insert_ptr(Path& p, int level, int slot, const Key& k, uint64_t ptr, uint64_t gen);
  Status split_internal(Path& p, int level);
  Status grow_root(Path& p);
  void fixup_keys(Path& p, int level, const Key& k);
  Status delete_slot(Path& p);
  Status rebalance(Path& p, int level);
  bool underfull(const Node& n) const;
  size_t leaf_cap() const { return NodeGeometry{ctx_->store().node_size()}.leaf_capacity(); }
  size_t ptr_cap() const { return NodeGeometry{ctx_->store().node_size()}.max_ptrs(); }

  TreeContext* ctx_;
  RootRef* root_;
  friend class Cursor;
};

}  // namespace cairn
