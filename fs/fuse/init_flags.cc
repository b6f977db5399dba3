#include "fuse/init_flags.h"

#include <dlfcn.h>
#include <linux/fuse.h>
#include <sys/uio.h>

#include <atomic>
#include <cstring>

namespace cairn {

namespace {
// Not in this system's <linux/fuse.h> (protocol 7.38): 7.39's bit 36, which
// travels in flags2 (bit 4) when FUSE_INIT_EXT is set.
constexpr uint32_t kDirectIoAllowMmapFlags2 = 1u << (36 - 32);

std::atomic<int> armed_fd{-1};
uint32_t add_flags = 0, add_flags2 = 0;

// Amend the INIT reply in place if this is it: an out header and one
// fuse_init_out of this protocol's size, no error.
void amend(const struct iovec* iov, int iovcnt) {
  if (iovcnt != 2 || iov[0].iov_len != sizeof(fuse_out_header) || iov[1].iov_len != sizeof(fuse_init_out)) return;
  const auto* h = static_cast<const fuse_out_header*>(iov[0].iov_base);
  if (h->error != 0 || h->len != sizeof(fuse_out_header) + sizeof(fuse_init_out)) return;
  // libfuse's own reply structure, on its stack: writable.
  auto* out = static_cast<fuse_init_out*>(iov[1].iov_base);
  out->flags |= add_flags;
  if (add_flags2) {
    out->flags |= FUSE_INIT_EXT;
    out->flags2 |= add_flags2;
  }
}
}  // namespace

void request_init_flags(int fuse_fd, const ExtraInitFlags& f) {
  add_flags = f.handle_killpriv_v2 ? FUSE_HANDLE_KILLPRIV_V2 : 0;
  add_flags2 = f.direct_io_allow_mmap ? kDirectIoAllowMmapFlags2 : 0;
  armed_fd = (add_flags || add_flags2) ? fuse_fd : -1;
}

}  // namespace cairn

// libfuse writes every reply with writev(2); this definition in the
// executable comes first in symbol lookup. It passes everything through,
// looking only at the first write to the armed descriptor, which is the
// INIT reply (the kernel sends nothing else before INIT is answered).
extern "C" ssize_t writev(int fd, const struct iovec* iov, int iovcnt) {
  using WritevFn = ssize_t (*)(int, const struct iovec*, int);
  static const WritevFn real = reinterpret_cast<WritevFn>(dlsym(RTLD_NEXT, "writev"));
  int expected = fd;
  if (fd >= 0 && cairn::armed_fd.load(std::memory_order_relaxed) == fd &&
      cairn::armed_fd.compare_exchange_strong(expected, -1))
    cairn::amend(iov, iovcnt);
  return real(fd, iov, iovcnt);
}
