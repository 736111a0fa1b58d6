#include "fetch/retry_policy.h"

#include <algorithm>
#include <random>
#include <thread>

namespace imagefs::fetch {
namespace {

void SleepForReal(std::chrono::milliseconds delay, const std::atomic<bool>* cancel) {
  using Clock = std::chrono::steady_clock;
  auto until = Clock::now() + delay;
  while (Clock::now() < until) {
    if (cancel != nullptr && cancel->load()) return;
    std::this_thread::sleep_for(
        std::min<Clock::duration>(std::chrono::milliseconds(50), until - Clock::now()));
  }
}

}  // namespace

RetryPolicy::RetryPolicy(unsigned retries, unsigned base_ms, Sleep sleep, uint32_t seed)
    : retries_(retries),
      base_ms_(base_ms),
      sleep_(sleep ? std::move(sleep) : Sleep(SleepForReal)),
      seed_(seed) {}

bool RetryPolicy::Retryable(const Result<HttpResponse>& response) {
  if (!response) return response.error().code == Code::kNetwork;
  return response->status == 429 || response->status >= 500;
}

bool RetryPolicy::Retryable(const Error& error) {
  return error.code == Code::kNetwork || error.code == Code::kCorrupt;
}

long RetryPolicy::RetryAfterSeconds(const Result<HttpResponse>& response) {
  if (!response || response->status != 429) return -1;
  auto it = response->headers.find("retry-after");
  if (it == response->headers.end()) return -1;
  char* end = nullptr;
  long s = std::strtol(it->second.c_str(), &end, 10);
  if (end == it->second.c_str() || s < 0) return -1;  // an HTTP date: our own backoff
  return std::min(s, kMaxRetryAfterSeconds);
}

std::chrono::milliseconds RetryPolicy::Delay(unsigned failures, long retry_after_s) const {
  if (retry_after_s >= 0) return std::chrono::seconds(retry_after_s);
  unsigned shift = std::min(failures > 0 ? failures - 1 : 0u, 16u);
  long ms = std::min<long>(kMaxBackoff.count(), static_cast<long>(base_ms_) << shift);
  if (ms <= 1) return std::chrono::milliseconds(ms);
  // Jitter in [ms/2, ms], so that clients failing together do not retry together.
  thread_local std::mt19937 random_jitter{std::random_device{}()};
  uint32_t r = seed_ != 0 ? seed_ * (failures + 1) : random_jitter();
  return std::chrono::milliseconds(ms / 2 +
                                   static_cast<long>(r % static_cast<uint32_t>(ms / 2 + 1)));
}

bool RetryPolicy::Attempts::Again(long retry_after_s, const std::atomic<bool>* cancel) {
  return Wait(failures_, retry_after_s, cancel);
}

bool RetryPolicy::Attempts::Refetch(const std::atomic<bool>* cancel) {
  return Wait(refetches_, -1, cancel);
}

bool RetryPolicy::Attempts::Wait(unsigned& count, long retry_after_s,
                                 const std::atomic<bool>* cancel) {
  if (cancel != nullptr && cancel->load()) return false;
  if (count >= policy_->retries_) return false;
  ++count;
  policy_->sleep_(policy_->Delay(count, retry_after_s), cancel);
  return cancel == nullptr || !cancel->load();
}

}  // namespace imagefs::fetch
