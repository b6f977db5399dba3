// Item codecs: implements docs/format.md, "Items".
#include "format/items.h"

#include <cstring>

#include "csum/checksum.h"
#include "format/constants.h"
#include "util/endian.h"

namespace cairn {

namespace {
void put_ts(uint8_t* p, const Timespec& t) {
  put_le64(p, uint64_t(t.sec));
  put_le32(p + 8, t.nsec);
}
Timespec get_ts(const uint8_t* p) { return Timespec{int64_t(get_le64(p)), get_le32(p + 8)}; }
Status bad(const char* what, size_t got) {
  return Status::Corruption(std::string(what) + ": malformed item of " + std::to_string(got) + " bytes");
}
}  // namespace

Bytes RootItem::encode() const {
  Bytes b(kSize, 0);
  put_le64(&b[0], bytenr);
  put_le64(&b[8], generation);
  put_u8(&b[16], level);
  put_le64(&b[24], last_objectid);
  put_le64(&b[32], flags);
  put_le64(&b[40], last_snapshot);
  return b;
}

Result<RootItem> RootItem::decode(const Bytes& b) {
  if (b.size() != kSize) return bad("root item", b.size());
  RootItem r;
  r.bytenr = get_le64(&b[0]);
  r.generation = get_le64(&b[8]);
  r.level = get_u8(&b[16]);
  r.last_objectid = get_le64(&b[24]);
  r.flags = get_le64(&b[32]);
  r.last_snapshot = get_le64(&b[40]);
  if (r.level >= kMaxLevel) return Status::Corruption("root item: level " + std::to_string(r.level));
  return r;
}

Bytes RootRefItem::encode() const {
  Bytes b(kHeaderSize + name.size());
  put_le64(&b[0], dirid);
  put_le64(&b[8], sequence);
  put_le16(&b[16], uint16_t(name.size()));
  std::memcpy(&b[kHeaderSize], name.data(), name.size());
  return b;
}

Result<RootRefItem> RootRefItem::decode(const Bytes& b) {
  if (b.size() < kHeaderSize) return bad("root ref", b.size());
  RootRefItem r;
  r.dirid = get_le64(&b[0]);
  r.sequence = get_le64(&b[8]);
  const size_t len = get_le16(&b[16]);
  if (b.size() != kHeaderSize + len || len == 0 || len > 255) return bad("root ref", b.size());
  r.name.assign(reinterpret_cast<const char*>(&b[kHeaderSize]), len);
  return r;
}

Bytes InodeItem::encode() const {
  Bytes b(kSize, 0);
  uint8_t* p = b.data();
  put_le64(p + 0, generation);
  put_le64(p + 8, transid);
  put_le64(p + 16, size);
  put_le64(p + 24, nbytes);
  put_le64(p + 32, rdev);
  put_le64(p + 40, flags);
  put_le64(p + 48, sequence);
  put_le32(p + 56, nlink);
  put_le32(p + 60, uid);
  put_le32(p + 64, gid);
  put_le32(p + 68, mode);
  put_ts(p + 72, atime);
  put_ts(p + 84, ctime);
  put_ts(p + 96, mtime);
  put_ts(p + 108, otime);
  return b;
}

Result<InodeItem> InodeItem::decode(const Bytes& b) {
  if (b.size() != kSize) return bad("inode item", b.size());
  const uint8_t* p = b.data();
  InodeItem i;
  i.generation = get_le64(p + 0);
  i.transid = get_le64(p + 8);
  i.size = get_le64(p + 16);
  i.nbytes = get_le64(p + 24);
  i.rdev = get_le64(p + 32);
  i.flags = get_le64(p + 40);
  i.sequence = get_le64(p + 48);
  i.nlink = get_le32(p + 56);
  i.uid = get_le32(p + 60);
  i.gid = get_le32(p + 64);
  i.mode = get_le32(p + 68);
  i.atime = get_ts(p + 72);
  i.ctime = get_ts(p + 84);
  i.mtime = get_ts(p + 96);
  i.otime = get_ts(p + 108);
  if (i.atime.nsec >= 1000000000 || i.ctime.nsec >= 1000000000 || i.mtime.nsec >= 1000000000 ||
      i.otime.nsec >= 1000000000)
    return Status::Corruption("inode item: nanoseconds out of range");
  return i;
}

Bytes encode_inode_refs(const std::vector<InodeRefEntry>& refs) {
  Bytes b;
  for (const auto& r : refs) {
    size_t at = b.size();
    b.resize(at + 10 + r.name.size());
    put_le64(&b[at], r.index);
    put_le16(&b[at + 8], uint16_t(r.name.size()));
    std::memcpy(&b[at + 10], r.name.data(), r.name.size());
  }
  return b;
}

Result<std::vector<InodeRefEntry>> decode_inode_refs(const Bytes& b) {
  std::vector<InodeRefEntry> out;
  size_t at = 0;
  while (at < b.size()) {
    if (b.size() - at < 10) return bad("inode ref", b.size());
    InodeRefEntry r;
    r.index = get_le64(&b[at]);
    size_t len = get_le16(&b[at + 8]);
    if (len == 0 || b.size() - at - 10 < len) return bad("inode ref", b.size());
    r.name.assign(reinterpret_cast<const char*>(&b[at + 10]), len);
    out.push_back(std::move(r));
    at += 10 + len;
  }
  if (out.empty()) return bad("inode ref", b.size());
  return out;
}

Bytes encode_dir_entries(const std::vector<DirEntry>& entries) {
  Bytes b;
  for (const auto& e : entries) {
    size_t at = b.size();
    b.resize(at + kDirEntryHeaderSize + e.name.size() + e.data.size());
    uint8_t* p = &b[at];
    e.location.encode(p);
    put_le64(p + 17, e.transid);
    put_le16(p + 25, uint16_t(e.data.size()));
    put_le16(p + 27, uint16_t(e.name.size()));
    put_u8(p + 29, e.type);
    std::memcpy(p + kDirEntryHeaderSize, e.name.data(), e.name.size());
    if (!e.data.empty()) std::memcpy(p + kDirEntryHeaderSize + e.name.size(), e.data.data(), e.data.size());
  }
  return b;
}

Result<std::vector<DirEntry>> decode_dir_entries(const Bytes& b) {
  std::vector<DirEntry> out;
  const bool ok = visit_dir_entries(b, [&](const DirEntryView& v) {
    out.push_back(DirEntry{v.location, v.transid, v.type, std::string(v.name), Bytes(v.data, v.data + v.data_len)});
  });
  if (!ok) return bad("dir entry", b.size());
  return out;
}

Bytes FileExtent::encode() const {
  Bytes b(type == kFileExtentInline ? kHeaderSize + inline_data.size() : kRegularSize, 0);
  put_le64(&b[0], generation);
  put_le64(&b[8], ram_bytes);
  put_u8(&b[16], compression);
  put_u8(&b[17], 0);
  put_le16(&b[18], 0);
  put_u8(&b[20], type);
  if (type == kFileExtentInline) {
    if (!inline_data.empty()) std::memcpy(&b[kHeaderSize], inline_data.data(), inline_data.size());
  } else {
    put_le64(&b[21], disk_bytenr);
    put_le64(&b[29], disk_num_bytes);
    put_le64(&b[37], offset);
    put_le64(&b[45], num_bytes);
  }
  return b;
}

Result<FileExtent> FileExtent::decode(const Bytes& b) {
  if (b.size() < kHeaderSize) return bad("file extent", b.size());
  FileExtent e;
  e.generation = get_le64(&b[0]);
  e.ram_bytes = get_le64(&b[8]);
  e.compression = get_u8(&b[16]);
  e.type = get_u8(&b[20]);
  if (e.compression != kCompressNone && e.compression != kCompressZstd && e.compression != kCompressLz4)
    return Status::Corruption("file extent: unknown compression " + std::to_string(e.compression));
  if (e.compression != kCompressNone && e.type != kFileExtentRegular)
    return Status::Corruption("file extent: only written extents may be compressed");
  if (e.type == kFileExtentInline) {
    e.inline_data.assign(b.begin() + kHeaderSize, b.end());
    e.num_bytes = e.inline_data.size();
    return e;
  }
  if (e.type != kFileExtentRegular && e.type != kFileExtentPrealloc)
    return Status::Corruption("file extent: unknown type " + std::to_string(e.type));
  if (b.size() != kRegularSize) return bad("file extent", b.size());
  e.disk_bytenr = get_le64(&b[21]);
  e.disk_num_bytes = get_le64(&b[29]);
  e.offset = get_le64(&b[37]);
  e.num_bytes = get_le64(&b[45]);
  if (e.num_bytes == 0 || e.num_bytes % kSectorSize) return Status::Corruption("file extent: bad length");
  if (e.compression != kCompressNone) {
    // The range is in decoded bytes; the disk extent is read whole, so its
    // size is bounded as well (a lying length must not make a huge read).
    if (!e.disk_bytenr || e.ram_bytes == 0 || e.ram_bytes % kSectorSize || e.ram_bytes > kMaxCompressedRam ||
        e.disk_num_bytes == 0 || e.disk_num_bytes > e.ram_bytes)
      return Status::Corruption("file extent: compressed extent with impossible lengths");
    if (e.offset > e.ram_bytes || e.num_bytes > e.ram_bytes - e.offset)
      return Status::Corruption("file extent: range beyond its decoded extent");
  } else if (e.disk_bytenr && (e.offset + e.num_bytes > e.disk_num_bytes || e.offset + e.num_bytes < e.offset)) {
    return Status::Corruption("file extent: range beyond its disk extent");
  }
  return e;
}

namespace {
constexpr size_t kTreeRefSize = ExtentBackref::kTreeRefSize;
constexpr size_t kDataRefSize = ExtentBackref::kDataRefSize;
}  // namespace

Bytes ExtentItem::encode() const {
  Bytes b(24, 0);
  put_le64(&b[0], refs);
  put_le64(&b[8], generation);
  put_le64(&b[16], flags);
  for (const auto& r : backrefs) {
    size_t at = b.size();
    if (r.type == kTreeBlockRef) {
      b.resize(at + kTreeRefSize);
      put_u8(&b[at], r.type);
      put_le64(&b[at + 1], r.root);
    } else {
      b.resize(at + kDataRefSize);
      put_u8(&b[at], r.type);
      put_le64(&b[at + 1], r.root);
      put_le64(&b[at + 9], r.objectid);
      put_le64(&b[at + 17], r.offset);
      put_le32(&b[at + 25], r.count);
    }
  }
  return b;
}

Result<ExtentItem> ExtentItem::decode(const Bytes& b) {
  if (b.size() < 24) return bad("extent item", b.size());
  ExtentItem e;
  e.refs = get_le64(&b[0]);
  e.generation = get_le64(&b[8]);
  e.flags = get_le64(&b[16]);
  size_t at = 24;
  while (at < b.size()) {
    ExtentBackref r;
    r.type = get_u8(&b[at]);
    if (r.type == kTreeBlockRef && b.size() - at >= kTreeRefSize) {
      r.root = get_le64(&b[at + 1]);
      at += kTreeRefSize;
    } else if (r.type == kExtentDataRef && b.size() - at >= kDataRefSize) {
      r.root = get_le64(&b[at + 1]);
      r.objectid = get_le64(&b[at + 9]);
      r.offset = get_le64(&b[at + 17]);
      r.count = get_le32(&b[at + 25]);
      at += kDataRefSize;
    } else {
      return Status::Corruption("extent item: malformed back reference at byte " + std::to_string(at));
    }
    e.backrefs.push_back(r);
  }
  if (e.flags != kExtentFlagData && e.flags != kExtentFlagTreeBlock)
    return Status::Corruption("extent item: unknown flags " + std::to_string(e.flags));
  return e;
}

Bytes DevStats::encode() const {
  Bytes b(kSize, 0);
  put_le64(&b[0], write_errors);
  put_le64(&b[8], read_errors);
  put_le64(&b[16], csum_errors);
  put_le64(&b[24], corrected);
  put_le64(&b[32], uncorrectable);
  return b;
}

Result<DevStats> DevStats::decode(const Bytes& b) {
  if (b.size() != kSize) return bad("device stats", b.size());
  DevStats s;
  s.write_errors = get_le64(&b[0]);
  s.read_errors = get_le64(&b[8]);
  s.csum_errors = get_le64(&b[16]);
  s.corrected = get_le64(&b[24]);
  s.uncorrectable = get_le64(&b[32]);
  return s;
}

Bytes ScrubProgress::encode() const {
  Bytes b(kSize, 0);
  b[0] = state;
  put_le64(&b[8], position);
  put_le64(&b[16], uint64_t(started));
  put_le64(&b[24], duration_ms);
  put_le64(&b[32], data_bytes);
  put_le64(&b[40], metadata_bytes);
  put_le64(&b[48], data_errors);
  put_le64(&b[56], data_corrected);
  put_le64(&b[64], data_uncorrectable);
  put_le64(&b[72], meta_errors);
  put_le64(&b[80], meta_corrected);
  put_le64(&b[88], meta_uncorrectable);
  put_le64(&b[96], limit_bytes_per_sec);
  put_le64(&b[104], metadata_nodes);
  return b;
}

Result<ScrubProgress> ScrubProgress::decode(const Bytes& b) {
  if (b.size() != kSize) return bad("scrub progress", b.size());
  ScrubProgress p;
  p.state = b[0];
  if (p.state > kScrubFailed) return Status::Corruption("scrub progress: unknown state " + std::to_string(p.state));
  p.position = get_le64(&b[8]);
  p.started = int64_t(get_le64(&b[16]));
  p.duration_ms = get_le64(&b[24]);
  p.data_bytes = get_le64(&b[32]);
  p.metadata_bytes = get_le64(&b[40]);
  p.data_errors = get_le64(&b[48]);
  p.data_corrected = get_le64(&b[56]);
  p.data_uncorrectable = get_le64(&b[64]);
  p.meta_errors = get_le64(&b[72]);
  p.meta_corrected = get_le64(&b[80]);
  p.meta_uncorrectable = get_le64(&b[88]);
  p.limit_bytes_per_sec = get_le64(&b[96]);
  p.metadata_nodes = get_le64(&b[104]);
  return p;
}

uint64_t name_hash(std::string_view name) {
  uint8_t out[kMaxCsumSize];
  csum_compute(CsumType::kCrc32c, name.data(), name.size(), out);
  return get_le32(out);
}

}  // namespace cairn
