#pragma once
// Mount-wide inode numbers (docs/design.md, "Subvolumes"). Every subvolume
// is its own fs tree numbering its inodes from 256, as btrfs does; one FUSE
// mount has one st_dev, so the daemon gives the kernel (node ids, st_ino,
// d_ino) numbers unique across subvolumes: tree 5's inode numbers as they
// are, and those of subvolume tree T (>= 256) with T - 255 in the bits
// above kVinoShift. An inode number within a tree stays below 2^40.
#include <cstdint>

#include "format/constants.h"

namespace cairn {

constexpr int kVinoShift = 40;
constexpr uint64_t kMaxTreeInode = (1ULL << kVinoShift) - 1;

constexpr uint64_t vino_of(uint64_t root, uint64_t ino) {
  return root == kFsTreeId ? ino : ((root - kFirstSubvolumeId + 1) << kVinoShift) | ino;
}
constexpr uint64_t root_of_vino(uint64_t v) {
  const uint64_t slot = v >> kVinoShift;
  return slot == 0 ? kFsTreeId : slot - 1 + kFirstSubvolumeId;
}
constexpr uint64_t ino_of_vino(uint64_t v) { return v & kMaxTreeInode; }

}  // namespace cairn
