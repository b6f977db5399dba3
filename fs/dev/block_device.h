#pragma once
// Block devices: what the engine reads and writes (docs/design.md, "Devices").
//
// The engine sees a flat byte-addressed device. Error contract: read/write
// return EIO (or the errno the OS gave) when the device fails; a short
// transfer is retried until complete or failed, never reported as success.
// flush() returns only when every write that completed before it is durable.
//
// Thread-safety: read, write and flush may be called concurrently from any
// thread; implementations serialize internally where they must.

#include <cstddef>
#include <cstdint>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "util/status.h"

namespace cairn {

class BlockDevice {
 public:
  virtual ~BlockDevice() = default;
  virtual Status read(uint64_t offset, void* buf, size_t len) = 0;
  virtual Status write(uint64_t offset, const void* buf, size_t len) = 0;
  virtual Status flush() = 0;
  virtual uint64_t size() const = 0;
  // The file descriptor of the backing file, or -1; the io_uring data path
  // submits to it directly.
  virtual int fd() const { return -1; }
  virtual std::string name() const = 0;
  // A hint that [offset, offset+len) is read soon: start reading it into the
  // page cache now, so that a walk's reads overlap instead of waiting one
  // by one. Never fails; devices without a page cache ignore it.
  virtual void prefetch(uint64_t /*offset*/, size_t /*len*/) {}
};

struct FileDeviceOptions {
  bool read_only = false;
  bool exclusive_lock = false;  // flock(LOCK_EX|LOCK_NB): refuse a second mounter
};

// An image file or a block device, accessed with pread/pwrite/fdatasync.
class FileDevice : public BlockDevice {
 public:
  static Result<std::unique_ptr<FileDevice>> open(const std::string& path, FileDeviceOptions opts);
  ~FileDevice() override;
  Status read(uint64_t offset, void* buf, size_t len) override;
  Status write(uint64_t offset, const void* buf, size_t len) override;
  Status flush() override;
  uint64_t size() const override { return size_; }
  int fd() const override { return fd_; }
  std::string name() const override { return path_; }
  void prefetch(uint64_t offset, size_t len) override;
  bool is_block_device() const { return is_blockdev_; }

 private:
  FileDevice(int fd, std::string path, uint64_t size, bool blk) : fd_(fd), path_(std::move(path)), size_(size), is_blockdev_(blk) {}
  int fd_;
  std::string path_;
  uint64_t size_;
  bool is_blockdev_;
};

// A device in memory. Used by unit tests and as the base of RecordingDevice.
class MemoryDevice : public BlockDevice {
 public:
  explicit MemoryDevice(uint64_t size) : data_(size, 0) {}
  explicit MemoryDevice(std::vector<uint8_t> image) : data_(std::move(image)) {}
  Status read(uint64_t offset, void* buf, size_t len) override;
  Status write(uint64_t offset, const void* buf, size_t len) override;
  Status flush() override { return Status::Ok(); }
  uint64_t size() const override { return data_.size(); }
  std::string name() const override { return "memory"; }
  std::vector<uint8_t> snapshot() const;

 private:
  mutable std::mutex mu_;
  std::vector<uint8_t> data_;
};

// Records every write and flush in issue order on top of an initial image,
// so a test can rebuild the device as it was at any point (crash simulation).
class RecordingDevice : public BlockDevice {
 public:
  struct Op {
    bool is_flush = false;
    uint64_t offset = 0;
    std::vector<uint8_t> data;
  };
  explicit RecordingDevice(std::vector<uint8_t> initial) : base_(initial), current_(std::move(initial)) {}
  Status read(uint64_t offset, void* buf, size_t len) override;
  Status write(uint64_t offset, const void* buf, size_t len) override;
  Status flush() override;
  uint64_t size() const override { return current_.size(); }
  std::string name() const override { return "recording"; }

  std::vector<Op> ops() const;
  const std::vector<uint8_t>& initial() const { return base_; }
  // The image after applying ops [0, n) plus the writes in `extra` (indices into ops()).
  std::vector<uint8_t> replay(size_t n, const std::vector<size_t>& extra = {}) const;

 private:
  mutable std::mutex mu_;
  std::vector<uint8_t> base_;
  MemoryDevice current_;
  std::vector<Op> ops_;
};

// Fails reads or writes on demand: the I/O error tests.
class FaultyDevice : public BlockDevice {
 public:
  explicit FaultyDevice(std::shared_ptr<BlockDevice> inner) : inner_(std::move(inner)) {}
  Status read(uint64_t offset, void* buf, size_t len) override;
  Status write(uint64_t offset, const void* buf, size_t len) override;
  Status flush() override;
  uint64_t size() const override { return inner_->size(); }
  std::string name() const override { return "faulty(" + inner_->name() + ")"; }
  void fail_writes(bool on) { fail_writes_ = on; }
  void fail_reads(bool on) { fail_reads_ = on; }
  void fail_flush(bool on) { fail_flush_ = on; }

 private:
  std::shared_ptr<BlockDevice> inner_;
  std::atomic<bool> fail_writes_{false}, fail_reads_{false}, fail_flush_{false};
};

}  // namespace cairn
