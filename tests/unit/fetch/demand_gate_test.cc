// DemandGate: a completion's request waits while a read is fetching and for the quiet
// period after, no longer than max_hold, and not at all once cancelled.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "fetch/chunked_remote_layer.h"

namespace imagefs::fetch {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

milliseconds Waited(const DemandGate& gate, const std::atomic<bool>* cancel = nullptr) {
  std::atomic<bool> cancelled{false};
  auto start = Clock::now();
  gate.WaitQuiet(cancel, cancelled);
  return std::chrono::duration_cast<milliseconds>(Clock::now() - start);
}

TEST(DemandGateTest, NoReadsNoWait) {
  DemandGate gate(milliseconds(200), milliseconds(5000));
  EXPECT_LT(Waited(gate).count(), 100);
}

TEST(DemandGateTest, WaitsForTheReadAndTheQuietAfterIt) {
  DemandGate gate(milliseconds(200), milliseconds(5000));
  gate.Begin();
  std::thread read([&] {
    std::this_thread::sleep_for(milliseconds(300));
    gate.End();
  });
  milliseconds waited = Waited(gate);
  read.join();
  EXPECT_GE(waited.count(), 300 + 200 - 20);  // the read, then the quiet period
  EXPECT_LT(waited.count(), 3000);
}

TEST(DemandGateTest, HoldsNoLongerThanMaxHold) {
  DemandGate gate(milliseconds(200), milliseconds(400));
  gate.Begin();  // a read that never ends
  milliseconds waited = Waited(gate);
  EXPECT_GE(waited.count(), 400 - 20);
  EXPECT_LT(waited.count(), 3000);
  gate.End();
}

TEST(DemandGateTest, CancelEndsTheWait) {
  DemandGate gate(milliseconds(200), milliseconds(60000));
  gate.Begin();
  std::atomic<bool> cancel{false};
  std::thread unmount([&] {
    std::this_thread::sleep_for(milliseconds(100));
    cancel = true;
  });
  milliseconds waited = Waited(gate, &cancel);
  unmount.join();
  EXPECT_LT(waited.count(), 3000);
  gate.End();
}

}  // namespace
}  // namespace imagefs::fetch
