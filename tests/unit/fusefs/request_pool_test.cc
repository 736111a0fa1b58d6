#include "fusefs/request_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

namespace imagefs {
namespace {

// A latch the tasks wait on, as requests wait on a download.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  void Wait() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return open; });
  }
  void Open() {
    std::lock_guard lock(mu);
    open = true;
    cv.notify_all();
  }
};

TEST(RequestPool, WaitingTasksEachGetAThreadUpToTheLimit) {
  auto pool = RequestPool::Create(/*max_threads=*/20);
  Gate gate;
  std::atomic<int> done{0};
  std::atomic<bool> on_pool{true};
  // More waiting tasks than the session loop has threads (16): none waits for another.
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(pool->Post([&] {
      on_pool = on_pool && RequestPool::OnPoolThread();
      gate.Wait();
      ++done;
    }));
  }
  // Full: the task waits for a thread, never runs on the caller's (the session loop's).
  ASSERT_TRUE(pool->Post([&] {
    on_pool = on_pool && RequestPool::OnPoolThread();
    ++done;
  }));
  EXPECT_EQ(pool->threads(), 20u);
  EXPECT_EQ(done, 0);
  EXPECT_FALSE(RequestPool::OnPoolThread());
  gate.Open();
  EXPECT_TRUE(pool->Stop(std::chrono::seconds(30)));
  EXPECT_EQ(done, 21);
  EXPECT_TRUE(on_pool);
  EXPECT_FALSE(pool->Post([] {})) << "a stopped pool takes nothing";
}

TEST(RequestPool, OneThreadServesEveryTaskInTurn) {
  auto pool = RequestPool::Create(/*max_threads=*/1);
  std::atomic<int> done{0};
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(pool->Post([&] { ++done; }));
  EXPECT_LE(pool->threads(), 1u);
  EXPECT_TRUE(pool->Stop(std::chrono::seconds(30)));
  EXPECT_EQ(done, 100);
  EXPECT_EQ(pool->threads(), 0u);
}

TEST(RequestPool, StopReportsTasksStillRunning) {
  auto pool = RequestPool::Create();
  Gate gate;
  ASSERT_TRUE(pool->Post([&] { gate.Wait(); }));
  EXPECT_FALSE(pool->Stop(std::chrono::milliseconds(50)));
  gate.Open();
  EXPECT_TRUE(pool->Stop(std::chrono::seconds(30)));
}

}  // namespace
}  // namespace imagefs
