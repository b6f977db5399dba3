#pragma once
// The tree checker: what the format fixes about every item of a leaf, checked
// when the leaf is read from disk and before anything uses it (BRIEF
// invariant 6; docs/format.md, "Tree checker"). decode_node has already
// checked the node's checksum, header and layout; this checks the items'
// keys and fields against the tree that owns the leaf: key offsets the
// format fixes, alignment of file offsets and extent addresses, lengths
// within the logical address space, generations, names, inode sizes, xattr
// flags. A node whose checksum is right but whose items lie is refused
// whole (EUCLEAN), as btrfs's tree-checker does: no code above works with
// an item that breaks a rule here.
//
// The engine (NodeStore::read) and fsck (which reports every violation and
// then adds its cross-item checks) call the same function: each rule is
// stated once. Pure functions, no state.

#include <cstdint>
#include <string>
#include <vector>

#include "csum/checksum.h"
#include "format/node.h"

namespace cairn {

struct TreeCheckContext {
  uint32_t node_size = 0;
  CsumType csum_type = CsumType::kCrc32c;
  uint64_t max_generation = 0;  // the superblock's generation (0: unchecked)
  uint64_t logical_end = 0;     // first logical address past every chunk (0: unchecked)
  uint64_t device_size = 0;     // the filesystem's size, for chunk stripes (0: unchecked)
};

// Files are at most this large (the data path refuses to grow past it).
constexpr uint64_t kMaxFileSize = 1ULL << 62;

// The violations in leaf `n` (owned by tree n.owner), each naming the node,
// the item, its key and the rule; at most `max` of them. Empty: valid.
// Trees with no filesystem meaning (key/value trees) have no item rules.
std::vector<std::string> check_leaf(const Node& n, const TreeCheckContext& c, size_t max = 1);

// A file or xattr name as the format allows it: 1..255 bytes, no '/' or NUL
// (xattr names may hold '/').
bool valid_entry_name(const std::string& name, bool is_xattr);

}  // namespace cairn
