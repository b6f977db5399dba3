#pragma once
// Human sizes for command lines and mount options: "512M", "8G", "1.5T", "4096".
#include <cstdint>
#include <optional>
#include <string>

namespace cairn {

// Binary units (K = 1024). Returns nullopt for garbage or overflow.
std::optional<uint64_t> parse_size(const std::string& s);
// "1.00 GiB" style rendering for reports.
std::string format_size(uint64_t bytes);

}  // namespace cairn
