#include "util/status.h"

#include <cstring>

namespace cairn {

std::string Status::to_string() const {
  if (ok()) return "ok";
  if (msg_.empty()) return std::strerror(code_);
  return msg_;
}

}  // namespace cairn
