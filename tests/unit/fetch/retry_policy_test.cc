#include "fetch/retry_policy.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace imagefs::fetch {
namespace {

using std::chrono::milliseconds;

// A clock that only records what it was asked to wait.
struct FakeSleep {
  std::vector<milliseconds> waits;
  RetryPolicy::Sleep Fn() {
    return [this](milliseconds d, const std::atomic<bool>*) { waits.push_back(d); };
  }
};

Result<HttpResponse> Response(long status, std::map<std::string, std::string> headers = {}) {
  HttpResponse r;
  r.status = status;
  r.headers = std::move(headers);
  return r;
}

TEST(RetryPolicyTest, WhatIsWorthAnotherAttempt) {
  EXPECT_TRUE(RetryPolicy::Retryable(Response(500)));
  EXPECT_TRUE(RetryPolicy::Retryable(Response(503)));
  EXPECT_TRUE(RetryPolicy::Retryable(Response(429)));
  EXPECT_FALSE(RetryPolicy::Retryable(Response(200)));
  EXPECT_FALSE(RetryPolicy::Retryable(Response(401)));
  EXPECT_FALSE(RetryPolicy::Retryable(Response(404)));
  EXPECT_TRUE(RetryPolicy::Retryable(Result<HttpResponse>(Fail(Code::kNetwork, "reset"))));
  EXPECT_FALSE(RetryPolicy::Retryable(Result<HttpResponse>(Fail(Code::kInvalid, "bad url"))));
  EXPECT_TRUE(RetryPolicy::Retryable(Error::Make(Code::kCorrupt, "digest mismatch")));
  EXPECT_FALSE(RetryPolicy::Retryable(Error::Make(Code::kAuth, "denied")));
  EXPECT_FALSE(RetryPolicy::Retryable(Error::Make(Code::kCancelled, "cancelled")));
}

TEST(RetryPolicyTest, RetryAfterOnlyFromA429AndCapped) {
  EXPECT_EQ(RetryPolicy::RetryAfterSeconds(Response(429, {{"retry-after", "3"}})), 3);
  EXPECT_EQ(RetryPolicy::RetryAfterSeconds(Response(429, {{"retry-after", "86400"}})),
            RetryPolicy::kMaxRetryAfterSeconds);
  EXPECT_EQ(RetryPolicy::RetryAfterSeconds(Response(429, {{"retry-after", "Wed, 21 Oct 2015"}})),
            -1);
  EXPECT_EQ(RetryPolicy::RetryAfterSeconds(Response(429, {{"retry-after", "-5"}})), -1);
  EXPECT_EQ(RetryPolicy::RetryAfterSeconds(Response(429)), -1);
  EXPECT_EQ(RetryPolicy::RetryAfterSeconds(Response(503, {{"retry-after", "3"}})), -1);
}

TEST(RetryPolicyTest, BackoffDoublesWithJitterAndIsCapped) {
  RetryPolicy policy(20, 100, FakeSleep().Fn(), /*seed=*/7);
  for (unsigned failures = 1; failures <= 12; ++failures) {
    long full = std::min<long>(100L << (failures - 1), RetryPolicy::kMaxBackoff.count());
    long d = policy.Delay(failures).count();
    EXPECT_GE(d, full / 2) << failures;
    EXPECT_LE(d, full) << failures;
  }
  EXPECT_EQ(policy.Delay(1, /*retry_after_s=*/4), milliseconds(4000));
}

TEST(RetryPolicyTest, ABudgetAllowsRetriesAttemptsAfterTheFirst) {
  FakeSleep clock;
  RetryPolicy policy(3, 10, clock.Fn(), 1);
  auto attempts = policy.Start();
  int tries = 1;
  while (attempts.Again()) ++tries;
  EXPECT_EQ(tries, 4);
  EXPECT_EQ(clock.waits.size(), 3u);
  EXPECT_FALSE(attempts.Again());
  EXPECT_EQ(clock.waits.size(), 3u) << "no wait once the budget is spent";
}

TEST(RetryPolicyTest, NestedLevelsShareOneBudget) {
  // A layer: the client retries requests, the puller refetches wrong data. With the
  // budget handed down, both levels together make at most retries + 1 attempts.
  FakeSleep clock;
  RetryPolicy policy(4, 10, clock.Fn(), 1);
  auto attempts = policy.Start();
  int requests = 0;
  auto client_get = [&] {  // fails every time, retrying within the shared budget
    for (;;) {
      ++requests;
      if (!attempts.Again()) return false;
    }
  };
  while (!client_get() && attempts.Again()) {
  }
  EXPECT_EQ(requests, 5);
  EXPECT_EQ(clock.waits.size(), 4u);
}

TEST(RetryPolicyTest, ProgressStartsTheCountOver) {
  FakeSleep clock;
  RetryPolicy policy(2, 10, clock.Fn(), 1);
  auto attempts = policy.Start();
  EXPECT_TRUE(attempts.Again());
  EXPECT_TRUE(attempts.Again());
  attempts.StartOver();  // bytes arrived before the body broke off again
  EXPECT_TRUE(attempts.Again());
  EXPECT_TRUE(attempts.Again());
  EXPECT_FALSE(attempts.Again());
  EXPECT_EQ(clock.waits.front(), clock.waits[2]) << "the backoff starts over too";
}

TEST(RetryPolicyTest, RefetchesAreBoundedAndNeverStartOver) {
  // A server that cuts every body (progress: the request count starts over) and then
  // serves wrong bytes: the whole-transfer refetches still end.
  FakeSleep clock;
  RetryPolicy policy(3, 10, clock.Fn(), 1);
  auto attempts = policy.Start();
  int transfers = 1;
  for (;;) {
    EXPECT_TRUE(attempts.Again());   // the cut body, resumed
    attempts.StartOver();            // it made progress
    if (!attempts.Refetch()) break;  // then the digest did not match
    ++transfers;
  }
  EXPECT_EQ(transfers, 4);
  EXPECT_EQ(attempts.refetches(), 3u);
}

TEST(RetryPolicyTest, CancelStopsWithoutWaiting) {
  FakeSleep clock;
  RetryPolicy policy(5, 10, clock.Fn(), 1);
  std::atomic<bool> cancel = true;
  auto attempts = policy.Start();
  EXPECT_FALSE(attempts.Again(-1, &cancel));
  EXPECT_TRUE(clock.waits.empty());
  // A cancel that arrives during the wait ends it too.
  std::atomic<bool> later = false;
  RetryPolicy during(
      5, 10, [&](milliseconds, const std::atomic<bool>*) { later = true; }, 1);
  auto a = during.Start();
  EXPECT_FALSE(a.Again(-1, &later));
}

TEST(RetryPolicyTest, TheRealSleepWakesEarlyOnCancel) {
  RetryPolicy policy(1, 10000);
  std::atomic<bool> cancel = false;
  std::thread canceller([&] {
    std::this_thread::sleep_for(milliseconds(100));
    cancel = true;
  });
  auto attempts = policy.Start();
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(attempts.Again(-1, &cancel));
  canceller.join();
  // Not a timing assertion on speed: the backoff here is at least 5 s, so returning at all
  // before it proves the wait was cut short.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(4900));
}

}  // namespace
}  // namespace imagefs::fetch
