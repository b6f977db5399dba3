#pragma once
// fsck --repair: the structural fixes that need no guessing, applied
// through the engine in one copy-on-write transaction (docs/design.md,
// "Data and repair"), so an interrupted repair leaves the old state.
//
// From the checker's report: link counts (from the names found), orphan
// items of missing inodes, data extent reference counts and back references
// (from the file extents that point at them; an extent nothing points at is
// removed with its checksums), the space count (from the extent tree). The
// caller commits, which also rewrites every superblock copy.
//
// Thread-safety: the caller holds the engine's mutex.

#include <string>
#include <vector>

#include "check/checker.h"
#include "tree/engine.h"

namespace cairn {

// Problem codes repair_structures can fix.
bool repairable(const Problem& p);

// Applies the fixes; each change is described in `changes`.
Status repair_structures(Engine& e, const CheckReport& report, std::vector<std::string>* changes);

}  // namespace cairn
