#pragma once
// A 4 KiB-aligned byte buffer: what O_DIRECT I/O needs.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace cairn {

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t n) { resize(n); }
  ~AlignedBuffer() { std::free(p_); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  // Grows only; contents are not kept.
  void resize(size_t n) {
    if (n <= cap_) {
      size_ = n;
      return;
    }
    std::free(p_);
    cap_ = (n + 4095) / 4096 * 4096;
    p_ = static_cast<uint8_t*>(std::aligned_alloc(4096, cap_));
    if (!p_) throw std::bad_alloc();
    size_ = n;
  }
  uint8_t* data() { return p_; }
  size_t size() const { return size_; }

 private:
  uint8_t* p_ = nullptr;
  size_t size_ = 0, cap_ = 0;
};

}  // namespace cairn
