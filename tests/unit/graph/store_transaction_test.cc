// Registration: the one way images enter the store (loads and pulls) is all or nothing,
// whatever fails or crashes, and what a registration uses stays until it is done.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "graph/base/fs_util.h"
#include "graph/image_transaction.h"
#include "store_fixture.h"

namespace imagefs {
namespace {

// The one way images enter the store (loads and pulls): all or nothing.
TEST_F(StoreTest, ImageTransactionKeepsLayersOnlyWithItsImage) {
  LayerInfo shared = AddLayer(std::nullopt, tar_a_);
  {
    ImageTransaction tx(*store_);
    MemorySource a(tar_a_), b(tar_b_);
    bool created = true;
    ASSERT_TRUE(tx.AddLayer(std::nullopt, a, shared.diff_id, &created));
    EXPECT_FALSE(created);  // there already: not the transaction's to remove
    auto top = tx.AddLayer(shared.chain_id, b, std::nullopt, &created);
    ASSERT_TRUE(top);
    EXPECT_TRUE(created);
    EXPECT_TRUE(store_->GetLayer(top->chain_id));
  }  // no commit: the layer it stored goes, the one it found stays
  EXPECT_EQ(store_->Layers().size(), 1u);
  EXPECT_TRUE(store_->GetLayer(shared.chain_id));

  ImageTransaction tx(*store_);
  MemorySource b(tar_b_);
  auto top = tx.AddLayer(shared.chain_id, b, std::nullopt);
  ASSERT_TRUE(top);
  std::string config = Config({shared.diff_id, top->diff_id});
  auto ref = ParseReference("example/tx:1");
  ASSERT_TRUE(ref);
  auto image = tx.Commit({Sha256::Of(config).hex(), config, top->chain_id, {}}, {*ref});
  ASSERT_TRUE(image) << image.error().msg;
  EXPECT_EQ(store_->Layers().size(), 2u);
  EXPECT_EQ(*store_->ResolveImage("example/tx:1"), image->id);
}

TEST_F(StoreTest, SameDiffUnderTwoChainsIsStoredOnce) {
  LayerInfo a = AddLayer(std::nullopt, tar_a_);
  LayerInfo c1 = AddLayer(std::nullopt, tar_c_);
  std::atomic<uint64_t> read{0};
  CountingSource src(tar_c_, &read);
  auto c2 = store_->RegisterLayer(a.chain_id, src, Sha256::Of(tar_c_));
  ASSERT_TRUE(c2);
  EXPECT_EQ(read, 0u) << "a stored DiffID must not be read again";
  EXPECT_NE(c2->chain_id, c1.chain_id);
  EXPECT_EQ(c2->diff_id, c1.diff_id);
  EXPECT_EQ(CountEntries("diffs"), 2u);
  EXPECT_EQ(CountEntries("layers"), 3u);
  CountingSource again(tar_c_, &read);
  auto c3 = store_->RegisterLayer(a.chain_id, again, Sha256::Of(tar_c_));
  ASSERT_TRUE(c3);
  EXPECT_EQ(c3->chain_id, c2->chain_id);
  EXPECT_EQ(read, 0u);
}

TEST_F(StoreTest, DiffIdMismatchRegistersNothing) {
  MemorySource src(tar_a_);
  auto r = store_->RegisterLayer(std::nullopt, src, Sha256::Of("something else"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kCorrupt);
  EXPECT_NE(r.error().msg.find("does not match its DiffID"), std::string::npos);
  EXPECT_TRUE(store_->Layers().empty());
  EXPECT_EQ(CountEntries("diffs"), 0u);
  EXPECT_EQ(CountEntries("tmp"), 0u);
}

TEST_F(StoreTest, CorruptTarRegistersNothing) {
  std::string bad = tar_c_.substr(0, 50000);
  MemorySource src(bad);
  auto r = store_->RegisterLayer(std::nullopt, src);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kCorrupt);
  EXPECT_NE(r.error().msg.find("usr/c"), std::string::npos) << r.error().msg;
  EXPECT_EQ(CountEntries("diffs"), 0u);
  EXPECT_EQ(CountEntries("tmp"), 0u);
}

TEST_F(StoreTest, ConcurrentRegistrationOfOneLayerDoesTheWorkOnce) {
  std::atomic<uint64_t> read{0};
  Digest diff = Sha256::Of(tar_c_);
  std::vector<std::thread> threads;
  std::vector<Result<LayerInfo>> results(8, Result<LayerInfo>(Fail(Code::kIo, "not run")));
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      CountingSource src(tar_c_, &read);
      results[i] = store_->RegisterLayer(std::nullopt, src, diff);
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    ASSERT_TRUE(r) << r.error().msg;
    EXPECT_EQ(r->chain_id, diff);
  }
  EXPECT_EQ(read, tar_c_.size()) << "exactly one registration should have read the tar";
  EXPECT_EQ(CountEntries("layers"), 1u);
}

TEST_F(StoreTest, InjectedFailureAtEachStepLeavesNothing) {
  for (const char* step : {"layer:stream", "layer:index", "layer:commit-diff",
                           "layer:commit-record", "image:write", "image:commit"}) {
    SCOPED_TRACE(step);
    store_->inject_failure = [step](std::string_view at) -> Status {
      if (at == step) return Fail(Code::kIo, "injected");
      return {};
    };
    MemorySource a(tar_a_);
    auto layer = store_->RegisterLayer(std::nullopt, a);
    Status st = layer ? Status{} : Status(Fail(layer.error()));
    if (layer) {
      std::string config = Config({layer->diff_id});
      auto image = store_->RegisterImage({Sha256::Of(config).hex(), config, layer->chain_id, {}});
      st = image ? Status{} : Status(Fail(image.error()));
    }
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().msg, "injected");
    EXPECT_TRUE(store_->Images().empty());
    EXPECT_EQ(CountEntries("tmp"), 0u);
    // A restart finishes the job: layers the failed image left are not kept.
    store_->inject_failure = nullptr;
    Reopen();
    EXPECT_TRUE(store_->Images().empty());
    EXPECT_TRUE(store_->Layers().empty());
    EXPECT_EQ(CountEntries("diffs"), 0u);
    EXPECT_EQ(CountEntries("layers"), 0u);
  }
}

TEST_F(StoreTest, CrashAtAnyStepLeavesWholeImageOrNothing) {
  for (const char* step : {"layer:stream", "layer:index", "layer:commit-diff",
                           "layer:commit-record", "image:write", "image:commit"}) {
    SCOPED_TRACE(step);
    store_.reset();
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto s = Store::Open(dir_ / "store", {.create = true});
      if (!s) _exit(3);
      (*s)->inject_failure = [step](std::string_view at) -> Status {
        if (at == step) _exit(9);  // dies here, with its files half-written
        return {};
      };
      MemorySource a(tar_a_);
      auto layer = (*s)->RegisterLayer(std::nullopt, a);
      if (!layer) _exit(4);
      std::string config = Config({layer->diff_id});
      (void)(*s)->RegisterImage({Sha256::Of(config).hex(), config, layer->chain_id, {}});
      _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 9);
    Reopen();
    EXPECT_TRUE(store_->Images().empty());
    EXPECT_TRUE(store_->Layers().empty());
    EXPECT_EQ(CountEntries("tmp"), 0u);
    EXPECT_EQ(CountEntries("diffs"), 0u);
  }
  // And with no crash, the whole image.
  std::string id = AddImage({tar_a_});
  Reopen();
  EXPECT_TRUE(store_->GetImage(id));
}

TEST_F(StoreTest, RetainedLayerSurvivesUntilReleased) {
  std::string id = AddImage({tar_a_});
  Digest top = *store_->GetImage(id)->top_layer;
  {
    auto hold = store_->Retain(top);
    ASSERT_TRUE(hold);
    // A second store (another process's view) sees the retain too.
    auto other = Store::Open(dir_ / "store", {.create = true});
    ASSERT_TRUE(other);
    ASSERT_TRUE((*other)->DeleteImage(id));
    auto refused = (*other)->DeleteLayer(top);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().msg.find("transfer"), std::string::npos);
    ASSERT_TRUE(store_->Refresh());
    EXPECT_TRUE(store_->GetLayer(top));
  }
  ASSERT_TRUE(store_->DeleteLayer(top));
  EXPECT_TRUE(store_->Layers().empty());
}

// A concurrent rm or prune (another process) leaves the layers of an image being
// registered alone, found or stored, until the image commits.
TEST_F(StoreTest, ImageTransactionHoldsItsLayersAgainstOtherProcesses) {
  LayerInfo found = AddLayer(std::nullopt, tar_a_);
  auto other = Store::Open(dir_ / "store", {.create = true});
  ASSERT_TRUE(other);
  ImageTransaction tx(*store_);
  MemorySource a(tar_a_), b(tar_b_);
  auto refused_by_hold = [&](const Digest& chain) {
    auto refused = (*other)->DeleteLayer(chain);
    ASSERT_FALSE(refused) << "removed a layer of an image being registered";
    EXPECT_NE(refused.error().msg.find("transfer"), std::string::npos) << refused.error().msg;
  };
  ASSERT_TRUE(tx.AddLayer(std::nullopt, a, found.diff_id));
  refused_by_hold(found.chain_id);
  auto top = tx.AddLayer(found.chain_id, b, std::nullopt);
  ASSERT_TRUE(top);
  refused_by_hold(top->chain_id);
  std::string config = Config({found.diff_id, top->diff_id});
  ASSERT_TRUE(tx.Commit({Sha256::Of(config).hex(), config, top->chain_id, {}}));
  EXPECT_EQ(store_->Layers().size(), 2u);
}

// check's scan holds writers off: another process's tag waits until the pause ends.
TEST_F(StoreTest, PausedWritersWaitForTheScan) {
  std::string id = AddImage({tar_a_});
  auto other = Store::Open(dir_ / "store", {.create = true});
  ASSERT_TRUE(other);
  std::atomic<bool> tagged = false;
  std::thread writer;
  {
    auto paused = store_->PauseWriters();
    ASSERT_TRUE(paused);
    writer = std::thread([&] {
      EXPECT_TRUE((*other)->Tag(*ParseReference("example.com/app:1"), id));
      tagged = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_FALSE(tagged) << "a writer went ahead while writers were paused";
  }
  writer.join();
  EXPECT_TRUE(tagged);
  ASSERT_TRUE(store_->Refresh());
  EXPECT_EQ(*store_->ResolveImage("example.com/app:1"), id);
}

}  // namespace
}  // namespace imagefs
