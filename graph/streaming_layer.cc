#include "graph/streaming_layer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "graph/base/log.h"
#include "graph/index_writer.h"

namespace imagefs {

// How far the tar's file is written, and whether the layer failed: what reads wait on.
class StreamingLayer::Arrival final : public BlobFetcher {
 public:
  explicit Arrival(std::string name) : name_(std::move(name)) {}
  Status Ensure(uint64_t offset, uint64_t len) override {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return failed_ || complete_ || written_ >= offset + len; });
    if (failed_) return ::imagefs::Fail(Error{Code::kIo, EIO, name_ + ": " + failed_->msg});
    return {};
  }
  void Wrote(uint64_t total) {
    {
      std::lock_guard lock(mu_);
      written_ = std::max(written_, total);
    }
    cv_.notify_all();
  }
  // Every byte is there, verified.
  void Complete() {
    {
      std::lock_guard lock(mu_);
      complete_ = true;
    }
    cv_.notify_all();
  }
  void Fail(const Error& error) {
    {
      std::lock_guard lock(mu_);
      if (!failed_) failed_ = error;
    }
    cv_.notify_all();
  }
  uint64_t written() const {
    std::lock_guard lock(mu_);
    return written_;
  }

 private:
  const std::string name_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t written_ = 0;         // guarded by mu_
  bool complete_ = false;        // guarded by mu_
  std::optional<Error> failed_;  // guarded by mu_
};

StreamingLayer::StreamingLayer(Digest diff_id, std::filesystem::path scratch,
                               std::shared_ptr<StreamSignal> signal)
    : diff_id_(std::move(diff_id)),
      scratch_(std::move(scratch)),
      arrival_(std::make_shared<Arrival>("layer " + diff_id_.str() + " (streaming)")) {
  signals_.push_back(std::move(signal));
}

bool StreamingLayer::Share(std::shared_ptr<StreamSignal> signal) {
  std::lock_guard lock(mu_);
  if (failed_) return false;
  signals_.push_back(std::move(signal));
  ++holders_;
  return true;
}

void StreamingLayer::Release(const Error& why) {
  {
    std::lock_guard lock(mu_);
    if (holders_ > 0 && --holders_ == 0) {
      // Named for the layer, not for the image whose pull ended last: every holder shows it.
      FailLocked(Error{why.code, why.sys_errno,
                       "no pull is left to finish it (the last one: " + why.msg + ")"});
    }
  }
  ReportFailure();
}

void StreamingLayer::AddFailureReporter(std::function<void(const Error&)> report) {
  std::optional<Error> already;
  {
    std::lock_guard lock(mu_);
    if (!reported_) {
      reporters_.push_back(std::move(report));
      return;
    }
    already = failed_;
  }
  if (already && already->code != Code::kCancelled) report(*already);
}

void StreamingLayer::BumpLocked() {
  for (const auto& signal : signals_) signal->Bump();
}

StreamingLayer::~StreamingLayer() {
  // Readers still holding a blob of this layer must not wait for bytes that never come.
  arrival_->Fail(Error{Code::kCancelled, ECANCELED, "no longer streamed"});
}

void StreamingLayer::Started(int fd) {
  {
    std::lock_guard lock(mu_);
    if (failed_) return;
    if (started_ && (arrival_->written() > 0 || !members_.empty())) {
      // What was served came from a download that did not finish: it cannot be vouched for.
      FailLocked(Error{Code::kCorrupt, EIO,
                       "its download started again after some of it had been served"});
    } else {
      started_ = true;
      fd_.Reset(fcntl(fd, F_DUPFD_CLOEXEC, 0));
      if (!fd_.valid()) FailLocked(Error{Code::kIo, errno, "dup the layer's file"});
    }
  }
  ReportFailure();
}

void StreamingLayer::Wrote(uint64_t total) {
  arrival_->Wrote(total);
  {
    std::lock_guard lock(mu_);
    ScanLocked(false);
  }
  ReportFailure();
}

void StreamingLayer::Ended(uint64_t total) {
  arrival_->Wrote(total);
  {
    std::lock_guard lock(mu_);
    ended_ = true;
    ScanLocked(true);
  }
  ReportFailure();
}

void StreamingLayer::ScanLocked(bool whole) {
  if (failed_ || stored_ || indexed_ || !fd_.valid()) return;
  const uint64_t total = arrival_->written();
  bool changed = false;
  if (total > 0) {
    void* map = mmap(nullptr, total, PROT_READ, MAP_SHARED, fd_.get(), 0);
    if (map == MAP_FAILED) return FailLocked(Error{Code::kIo, errno, "map the layer's file"});
    auto end = ScanTar(static_cast<const char*>(map), total, resume_,
                       whole ? TarScanMode::kWhole : TarScanMode::kPrefix,
                       [&](ScannedMember& m) -> Status {
                         // Each scan starts again at the last member it gave.
                         if (!members_.empty() && members_.back().header_at >= m.header_at)
                           return {};
                         members_.push_back(std::move(m));
                         member_count_ = members_.size();
                         changed = true;
                         return {};
                       });
    munmap(map, total);
    if (!end) return FailLocked(end.error());
    resume_ = end->resume;
  }
  if (whole) {
    indexed_ = changed = true;
    indexed_flag_ = true;
  }
  if (changed) {
    snapshot_stale_ = true;
    BumpLocked();
  }
}

void StreamingLayer::Stored(std::shared_ptr<const LayerBlob> blob) {
  {
    std::lock_guard lock(mu_);
    if (failed_ || stored_) return;
    if (started_ && !ended_ && (arrival_->written() > 0 || member_count_ > 0)) {
      // Stored from another download than the one served from, which was cut: what it
      // served cannot be vouched for, and its file is not the stored one.
      FailLocked(
          Error{Code::kCorrupt, EIO, "its download was cut after some of it had been served"});
    }
  }
  ReportFailure();
  {
    std::lock_guard lock(mu_);
    if (failed_ || stored_) return;
    stored_ = std::move(blob);
    indexed_flag_ = true;
    fd_.Reset();
    members_ = {};
  }
  arrival_->Complete();
  std::lock_guard lock(mu_);
  BumpLocked();
}

void StreamingLayer::Failed(const Error& error) {
  {
    std::lock_guard lock(mu_);
    FailLocked(error);
  }
  ReportFailure();
}

void StreamingLayer::ReportFailure() {
  std::optional<Error> e;
  std::vector<std::function<void(const Error&)>> reporters;
  {
    std::lock_guard lock(mu_);
    if (!failed_ || reported_) return;
    reported_ = true;
    e = failed_;
    reporters.swap(reporters_);
  }
  if (e->code == Code::kCancelled) return;
  GraphLog()->error("{}", e->msg);
  for (const auto& report : reporters) report(*e);
}

void StreamingLayer::FailLocked(const Error& error) {
  if (failed_ || stored_) return;
  Error e = error.WithContext("layer " + diff_id_.str());
  failed_ = e;
  arrival_->Fail(e);
  fd_.Reset();
  members_ = {};  // a failed layer shows nothing
  snapshot_stale_ = true;
  BumpLocked();
}

Result<StreamingLayer::State> StreamingLayer::Current() {
  std::lock_guard lock(mu_);
  if (stored_) return State{stored_, true, std::nullopt};
  if (snapshot_stale_ || !snapshot_) {
    // Unique in the process: two images may stream the same layer.
    static std::atomic<uint64_t> next_snapshot{0};
    std::filesystem::path path = scratch_ / ("stream-index-" + std::to_string(getpid()) + "-" +
                                             std::to_string(next_snapshot.fetch_add(1)));
    ASSIGN_OR_RETURN(std::unique_ptr<IndexWriter> out, IndexWriter::Create(path));
    for (const ScannedMember& m : members_) RETURN_IF_ERROR(AddMember(*out, m));
    RETURN_IF_ERROR(out->Finish(arrival_->written()));
    auto index = TarIndex::Open(path);
    std::error_code ec;
    std::filesystem::remove(path, ec);  // the mapping stays
    if (!index) return Fail(index.error());
    auto blob = std::make_shared<LayerBlob>();
    blob->diff_id = diff_id_;
    blob->index = std::move(*index);
    if (fd_.valid()) blob->fd.Reset(fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
    blob->fetcher = arrival_;
    snapshot_ = std::move(blob);
    snapshot_stale_ = false;
  }
  return State{snapshot_, indexed_ && !failed_, failed_};
}

uint64_t StreamingLayer::bytes_written() const { return arrival_->written(); }

bool StreamingLayer::failed() const {
  std::lock_guard lock(mu_);
  return failed_.has_value();
}

std::optional<bool> StreamingLayer::HasMember(const std::string& path, size_t* from) const {
  std::lock_guard lock(mu_);
  if (stored_ || failed_) return std::nullopt;
  bool found = false;
  for (size_t i = *from; i < members_.size() && !found; ++i) found = members_[i].path == path;
  *from = members_.size();
  return found;
}

}  // namespace imagefs
