#pragma once
// The set-user-ID and set-group-ID rules, in one place (Linux 6.x,
// fs/attr.c and fs/open.c), for every path that must apply them: write
// (buffered and O_DIRECT), truncate, fallocate and hole punching, chown,
// chmod and setting an access ACL.
//
// Under FUSE_CAP_HANDLE_KILLPRIV the kernel leaves clearing the bits on
// write, truncate and chown to the filesystem (its own attempt, a SETATTR
// of the mode computed from a possibly stale copy, is racy and follows
// the pre-6.x rule that keeps SGID without group-execute: 6666 became
// 2666 where ext4 gives 0666), and it never clears SGID for an ACL change.

#include <cstdint>

#include "vfs/caller.h"

namespace cairn {

enum class SetidChange {
  kData,   // write, O_DIRECT write, truncate, fallocate, punch, zero range
  kOwner,  // chown (the owner or the group named, changed or not)
  kMode,   // chmod: the new mode's SGID survives only for a group member
  kAcl,    // an access ACL set: the mode follows the ACL, SGID as for chmod
};

// The mode a file of group `file_gid` has after `change` by `c`. `mode`
// is the full st_mode (file type included); for kMode, the mode asked for.
uint32_t mode_after(SetidChange change, uint32_t mode, uint32_t file_gid, const Caller& c);

}  // namespace cairn
