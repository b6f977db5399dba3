#pragma once
// pread/pwrite of a whole range: retried on EINTR and short transfers, an
// error (or the end of the file) reported with `what` and the offset.
#include <cstddef>
#include <cstdint>
#include <string>

#include "util/status.h"

namespace cairn {

Status pread_full(int fd, void* buf, size_t len, uint64_t offset, const std::string& what);
Status pwrite_full(int fd, const void* buf, size_t len, uint64_t offset, const std::string& what);

}  // namespace cairn
