// Saved trees: mapped again as the same tree, refused (and rebuilt) when they or their
// inputs changed.
#include "graph/tree_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "tar_builder.h"
#include "test_util.h"

namespace imagefs {

namespace fs = std::filesystem;
namespace {

// Every node as a line: path, mode, size, link count, inode position, target.
std::string Listing(const Tree& tree) {
  std::string out;
  for (uint32_t id = 0; id < tree.size(); ++id) {
    TreeAttr a = tree.Attr(id);
    out += tree.Path(id) + "|" + std::to_string(a.mode) + "|" + std::to_string(a.size) + "|" +
           std::to_string(a.nlink) + "|" + std::to_string(a.inode) + "|" +
           std::string(tree.SymlinkTarget(id)) + "\n";
  }
  return out;
}

class TreeFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::Open(dir_ / "store", {.create = true});
    ASSERT_TRUE(s);
    store_ = std::move(*s);
    std::string lower = testing::MakeTar({{"etc/", "", S_IFDIR},
                                          {"etc/passwd", "root:x:0:0\n"},
                                          {"etc/gone", "x"},
                                          {"bin/", "", S_IFDIR},
                                          {"bin/sh", std::string(5000, 's')}});
    std::string upper = testing::MakeTar({{"etc/.wh.gone", ""}, {"etc/new", "new\n"}});
    MemorySource a(lower), b(upper);
    auto l1 = store_->RegisterLayer(std::nullopt, a);
    ASSERT_TRUE(l1);
    auto l2 = store_->RegisterLayer(l1->chain_id, b);
    ASSERT_TRUE(l2);
    bottom_ = l1->chain_id;
    top_ = l2->chain_id;
  }
  fs::path File(TreeKind kind) const {
    return store_->LayerFilePath(top_, kind == TreeKind::kMerged ? "merged.tree" : "diff.tree");
  }

  testing::ScratchDir dir_;
  std::unique_ptr<Store> store_;
  Digest bottom_, top_;
};

TEST_F(TreeFileTest, LoadSavesAndTheFileMapsToTheSameTree) {
  for (TreeKind kind : {TreeKind::kMerged, TreeKind::kDiff}) {
    auto built = TreeFile::Load(*store_, kind, top_);
    ASSERT_TRUE(built) << built.error().msg;
    ASSERT_TRUE(fs::exists(File(kind)));
    auto opened = TreeFile::Open(*store_, kind, top_);
    ASSERT_TRUE(opened) << opened.error().msg;
    EXPECT_EQ(Listing(**opened), Listing(**built));
    EXPECT_GT((*opened)->size(), 1u);
    auto node = (*opened)->Resolve("etc/passwd");
    if (kind == TreeKind::kMerged) {
      ASSERT_TRUE(node);
      char buf[64];
      auto n = (*opened)->Read(*node, 0, sizeof buf, buf);
      ASSERT_TRUE(n);
      EXPECT_EQ(std::string(buf, *n), "root:x:0:0\n");
      EXPECT_FALSE((*opened)->Resolve("etc/gone"));
    } else {
      EXPECT_FALSE(node);  // the upper layer's own entries only
      EXPECT_TRUE((*opened)->Resolve("etc/.wh.gone"));
    }
  }
}

TEST_F(TreeFileTest, DamagedOrOutdatedFilesAreRefusedAndRebuilt) {
  auto built = TreeFile::Load(*store_, TreeKind::kMerged, top_);
  ASSERT_TRUE(built);
  std::string good = testing::ReadAll(File(TreeKind::kMerged));
  auto damaged = [&](const std::string& bytes, const char* what) {
    testing::WriteAll(File(TreeKind::kMerged), bytes);
    auto opened = TreeFile::Open(*store_, TreeKind::kMerged, top_);
    EXPECT_FALSE(opened) << what;
    auto loaded = TreeFile::Load(*store_, TreeKind::kMerged, top_);
    ASSERT_TRUE(loaded) << what;
    EXPECT_EQ(Listing(**loaded), Listing(**built)) << what;
    EXPECT_EQ(testing::ReadAll(File(TreeKind::kMerged)), good) << what << ": saved again";
  };
  damaged(good.substr(0, good.size() - 1), "truncated");
  damaged(good + "x", "grown");
  std::string bad_magic = good;
  bad_magic[0] = 'X';
  damaged(bad_magic, "magic");
  // The merged tree of the lower chain saved under the upper layer's name.
  auto lower = TreeFile::Load(*store_, TreeKind::kMerged, bottom_);
  ASSERT_TRUE(lower);
  damaged(testing::ReadAll(store_->LayerFilePath(bottom_, "merged.tree")), "another chain's tree");
}

// Opening checks no node (it must cost the same at any size): a file damaged inside gives
// wrong answers, never a read outside the tree.
TEST_F(TreeFileTest, DamageInsideStaysInsideTheTree) {
  ASSERT_TRUE(TreeFile::Load(*store_, TreeKind::kMerged, top_));
  std::string good = testing::ReadAll(File(TreeKind::kMerged));
  const size_t nodes_at = 64 + 2 * 80;
  for (size_t field = 0; field < 9; ++field) {  // every field of node 1 and of node 2
    for (size_t node : {1, 2}) {
      std::string bad = good;
      uint32_t huge = 0xfffffff0u;
      std::memcpy(bad.data() + nodes_at + node * 36 + field * 4, &huge, sizeof huge);
      testing::WriteAll(File(TreeKind::kMerged), bad);
      auto tree = TreeFile::Open(*store_, TreeKind::kMerged, top_);
      // Opening looks node 1 up by its name (a check of the hash table): damage there may
      // be refused; anywhere else it is not seen until used.
      if (node == 1 && !tree) continue;
      ASSERT_TRUE(tree) << "node " << node << " field " << field << ": " << tree.error().msg;
      for (uint32_t id = 0; id < (*tree)->size(); ++id) {
        (void)(*tree)->Path(id);
        (void)(*tree)->Attr(id);
        (void)(*tree)->SymlinkTarget(id);
        (void)(*tree)->Xattrs(id);
        for (uint32_t child : (*tree)->Children(id)) {
          if (child < (*tree)->size()) (void)(*tree)->Name(child);  // as readdir does
        }
        char buf[16];
        (void)(*tree)->Read(id, 0, sizeof buf, buf);
      }
      (void)(*tree)->Resolve("etc/passwd");
      (void)(*tree)->Resolve("bin/sh");
    }
  }
}

}  // namespace
}  // namespace imagefs
