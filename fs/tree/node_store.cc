#include "tree/node_store.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "format/tree_checker.h"

namespace cairn {

NodeStore::NodeStore(BlockDevice* dev, const ChunkMap* chunks, Uuid fsid, CsumType ct, uint32_t node_size,
                     size_t cache_bytes)
    : dev_(dev), chunks_(chunks), fsid_(fsid), csum_(ct), node_size_(node_size),
      cache_capacity_(std::max<size_t>(64 * size_t(node_size), cache_bytes)) {}

namespace {
// What a decoded node takes on the heap: its vectors, and each item's own
// block (rounded as malloc does, with its header).
size_t memory_of(const Node& n) {
  size_t b = sizeof(Node) + n.keys.capacity() * sizeof(Key) + n.items.capacity() * sizeof(std::vector<uint8_t>) +
             (n.ptrs.capacity() + n.ptr_gens.capacity()) * sizeof(uint64_t);
  for (const auto& it : n.items) b += it.capacity() ? (it.capacity() + 8 + 15) / 16 * 16 : 0;
  return b + 64;  // the shared_ptr control block and the list and map entries
}
}  // namespace

Result<Node> NodeStore::decode(const uint8_t* buf, const NodeExpectation& expect) const {
  return decode_node(buf, fsid_, csum_, node_size_, expect);
}

Status NodeStore::read_copy(uint64_t physical, uint8_t* buf) { return dev_->read(physical, buf, node_size_); }

Result<NodePtr> NodeStore::read(const NodeExpectation& expect_in) {
  const uint64_t bytenr = expect_in.bytenr;
  if (auto d = dirty_.find(bytenr); d != dirty_.end()) return d->second;
  if (auto c = clean_.find(bytenr); c != clean_.end()) {
    stats_.cache_hits++;
    lru_.splice(lru_.begin(), lru_, c->second);
    NodePtr n = c->second->node;
    // A cached node was validated when read; the expectations of this
    // particular parent pointer still have to hold.
    if ((expect_in.level >= 0 && n->level != expect_in.level) ||
        (expect_in.generation && n->generation != expect_in.generation) ||
        (expect_in.owner && n->owner != expect_in.owner))
      return Status::Corruption("node " + std::to_string(bytenr) + ": does not match its parent pointer");
    return n;
  }
  NodeExpectation expect = expect_in;
  if (!expect.max_generation) expect.max_generation = max_generation_;
  ASSIGN_OR_RETURN(auto copies, chunks_->map(bytenr, node_size_));
  // Tree blocks live in metadata chunks only, the chunk tree's in system
  // chunks only: a pointer into data would have the tree read (and later
  // copy-on-write over) file data.
  const Chunk* chunk = chunks_->find(bytenr);
  if (!chunk || (chunk->type != kChunkMetadata && chunk->type != kChunkSystem) ||
      (expect.owner && (expect.owner == kChunkTreeId) != (chunk->type == kChunkSystem)))
    return Status::Corruption("node " + std::to_string(bytenr) + ": not in a " +
                              (expect.owner == kChunkTreeId ? "system" : "metadata") + " chunk");
  std::vector<uint8_t> buf(node_size_);
  Status first_error;
  std::vector<uint64_t> bad_copies;
  for (uint64_t phys : copies) {
    stats_.reads++;
    Status st = dev_->read(phys, buf.data(), node_size_);
    if (!st.ok()) {
      stats_.read_errors++;
      if (first_error.ok()) first_error = st;
      bad_copies.push_back(phys);
      continue;
    }
    auto node = decode(buf.data(), expect);
    if (node.ok() && (node->owner == kChunkTreeId) != (chunk->type == kChunkSystem)) {
      // Not a copy problem: every copy holds the same bytes.
      return Status::Corruption("node " + std::to_string(bytenr) + " of tree " + std::to_string(node->owner) +
                                " lies in a " + chunk_type_name(chunk->type) + " chunk");
    }
    if (!node.ok()) {
      stats_.csum_errors++;
      if (first_error.ok()) first_error = node.status();
      bad_copies.push_back(phys);
      continue;
    }
    // The checksum holds: now the items must keep the format's rules
    // (a node written with lying fields is refused whole, every copy is
    // the same bytes).
    // A child must hold exactly the key range its parent gives it, or a
    // search would be steered to the wrong node (a misplaced or lying block).
    const std::string here = "node " + std::to_string(bytenr);
    if (expect.first_key && (node->keys.empty() || node->keys.front() != *expect.first_key))
      return Status::Corruption(here + ": first key does not match its parent's " + expect.first_key->to_string());
    if (expect.next_key && !node->keys.empty() && !(node->keys.back() < *expect.next_key))
      return Status::Corruption(here + ": last key not below the parent's next key " + expect.next_key->to_string());
    if (node->is_leaf()) {
      TreeCheckContext tc{node_size_, csum_, expect.max_generation, chunks_->next_logical(), chunks_->device_size()};
      auto bad = check_leaf(*node, tc);
      if (!bad.empty()) return Status::Corruption(bad.front());
    }
    // Read-repair: rewrite the bad copies from this good one.
    for (uint64_t badp : bad_copies) {
      bool fixed = false;
      if (repair_) {
        fixed = dev_->write(badp, buf.data(), node_size_).ok();
        if (fixed) stats_.corrected++;
        else stats_.write_errors++;
      }
      log_bad_copy(bytenr, badp, fixed, true);
    }
    auto n = std::make_shared<Node>(std::move(node).value());
    touch(bytenr, n);
    return n;
  }
  stats_.uncorrectable++;
  for (uint64_t badp : bad_copies) log_bad_copy(bytenr, badp, false, false);
  return first_error;
}

void NodeStore::log_bad_copy(uint64_t bytenr, uint64_t physical, bool corrected, bool had_good) {
  // Bounded so a badly damaged image cannot grow it without end.
  constexpr size_t kMaxBadCopyLog = 4096;
  if (bad_copy_log_.size() < kMaxBadCopyLog) bad_copy_log_.push_back(BadCopy{bytenr, physical, corrected, had_good});
}

void NodeStore::touch(uint64_t bytenr, NodePtr n) {
  if (auto old = clean_.find(bytenr); old != clean_.end()) drop(old->second);
  const size_t charge = memory_of(*n);
  lru_.push_front(Cached{bytenr, std::move(n), charge});
  clean_[bytenr] = lru_.begin();
  cached_bytes_ += charge;
  evict();
}

void NodeStore::evict() {
  // Only nodes nobody else holds can go. One that is held moves to the
  // front (it is in use, so it is recent): each is passed over once per
  // round of the list, not again at every insert. Scanning the same held
  // nodes from the back at every insert was quadratic: renames across a
  // million files spent two thirds of the daemon's CPU here.
  for (size_t budget = lru_.size(); cached_bytes_ > cache_capacity_ && budget > 0; budget--) {
    auto victim = std::prev(lru_.end());
    if (victim->node.use_count() == 1) drop(victim);
    else lru_.splice(lru_.begin(), lru_, victim);
  }
}

void NodeStore::drop(std::list<Cached>::iterator it) {
  cached_bytes_ -= it->charge;
  clean_.erase(it->bytenr);
  lru_.erase(it);
}

NodePtr NodeStore::create(uint64_t bytenr, uint64_t owner, uint8_t level, uint64_t transid) {
  auto n = std::make_shared<Node>();
  n->bytenr = bytenr;
  n->owner = owner;
  n->level = level;
  n->generation = transid;
  n->dirty = true;
  forget(bytenr);
  dirty_[bytenr] = n;
  return n;
}

NodePtr NodeStore::clone(const Node& src, uint64_t bytenr, uint64_t transid) {
  auto n = std::make_shared<Node>(src);
  n->bytenr = bytenr;
  n->generation = transid;
  n->dirty = true;
  forget(bytenr);
  dirty_[bytenr] = n;
  return n;
}

void NodeStore::forget(uint64_t bytenr) {
  dirty_.erase(bytenr);
  if (auto c = clean_.find(bytenr); c != clean_.end()) drop(c->second);
}

Status NodeStore::write_node(const Node& n) {
  std::vector<uint8_t> buf(node_size_);
  encode_node(n, fsid_, csum_, node_size_, buf.data());
  ASSIGN_OR_RETURN(auto copies, chunks_->map(n.bytenr, node_size_));
  for (uint64_t phys : copies) {
    Status st = dev_->write(phys, buf.data(), node_size_);
    if (!st.ok()) {
      stats_.write_errors++;
      return st;
    }
    stats_.writes++;
  }
  return Status::Ok();
}

Status NodeStore::write_dirty() {
  // Write in address order: sequential on the device.
  std::vector<NodePtr> nodes;
  nodes.reserve(dirty_.size());
  for (auto& [b, n] : dirty_) nodes.push_back(n);
  std::sort(nodes.begin(), nodes.end(), [](const NodePtr& a, const NodePtr& b) { return a->bytenr < b->bytenr; });
  for (const NodePtr& n : nodes) RETURN_IF_ERROR(write_node(*n));
  // Into the cache without another reference held here: a node the cache
  // holds alone can be evicted as the next ones arrive.
  dirty_.clear();
  for (NodePtr& n : nodes) {
    n->dirty = false;
    const uint64_t b = n->bytenr;
    touch(b, std::move(n));
  }
  evict();
  return Status::Ok();
}

void NodeStore::drop_clean_cache() {
  lru_.clear();
  clean_.clear();
  cached_bytes_ = 0;
}

}  // namespace cairn
