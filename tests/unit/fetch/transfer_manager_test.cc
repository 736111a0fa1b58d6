// The transfer manager: one run per key however many join, the concurrency limit, and
// cancellation only when the last waiter leaves.
#include "fetch/transfer_manager.h"

#include <gtest/gtest.h>

#include <thread>

namespace imagefs::fetch {
namespace {

using namespace std::chrono_literals;

TEST(TransferManager, JoinersShareOneRun) {
  TransferManager m(3);
  std::atomic<int> runs{0};
  std::atomic<bool> release{false};
  auto work = [&](Transfer&) -> Status {
    ++runs;
    while (!release) std::this_thread::sleep_for(1ms);
    return {};
  };
  auto a = m.Join("k", 10, work);
  auto b = m.Join("k", 10, work);
  EXPECT_EQ(a, b);
  release = true;
  EXPECT_TRUE(m.Wait(a));
  EXPECT_TRUE(m.Wait(b));
  EXPECT_EQ(runs.load(), 1);
  // A finished key runs again when asked again (a failure is not remembered).
  auto c = m.Join("k", 10, work);
  EXPECT_TRUE(m.Wait(c));
  EXPECT_EQ(runs.load(), 2);
}

TEST(TransferManager, OneWaiterLeavingDoesNotCancelTheOthers) {
  TransferManager m(1);
  std::atomic<bool> release{false};
  std::atomic<bool> saw_cancel{false};
  auto work = [&](Transfer& t) -> Status {
    while (!release) {
      if (t.cancelled()) {
        saw_cancel = true;
        return Fail(Code::kCancelled, "cancelled");
      }
      std::this_thread::sleep_for(1ms);
    }
    return {};
  };
  auto first = m.Join("k", 1, work);
  auto second = m.Join("k", 1, work);
  std::atomic<bool> leave{true};
  auto left = m.Wait(first, &leave);
  ASSERT_FALSE(left);
  EXPECT_EQ(left.error().code, Code::kCancelled);
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(second->cancelled());
  release = true;
  EXPECT_TRUE(m.Wait(second));
  EXPECT_FALSE(saw_cancel.load());
}

TEST(TransferManager, LastWaiterLeavingCancels) {
  TransferManager m(1);
  std::atomic<bool> saw_cancel{false};
  auto work = [&](Transfer& t) -> Status {
    while (!t.cancelled()) std::this_thread::sleep_for(1ms);
    saw_cancel = true;
    return Fail(Code::kCancelled, "cancelled");
  };
  auto t = m.Join("k", 1, work);
  std::atomic<bool> leave{true};
  EXPECT_FALSE(m.Wait(t, &leave));
  for (int i = 0; i < 1000 && !saw_cancel; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(saw_cancel.load());
}

TEST(TransferManager, AtMostConcurrencyRunAtOnce) {
  TransferManager m(2);
  std::atomic<int> running{0}, peak{0};
  auto work = [&](Transfer&) -> Status {
    int now = ++running;
    int p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {
    }
    std::this_thread::sleep_for(20ms);
    --running;
    return {};
  };
  std::vector<std::shared_ptr<Transfer>> all;
  for (int i = 0; i < 6; ++i) all.push_back(m.Join("k" + std::to_string(i), 1, work));
  for (auto& t : all) EXPECT_TRUE(m.Wait(t));
  EXPECT_EQ(peak.load(), 2);
}

}  // namespace
}  // namespace imagefs::fetch
