#pragma once
// The compressed extent codec (docs/format.md, "Compressed extents";
// docs/design.md, "Compression").
//
// A compressed disk extent is a 4-byte little-endian length, then that many
// bytes of one zstd frame or one lz4 block, then zeros to the next 4 KiB
// boundary. It decodes to exactly the file extent item's `ram_bytes`
// (a multiple of 4096, at most kMaxCompressedRam). Everything here is pure:
// no locks, no I/O; contexts are per thread.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "format/constants.h"
#include "util/aligned_buffer.h"
#include "util/status.h"

namespace cairn {

constexpr size_t kCompressHeaderSize = 4;

// An algorithm and its level (0: the algorithm's default; lz4 has none).
struct CompressSpec {
  uint8_t type = kCompressNone;
  int level = 0;
  bool enabled() const { return type != kCompressNone; }
  bool operator==(const CompressSpec&) const = default;
};

// "none", "lz4", "zstd", "zstd:LEVEL" (1..19).
Result<CompressSpec> parse_compress_spec(std::string_view s);
std::string compress_spec_name(const CompressSpec& s);
const char* compress_type_name(uint8_t type);
// Zstd's level when `level` is 0.
constexpr int kZstdDefaultLevel = 3;
constexpr int kZstdMaxLevel = 19;

// Compress `len` bytes (a multiple of 4096, at most kMaxCompressedRam) into
// `out` as a disk extent. Returns its size in bytes (a multiple of 4096),
// or 0 when compressing would not save at least one block: then nothing
// useful is in `out` and the data is stored as it is.
size_t compress_extent(const CompressSpec& spec, const uint8_t* src, size_t len, AlignedBuffer& out);

// Decode the disk extent [disk, disk + disk_len) into exactly `ram_len`
// bytes at `out`. Corruption when the header lies, the payload does not
// decode, or it decodes to any other length: never a partial result.
Status decompress_extent(uint8_t type, const uint8_t* disk, size_t disk_len, uint8_t* out, size_t ram_len);

// A cheap guess from a sample (entropy of bytes taken across the range):
// true when compressing would almost surely not save a block, so it is not
// tried. Costs a few microseconds per 128 KiB.
bool likely_incompressible(const uint8_t* src, size_t len);

}  // namespace cairn
