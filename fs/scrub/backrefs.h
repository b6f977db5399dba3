#pragma once
// From a damaged disk block to the files that use it (docs/design.md,
// "Scrub"): the extent item's back references name (tree, inode, offset);
// the inode's file extents give the exact byte range; INODE_REF items,
// followed up to the root directory, give the paths.
//
// Thread-safety: callers hold the engine's mutex.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tree/engine.h"

namespace cairn {

struct FileRange {
  uint64_t root = 0;
  uint64_t ino = 0;
  std::vector<std::string> paths;  // every hard link; empty if unreachable (orphan)
  uint64_t offset = 0;             // byte range of the file that reads the damaged block
  uint64_t length = 0;
};

// Every path of inode `ino` in fs tree `root`, "/" being the root directory.
std::vector<std::string> inode_paths(Engine& e, uint64_t root, uint64_t ino, size_t max_paths = 16);

// Where subvolume `tree` is, from the top level ("/" for tree 5), through
// its ROOT_BACKREF and the path of the directory holding its entry, up to
// tree 5; nothing if a link of that chain is missing.
std::optional<std::string> subvolume_path(Engine& e, uint64_t tree);

// The files (and their byte ranges) that read [logical, logical + len),
// which lies inside data extent [ext_bytenr, ext_bytenr + ext_len).
Result<std::vector<FileRange>> files_using(Engine& e, uint64_t ext_bytenr, uint64_t ext_len, uint64_t logical,
                                           uint64_t len);

}  // namespace cairn
