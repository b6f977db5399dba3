// MemoryDevice, RecordingDevice and FaultyDevice: the devices tests stand on.
#include <cstring>

#include "dev/block_device.h"

namespace cairn {

Status MemoryDevice::read(uint64_t offset, void* buf, size_t len) {
  std::lock_guard lk(mu_);
  if (offset > data_.size() || len > data_.size() - offset) return Status::IoError("memory device: read out of range");
  std::memcpy(buf, data_.data() + offset, len);
  return Status::Ok();
}

Status MemoryDevice::write(uint64_t offset, const void* buf, size_t len) {
  std::lock_guard lk(mu_);
  if (offset > data_.size() || len > data_.size() - offset) return Status::IoError("memory device: write out of range");
  std::memcpy(data_.data() + offset, buf, len);
  return Status::Ok();
}

std::vector<uint8_t> MemoryDevice::snapshot() const {
  std::lock_guard lk(mu_);
  return data_;
}

Status RecordingDevice::read(uint64_t offset, void* buf, size_t len) { return current_.read(offset, buf, len); }

Status RecordingDevice::write(uint64_t offset, const void* buf, size_t len) {
  std::lock_guard lk(mu_);
  RETURN_IF_ERROR(current_.write(offset, buf, len));
  const auto* p = static_cast<const uint8_t*>(buf);
  ops_.push_back(Op{false, offset, std::vector<uint8_t>(p, p + len)});
  return Status::Ok();
}

Status RecordingDevice::flush() {
  std::lock_guard lk(mu_);
  ops_.push_back(Op{true, 0, {}});
  return Status::Ok();
}

std::vector<RecordingDevice::Op> RecordingDevice::ops() const {
  std::lock_guard lk(mu_);
  return ops_;
}

std::vector<uint8_t> RecordingDevice::replay(size_t n, const std::vector<size_t>& extra) const {
  std::lock_guard lk(mu_);
  std::vector<uint8_t> img = base_;
  auto apply = [&](const Op& op) {
    if (!op.is_flush) std::memcpy(img.data() + op.offset, op.data.data(), op.data.size());
  };
  for (size_t i = 0; i < n && i < ops_.size(); i++) apply(ops_[i]);
  for (size_t i : extra)
    if (i < ops_.size()) apply(ops_[i]);
  return img;
}

Status FaultyDevice::read(uint64_t offset, void* buf, size_t len) {
  if (fail_reads_) return Status::IoError("injected read error");
  return inner_->read(offset, buf, len);
}

Status FaultyDevice::write(uint64_t offset, const void* buf, size_t len) {
  if (fail_writes_) return Status::IoError("injected write error");
  return inner_->write(offset, buf, len);
}

Status FaultyDevice::flush() {
  if (fail_flush_) return Status::IoError("injected flush error");
  return inner_->flush();
}

}  // namespace cairn
