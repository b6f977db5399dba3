#include "test_helpers.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <random>

#include "check/checker.h"

namespace cairn::test {

std::shared_ptr<MemoryDevice> make_formatted_memory(const MkfsParams& p, uint64_t size) {
  auto dev = std::make_shared<MemoryDevice>(size);
  auto e = Engine::format(dev, p);
  REQUIRE(e.ok());
  return dev;
}

std::unique_ptr<Engine> open_engine(std::shared_ptr<BlockDevice> dev, bool read_only) {
  EngineOptions o;
  o.read_only = read_only;
  auto e = Engine::open(std::move(dev), o);
  INFO(e.status().to_string());
  REQUIRE(e.ok());
  return std::move(e).value();
}

void add_kv_tree(std::shared_ptr<BlockDevice> dev, uint64_t id) {
  auto e = open_engine(dev);
  std::lock_guard lk(e->mutex());
  REQUIRE(e->create_tree(id, kRootFlagKeyValue).ok());
  REQUIRE(e->commit().ok());
}

TempImage::TempImage(uint64_t size, MkfsParams p) {
  char tmpl[] = "/tmp/cairn-unit-XXXXXX";
  int fd = mkstemp(tmpl);
  REQUIRE(fd >= 0);
  REQUIRE(ftruncate(fd, off_t(size)) == 0);
  close(fd);
  path = tmpl;
  REQUIRE(Engine::format(open_device(), p).ok());
}

TempImage::~TempImage() { unlink(path.c_str()); }

std::shared_ptr<BlockDevice> TempImage::open_device(bool read_only) {
  auto dev = FileDevice::open(path, FileDeviceOptions{read_only, false});
  REQUIRE(dev.ok());
  return std::move(dev).value();
}

std::vector<uint8_t> TempImage::contents() {
  auto dev = open_device(true);
  std::vector<uint8_t> image(dev->size());
  REQUIRE(dev->read(0, image.data(), image.size()).ok());
  return image;
}

std::unique_ptr<Filesystem> TempImage::mount(MountOptions o) {
  auto fs = Filesystem::mount(open_device(), o);
  INFO(fs.status().to_string());
  REQUIRE(fs.ok());
  return std::move(fs).value();
}

std::unique_ptr<FileState> load_file(Engine& e, uint64_t ino) {
  std::lock_guard lk(e.mutex());
  auto raw = e.tree(kFsTreeId).lookup(Key{ino, kInodeItem, 0});
  REQUIRE(raw.ok());
  auto item = InodeItem::decode(raw.value());
  REQUIRE(item.ok());
  auto f = std::make_unique<FileState>(ino);
  f->item = item.value();
  f->disk_size = f->item.size;
  return f;
}

CheckReport check_report(const std::string& path) {
  auto dev = FileDevice::open(path, {true, false});
  REQUIRE(dev.ok());
  auto rep = check_filesystem(*dev.value());
  REQUIRE(rep.ok());
  return std::move(rep).value();
}

void check_clean(const std::string& path) {
  CheckReport rep = check_report(path);
  for (auto& p : rep.problems) UNSCOPED_INFO(p.code << ": " << p.message);
  CHECK(rep.clean());
}

void check_files(Filesystem& fs, const std::map<std::string, std::vector<char>>& model) {
  for (auto& [name, want] : model) {
    auto ent = fs.lookup(kFirstInode, name);
    REQUIRE(ent.ok());
    std::vector<char> got(want.size());
    auto n = fs.read(ent->ino, 0, got.size(), got.data());
    REQUIRE(n.ok());
    CHECK(got == want);
    fs.forget(ent->ino, 1);  // as the kernel would, in time: the lookup was ours
  }
}

void write_superblocks(BlockDevice& dev, Superblock sb) {
  std::vector<uint8_t> buf(kSuperblockSize);
  for (uint64_t off : kSuperblockOffsets) {
    if (off + kSuperblockSize > dev.size()) continue;
    sb.bytenr = off;
    sb.encode(buf.data());
    REQUIRE(dev.write(off, buf.data(), buf.size()).ok());
  }
}

uint64_t new_file(Filesystem& fs, const std::string& name, const std::vector<char>& data) {
  Caller c;
  auto ent = fs.mknod(kFirstInode, name, S_IFREG | 0644, 0, c);
  REQUIRE(ent.ok());
  REQUIRE(fs.write(ent->ino, 0, data.data(), data.size()).ok());
  return ent->ino;
}

size_t for_each_crash_image(const RecordingDevice& rec, const std::map<uint64_t, size_t>& durable_after,
                            std::mt19937_64& rng,
                            const std::function<void(std::shared_ptr<MemoryDevice>, uint64_t, const std::string&)>& check) {
  auto ops = rec.ops();
  std::vector<size_t> flushes;
  for (size_t i = 0; i < ops.size(); i++)
    if (ops[i].is_flush) flushes.push_back(i);
  size_t images = 0;
  for (size_t fi = 0; fi < flushes.size(); fi++) {
    const size_t prefix = flushes[fi] + 1;
    const size_t next = fi + 1 < flushes.size() ? flushes[fi + 1] : ops.size();
    uint64_t durable = 0;
    for (auto& [g, n] : durable_after)
      if (n <= prefix) durable = std::max(durable, g);
    for (int variant = 0; variant < 3; variant++) {
      std::vector<size_t> extra;
      if (variant > 0)
        for (size_t i = prefix; i < next; i++)
          if (rng() % 2) extra.push_back(i);
      check(std::make_shared<MemoryDevice>(rec.replay(prefix, extra)), durable,
            "flush " + std::to_string(fi) + " of " + std::to_string(flushes.size()) + " variant " + std::to_string(variant));
      images++;
    }
  }
  return images;
}

std::vector<char> pattern(size_t n, uint32_t seed) {
  std::vector<char> v(n);
  std::mt19937 rng(seed);
  for (auto& c : v) c = char(rng());
  return v;
}

}  // namespace cairn::test
