#include "graph/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "graph/base/fs_util.h"
#include "graph/lazy_cache.h"
#include "graph/prune.h"
#include "store_fixture.h"

namespace imagefs {
namespace {

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

// podman before 4.9 wrote zstd:chunked layers without the zero blocks after the tar's end
// that the DiffID counts: those (and only those: whole blocks of zeros after an
// end-of-archive marker, less than a record) are restored, so the layer is the DiffID's.
TEST_F(StoreTest, MissingTarPaddingIsRestoredToMatchTheDiffId) {
  ASSERT_EQ(tar_a_.substr(tar_a_.size() - 1024), std::string(1024, '\0'));
  const std::string padded = tar_a_ + std::string(7680, '\0');
  const Digest diff_id = Sha256::Of(padded);
  MemorySource src(tar_a_);
  auto stored = store_->StoreDiff(src, diff_id);
  ASSERT_TRUE(stored) << stored.error().msg;
  EXPECT_EQ(testing::ReadAll(store_->BlobPath(diff_id)), padded);

  auto refused = [&](const std::string& content, const std::string& named) {
    MemorySource s(content);
    auto r = store_->StoreDiff(s, Sha256::Of(named));
    ASSERT_FALSE(r) << "stored " << content.size() << " bytes as " << named.size();
    EXPECT_NE(r.error().msg.find("does not match its DiffID"), std::string::npos) << r.error().msg;
  };
  refused(tar_b_, tar_b_ + std::string(10240, '\0'));       // a record or more
  refused(tar_c_.substr(0, tar_c_.size() - 1024), tar_c_);  // no end-of-archive marker
}

// A DiffID another process is storing is waited for; a wait that may be stopped ends when
// asked (a mount stopping), and otherwise goes on once the other process is done.
TEST_F(StoreTest, AWaitForAnotherProcessStoringTheLayerCanBeStopped) {
  const Digest diff_id = Sha256::Of(tar_a_);
  fs::path lock_path = dir_ / "store" / "locks" / diff_id.hex();
  // Another open file description is another flock owner, as another process would be.
  UniqueFd other(open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  ASSERT_GE(other.get(), 0);
  ASSERT_EQ(flock(other.get(), LOCK_EX), 0);

  std::atomic<bool> stop{false}, returned{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop = true;
    // A wait that ignored `stop` fails the test below rather than hanging it.
    for (int i = 0; i < 300 && !returned; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    flock(other.get(), LOCK_UN);
  });
  MemorySource src(tar_a_);
  auto start = std::chrono::steady_clock::now();
  auto stopped = store_->StoreDiff(src, diff_id, nullptr, [&] { return stop.load(); });
  auto took = std::chrono::steady_clock::now() - start;
  returned = true;
  stopper.join();
  ASSERT_FALSE(stopped);
  EXPECT_EQ(stopped.error().code, Code::kCancelled) << stopped.error().msg;
  EXPECT_NE(stopped.error().msg.find(lock_path.string()), std::string::npos) << stopped.error().msg;
  EXPECT_LT(took, std::chrono::seconds(2));
  EXPECT_FALSE(fs::exists(store_->BlobPath(diff_id)));

  ASSERT_EQ(flock(other.get(), LOCK_EX), 0);
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    flock(other.get(), LOCK_UN);
  });
  MemorySource again(tar_a_);
  auto stored = store_->StoreDiff(again, diff_id, nullptr, [] { return false; });
  releaser.join();
  ASSERT_TRUE(stored) << stored.error().msg;
  EXPECT_TRUE(*stored);
  EXPECT_EQ(testing::ReadAll(store_->BlobPath(diff_id)), tar_a_);
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

// Chunk caches of layers read by Range: those of stored layers are copies and go first
// (eviction, prune); others count toward the quota, and when they alone exceed it they go
// rather than every image; prune -a drops them all.
TEST_F(StoreTest, ChunkCachesCountAndGoOnceTheirLayerIsStored) {
  std::string lazy = AddImage({tar_a_});
  LazyCache cache(*store_);
  ASSERT_TRUE(cache.Mark(lazy));
  const Digest stored = store_->Layers().front().diff_id;
  const Digest blob = Sha256::Of("blob");
  const Digest unstored = Sha256::Of("a layer not stored");
  auto make_cache = [&](const Digest& diff_id, size_t bytes) {
    fs::path dir = cache.ChunkDir(diff_id, blob);
    fs::create_directories(dir);
    testing::WriteAll(dir / "content", std::string(bytes, 'x'));
    return dir;
  };
  fs::path of_stored = make_cache(stored, 64 << 10);
  fs::path of_unstored = make_cache(unstored, 64 << 10);
  EXPECT_EQ(of_stored.parent_path(), dir_ / "store/cache/chunks");
  EXPECT_GE(cache.ChunkBytes(), 128u << 10);

  EXPECT_EQ(cache.DropChunks(/*all=*/false), 64u << 10);
  EXPECT_FALSE(fs::exists(of_stored));
  EXPECT_TRUE(fs::exists(of_unstored));

  // Under a quota the image's layers fit in but the chunks alone do not: the chunks go, the
  // image stays.
  uint64_t layers = 0;
  for (const LayerInfo& l : store_->Layers()) layers += l.tar_size;
  EXPECT_TRUE(cache.Evict(std::min<uint64_t>(layers + 1, 32 << 10), "").empty());
  EXPECT_FALSE(fs::exists(of_unstored));
  EXPECT_TRUE(store_->GetImage(lazy));

  make_cache(unstored, 4096);
  (void)Prune(*store_, /*all=*/false);
  EXPECT_EQ(CountEntries("cache/chunks"), 1u) << "not stored: kept by prune";
  (void)Prune(*store_, /*all=*/true);
  EXPECT_EQ(CountEntries("cache/chunks"), 0u) << "prune -a drops every chunk cache";
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
