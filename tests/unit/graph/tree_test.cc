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

// A tree over a layer still being fetched reads through its fetcher, and offers no extent
// for zero-copy reads (which would read the data file unfetched).
TEST(Tree, ALayerBeingFetchedIsReadThroughItsFetcher) {
  testing::ScratchDir dir;
  std::string tar = testing::MakeTar({{"a.txt", "hello, fetcher\n"}});
  testing::WriteAll(dir / "layer.tar", tar);
  ASSERT_TRUE(WriteTarIndex(tar.data(), tar.size(), dir / "index").has_value());
  auto blob = std::make_shared<LayerBlob>();
  blob->diff_id = Sha256::Of(tar);
  blob->index = *TarIndex::Open(dir / "index");
  blob->fd = *OpenFile(dir / "layer.tar", O_RDONLY);
  auto fetcher = std::make_shared<RecordingFetcher>();
  blob->fetcher = fetcher;
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
