// Merged trees built from hostile layers: nothing recurses on their depth. And a tree over a
// layer still being fetched reads through its fetcher.
#include "graph/tree.h"

#include <fcntl.h>

#include "graph/base/fs_util.h"
#include "tar_builder.h"
#include "test_util.h"

namespace imagefs {
namespace {

TEST(Tree, VeryDeepDirectoryRemovedByWhiteout) {
  testing::ScratchDir dir;
  auto store = Store::Open(dir / "store", {.create = true});
  ASSERT_TRUE(store);
  std::string deep;
  for (int i = 0; i < 300000; ++i) deep += "d/";
  std::string lower_tar = testing::MakeTar({{deep + "f", "deep"}});
  std::string upper_tar = testing::MakeTar({{".wh.d", ""}});
  MemorySource lower_src(lower_tar), upper_src(upper_tar);
  auto lower = (*store)->RegisterLayer(std::nullopt, lower_src);
  ASSERT_TRUE(lower) << lower.error().msg;
  auto merged_lower = Tree::BuildMerged(**store, lower->chain_id);
  ASSERT_TRUE(merged_lower);
  EXPECT_EQ((*merged_lower)->size(), 300002u);  // root, 300,000 directories, the file
  EXPECT_TRUE((*merged_lower)->Resolve(deep + "f"));
  auto upper = (*store)->RegisterLayer(lower->chain_id, upper_src);
  ASSERT_TRUE(upper) << upper.error().msg;
  auto merged = Tree::BuildMerged(**store, upper->chain_id);
  ASSERT_TRUE(merged) << merged.error().msg;
  EXPECT_EQ((*merged)->size(), 1u) << "only the root is left";
}

// A stargz layer's TOC and landmarks are format, not files: hidden from its diff and from
// every merged tree; the same names in a layer that is not stargz are files like others.
TEST(Tree, StargzTocAndLandmarksAreHidden) {
  testing::ScratchDir dir;
  auto store = Store::Open(dir / "store", {.create = true});
  ASSERT_TRUE(store);
  std::string stargz_tar =
      testing::MakeTar({{".prefetch.landmark", "\x0f"},
                        {"etc/", "", S_IFDIR},
                        {"etc/os-release", "x"},
                        {"stargz.index.json", R"({"version":1,"entries":[]})"}});
  std::string plain_tar = testing::MakeTar(
      {{"stargz.index.json", "a file"}, {".no.prefetch.landmark", "yz"}, {"etc/", "", S_IFDIR}});
  MemorySource stargz_src(stargz_tar), plain_src(plain_tar);
  auto stargz = (*store)->RegisterLayer(std::nullopt, stargz_src);
  ASSERT_TRUE(stargz) << stargz.error().msg;
  for (auto tree :
       {Tree::BuildMerged(**store, stargz->chain_id), Tree::BuildDiff(**store, stargz->chain_id)}) {
    ASSERT_TRUE(tree) << tree.error().msg;
    EXPECT_TRUE((*tree)->Resolve("etc/os-release"));
    EXPECT_FALSE((*tree)->Resolve("stargz.index.json"));
    EXPECT_FALSE((*tree)->Resolve(".prefetch.landmark"));
  }
  // zstd:chunked keeps its TOC out of the tar: a landmark alone says what the layer is.
  std::string chunked_tar =
      testing::MakeTar({{".no.prefetch.landmark", "\x0f"}, {"usr/", "", S_IFDIR}});
  MemorySource chunked_src(chunked_tar);
  auto chunked = (*store)->RegisterLayer(stargz->chain_id, chunked_src);
  ASSERT_TRUE(chunked) << chunked.error().msg;
  auto chunked_tree = Tree::BuildMerged(**store, chunked->chain_id);
  ASSERT_TRUE(chunked_tree) << chunked_tree.error().msg;
  EXPECT_FALSE((*chunked_tree)->Resolve(".no.prefetch.landmark"));
  EXPECT_TRUE((*chunked_tree)->Resolve("usr"));
  auto plain = (*store)->RegisterLayer(stargz->chain_id, plain_src);
  ASSERT_TRUE(plain) << plain.error().msg;
  auto merged = Tree::BuildMerged(**store, plain->chain_id);
  ASSERT_TRUE(merged) << merged.error().msg;
  EXPECT_TRUE((*merged)->Resolve("stargz.index.json"));
  EXPECT_TRUE((*merged)->Resolve(".no.prefetch.landmark"));
  EXPECT_TRUE((*merged)->Resolve("etc/os-release"));
}

}  // namespace
}  // namespace imagefs

namespace imagefs {
namespace {

// A fetcher that records what it was asked for, and fails when told to.
class RecordingFetcher final : public BlobFetcher {
 public:
  Status Ensure(uint64_t offset, uint64_t len) override {
    asked.emplace_back(offset, len);
    if (fail) return Fail(Code::kCorrupt, "chunk digest mismatch");
    return {};
  }
  std::vector<std::pair<uint64_t, uint64_t>> asked;
  bool fail = false;
};

// A layer of tar whose reads go through fetcher, its files kept in dir.
std::shared_ptr<const LayerBlob> FetchedBlob(const std::filesystem::path& dir,
                                             const std::string& tar,
                                             std::shared_ptr<BlobFetcher> fetcher) {
  testing::WriteAll(dir / "layer.tar", tar);
  EXPECT_TRUE(WriteTarIndex(tar.data(), tar.size(), dir / "index").has_value());
  auto blob = std::make_shared<LayerBlob>();
  blob->diff_id = Sha256::Of(tar);
  blob->index = *TarIndex::Open(dir / "index");
  blob->fd = *OpenFile(dir / "layer.tar", O_RDONLY);
  blob->fetcher = std::move(fetcher);
  return blob;
}

// A tree over a layer still being fetched reads through its fetcher, and offers no extent
// for zero-copy reads (which would read the data file unfetched).
TEST(Tree, ALayerBeingFetchedIsReadThroughItsFetcher) {
  testing::ScratchDir dir;
  std::string tar = testing::MakeTar({{"a.txt", "hello, fetcher\n"}});
  auto fetcher = std::make_shared<RecordingFetcher>();
  auto blob = FetchedBlob(dir.path(), tar, fetcher);
  auto tree = Tree::BuildMergedFrom({blob});
  ASSERT_TRUE(tree.has_value()) << tree.error().msg;
  auto node = (*tree)->Resolve("a.txt");
  ASSERT_TRUE(node.has_value());
  EXPECT_FALSE((*tree)->ContiguousData(*node).has_value());
  char buf[64];
  auto n = (*tree)->Read(*node, 7, sizeof buf, buf);
  ASSERT_TRUE(n.has_value()) << n.error().msg;
  EXPECT_EQ(std::string(buf, *n), "fetcher\n");
  uint64_t data_offset = blob->index->entries()[0].data_offset;
  ASSERT_EQ(fetcher->asked.size(), 1u);
  EXPECT_EQ(fetcher->asked[0], std::make_pair(data_offset + 7, uint64_t{8})) << "just what is read";
  fetcher->fail = true;
  auto failed = (*tree)->Read(*node, 0, sizeof buf, buf);
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().ToErrno(), EIO);
  EXPECT_NE(failed.error().msg.find("chunk digest mismatch"), std::string::npos);
}

}  // namespace
}  // namespace imagefs

namespace imagefs {
namespace {

// A layer registered in a store of its own, and the store's merged tree over it.
std::shared_ptr<const Tree> StoredTree(const std::filesystem::path& dir, const std::string& tar) {
  auto store = Store::Open(dir, {.create = true});
  EXPECT_TRUE(store);
  MemorySource src(tar);
  auto layer = (*store)->RegisterLayer(std::nullopt, src);
  EXPECT_TRUE(layer) << layer.error().msg;
  auto tree = Tree::BuildMerged(**store, layer->chain_id);
  EXPECT_TRUE(tree) << tree.error().msg;
  return *tree;  // its layers hold their blobs open: the store may go
}

// A rootfs served by Range keeps its nodes once the layers are stored, and reads them there:
// no fetch, and an extent for zero-copy reads. Trees that differ are refused, by path.
TEST(Tree, ATreeCanReadItsDataFromAnotherOfTheSameEntries) {
  testing::ScratchDir dir;
  std::string tar = testing::MakeTar({{"etc/", "", S_IFDIR}, {"etc/a", "remote\n"}});
  auto fetcher = std::make_shared<RecordingFetcher>();
  auto blob = FetchedBlob(dir.path(), tar, fetcher);
  auto served = Tree::BuildMergedFrom({blob});
  ASSERT_TRUE(served.has_value()) << served.error().msg;
  uint32_t a = *(*served)->Resolve("etc/a");

  // Same names and sizes, other bytes: what is read shows where it comes from.
  auto stored =
      StoredTree(dir / "s1", testing::MakeTar({{"etc/", "", S_IFDIR}, {"etc/a", "stored\n"}}));
  auto both = Tree::WithDataOf(*served, stored);
  ASSERT_TRUE(both.has_value()) << both.error().msg;
  char buf[64];
  auto n = (*both)->Read(a, 0, sizeof buf, buf);
  ASSERT_TRUE(n.has_value()) << n.error().msg;
  EXPECT_EQ(std::string(buf, *n), "stored\n");
  EXPECT_TRUE(fetcher->asked.empty());
  EXPECT_FALSE((*both)->MayFetch(a));
  auto extent = (*both)->ContiguousData(a);
  ASSERT_TRUE(extent.has_value());
  EXPECT_EQ(extent->diff_id, stored->ContiguousData(a)->diff_id);
  EXPECT_EQ((*both)->Attr(a).inode, (*served)->Attr(a).inode);
  EXPECT_EQ((*both)->Path(a), "etc/a");
  EXPECT_TRUE((*served)->MayFetch(a)) << "the served tree itself is unchanged";

  auto longer =
      StoredTree(dir / "s2", testing::MakeTar({{"etc/", "", S_IFDIR}, {"etc/a", "stored!\n"}}));
  auto refused = Tree::WithDataOf(*served, longer);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().msg, "/etc/a has a different size");
  auto renamed =
      StoredTree(dir / "s3", testing::MakeTar({{"etc/", "", S_IFDIR}, {"etc/b", "stored\n"}}));
  refused = Tree::WithDataOf(*served, renamed);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().msg, "/etc/a has a different name");
  auto more = StoredTree(
      dir / "s4", testing::MakeTar({{"etc/", "", S_IFDIR}, {"etc/a", "stored\n"}, {"x", ""}}));
  EXPECT_FALSE(Tree::WithDataOf(*served, more).has_value());
  auto typed =
      StoredTree(dir / "s5", testing::MakeTar({{"etc/", "", S_IFDIR}, {"etc/a/", "", S_IFDIR}}));
  refused = Tree::WithDataOf(*served, typed);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().msg, "/etc/a has a different type");
}

}  // namespace
}  // namespace imagefs
