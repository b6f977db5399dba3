#pragma once
// Tree nodes in memory and their codec (docs/format.md, "Node header",
// "Leaf", "Internal node").
//
// A node is held decoded: keys, and either item payloads (leaf) or child
// pointers (internal). Encoding happens when a node is written, decoding and
// full validation when it is read, so no code ever indexes into raw node
// bytes it has not checked (invariant 6).
//
// Thread-safety: a Node is owned by the tree layer and guarded by the
// engine's tree lock.

#include <cstdint>
#include <string>
#include <vector>

#include "csum/checksum.h"
#include "format/key.h"
#include "format/superblock.h"
#include "util/status.h"

namespace cairn {

constexpr size_t kNodeHeaderSize = 96;
constexpr size_t kLeafItemHeaderSize = Key::kDiskSize + 8;   // key, data offset u32, data size u32
constexpr size_t kKeyPtrSize = Key::kDiskSize + 16;          // key, blockptr u64, generation u64

struct Node {
  uint64_t bytenr = 0;
  uint64_t generation = 0;
  uint64_t owner = 0;
  uint64_t flags = 0;
  uint8_t level = 0;
  std::vector<Key> keys;
  std::vector<std::vector<uint8_t>> items;  // leaf payloads, one per key
  std::vector<uint64_t> ptrs;               // internal: child addresses
  std::vector<uint64_t> ptr_gens;           // internal: child generations
  bool dirty = false;                       // in memory only: must be written at commit

  bool is_leaf() const { return level == 0; }
  size_t nritems() const { return keys.size(); }
  // Bytes the leaf's items occupy (item headers plus payloads).
  size_t leaf_used() const;
};

struct NodeGeometry {
  uint32_t node_size;
  size_t leaf_capacity() const { return node_size - kNodeHeaderSize; }
  size_t max_ptrs() const { return (node_size - kNodeHeaderSize) / kKeyPtrSize; }
  // The largest item payload a leaf can hold: one item alone in a leaf.
  size_t max_item_size() const { return leaf_capacity() - kLeafItemHeaderSize; }
  // The largest item of which two fit in one leaf. Data split into items
  // (checksum runs, xattr pieces) uses it: pieces of half the largest
  // item do not fit twice, and leave every leaf half empty.
  size_t half_leaf_item_size() const { return leaf_capacity() / 2 - kLeafItemHeaderSize; }
};

// What a reader expects of a node; checked against the header.
struct NodeExpectation {
  uint64_t bytenr = 0;
  int level = -1;             // -1: unknown
  uint64_t owner = 0;         // 0: unknown
  uint64_t generation = 0;    // 0: unknown (parent pointers give it)
  uint64_t max_generation = 0;  // the superblock's; 0: unchecked
  // The key range the parent gives this child: its first key must equal
  // `first_key` and its last be below `next_key` (null: unchecked). Checked
  // by NodeStore when the node comes from disk; fsck checks its own way.
  const Key* first_key = nullptr;
  const Key* next_key = nullptr;
};

void encode_node(const Node& n, const Uuid& fsid, CsumType ct, uint32_t node_size, uint8_t* buf);
Result<Node> decode_node(const uint8_t* buf, const Uuid& fsid, CsumType ct, uint32_t node_size,
                         const NodeExpectation& expect);

}  // namespace cairn
