#pragma once
// The data space of one fs tree where trees share blocks (cairnctl
// subvolume show): the data extents its files reference, and those no
// other tree references.
#include <cstdint>
#include <map>

#include "tree/engine.h"

namespace cairn {

// Per compression type (compsize's columns): disk bytes of the distinct
// extents, what they decode to, and the file bytes that refer to them.
struct CompressionUsage {
  uint64_t disk = 0, uncompressed = 0, referenced = 0;
};

struct TreeSpace {
  uint64_t referenced = 0;  // disk bytes of the distinct data extents its files reference
  uint64_t exclusive = 0;   // ... of those, referenced by nothing outside this tree
  std::map<uint8_t, CompressionUsage> by_compression;  // kCompressNone, kCompressZstd, ...
};

// Engine mutex held. Walks the whole tree: a node shared with another
// tree (more than one parent) makes everything below it shared; an
// extent is exclusive when every one of its references comes from this
// tree's unshared leaves.
Result<TreeSpace> tree_data_space(Engine& e, uint64_t tree);
// The same for one file (`cairnctl du`): its extents, and those only it
// references (reflinked or snapshotted blocks are shared).
Result<TreeSpace> file_data_space(Engine& e, uint64_t tree, uint64_t ino);
// Either, for the file extent items in [lo, hi].
Result<TreeSpace> data_space_of(Engine& e, uint64_t tree, const Key& lo, const Key& hi);

}  // namespace cairn
