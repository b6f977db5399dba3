#pragma once
// Status and Result<T>: how errors travel inside the Cairn engine.
//
// Errors are values, never exceptions across layers (as leveldb's Status).
// A Status carries an errno-style code, because the FUSE edge must turn it
// into an errno anyway, and a message that says exactly what is wrong
// ("node 0x14000: bad checksum"). Code 0 means success.
//
// Thread-safety: plain values; safe to copy between threads.

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace cairn {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(int code, std::string msg) { return Status(code, std::move(msg)); }
  // The common classes, named so call sites read as prose.
  static Status Corruption(std::string msg) { return Status(EUCLEAN, std::move(msg)); }
  static Status IoError(std::string msg) { return Status(EIO, std::move(msg)); }
  static Status NoSpace(std::string msg) { return Status(ENOSPC, std::move(msg)); }
  static Status NotFound(std::string msg = "not found") { return Status(ENOENT, std::move(msg)); }
  static Status Invalid(std::string msg) { return Status(EINVAL, std::move(msg)); }

  bool ok() const { return code_ == 0; }
  int code() const { return code_; }
  const std::string& message() const { return msg_; }
  bool is_corruption() const { return code_ == EUCLEAN; }
  bool is_not_found() const { return code_ == ENOENT; }

  // Prefix context while an error travels up: "reading fs tree: " + msg.
  Status with_context(const std::string& ctx) const {
    if (ok()) return *this;
    return Status(code_, ctx + ": " + msg_);
  }
  std::string to_string() const;

 private:
  Status(int code, std::string msg) : code_(code), msg_(std::move(msg)) {}
  int code_ = 0;
  std::string msg_;
};

// Result<T>: a T or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status st) : v_(std::move(st)) {}   // NOLINT: implicit by design
  bool ok() const { return v_.index() == 0; }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& value() const& { return std::get<0>(v_); }
  T& operator*() & { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  Status status() const { return ok() ? Status::Ok() : std::get<1>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace cairn

// Propagation helpers: keep call sites short without hiding control flow.
#define CAIRN_CONCAT_INNER(a, b) a##b
#define CAIRN_CONCAT(a, b) CAIRN_CONCAT_INNER(a, b)
#define RETURN_IF_ERROR(expr)                 \
  do {                                        \
    ::cairn::Status _st = (expr);             \
    if (!_st.ok()) return _st;                \
  } while (0)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
#define ASSIGN_OR_RETURN(lhs, expr) ASSIGN_OR_RETURN_IMPL(CAIRN_CONCAT(_res_, __LINE__), lhs, expr)
