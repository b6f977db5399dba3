#include "io/io_engine.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "util/full_io.h"

namespace cairn {

namespace {
// The reaper's stop signal: a NOP whose user data is this address.
char kStopTag;
}  // namespace

Result<std::unique_ptr<IoEngine>> IoEngine::open(const std::string& path, bool read_only, const IoEngineOptions& opts) {
  std::unique_ptr<IoEngine> e(new IoEngine());
  const int mode = read_only ? O_RDONLY : O_RDWR;
  if (opts.direct) {
    e->fd_ = ::open(path.c_str(), mode | O_DIRECT | O_CLOEXEC);
    e->direct_ = e->fd_ >= 0;
  }
  if (e->fd_ < 0) e->fd_ = ::open(path.c_str(), mode | O_CLOEXEC);
  if (e->fd_ < 0) return Status::Error(errno, path + ": " + std::strerror(errno));
  e->depth_ = std::max(8u, opts.queue_depth);
  int r = io_uring_queue_init(e->depth_ * 2, &e->ring_, 0);
  if (r < 0) {
    ::close(e->fd_);
    return Status::Error(-r, std::string("io_uring_queue_init: ") + std::strerror(-r));
  }
  if (opts.dontcache && !read_only) {
    // Probe: a DONTCACHE write of a block onto itself, so nothing changes.
    void* buf = std::aligned_alloc(4096, 4096);
    if (buf && pread(e->fd_, buf, 4096, 0) == 4096) {
      iovec v{buf, 4096};
      e->dontcache_ok_ = pwritev2(e->fd_, &v, 1, 0, kRwfDontcache) == 4096;
    }
    std::free(buf);
  }
  e->reaper_ = std::thread([p = e.get()] { p->reap(); });
  return e;
}

IoEngine::~IoEngine() {
  {
    std::lock_guard lk(sq_mu_);
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (!sqe) {
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data(sqe, &kStopTag);
    io_uring_submit(&ring_);
  }
  if (reaper_.joinable()) reaper_.join();
  io_uring_queue_exit(&ring_);
  ::close(fd_);
}

void IoEngine::submit(bool write, uint64_t offset, const iovec* iov, int iovcnt, IoRequest* req, int rw_flags) {
  // Bound what is in flight to the queue depth; the reaper wakes us.
  for (uint32_t cur = inflight_.load(); ;) {
    if (cur >= depth_) {
      inflight_.wait(cur);
      cur = inflight_.load();
      continue;
    }
    if (inflight_.compare_exchange_weak(cur, cur + 1)) break;
  }
  req->expected = 0;
  req->forced_error = write && inject_write_errors_ ? -EIO : 0;
  for (int i = 0; i < iovcnt; i++) req->expected += iov[i].iov_len;
  std::lock_guard lk(sq_mu_);
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (!sqe) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  if (req->forced_error) {
    io_uring_prep_nop(sqe);  // still completes through the reaper, like a real failure
  } else {
    if (write) io_uring_prep_writev(sqe, fd_, iov, unsigned(iovcnt), offset);
    else io_uring_prep_readv(sqe, fd_, iov, unsigned(iovcnt), offset);
    sqe->rw_flags = rw_flags;
  }
  io_uring_sqe_set_data(sqe, req);
  io_uring_submit(&ring_);
}

void IoEngine::submit_write(uint64_t offset, const iovec* iov, int iovcnt, IoRequest* req, int rw_flags) {
  submit(true, offset, iov, iovcnt, req, (rw_flags & kRwfDontcache) && !dontcache_ok_ ? 0 : rw_flags);
}

void IoEngine::submit_read(uint64_t offset, const iovec* iov, int iovcnt, IoRequest* req) {
  submit(false, offset, iov, iovcnt, req, 0);
}

void IoEngine::reap() {
  for (;;) {
    io_uring_cqe* cqe = nullptr;
    int r = io_uring_wait_cqe(&ring_, &cqe);
    if (r == -EINTR) continue;
    if (r < 0) continue;
    void* tag = io_uring_cqe_get_data(cqe);
    const int64_t res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    if (tag == &kStopTag) return;
    auto* req = static_cast<IoRequest*>(tag);
    completions_++;
    inflight_.fetch_sub(1);
    inflight_.notify_one();
    // A short transfer on a regular file or device is an error here.
    if (req->forced_error) req->done(req->forced_error);
    else req->done(res >= 0 && size_t(res) != req->expected ? -EIO : res);
  }
}

namespace {
struct SyncWait {
  IoRequest req;
  std::atomic<int> state{0};
  int64_t res = 0;
};
}  // namespace

Status IoEngine::read_sync(uint64_t offset, void* buf, size_t len) {
  // Measured on a cold 4 KiB random read through FUSE: the ring's round
  // trip (submit, the reaper's wake-up, a futex wake of the caller) cost
  // more than the read itself; pread is one system call (docs/performance.md).
  sync_reads_++;
  return pread_full(fd_, buf, len, offset, "image");
}

Status IoEngine::write_sync(uint64_t offset, const void* buf, size_t len, int rw_flags) {
  SyncWait w;
  w.req.done = [&w](int64_t res) {
    w.res = res;
    w.state.store(1);
    w.state.notify_one();
  };
  iovec v{const_cast<void*>(buf), len};
  submit_write(offset, &v, 1, &w.req, rw_flags);
  w.state.wait(0);
  if (w.res < 0) return Status::Error(int(-w.res), std::string("write: ") + std::strerror(int(-w.res)));
  return Status::Ok();
}

}  // namespace cairn
