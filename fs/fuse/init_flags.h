#pragma once
// INIT flags this kernel has and libfuse 3.14 (Debian 12) cannot ask for.
//
// libfuse builds the INIT reply from conn->want, and maps only the
// capabilities it knows. Two that matter here are newer:
//  - FUSE_HANDLE_KILLPRIV_V2 (Linux 5.11): the daemon clears set-ID bits
//    (it does, vfs/setid.h), so the kernel marks the superblock SB_NOSEC
//    and stops asking for security.capability before every write: without
//    it each write(2) costs two round trips to the daemon (GETXATTR, then
//    WRITE), which is most of the time of a small append.
//  - FUSE_DIRECT_IO_ALLOW_MMAP (Linux 6.6): FOPEN_DIRECT_IO handles (the
//    dropbehind ones) can be mmap()ed.
// request_init_flags() arms a one-shot amendment of libfuse's INIT reply
// as it is written to the session's /dev/fuse descriptor (the first write
// on it): the bits are added to the reply's flags. A kernel that does not
// know a bit ignores it; with a libfuse that knows them, conn->want would
// be the way.

namespace cairn {

struct ExtraInitFlags {
  bool handle_killpriv_v2 = false;
  bool direct_io_allow_mmap = false;
};

// Before the session loop starts; `fuse_fd` is fuse_session_fd().
void request_init_flags(int fuse_fd, const ExtraInitFlags& flags);

}  // namespace cairn
