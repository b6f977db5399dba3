#include "format/log_write.h"

#include <sys/stat.h>

#include <cstring>

#include "csum/checksum.h"
#include "format/constants.h"
#include "format/node.h"
#include "format/tree_checker.h"
#include "util/endian.h"

namespace cairn {

namespace {

enum : size_t {
  kOffCsum = 0,
  kOffMagic = 32,
  kOffFsid = 40,
  kOffGeneration = 56,
  kOffSeq = 64,
  kOffLogical = 72,
  kOffLen = 80,
  kOffRecords = 84,
  kOffNext = 88,
  kOffPayloadLen = 96,
};
static_assert(kOffPayloadLen + 4 <= LogWrite::kHeaderSize);

// Per record: root, ino, item length; per range: start, end, piece count;
// per piece: file offset, extent length, checksum length.
constexpr size_t kRecordHead = 8 + 8 + 4 + 4;
constexpr size_t kRangeHead = 8 + 8 + 4;
constexpr size_t kPieceHead = 8 + 4 + 4;

struct Writer {
  Bytes& b;
  void u32(uint32_t v) {
    uint8_t t[4];
    put_le32(t, v);
    b.insert(b.end(), t, t + 4);
  }
  void u64(uint64_t v) {
    uint8_t t[8];
    put_le64(t, v);
    b.insert(b.end(), t, t + 8);
  }
  void bytes(const Bytes& v) {
    u32(uint32_t(v.size()));
    b.insert(b.end(), v.begin(), v.end());
  }
};

// Bounds-checked reads of the payload; the first overrun sticks.
struct Reader {
  const uint8_t* p;
  size_t left;
  bool bad = false;
  bool take(size_t n) {
    if (bad || n > left) return !(bad = true);
    return true;
  }
  uint32_t u32() {
    if (!take(4)) return 0;
    uint32_t v = get_le32(p);
    p += 4, left -= 4;
    return v;
  }
  uint64_t u64() {
    if (!take(8)) return 0;
    uint64_t v = get_le64(p);
    p += 8, left -= 8;
    return v;
  }
  Bytes bytes(size_t max) {
    uint32_t n = u32();
    if (n > max || !take(n)) return (bad = true), Bytes{};
    Bytes v(p, p + n);
    p += n, left -= n;
    return v;
  }
};

// Checksums a piece carries: one per 4 KiB of the disk bytes it reads.
uint64_t piece_csum_sectors(const FileExtent& fe) {
  if (fe.type != kFileExtentRegular || fe.disk_bytenr == 0) return 0;
  return (fe.compression != kCompressNone ? fe.disk_num_bytes : fe.num_bytes) / kSectorSize;
}

Status check_record(const LogRecord& r, const Superblock& sb, uint64_t generation) {
  const std::string where = "fsync log record of inode " + std::to_string(r.ino) + " (tree " + std::to_string(r.root) + ")";
  if (r.ino < kFirstInode || r.ino >= kOrphanObjectId || r.root == 0)
    return Status::Corruption(where + ": not a file's inode");
  if (!S_ISREG(r.item.mode)) return Status::Corruption(where + ": not a regular file");
  // The items as a leaf of the file's tree would hold them: the tree
  // checker's rules, with generations up to the transaction being logged.
  Node leaf;
  leaf.owner = r.root;
  leaf.keys.push_back(Key{r.ino, kInodeItem, 0});
  leaf.items.push_back(r.item.encode());
  uint64_t prev_end = 0;
  const size_t cs = csum_size(sb.csum_type);
  for (const LoggedRange& rg : r.ranges) {
    if (rg.start % kSectorSize || rg.end % kSectorSize || rg.end <= rg.start || rg.start < prev_end ||
        rg.end > kMaxFileSize)
      return Status::Corruption(where + ": ranges unaligned, empty, out of order or past the largest file");
    prev_end = rg.end;
    uint64_t at = rg.start;
    for (const LoggedPiece& p : rg.pieces) {
      if (p.file_off < at || p.extent.type == kFileExtentInline || p.file_off + p.extent.num_bytes > rg.end)
        return Status::Corruption(where + ": a piece lies outside its range or overlaps another");
      if (p.csums.size() != piece_csum_sectors(p.extent) * cs)
        return Status::Corruption(where + ": a piece's checksums do not match its length");
      at = p.file_off + p.extent.num_bytes;
      leaf.keys.push_back(Key{r.ino, kExtentData, p.file_off});
      leaf.items.push_back(p.extent.encode());
    }
  }
  const TreeCheckContext tc{sb.node_size, sb.csum_type, generation + 1, sb.next_chunk_logical, sb.total_bytes};
  auto bad = check_leaf(leaf, tc);
  if (!bad.empty()) return Status::Corruption(where + ": " + bad.front());
  return Status::Ok();
}

}  // namespace

size_t log_record_size(const LogRecord& r) {
  size_t n = kRecordHead + InodeItem::kSize;
  for (const LoggedRange& rg : r.ranges) {
    n += kRangeHead;
    for (const LoggedPiece& p : rg.pieces) n += kPieceHead + p.extent.encode().size() + p.csums.size();
  }
  return n;
}

size_t LogWrite::encoded_size(CsumType) const {
  size_t n = kHeaderSize;
  for (const LogRecord& r : records) n += log_record_size(r);
  return (n + kBlock - 1) / kBlock * kBlock;
}

Bytes LogWrite::encode(const Superblock& sb) const {
  Bytes b(kHeaderSize, 0);
  Writer w{b};
  for (const LogRecord& r : records) {
    w.u64(r.root);
    w.u64(r.ino);
    w.bytes(r.item.encode());
    w.u32(uint32_t(r.ranges.size()));
    for (const LoggedRange& rg : r.ranges) {
      w.u64(rg.start);
      w.u64(rg.end);
      w.u32(uint32_t(rg.pieces.size()));
      for (const LoggedPiece& p : rg.pieces) {
        w.u64(p.file_off);
        w.bytes(p.extent.encode());
        w.bytes(p.csums);
      }
    }
  }
  const size_t payload = b.size() - kHeaderSize;
  b.resize((b.size() + kBlock - 1) / kBlock * kBlock, 0);
  uint8_t* h = b.data();
  put_le64(h + kOffMagic, kMagic);
  std::memcpy(h + kOffFsid, sb.fsid.data(), 16);
  put_le64(h + kOffGeneration, generation);
  put_le64(h + kOffSeq, seq);
  put_le64(h + kOffLogical, logical);
  put_le32(h + kOffLen, uint32_t(b.size()));
  put_le32(h + kOffRecords, uint32_t(records.size()));
  put_le64(h + kOffNext, next);
  put_le32(h + kOffPayloadLen, uint32_t(payload));
  uint8_t sum[kMaxCsumSize] = {};
  csum_compute(sb.csum_type, h + kMaxCsumSize, b.size() - kMaxCsumSize, sum);
  std::memcpy(h + kOffCsum, sum, kMaxCsumSize);
  return b;
}

uint32_t LogWrite::claimed_length(const Superblock& sb, const uint8_t* h, uint64_t logical, uint64_t generation,
                                  uint64_t seq) {
  if (get_le64(h + kOffMagic) != kMagic || std::memcmp(h + kOffFsid, sb.fsid.data(), 16) != 0 ||
      get_le64(h + kOffGeneration) != generation || get_le64(h + kOffSeq) != seq ||
      get_le64(h + kOffLogical) != logical)
    return 0;
  const uint32_t len = get_le32(h + kOffLen);
  if (len < kBlock || len > kMaxBytes || len % kBlock) return 0;
  return len;
}

Result<LogWrite> LogWrite::decode(const Superblock& sb, const uint8_t* buf, size_t len, uint64_t logical,
                                  uint64_t generation, uint64_t seq) {
  const std::string where = "fsync log write " + std::to_string(seq) + " at " + std::to_string(logical);
  if (len < kBlock || claimed_length(sb, buf, logical, generation, seq) != len)
    return Status::Corruption(where + ": not the write the chain expects");
  if (!csum_verify(sb.csum_type, buf + kMaxCsumSize, len - kMaxCsumSize, buf + kOffCsum))
    return Status::Corruption(where + ": checksum mismatch");
  LogWrite w;
  w.generation = generation;
  w.seq = seq;
  w.logical = logical;
  w.next = get_le64(buf + kOffNext);
  const uint32_t nrec = get_le32(buf + kOffRecords);
  const uint32_t payload = get_le32(buf + kOffPayloadLen);
  if (payload > len - kHeaderSize) return Status::Corruption(where + ": payload longer than the write");
  Reader rd{buf + kHeaderSize, payload};
  const size_t cs = csum_size(sb.csum_type);
  // Every count is bounded by the bytes left, so a lying count fails fast.
  for (uint32_t i = 0; i < nrec && !rd.bad; i++) {
    LogRecord r;
    r.root = rd.u64();
    r.ino = rd.u64();
    Bytes item = rd.bytes(InodeItem::kSize);
    if (rd.bad) break;
    auto it = InodeItem::decode(item);
    if (!it.ok()) return Status::Corruption(where + ": " + it.status().message());
    r.item = it.value();
    const uint32_t nranges = rd.u32();
    if (nranges > rd.left / kRangeHead) rd.bad = true;
    for (uint32_t j = 0; j < nranges && !rd.bad; j++) {
      LoggedRange rg;
      rg.start = rd.u64();
      rg.end = rd.u64();
      const uint32_t npieces = rd.u32();
      if (npieces > rd.left / kPieceHead) rd.bad = true;
      for (uint32_t k = 0; k < npieces && !rd.bad; k++) {
        LoggedPiece p;
        p.file_off = rd.u64();
        Bytes fe = rd.bytes(FileExtent::kRegularSize);
        if (rd.bad) break;
        auto d = FileExtent::decode(fe);
        if (!d.ok()) return Status::Corruption(where + ": " + d.status().message());
        p.extent = d.value();
        p.csums = rd.bytes(rd.left);
        if (cs == 0) rd.bad = true;
        rg.pieces.push_back(std::move(p));
      }
      r.ranges.push_back(std::move(rg));
    }
    if (rd.bad) break;
    RETURN_IF_ERROR(check_record(r, sb, generation));
    w.records.push_back(std::move(r));
  }
  if (rd.bad) return Status::Corruption(where + ": records run past the payload");
  if (rd.left != 0) return Status::Corruption(where + ": bytes after the last record");
  return w;
}

}  // namespace cairn
