#include "tree/btree.h"

#include <algorithm>

namespace cairn {

namespace {
int lower_bound_slot(const std::vector<Key>& keys, const Key& k) {
  return int(std::lower_bound(keys.begin(), keys.end(), k) - keys.begin());
}
}  // namespace

Result<NodePtr> BTree::read_node(NodeExpectation e) {
  // A tree that shares blocks (a snapshot, or the tree it was taken of)
  // reaches nodes another fs tree owns.
  const bool shares = root_->last_snapshot != 0;
  e.owner = shares ? 0 : root_->id;
  ASSIGN_OR_RETURN(NodePtr n, ctx_->store().read(e));
  if (shares && n->owner != root_->id && !(is_subvolume_id(root_->id) && is_subvolume_id(n->owner)))
    return Status::Corruption("node " + std::to_string(n->bytenr) + " of tree " + std::to_string(root_->id) +
                              " is owned by tree " + std::to_string(n->owner));
  return n;
}

Result<NodePtr> BTree::read_child(const Node& parent, int slot) {
  NodeExpectation e;
  e.bytenr = parent.ptrs[size_t(slot)];
  e.level = parent.level - 1;
  e.generation = parent.ptr_gens[size_t(slot)];
  e.first_key = &parent.keys[size_t(slot)];
  if (size_t(slot) + 1 < parent.nritems()) e.next_key = &parent.keys[size_t(slot) + 1];
  return read_node(e);
}

Result<NodePtr> BTree::read_root() {
  NodeExpectation e;
  e.bytenr = root_->bytenr;
  e.level = root_->level;
  e.generation = root_->generation;
  return read_node(e);
}

Result<bool> BTree::shared(const Node& n) {
  // Only a node older than the tree's last snapshot can have another
  // parent: everything since was copied into this tree alone. A tree never
  // snapshotted never looks.
  if (root_->last_snapshot == 0 || n.generation >= root_->last_snapshot) return false;
  ASSIGN_OR_RETURN(uint64_t refs, ctx_->tree_block_refs(n));
  return refs > 1;
}

Result<NodePtr> BTree::copy_node(const NodePtr& n) {
  ASSIGN_OR_RETURN(bool is_shared, shared(*n));
  ASSIGN_OR_RETURN(uint64_t nb, ctx_->alloc_tree_block(root_->id, n->level));
  NodePtr c = ctx_->store().clone(*n, nb, ctx_->transid());
  c->owner = root_->id;
  if (is_shared) {
    // The old node stays for its other parents; both it and the copy point
    // at its children (or at its leaf items' data) from now on.
    if (n->is_leaf()) {
      RETURN_IF_ERROR(ctx_->leaf_shared(root_->id, *n));
    } else {
      for (uint64_t child : n->ptrs) ctx_->add_tree_block_ref(child, uint8_t(n->level - 1));
    }
    ctx_->drop_tree_block_ref(*n);
  } else {
    if (n->is_leaf() && n->owner != root_->id) RETURN_IF_ERROR(ctx_->leaf_moved(root_->id, *n));
    ctx_->free_tree_block(*n);
  }
  return c;
}

Result<NodePtr> BTree::cow(NodePtr n, Path& p, int level) {
  if (n->generation == ctx_->transid() && n->dirty) return n;  // already copied in this transaction
  ASSIGN_OR_RETURN(NodePtr c, copy_node(n));
  const uint64_t nb = c->bytenr;
  if (level == p.top) {
    root_->bytenr = nb;
    root_->generation = ctx_->transid();
    root_->dirty = true;
  } else {
    Node& parent = *p.lv[level + 1].node;
    const size_t ps = size_t(p.lv[level + 1].slot);
    parent.ptrs[ps] = nb;
    parent.ptr_gens[ps] = ctx_->transid();
  }
  return c;
}

Result<bool> BTree::search(const Key& k, Path& p, bool cow_path) {
  ASSIGN_OR_RETURN(NodePtr n, read_root());
  p = Path{};
  p.top = n->level;
  if (cow_path) {
    ASSIGN_OR_RETURN(n, cow(n, p, p.top));
  }
  for (int level = p.top;; level--) {
    int idx = lower_bound_slot(n->keys, k);
    if (n->is_leaf()) {
      p.lv[0] = {n, idx};
      return idx < int(n->keys.size()) && n->keys[size_t(idx)] == k;
    }
    int slot = (idx < int(n->keys.size()) && n->keys[size_t(idx)] == k) ? idx : std::max(idx - 1, 0);
    p.lv[level] = {n, slot};
    ASSIGN_OR_RETURN(NodePtr child, read_child(*n, slot));
    if (cow_path) {
      ASSIGN_OR_RETURN(child, cow(child, p, level - 1));
    }
    n = child;
  }
}

Result<Bytes> BTree::lookup(const Key& k) {
  Path p;
  ASSIGN_OR_RETURN(bool found, search(k, p, false));
  if (!found) return Status::NotFound("key " + k.to_string() + " not found");
  return p.leaf()->items[size_t(p.slot())];
}

void BTree::fixup_keys(Path& p, int level, const Key& k) {
  for (int l = level; l <= p.top; l++) {
    Node& n = *p.lv[l].node;
    n.keys[size_t(p.lv[l].slot)] = k;
    if (p.lv[l].slot != 0) break;
  }
}

Status BTree::grow_root(Path& p) {
  Node& old = *p.lv[p.top].node;
  ASSIGN_OR_RETURN(uint64_t nb, ctx_->alloc_tree_block(root_->id, uint8_t(p.top + 1)));
  NodePtr r = ctx_->store().create(nb, root_->id, uint8_t(p.top + 1), ctx_->transid());
  r->keys.push_back(old.keys.empty() ? Key::Min() : old.keys[0]);
  r->ptrs.push_back(old.bytenr);
  r->ptr_gens.push_back(old.generation);
  p.top++;
  if (p.top >= kMaxLevel) return Status::NoSpace("tree too deep");
  p.lv[p.top] = {r, 0};
  root_->bytenr = nb;
  root_->level = uint8_t(p.top);
  root_->generation = ctx_->transid();
  root_->dirty = true;
  return Status::Ok();
}

// Split the internal node at `level` in two; the parent has room (callers
// split top-down, so every ancestor was made roomy first).
Status BTree::split_internal(Path& p, int level) {
  if (level == p.top) RETURN_IF_ERROR(grow_root(p));
  Node& n = *p.lv[level].node;
  const size_t mid = n.keys.size() / 2;
  ASSIGN_OR_RETURN(uint64_t nb, ctx_->alloc_tree_block(root_->id, n.level));
  NodePtr right = ctx_->store().create(nb, root_->id, n.level, ctx_->transid());
  right->keys.assign(n.keys.begin() + long(mid), n.keys.end());
  right->ptrs.assign(n.ptrs.begin() + long(mid), n.ptrs.end());
  right->ptr_gens.assign(n.ptr_gens.begin() + long(mid), n.ptr_gens.end());
  n.keys.resize(mid);
  n.ptrs.resize(mid);
  n.ptr_gens.resize(mid);
  Node& parent = *p.lv[level + 1].node;
  const size_t ps = size_t(p.lv[level + 1].slot) + 1;
  parent.keys.insert(parent.keys.begin() + long(ps), right->keys[0]);
  parent.ptrs.insert(parent.ptrs.begin() + long(ps), nb);
  parent.ptr_gens.insert(parent.ptr_gens.begin() + long(ps), ctx_->transid());
  return Status::Ok();
}

// Move leaf items [at, n) into a new right sibling. An empty sibling (at == n)
// takes `empty_key` as its key in the parent: the key about to be inserted.
Status BTree::split_leaf_at(Path& p, size_t at, const Key& empty_key) {
  if (p.top == 0) RETURN_IF_ERROR(grow_root(p));
  Node& leaf = *p.leaf();
  ASSIGN_OR_RETURN(uint64_t nb, ctx_->alloc_tree_block(root_->id, 0));
  NodePtr right = ctx_->store().create(nb, root_->id, 0, ctx_->transid());
  right->keys.assign(leaf.keys.begin() + long(at), leaf.keys.end());
  right->items.assign(std::make_move_iterator(leaf.items.begin() + long(at)), std::make_move_iterator(leaf.items.end()));
  leaf.keys.resize(at);
  leaf.items.resize(at);
  Node& parent = *p.lv[1].node;
  const size_t ps = size_t(p.lv[1].slot) + 1;
  parent.keys.insert(parent.keys.begin() + long(ps), right->keys.empty() ? empty_key : right->keys[0]);
  parent.ptrs.insert(parent.ptrs.begin() + long(ps), nb);
  parent.ptr_gens.insert(parent.ptr_gens.begin() + long(ps), ctx_->transid());
  return Status::Ok();
}

// Make the leaf on the path able to take `need` more bytes at its slot,
// splitting it (the path follows the item to its new leaf).
Status BTree::make_room(Path& p, const Key& k, size_t need) {
  const size_t cap = leaf_cap();
  Node* leaf = p.leaf().get();
  if (leaf->leaf_used() + need <= cap) return Status::Ok();
  const size_t n = leaf->keys.size();
  const size_t slot = size_t(p.slot());
  std::vector<size_t> prefix(n + 1, 0);  // prefix[i] = bytes of items [0, i)
  for (size_t i = 0; i < n; i++) prefix[i + 1] = prefix[i] + kLeafItemHeaderSize + leaf->items[i].size();
  auto used = [&](size_t a, size_t b) { return prefix[b] - prefix[a]; };

  auto go_right = [&](size_t at) {
    p.lv[0].node = nullptr;
    p.lv[1].slot += 1;
    p.slot() = int(slot - at);
  };
  auto take_right_node = [&]() -> Status {
    Node& parent = *p.lv[1].node;
    ASSIGN_OR_RETURN(p.lv[0].node, read_child(parent, p.lv[1].slot));
    return Status::Ok();
  };

  // A: split in the middle by bytes, if the item fits on its side. Not for
  // an append at the leaf's end: keys that arrive in order (checksums,
  // tree blocks, new inodes) would leave every leaf half full; B gives the
  // new item a fresh right leaf and keeps this one full, as btrfs does.
  if (n >= 2 && slot < n) {
    size_t mid = 1;
    while (mid < n - 1 && used(0, mid) < prefix[n] / 2) mid++;
    if (slot <= mid && used(0, mid) + need <= cap) {
      return split_leaf_at(p, mid, k);
    }
    if (slot >= mid && used(mid, n) + need <= cap) {
      RETURN_IF_ERROR(split_leaf_at(p, mid, k));
      go_right(mid);
      return take_right_node();
    }
  }
  // B: split at the insertion point; the item ends the left or starts the right.
  if (used(0, slot) + need <= cap) return split_leaf_at(p, slot, k);
  if (used(slot, n) + need <= cap) {
    RETURN_IF_ERROR(split_leaf_at(p, slot, k));
    go_right(slot);
    return take_right_node();
  }
  // C: both sides are full; the item gets a leaf of its own between them.
  RETURN_IF_ERROR(split_leaf_at(p, slot, k));
  RETURN_IF_ERROR(split_leaf_at(p, slot, k));  // the left now ends at `slot`: an empty leaf
  go_right(slot);
  return take_right_node();
}

static Result<bool> search_for_insert(BTree& t, const Key& k, Path& p, size_t ptr_cap,
                               const std::function<Status(Path&, int)>& split) {
  for (;;) {
    ASSIGN_OR_RETURN(bool found, t.search(k, p, true));
    bool did_split = false;
    for (int level = p.top; level >= 1; level--) {
      if (p.lv[level].node->keys.size() + 3 >= ptr_cap) {
        RETURN_IF_ERROR(split(p, level));
        did_split = true;
        break;
      }
    }
    if (!did_split) return found;
  }
}

Status BTree::insert(const Key& k, const Bytes& data) {
  if (data.size() > max_item_size()) return Status::Error(E2BIG, "item too large for a node");
  Path p;
  ASSIGN_OR_RETURN(bool found, search_for_insert(*this, k, p, ptr_cap(),
                                                [this](Path& pp, int l) { return split_internal(pp, l); }));
  if (found) return Status::Error(EEXIST, "key " + k.to_string() + " exists");
  RETURN_IF_ERROR(make_room(p, k, kLeafItemHeaderSize + data.size()));
  Node& leaf = *p.leaf();
  const size_t slot = size_t(p.slot());
  leaf.keys.insert(leaf.keys.begin() + long(slot), k);
  leaf.items.insert(leaf.items.begin() + long(slot), data);
  if (slot == 0 && p.top > 0) fixup_keys(p, 1, k);
  return Status::Ok();
}

Status BTree::modify(const Key& k, const std::function<Status(Bytes&)>& fn) {
  Path p;
  ASSIGN_OR_RETURN(bool found, search(k, p, true));
  if (!found) return Status::NotFound("key " + k.to_string() + " not found");
  Node& leaf = *p.leaf();
  const size_t slot = size_t(p.slot());
  Bytes copy = leaf.items[slot];
  RETURN_IF_ERROR(fn(copy));
  if (copy.size() > max_item_size()) return Status::Error(E2BIG, "item too large for a node");
  if (leaf.leaf_used() - leaf.items[slot].size() + copy.size() <= leaf_cap()) {
    leaf.items[slot] = std::move(copy);
    return Status::Ok();
  }
  RETURN_IF_ERROR(delete_slot(p));
  return insert(k, copy);
}

Status BTree::update(const Key& k, const Bytes& data) {
  return modify(k, [&](Bytes& b) {
    b = data;
    return Status::Ok();
  });
}

Status BTree::upsert(const Key& k, const Bytes& data) {
  Status st = update(k, data);
  if (st.is_not_found()) return insert(k, data);
  return st;
}

Status BTree::remove(const Key& k) {
  Path p;
  ASSIGN_OR_RETURN(bool found, search(k, p, true));
  if (!found) return Status::NotFound("key " + k.to_string() + " not found");
  return delete_slot(p);
}

Result<uint64_t> BTree::remove_range(const Key& lo, const Key& hi) {
  uint64_t n = 0;
  for (;;) {
    Cursor c(this);
    RETURN_IF_ERROR(c.seek(lo));
    if (!c.valid() || hi < c.key()) return n;
    Key k = c.key();
    RETURN_IF_ERROR(remove(k));
    n++;
  }
}

Status BTree::delete_slot(Path& p) {
  Node& leaf = *p.leaf();
  const size_t slot = size_t(p.slot());
  leaf.keys.erase(leaf.keys.begin() + long(slot));
  leaf.items.erase(leaf.items.begin() + long(slot));
  if (slot == 0 && !leaf.keys.empty() && p.top > 0) fixup_keys(p, 1, leaf.keys[0]);
  return rebalance(p, 0);
}

bool BTree::underfull(const Node& n) const {
  if (n.is_leaf()) return n.leaf_used() < leaf_cap() / 4;
  return n.keys.size() < ptr_cap() / 4;
}

Status BTree::rebalance(Path& p, int level) {
  NodePtr node = p.lv[level].node;
  if (level == p.top) {
    // Shrink the tree while the root has a single child; an emptied
    // internal root becomes an empty leaf.
    while (!node->is_leaf() && node->keys.size() <= 1) {
      NodePtr child;
      if (node->keys.empty()) {
        ASSIGN_OR_RETURN(uint64_t nb, ctx_->alloc_tree_block(root_->id, 0));
        child = ctx_->store().create(nb, root_->id, 0, ctx_->transid());
      } else {
        ASSIGN_OR_RETURN(child, read_child(*node, 0));
      }
      ctx_->free_tree_block(*node);
      ctx_->store().forget(node->bytenr);
      root_->bytenr = child->bytenr;
      root_->level = child->level;
      root_->generation = child->generation;
      root_->dirty = true;
      node = child;
    }
    return Status::Ok();
  }
  if (!underfull(*node)) return Status::Ok();
  Node& parent = *p.lv[level + 1].node;
  const int ps = p.lv[level + 1].slot;
  auto drop_ptr = [&](int s) {
    parent.keys.erase(parent.keys.begin() + s);
    parent.ptrs.erase(parent.ptrs.begin() + s);
    parent.ptr_gens.erase(parent.ptr_gens.begin() + s);
    if (s == 0 && !parent.keys.empty() && level + 2 <= p.top) fixup_keys(p, level + 2, parent.keys[0]);
  };
  auto release = [&](const NodePtr& n) {
    ctx_->free_tree_block(*n);
    ctx_->store().forget(n->bytenr);
  };
  if (node->keys.empty()) {
    release(node);
    drop_ptr(ps);
    return rebalance(p, level + 1);
  }
  int sib = ps > 0 ? ps - 1 : ps + 1;
  if (sib >= int(parent.keys.size())) return rebalance(p, level + 1);
  ASSIGN_OR_RETURN(NodePtr sn, read_child(parent, sib));
  if (!(sn->generation == ctx_->transid() && sn->dirty)) {
    ASSIGN_OR_RETURN(NodePtr c, copy_node(sn));
    parent.ptrs[size_t(sib)] = c->bytenr;
    parent.ptr_gens[size_t(sib)] = ctx_->transid();
    sn = c;
  }
  NodePtr left = sib < ps ? sn : node;
  NodePtr right = sib < ps ? node : sn;
  const int right_slot = std::max(sib, ps);
  bool fits = node->is_leaf() ? left->leaf_used() + right->leaf_used() <= leaf_cap()
                              : left->keys.size() + right->keys.size() <= ptr_cap() - 3;
  if (!fits) return Status::Ok();
  left->keys.insert(left->keys.end(), right->keys.begin(), right->keys.end());
  if (node->is_leaf()) {
    left->items.insert(left->items.end(), std::make_move_iterator(right->items.begin()),
                       std::make_move_iterator(right->items.end()));
  } else {
    left->ptrs.insert(left->ptrs.end(), right->ptrs.begin(), right->ptrs.end());
    left->ptr_gens.insert(left->ptr_gens.end(), right->ptr_gens.begin(), right->ptr_gens.end());
  }
  release(right);
  drop_ptr(right_slot);
  return rebalance(p, level + 1);
}

// ---- Dropping a dead tree ----

Result<bool> BTree::drop_step() {
  ASSIGN_OR_RETURN(NodePtr r, read_root());
  ASSIGN_OR_RETURN(bool root_shared, shared(*r));
  if (root_shared) {
    // Everything below belongs to the other trees that point at the root.
    ctx_->drop_tree_block_ref(*r);
    return true;
  }
  if (r->is_leaf()) {
    RETURN_IF_ERROR(ctx_->leaf_dropped(root_->id, *r));
    ctx_->free_tree_block(*r);
    ctx_->store().forget(r->bytenr);
    return true;
  }
  Path p;
  p.top = r->level;
  ASSIGN_OR_RETURN(NodePtr n, cow(r, p, p.top));
  for (int level = p.top;; level--) {
    p.lv[level] = {n, 0};
    ASSIGN_OR_RETURN(NodePtr child, read_child(*n, 0));
    ASSIGN_OR_RETURN(bool child_shared, shared(*child));
    if (child_shared || child->is_leaf()) {
      if (child_shared) {
        ctx_->drop_tree_block_ref(*child);
      } else {
        RETURN_IF_ERROR(ctx_->leaf_dropped(root_->id, *child));
        ctx_->free_tree_block(*child);
        ctx_->store().forget(child->bytenr);
      }
      return drop_first_ptr(p, level);
    }
    ASSIGN_OR_RETURN(n, cow(child, p, level - 1));
  }
}

Result<bool> BTree::drop_first_ptr(Path& p, int level) {
  for (;; level++) {
    Node& n = *p.lv[level].node;
    n.keys.erase(n.keys.begin());
    n.ptrs.erase(n.ptrs.begin());
    n.ptr_gens.erase(n.ptr_gens.begin());
    if (!n.keys.empty()) {
      // Every ancestor on the path points at its first child: their keys
      // for this subtree become its new first key.
      if (level < p.top) fixup_keys(p, level + 1, n.keys[0]);
      return false;
    }
    // Emptied: it goes too, and with it its pointer in the parent.
    ctx_->free_tree_block(n);
    ctx_->store().forget(n.bytenr);
    if (level == p.top) return true;
  }
}

// ---- Cursor ----

Status Cursor::seek(const Key& k) {
  ASSIGN_OR_RETURN(bool found, tree_->search(k, path_, false));
  (void)found;
  valid_ = true;
  return normalize_forward();
}

Status Cursor::normalize_forward() {
  while (path_.lv[0].slot >= int(path_.lv[0].node->keys.size())) {
    int level = 1;
    while (level <= path_.top && path_.lv[level].slot + 1 >= int(path_.lv[level].node->keys.size())) level++;
    if (level > path_.top) {
      valid_ = false;
      return Status::Ok();
    }
    path_.lv[level].slot++;
    for (int l = level; l >= 1; l--) {
      ASSIGN_OR_RETURN(NodePtr child, tree_->read_child(*path_.lv[l].node, path_.lv[l].slot));
      path_.lv[l - 1] = {child, 0};
    }
  }
  return Status::Ok();
}

Status Cursor::next() {
  if (!valid_) return Status::Ok();
  path_.lv[0].slot++;
  return normalize_forward();
}

Status Cursor::prev() {
  if (!valid_) return Status::Ok();
  if (path_.lv[0].slot > 0) {
    path_.lv[0].slot--;
    return Status::Ok();
  }
  for (;;) {  // step to the previous leaf's last item
    int level = 1;
    while (level <= path_.top && path_.lv[level].slot == 0) level++;
    if (level > path_.top) {
      valid_ = false;
      return Status::Ok();
    }
    path_.lv[level].slot--;
    for (int l = level; l >= 1; l--) {
      ASSIGN_OR_RETURN(NodePtr child, tree_->read_child(*path_.lv[l].node, path_.lv[l].slot));
      path_.lv[l - 1] = {child, int(child->keys.size()) - 1};
    }
    if (path_.lv[0].slot >= 0) return Status::Ok();
    path_.lv[0].slot = 0;  // an empty leaf: keep going left
  }
}

Status Cursor::seek_last_le(const Key& k) {
  ASSIGN_OR_RETURN(bool found, tree_->search(k, path_, false));
  valid_ = true;
  if (found) return Status::Ok();
  // The search slot is where k would go; the item before it is the answer.
  return prev();
}

}  // namespace cairn
