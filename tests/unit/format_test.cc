// Codecs: round trips, and hostile input that must be refused cleanly
// (invariant 6: a damaged image gives an error, never a crash).
#include <catch2/catch.hpp>
#include <cstring>
#include <random>

#include "format/items.h"
#include "format/node.h"
#include "format/superblock.h"
#include "util/endian.h"

using namespace cairn;

namespace {
Superblock sample_sb() {
  Superblock sb;
  sb.fsid = uuid_generate_random();
  sb.bytenr = kSuperblockOffsets[0];
  sb.generation = 42;
  sb.root = kFirstLogical;
  sb.root_generation = 41;
  sb.total_bytes = 1ULL << 30;
  sb.bytes_used = 1 << 20;
  sb.label = "data";
  Chunk c;
  c.logical = kFirstLogical;
  c.length = 32 << 20;
  c.type = kChunkMetadata;
  c.profile = kProfileDup;
  c.num_stripes = 2;
  c.physical[0] = 1 << 20;
  c.physical[1] = 512 << 20;
  sb.chunks.push_back(c);
  sb.next_chunk_logical = kFirstLogical + c.length;
  return sb;
}
}  // namespace

TEST_CASE("superblock round-trips and rejects damage", "[format]") {
  Superblock sb = sample_sb();
  std::vector<uint8_t> buf(kSuperblockSize);
  sb.encode(buf.data());
  auto d = Superblock::decode(buf.data(), sb.bytenr);
  REQUIRE(d.ok());
  CHECK(d->generation == 42);
  CHECK(d->root_generation == 41);
  CHECK(d->label == "data");
  CHECK(d->fsid == sb.fsid);
  REQUIRE(d->chunks.size() == 1);
  CHECK(d->chunks[0].physical[1] == (512u << 20));

  SECTION("wrong offset") { CHECK_FALSE(Superblock::decode(buf.data(), kSuperblockOffsets[1]).ok()); }
  SECTION("any flipped byte is caught") {
    std::mt19937 rng(1);
    for (int i = 0; i < 200; i++) {
      auto copy = buf;
      copy[rng() % kSuperblockSize] ^= uint8_t(1 + rng() % 255);
      CHECK_FALSE(Superblock::decode(copy.data(), sb.bytenr).ok());
    }
  }
  SECTION("valid checksum over bad fields is still refused") {
    sb.node_size = 12345;
    sb.encode(buf.data());
    auto r = Superblock::decode(buf.data(), sb.bytenr);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("node size") != std::string::npos);
    sb = sample_sb();
    sb.chunks[0].physical[1] = sb.total_bytes;  // beyond the device
    sb.encode(buf.data());
    CHECK_FALSE(Superblock::decode(buf.data(), sb.bytenr).ok());
  }
}

TEST_CASE("nodes round-trip and hostile nodes are refused", "[format]") {
  const uint32_t ns = 4096;
  Uuid fsid = uuid_generate_random();
  Node n;
  n.bytenr = 8 * ns;
  n.generation = 7;
  n.owner = 5;
  for (int i = 0; i < 20; i++) {
    n.keys.push_back(Key{uint64_t(100 + i), kInodeItem, 0});
    n.items.push_back(Bytes(size_t(i * 3), uint8_t(i)));
  }
  std::vector<uint8_t> buf(ns);
  encode_node(n, fsid, CsumType::kCrc32c, ns, buf.data());
  NodeExpectation e;
  e.bytenr = n.bytenr;
  e.level = 0;
  e.owner = 5;
  auto d = decode_node(buf.data(), fsid, CsumType::kCrc32c, ns, e);
  REQUIRE(d.ok());
  CHECK(d->keys == n.keys);
  CHECK(d->items == n.items);

  SECTION("wrong expectations") {
    e.level = 1;
    CHECK_FALSE(decode_node(buf.data(), fsid, CsumType::kCrc32c, ns, e).ok());
    e.level = 0;
    e.bytenr += ns;
    CHECK_FALSE(decode_node(buf.data(), fsid, CsumType::kCrc32c, ns, e).ok());
    e.bytenr -= ns;
    Uuid other = uuid_generate_random();
    CHECK_FALSE(decode_node(buf.data(), other, CsumType::kCrc32c, ns, e).ok());
  }
  SECTION("random garbage with a valid checksum never crashes the decoder") {
    std::mt19937 rng(7);
    int refused = 0;
    for (int i = 0; i < 2000; i++) {
      auto copy = buf;
      for (int k = 0; k < 4; k++) copy[96 + rng() % (ns - 96)] = uint8_t(rng());
      if (i % 3 == 0) put_le32(copy.data() + 80, rng() % 400);  // item count
      uint8_t sum[kMaxCsumSize];
      csum_compute(CsumType::kCrc32c, copy.data() + 32, ns - 32, sum);
      std::memcpy(copy.data(), sum, kMaxCsumSize);
      auto r = decode_node(copy.data(), fsid, CsumType::kCrc32c, ns, e);
      if (!r.ok()) refused++;
    }
    CHECK(refused > 0);
  }
}

TEST_CASE("item codecs round-trip", "[format]") {
  InodeItem ii;
  ii.size = 12345;
  ii.mode = 0100644;
  ii.nlink = 3;
  ii.mtime = {1700000000, 123456789};
  auto ii2 = InodeItem::decode(ii.encode());
  REQUIRE(ii2.ok());
  CHECK(ii2->size == 12345);
  CHECK(ii2->mtime == ii.mtime);

  std::vector<DirEntry> des = {{Key{300, kInodeItem, 0}, 9, 8, "hello", {}}, {Key{}, 1, 0, "user.x", {1, 2, 3}}};
  auto des2 = decode_dir_entries(encode_dir_entries(des));
  REQUIRE(des2.ok());
  CHECK(des2->at(0).name == "hello");
  CHECK(des2->at(1).data == Bytes{1, 2, 3});

  FileExtent fe;
  fe.disk_bytenr = 1 << 20;
  fe.disk_num_bytes = 1 << 16;
  fe.offset = 4096;
  fe.num_bytes = 8192;
  auto fe2 = FileExtent::decode(fe.encode());
  REQUIRE(fe2.ok());
  CHECK(fe2->offset == 4096);
  fe.offset = 1 << 16;  // beyond the disk extent
  CHECK_FALSE(FileExtent::decode(fe.encode()).ok());

  ExtentItem ei;
  ei.refs = 2;
  ei.flags = kExtentFlagData;
  ei.backrefs = {{kExtentDataRef, 5, 300, 0, 1}, {kExtentDataRef, 5, 301, 4096, 1}};
  auto ei2 = ExtentItem::decode(ei.encode());
  REQUIRE(ei2.ok());
  CHECK(ei2->backrefs == ei.backrefs);
  Bytes truncated = ei.encode();
  truncated.pop_back();
  CHECK_FALSE(ExtentItem::decode(truncated).ok());
  CHECK_FALSE(decode_inode_refs(Bytes{1, 2, 3}).ok());
  CHECK_FALSE(decode_dir_entries(Bytes(10, 0xFF)).ok());

  ScrubProgress sp;
  sp.state = kScrubCancelled;
  sp.position = 123456789;
  sp.started = 1700000000;
  sp.data_bytes = 1ULL << 33;
  sp.data_uncorrectable = 3;
  sp.meta_corrected = 2;
  sp.metadata_nodes = 77;
  auto sp2 = ScrubProgress::decode(sp.encode());
  REQUIRE(sp2.ok());
  CHECK(sp2->position == sp.position);
  CHECK(sp2->data_bytes == sp.data_bytes);
  CHECK(sp2->data_uncorrectable == 3);
  CHECK(sp2->meta_corrected == 2);
  CHECK(sp2->metadata_nodes == 77);
  Bytes bad_state = sp.encode();
  bad_state[0] = 9;
  CHECK_FALSE(ScrubProgress::decode(bad_state).ok());
  CHECK_FALSE(ScrubProgress::decode(Bytes(127, 0)).ok());
}
