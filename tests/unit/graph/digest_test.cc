#include "graph/base/digest.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace imagefs {
namespace {

TEST(Digest, Sha256KnownVectors) {
  EXPECT_EQ(Sha256::Of("").hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256::Of("abc").hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 h;
  h.Update("a");
  h.Update("bc");
  EXPECT_EQ(h.Finish(), Sha256::Of("abc"));
}

TEST(Digest, ParseValidatesStrictly) {
  std::string hex(64, 'a');
  ASSERT_TRUE(Digest::Parse("sha256:" + hex));
  EXPECT_EQ(Digest::Parse("sha256:" + hex)->str(), "sha256:" + hex);
  EXPECT_EQ(Digest::Parse("sha512:" + hex).error().code, Code::kUnsupported);
  EXPECT_EQ(Digest::Parse(hex).error().code, Code::kInvalid);
  EXPECT_FALSE(Digest::Parse("sha256:" + std::string(64, 'A')));
  EXPECT_FALSE(Digest::Parse("sha256:" + hex.substr(1)));
  EXPECT_FALSE(Digest::Parse("sha256:../../../../etc/passwd" + std::string(36, 'a')));
  EXPECT_FALSE(Digest::FromHex(""));
}

TEST(Digest, ChainIdMatchesShellComputation) {
  Digest a = Sha256::Of("layer a"), b = Sha256::Of("layer b"), c = Sha256::Of("layer c");
  EXPECT_EQ(ChainIdOf(nullptr, a), a);
  Digest ab = ChainIdOf(&a, b);
  auto shell =
      testing::Shell("printf '%s' '" + a.str() + " " + b.str() + "' | sha256sum | cut -c1-64");
  ASSERT_EQ(shell.status, 0);
  EXPECT_EQ(ab.hex() + "\n", shell.output);
  Digest abc = ChainIdOf(&ab, c);
  EXPECT_EQ(abc, Sha256::Of(ab.str() + " " + c.str()));
}

}  // namespace
}  // namespace imagefs
