#pragma once
// Shared helpers for engine unit tests: fresh in-memory filesystems and
// opening an image after the fact.
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "check/checker.h"
#include "dev/block_device.h"
#include "tree/engine.h"
#include "vfs/filesystem.h"

namespace cairn::test {

constexpr uint64_t kTestDeviceSize = 128ULL << 20;

// A freshly formatted filesystem on a memory device.
std::shared_ptr<MemoryDevice> make_formatted_memory(const MkfsParams& p = {}, uint64_t size = kTestDeviceSize);
// Add an opaque key/value tree (fsck checks its structure only) and commit.
void add_kv_tree(std::shared_ptr<BlockDevice> dev, uint64_t id);
std::unique_ptr<Engine> open_engine(std::shared_ptr<BlockDevice> dev, bool read_only = false);

// A formatted image file in /tmp (io_uring needs a real file), removed at
// the end of the test.
struct TempImage {
  std::string path;
  explicit TempImage(uint64_t size = 256ULL << 20, MkfsParams p = {});
  ~TempImage();
  std::unique_ptr<Filesystem> mount(MountOptions o = {});
  std::shared_ptr<BlockDevice> open_device(bool read_only = false);
  // Every byte of the (unmounted) image: the start of a recording device.
  std::vector<uint8_t> contents();
};

// The checker's report on an unmounted image file.
CheckReport check_report(const std::string& path);
// ... which must be clean.
void check_clean(const std::string& path);
// Every file of the model (name in the root directory -> contents) reads
// back exactly.
void check_files(Filesystem& fs, const std::map<std::string, std::vector<char>>& model);

// A new regular file `name` in the root directory holding `data`; its inode number.
uint64_t new_file(Filesystem& fs, const std::string& name, const std::vector<char>& data);

// Crash simulation: the image as it was at every flush of `rec`, and (two
// more variants per flush) with a random subset of the writes issued after
// it, as a crash with writes landing out of order leaves it. `durable_after`
// maps each committed generation to the number of recorded operations once
// it was durable; `check` gets each image, the newest generation it must at
// least hold, and a description. Returns the number of images.
size_t for_each_crash_image(const RecordingDevice& rec, const std::map<uint64_t, size_t>& durable_after,
                            std::mt19937_64& rng,
                            const std::function<void(std::shared_ptr<MemoryDevice>, uint64_t durable, const std::string& what)>& check);

// Every superblock copy on the device, encoded from `sb` (valid checksums).
void write_superblocks(BlockDevice& dev, Superblock sb);

// A file of an image opened with the engine alone (FileData reads and
// clones through the engine's device, a recording one in crash tests): no daemon.
std::unique_ptr<FileState> load_file(Engine& e, uint64_t ino);

// n pseudo-random bytes from a seed.
std::vector<char> pattern(size_t n, uint32_t seed);

}  // namespace cairn::test
