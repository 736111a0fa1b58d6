#include "graph/store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "graph/base/fs_util.h"
#include "graph/image_transaction.h"
#include "graph/lazy_cache.h"
#include "graph/prune.h"
#include "tar_builder.h"
#include "test_util.h"

namespace imagefs {

namespace fs = std::filesystem;
namespace {

using testing::MakeTar;
using testing::ScratchDir;

// Counts what the store reads, to prove work is done once or not at all.
class CountingSource final : public ByteSource {
 public:
  CountingSource(std::string data, std::atomic<uint64_t>* counter)
      : data_(std::move(data)), counter_(counter) {}
  Result<size_t> Read(char* buf, size_t len) override {
    auto n = inner_.Read(buf, len);
    if (n) *counter_ += *n;
    return n;
  }

 private:
  std::string data_;
  MemorySource inner_{data_};
  std::atomic<uint64_t>* counter_;
};

std::string Config(const std::vector<Digest>& diff_ids,
                   const std::string& created = "2021-05-06T07:08:09Z") {
  std::string ids;
  for (const auto& d : diff_ids) ids += (ids.empty() ? "\"" : ",\"") + d.str() + "\"";
  // Odd spacing on purpose: the store must keep these bytes as they are.
  return "{\"created\":  \"" + created + "\", \"rootfs\": {\"type\":\"layers\",\"diff_ids\":[" +
         ids + "]}}";
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }
  void Reopen() {
    store_.reset();
    auto s = Store::Open(dir_ / "store", {.create = true});
    ASSERT_TRUE(s) << s.error().msg;
    store_ = std::move(*s);
  }
  LayerInfo AddLayer(const std::optional<Digest>& parent, const std::string& tar) {
    MemorySource src(tar);
    auto l = store_->RegisterLayer(parent, src);
    EXPECT_TRUE(l) << l.error().msg;
    return *l;
  }
  // Registers an image over the given layer tars; returns its ID.
  std::string AddImage(const std::vector<std::string>& tars, std::optional<std::string> parent = {},
                       const std::string& created = "2021-05-06T07:08:09Z") {
    std::optional<Digest> top;
    std::vector<Digest> diffs;
    for (const auto& t : tars) {
      LayerInfo l = AddLayer(top, t);
      top = l.chain_id;
      diffs.push_back(l.diff_id);
    }
    std::string config = Config(diffs, created);
    std::string id = Sha256::Of(config).hex();
    auto image = store_->RegisterImage({id, config, top, parent});
    EXPECT_TRUE(image) << image.error().msg;
    return id;
  }
  size_t CountEntries(const std::string& sub) {
    size_t n = 0;
    for ([[maybe_unused]] auto& e : fs::directory_iterator(dir_ / "store" / sub)) ++n;
    return n;
  }

  ScratchDir dir_;
  std::unique_ptr<Store> store_;
  const std::string tar_a_ = MakeTar({{"etc/", "", S_IFDIR}, {"etc/a", "alpha"}});
  const std::string tar_b_ = MakeTar({{"etc/b", "beta"}, {"etc/.wh.a", ""}});
  const std::string tar_c_ = MakeTar({{"usr/c", std::string(100000, 'c')}});
};

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

TEST_F(StoreTest, RegisterLayerStoresBlobByteExactWithIds) {
  LayerInfo a = AddLayer(std::nullopt, tar_a_);
  EXPECT_EQ(a.diff_id, Sha256::Of(tar_a_));
  EXPECT_EQ(a.chain_id, a.diff_id);
  EXPECT_EQ(testing::ReadAll(store_->BlobPath(a.diff_id)), tar_a_);
  LayerInfo b = AddLayer(a.chain_id, tar_b_);
  EXPECT_EQ(b.chain_id, Sha256::Of(a.chain_id.str() + " " + b.diff_id.str()));
  EXPECT_EQ(*b.parent, a.chain_id);
  EXPECT_EQ(b.entries, 2u);
  EXPECT_EQ(b.content_size, 4u);
  auto index = store_->OpenIndex(b.diff_id);
  ASSERT_TRUE(index);
  EXPECT_EQ((*index)->Path((*index)->entries()[1]), "etc/.wh.a");
  auto chain = store_->LayerChain(b.chain_id);
  ASSERT_TRUE(chain);
  ASSERT_EQ(chain->size(), 2u);
  EXPECT_EQ((*chain)[0].chain_id, a.chain_id);
}

TEST_F(StoreTest, ImageConfigKeptByteExact) {
  std::string id = AddImage({tar_a_, tar_b_});
  auto config = store_->ReadConfig(id);
  ASSERT_TRUE(config);
  EXPECT_EQ(Sha256::Of(*config).hex(), id);
  EXPECT_NE(config->find("\"created\":  \""), std::string::npos);
  auto image = store_->GetImage(id);
  ASSERT_TRUE(image);
  EXPECT_EQ(image->created, "2021-05-06T07:08:09Z");
  EXPECT_EQ(image->size, 9u);
  EXPECT_TRUE(store_->RegisterImage({id, *config, image->top_layer, {}}));  // idempotent
}

TEST_F(StoreTest, ImageNeedsItsLayersAndParent) {
  std::string config = Config({});
  auto missing = store_->RegisterImage({Sha256::Of(config).hex(), config, Sha256::Of("nope"), {}});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  auto orphan = store_->RegisterImage({Sha256::Of(config).hex(), config, {}, std::string(64, 'f')});
  ASSERT_FALSE(orphan);
  EXPECT_EQ(orphan.error().code, Code::kNotFound);
  EXPECT_FALSE(store_->RegisterImage({"NOTHEX", config, {}, {}}));
  EXPECT_FALSE(store_->RegisterImage({Sha256::Of("x").hex(), "not json", {}, {}}));
  EXPECT_TRUE(store_->Images().empty());
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

TEST_F(StoreTest, RestoreAfterRestart) {
  std::string base = AddImage({tar_a_});
  std::string child = AddImage({tar_a_, tar_b_}, base);
  auto ref = ParseReference("example.com/team/app:v1");
  ASSERT_TRUE(store_->Tag(*ref, child));
  auto layers_before = store_->Layers().size();
  Reopen();
  EXPECT_EQ(store_->Images().size(), 2u);
  EXPECT_EQ(store_->Layers().size(), layers_before);
  EXPECT_EQ(*store_->GetImage(child)->parent, base);
  EXPECT_EQ(*store_->ResolveImage("example.com/team/app:v1"), child);
  EXPECT_EQ(store_->Heads().size(), 1u);
  EXPECT_EQ(store_->Children(base), std::vector<std::string>{child});
}

TEST_F(StoreTest, PrefixLookup) {
  std::string id1 = AddImage({tar_a_}, {}, "2001-01-01T00:00:00Z");
  std::string id2 = AddImage({tar_b_}, {}, "2002-01-01T00:00:00Z");
  size_t common = 0;
  while (id1[common] == id2[common]) ++common;
  EXPECT_EQ(*store_->ResolveImageId(id1.substr(0, common + 1)), id1);
  EXPECT_EQ(*store_->ResolveImageId("sha256:" + id2.substr(0, common + 3)), id2);
  EXPECT_EQ(*store_->ResolveImageId(id1), id1);
  if (common > 0) {
    auto ambiguous = store_->ResolveImageId(id1.substr(0, common));
    ASSERT_FALSE(ambiguous);
    EXPECT_NE(ambiguous.error().msg.find("ambiguous"), std::string::npos);
  }
  auto all = store_->ResolveImageId("");
  EXPECT_FALSE(all);
  auto unknown = store_->ResolveImage("0000000000000000");
  if (id1.rfind("0000", 0) != 0 && id2.rfind("0000", 0) != 0) {
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.error().code, Code::kNotFound);
  }
  EXPECT_EQ(store_->ResolveImageId("xyz").error().code, Code::kInvalid);
  EXPECT_EQ(store_->ResolveImage("no-such-name").error().code, Code::kNotFound);
  LayerInfo l = *store_->GetLayer(*store_->GetImage(id1)->top_layer);
  EXPECT_EQ(*store_->ResolveLayerId(l.chain_id.hex().substr(0, 20)), l.chain_id);
}

TEST_F(StoreTest, RefcountedDelete) {
  std::string base = AddImage({tar_a_, tar_b_});
  std::string child = AddImage({tar_a_, tar_b_, tar_c_}, base);
  auto base_info = *store_->GetImage(base);
  auto child_info = *store_->GetImage(child);

  auto refused = store_->DeleteImage(base);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kBusy);
  EXPECT_NE(refused.error().msg.find("parent"), std::string::npos);
  auto layer_refused = store_->DeleteLayer(*base_info.top_layer);
  ASSERT_FALSE(layer_refused);
  EXPECT_NE(layer_refused.error().msg.find("uses it"), std::string::npos)
      << layer_refused.error().msg;
  auto base_layer = store_->LayerChain(*base_info.top_layer)->front();
  EXPECT_NE(store_->DeleteLayer(base_layer.chain_id).error().msg.find("child"), std::string::npos);
  EXPECT_EQ(store_->ImagesUsingLayer(base_layer.chain_id), 2u);

  ASSERT_TRUE(store_->DeleteImage(child));
  EXPECT_FALSE(store_->GetLayer(*child_info.top_layer));  // only the child used it
  EXPECT_TRUE(store_->GetLayer(*base_info.top_layer));
  EXPECT_EQ(CountEntries("diffs"), 2u);
  ASSERT_TRUE(store_->DeleteImage(base));
  EXPECT_TRUE(store_->Layers().empty());
  EXPECT_EQ(CountEntries("diffs"), 0u);
  EXPECT_EQ(CountEntries("images"), 0u);
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

TEST_F(StoreTest, TagsNormaliseAndPersist) {
  std::string id = AddImage({tar_a_});
  auto tagless = store_->Tag(*ParseReference("busybox"), id);  // a tag-less reference is refused...
  ASSERT_FALSE(tagless);
  EXPECT_EQ(tagless.error().code, Code::kInvalid);
  ASSERT_TRUE(
      store_->Tag(WithDefaultTag(*ParseReference("busybox")), id));  // ...and defaulted here
  EXPECT_EQ(store_->Tags().begin()->first, "docker.io/library/busybox:latest");
  EXPECT_EQ(*store_->ResolveImage("docker.io/library/busybox:latest"), id);
  EXPECT_EQ(*store_->ResolveImage("busybox"), id);
  EXPECT_EQ(*store_->ResolveImage("library/busybox:latest"), id);
  EXPECT_EQ(store_->TagsOf(id).at(0).FamiliarString(), "busybox:latest");
  auto unknown_image = store_->Tag(WithDefaultTag(*ParseReference("x")), std::string(64, 'e'));
  EXPECT_EQ(unknown_image.error().code, Code::kNotFound);
  Reopen();
  EXPECT_EQ(*store_->ResolveImage("busybox:latest"), id);
  ASSERT_TRUE(store_->Untag(*ParseReference("busybox")));
  EXPECT_EQ(store_->Untag(*ParseReference("busybox")).error().code, Code::kNotFound);
  EXPECT_TRUE(store_->GetImage(id));
  Reopen();
  EXPECT_TRUE(store_->Tags().empty());
}

TEST_F(StoreTest, SecondInstanceSeesChangesAfterRefresh) {
  auto other = Store::Open(dir_ / "store", {.create = true});
  ASSERT_TRUE(other);
  std::string id = AddImage({tar_a_});
  EXPECT_FALSE((*other)->GetImage(id));
  ASSERT_TRUE((*other)->Refresh());
  EXPECT_TRUE((*other)->GetImage(id));
  ASSERT_TRUE((*other)->Tag(WithDefaultTag(*ParseReference("t")), id));
  ASSERT_TRUE(store_->Refresh());
  EXPECT_EQ(*store_->ResolveImage("t"), id);
}

TEST_F(StoreTest, RefusesUnknownStoreFormat) {
  store_.reset();
  testing::WriteAll(dir_ / "store" / "VERSION", "imagefs-store 99\n");
  auto s = Store::Open(dir_ / "store", {.create = true});
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().msg.find("format version 99; this imagefs reads format version 1"),
            std::string::npos)
      << s.error().msg;
  EXPECT_EQ(testing::ReadAll(dir_ / "store" / "VERSION"),
            "imagefs-store 99\n");  // never "upgraded"
}

// Lists a directory with each entry's type and mtime: what "left as it was" means.
std::string Snapshot(const fs::path& dir) {
  std::string out;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    struct stat st;
    lstat(e.path().c_str(), &st);
    out += e.path().string() + " " + std::to_string(st.st_mode) + " " +
           std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + "\n";
  }
  return out;
}

TEST_F(StoreTest, OpensOnlyStoresAndCreatesOnlyWhereAsked) {
  fs::path missing = dir_ / "missing", empty = dir_ / "empty", other = dir_ / "other";
  fs::create_directories(empty);
  fs::create_directories(other / "sub");
  testing::WriteAll(other / "notes.txt", "mine\n");
  std::string before_empty = Snapshot(empty), before_other = Snapshot(other);

  auto r = Store::Open(missing);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kNotFound);
  EXPECT_EQ(r.error().msg, "no store at " + missing.string());
  EXPECT_FALSE(fs::exists(missing));
  r = Store::Open(empty);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().msg, "no store at " + empty.string());
  EXPECT_EQ(Snapshot(empty), before_empty);
  for (bool create : {false, true}) {
    r = Store::Open(other, {.create = create});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().msg.find("choose an empty or new directory"), std::string::npos)
        << r.error().msg;
    EXPECT_EQ(Snapshot(other), before_other);
  }

  r = Store::Open(empty, {.create = true});
  ASSERT_TRUE(r) << r.error().msg;
  struct stat st;
  ASSERT_EQ(stat(empty.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  r = Store::Open(missing / "deeper", {.create = true});
  ASSERT_TRUE(r) << r.error().msg;
  ASSERT_EQ(stat((missing / "deeper").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  r.value().reset();
  EXPECT_TRUE(Store::Open(missing / "deeper"));  // a store now: read-only commands open it
}

TEST_F(StoreTest, EverythingInAStoreIsPrivate) {
  MemorySource src(tar_a_);
  ASSERT_TRUE(store_->RegisterLayer(std::nullopt, src));
  ASSERT_TRUE(store_->RegisterImage({std::string(64, 'a'), "{}", std::nullopt, std::nullopt}));
  std::error_code ec;
  size_t checked = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "store", ec)) {
    struct stat st;
    ASSERT_EQ(lstat(e.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 077, 0u) << e.path() << " has mode " << std::oct << (st.st_mode & 07777);
    ++checked;
  }
  EXPECT_GT(checked, 10u);
}

TEST_F(StoreTest, LayerSizeLimit) {
  store_.reset();
  StoreOptions small;
  small.max_layer_bytes = 4096;
  auto s = Store::Open(dir_ / "store", small);
  ASSERT_TRUE(s);
  MemorySource src(tar_c_);
  auto r = (*s)->RegisterLayer(std::nullopt, src);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().msg.find("larger than the limit"), std::string::npos);
}

// Only images marked lazy are evicted, least recently used first, until the layers fit;
// the one being used is kept; markers of images that went are dropped by prune.
TEST_F(StoreTest, LazyCacheEvictsLeastRecentlyUsedMarkedImagesOnly) {
  std::string loaded = AddImage({tar_c_});  // not marked: stays
  std::string old_lazy = AddImage({tar_a_}, {}, "2001-01-01T00:00:00Z");
  std::string new_lazy = AddImage({tar_b_}, {}, "2002-01-01T00:00:00Z");
  LazyCache cache(*store_);
  ASSERT_TRUE(cache.Mark(old_lazy));
  ASSERT_TRUE(cache.Mark(new_lazy));
  struct timespec times[2] = {{1000, 0}, {1000, 0}};  // old_lazy was used long ago
  ASSERT_EQ(utimensat(AT_FDCWD, (dir_ / "store/cache/lazy" / old_lazy).c_str(), times, 0), 0);
  cache.Touch(new_lazy);
  EXPECT_FALSE(fs::exists(dir_ / "store/cache/lazy" / loaded));

  EXPECT_TRUE(cache.Evict(0, "").empty()) << "quota 0: no quota";
  uint64_t all = 0;
  for (const LayerInfo& l : store_->Layers()) all += l.tar_size;
  EXPECT_TRUE(cache.Evict(all, "").empty()) << "everything fits";
  EXPECT_EQ(cache.Evict(all - 1, ""), std::vector<std::string>{old_lazy});
  EXPECT_TRUE(store_->GetImage(new_lazy));
  EXPECT_EQ(cache.Evict(1, new_lazy), std::vector<std::string>{}) << "kept: in use";
  EXPECT_EQ(cache.Evict(1, ""), std::vector<std::string>{new_lazy});
  EXPECT_TRUE(store_->GetImage(loaded)) << "never marked, never evicted";

  std::string pulled = AddImage({tar_a_}, {}, "2003-01-01T00:00:00Z");
  ASSERT_TRUE(cache.Mark(pulled));
  cache.Unmark(pulled);  // pulled again on purpose
  EXPECT_TRUE(cache.Evict(1, "").empty());
  std::string gone = AddImage({tar_b_}, {}, "2004-01-01T00:00:00Z");
  ASSERT_TRUE(cache.Mark(gone));
  ASSERT_TRUE(store_->DeleteImage(gone));
  EXPECT_EQ(cache.DropStale(), 1u);
  EXPECT_EQ(CountEntries("cache/lazy"), 0u);
}

TEST_F(StoreTest, PruneRemovesUnusedLayersAndWithAllUntaggedLeaves) {
  std::string base = AddImage({tar_a_});
  std::string child = AddImage({tar_a_, tar_b_}, base);
  std::string tagged = AddImage({tar_c_});
  ASSERT_TRUE(store_->Tag(*ParseReference("example.com/keep:1"), tagged));
  LayerInfo loose = AddLayer(std::nullopt, MakeTar({{"loose", "x"}}));
  LazyCache cache(*store_);
  ASSERT_TRUE(cache.Mark(child));

  PruneReport some = Prune(*store_, /*all=*/false);
  EXPECT_TRUE(some.images.empty());
  EXPECT_EQ(some.layers, std::vector<Digest>{loose.chain_id});
  EXPECT_EQ(some.freed_bytes, loose.tar_size);

  PruneReport all = Prune(*store_, /*all=*/true);
  EXPECT_EQ(all.images, (std::vector<std::string>{child, base})) << "a chain goes top-down";
  EXPECT_TRUE(all.layers.empty()) << "an image's own layers go with it";
  EXPECT_EQ(store_->Layers().size(), 1u);
  EXPECT_GT(all.freed_bytes, 0u);
  EXPECT_TRUE(all.errors.empty());
  EXPECT_TRUE(store_->GetImage(tagged));
  EXPECT_EQ(store_->Images().size(), 1u);
  EXPECT_EQ(CountEntries("cache/lazy"), 0u) << "the marker of a pruned image goes too";
}

}  // namespace
}  // namespace imagefs
