#include "scrub/scrub_service.h"

#include <syslog.h>

#include <chrono>

#include "format/constants.h"

namespace cairn {

namespace {
constexpr Key kScrubKey{kScrubObjectId, kScrubProgress, 0};
constexpr auto kSaveInterval = std::chrono::seconds(5);
}  // namespace

Result<ScrubProgress> ScrubService::load(Engine& e) {
  auto b = e.tree(kRootTreeId).lookup(kScrubKey);
  if (!b.ok()) {
    if (b.status().code() == ENOENT) return ScrubProgress{};
    return b.status();
  }
  return ScrubProgress::decode(b.value());
}

Status ScrubService::save_locked(Engine& e, const ScrubProgress& p) {
  if (e.read_only() || e.aborted()) return Status::Ok();
  return e.tree(kRootTreeId).upsert(kScrubKey, p.encode());
}

ScrubService::ScrubService(Engine& e, IoEngine& io) : e_(e), io_(io) {
  std::lock_guard lk(e_.mutex());
  auto p = load(e_);
  if (p.ok()) last_ = p.value();
  // A scrub that was running when the daemon stopped is resumable.
  if (last_.state == kScrubRunning) last_.state = kScrubCancelled;
}

ScrubService::~ScrubService() { shutdown(); }

void ScrubService::shutdown() {
  cancel_ = true;
  std::thread t;
  {
    std::lock_guard lk(mu_);
    t = std::move(thread_);
  }
  if (t.joinable()) t.join();
}

void ScrubService::join_finished() {
  // Called with mu_ held: reap a thread that has finished on its own.
  if (!running_ && thread_.joinable()) thread_.join();
}

Status ScrubService::start(uint64_t limit, bool resume) {
  std::lock_guard lk(mu_);
  join_finished();
  if (running_) return Status::Error(EBUSY, "a scrub is already running");
  if (e_.read_only()) return Status::Error(EROFS, "the filesystem is mounted read-only");
  ScrubProgress from;
  if (resume) {
    if (last_.state == kScrubNone) return Status::Error(ENOENT, "no scrub to resume");
    if (last_.state == kScrubFinished) return Status::Error(EALREADY, "the last scrub finished; start a new one");
    from = last_;
  }
  cancel_ = false;
  running_ = true;
  last_errors_.clear();
  last_status_ = Status::Ok();
  // Built here, not in the thread: status() right after start() must see it.
  scrubber_ = std::make_unique<Scrubber>(e_, io_, options(from, limit), from);
  thread_ = std::thread([this, from] { run(from); });
  return Status::Ok();
}

ScrubOptions ScrubService::options(const ScrubProgress& from, uint64_t limit) {
  ScrubOptions o;
  o.start = from.position;
  o.limit_bytes_per_sec = limit;
  o.cancel = &cancel_;
  o.on_batch = [this, last_save = std::chrono::steady_clock::now()](const ScrubProgress& p) mutable {
    auto now = std::chrono::steady_clock::now();
    if (now - last_save < kSaveInterval) return;
    last_save = now;
    std::lock_guard lk(e_.mutex());
    (void)save_locked(e_, p);
  };
  return o;
}

void ScrubService::run(ScrubProgress from) {
  syslog(LOG_INFO, "cairn: %s: scrub %s at %llu", e_.device().name().c_str(), from.state ? "resumed" : "started",
         static_cast<unsigned long long>(from.position));
  Status st = scrubber_->run_all();
  ScrubProgress end = scrubber_->progress();
  {
    std::lock_guard lk(e_.mutex());
    Status s2 = save_locked(e_, end);
    if (st.ok()) st = s2;
  }
  const uint64_t unc = end.data_uncorrectable + end.meta_uncorrectable;
  syslog(unc ? LOG_ERR : LOG_INFO, "cairn: %s: scrub %s: %llu errors, %llu corrected, %llu uncorrectable",
         e_.device().name().c_str(), scrub_state_name(end.state),
         static_cast<unsigned long long>(end.data_errors + end.meta_errors),
         static_cast<unsigned long long>(end.data_corrected + end.meta_corrected),
         static_cast<unsigned long long>(unc));
  std::lock_guard lk(mu_);
  last_ = end;
  last_errors_ = scrubber_->errors();
  last_status_ = st;
  running_ = false;
}

Status ScrubService::cancel() {
  if (!running_) return Status::Error(ENOENT, "no scrub is running");
  cancel_ = true;
  return Status::Ok();
}

nlohmann::json ScrubService::status() {
  ScrubProgress p;
  std::vector<ScrubError> errs;
  Status st;
  {
    std::lock_guard lk(mu_);
    if (running_ && scrubber_) {
      p = scrubber_->progress();
      errs = scrubber_->errors();
    } else {
      p = last_;
      errs = last_errors_;
      st = last_status_;
    }
  }
  uint64_t total;
  {
    std::lock_guard lk(e_.mutex());
    total = e_.bytes_used();
  }
  // Fit the control channel's buffer: list at most 40 damaged blocks here
  // (all of them are in the daemon's log).
  nlohmann::json j = scrub_report_json(p, errs, total, 40);
  if (!st.ok()) j["error"] = st.message();
  return j;
}

}  // namespace cairn
