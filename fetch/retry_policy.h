// RetryPolicy: the one answer to "try again?" for registry traffic: which failures are
// worth another attempt, how long to wait first (the server's Retry-After, else jittered
// exponential backoff), and how many attempts one operation gets in all.
//
// An operation takes one Attempts budget and hands it down to every level that may retry
// (a layer: its requests and the resumes of a cut body in the client, a refetch after a
// network failure in the puller), so levels never multiply into retries² attempts. Bytes
// that arrive earn a fresh count: only transfers that keep failing give up. Whole
// refetches after wrong data have a count of their own (Refetch).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>

#include "fetch/http_client.h"
#include "graph/base/error.h"

namespace imagefs::fetch {

class RetryPolicy {
 public:
  // Waits for a delay, returning early once *cancel is set (cancel may be null).
  using Sleep = std::function<void(std::chrono::milliseconds, const std::atomic<bool>* cancel)>;
  static constexpr std::chrono::milliseconds kMaxBackoff{10000};
  static constexpr long kMaxRetryAfterSeconds = 60;

  // retries: further attempts after the first failure; base_ms: the first backoff. sleep
  // and seed are for tests (a fake clock, a fixed jitter); the defaults sleep for real.
  RetryPolicy(unsigned retries, unsigned base_ms, Sleep sleep = {}, uint32_t seed = 0);

  // Network errors, 5xx and 429 are worth another request.
  static bool Retryable(const Result<HttpResponse>& response);
  // Wrong data (a digest mismatch) and network failures are worth fetching again.
  static bool Retryable(const Error& error);
  // The seconds a 429 asks us to wait (capped), or -1 (none, or an HTTP date).
  static long RetryAfterSeconds(const Result<HttpResponse>& response);

  // The wait before the attempt after `failures` failures.
  std::chrono::milliseconds Delay(unsigned failures, long retry_after_s = -1) const;
  unsigned retries() const { return retries_; }

  class Attempts {
   public:
    explicit Attempts(const RetryPolicy& policy) : policy_(&policy) {}
    // After a failure: true (having waited) when another attempt may follow; false when
    // the budget is spent or the operation was cancelled.
    bool Again(long retry_after_s = -1, const std::atomic<bool>* cancel = nullptr);
    // Bytes arrived since the last failure: the count of failed requests starts over.
    void StartOver() { failures_ = 0; }
    // After wrong data (a digest mismatch): true (having waited) when the whole transfer may
    // be fetched again. These are counted apart, at most `retries` per operation, and never
    // start over: a server that cuts every body and then serves wrong bytes cannot keep a
    // transfer going forever by making progress.
    bool Refetch(const std::atomic<bool>* cancel = nullptr);
    unsigned failures() const { return failures_; }
    unsigned refetches() const { return refetches_; }

   private:
    bool Wait(unsigned& count, long retry_after_s, const std::atomic<bool>* cancel);

    const RetryPolicy* policy_;
    unsigned failures_ = 0;
    unsigned refetches_ = 0;
  };
  Attempts Start() const { return Attempts(*this); }

 private:
  unsigned retries_;
  unsigned base_ms_;
  Sleep sleep_;
  uint32_t seed_;
};

}  // namespace imagefs::fetch
