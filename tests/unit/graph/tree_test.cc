// Merged trees built from hostile layers: nothing recurses on their depth.
#include "graph/tree.h"

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

}  // namespace
}  // namespace imagefs
