#pragma once
// What every cairnctl command shares: its exit statuses, its error line,
// and the one control request a mounted filesystem answers (fs/fuse/control.h).

#include <nlohmann/json.hpp>
#include <string>

#include "util/status.h"

namespace cairn::ctl {

// Exit status: 0 no uncorrectable errors; 3 uncorrectable errors remain;
// 1 operational failure; 2 usage.
enum Exit { kOk = 0, kFailed = 1, kUsage = 2, kUncorrectable = 3 };

// Print "cairnctl: MSG" on stderr; returns `code`.
int fail(const std::string& msg, int code = kFailed);

// One control request (an ioctl) on `path`, a file or directory of a
// mounted Cairn filesystem; the reply document, or an error message that
// says what went wrong in the user's terms.
Result<nlohmann::json> control(const std::string& path, unsigned long cmd, const nlohmann::json* request = nullptr);

}  // namespace cairn::ctl
