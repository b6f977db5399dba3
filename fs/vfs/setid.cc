#include "vfs/setid.h"

#include <sys/stat.h>

namespace cairn {

namespace {
// setattr_should_drop_sgid(): SGID with group-execute is a real set-ID bit
// and goes; without it, it goes unless the caller could have set it.
bool drops_sgid(uint32_t mode, uint32_t file_gid, const Caller& c) {
  if (!(mode & S_ISGID)) return false;
  if (mode & S_IXGRP) return true;
  return !c.in_group(file_gid) && !c.has_fsetid();
}
}  // namespace

uint32_t mode_after(SetidChange change, uint32_t mode, uint32_t file_gid, const Caller& c) {
  switch (change) {
    case SetidChange::kData: {
      // setattr_should_drop_suidgid(): regular files only, nothing for a
      // caller with CAP_FSETID.
      if (!S_ISREG(mode) || !(mode & (S_ISUID | S_ISGID))) return mode;
      uint32_t kill = 0;
      if (mode & S_ISUID) kill |= S_ISUID;
      if (drops_sgid(mode, file_gid, c)) kill |= S_ISGID;
      if (kill && !c.has_fsetid()) mode &= ~kill;
      return mode;
    }
    case SetidChange::kOwner:
      // chown_common(): SUID always goes (root's chown too), SGID as above.
      if (S_ISDIR(mode)) return mode;
      if (drops_sgid(mode, file_gid, c)) mode &= ~uint32_t(S_ISGID);
      return mode & ~uint32_t(S_ISUID);
    case SetidChange::kMode:
    case SetidChange::kAcl:
      // setattr_copy() / posix_acl_update_mode().
      if ((mode & S_ISGID) && !c.in_group(file_gid) && !c.has_fsetid()) mode &= ~uint32_t(S_ISGID);
      return mode;
  }
  return mode;
}

}  // namespace cairn
