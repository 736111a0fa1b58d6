#include "fetch/auth_challenge.h"

#include <gtest/gtest.h>

namespace imagefs::fetch {
namespace {

TEST(AuthChallenge, DockerHubBearer) {
  auto c = ParseAuthChallenges(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull")");
  ASSERT_TRUE(c) << c.error().msg;
  ASSERT_EQ(c->size(), 1u);
  EXPECT_EQ((*c)[0].scheme, "bearer");
  EXPECT_EQ((*c)[0].params.at("realm"), "https://auth.docker.io/token");
  EXPECT_EQ((*c)[0].params.at("service"), "registry.docker.io");
  EXPECT_EQ((*c)[0].params.at("scope"), "repository:library/busybox:pull");
}

TEST(AuthChallenge, SeveralChallengesSpacingAndEscapes) {
  auto c = ParseAuthChallenges(
      R"(Basic realm="a \"quoted\" realm" , BEARER Realm=https://x/token, scope="a,b")");
  ASSERT_TRUE(c) << c.error().msg;
  ASSERT_EQ(c->size(), 2u);
  EXPECT_EQ((*c)[0].scheme, "basic");
  EXPECT_EQ((*c)[0].params.at("realm"), "a \"quoted\" realm");
  EXPECT_EQ((*c)[1].scheme, "bearer");
  EXPECT_EQ((*c)[1].params.at("realm"), "https://x/token");
  EXPECT_EQ((*c)[1].params.at("scope"), "a,b");
}

TEST(AuthChallenge, Errors) {
  EXPECT_FALSE(ParseAuthChallenges(R"(Bearer realm="unterminated)"));
  EXPECT_FALSE(ParseAuthChallenges("=oops"));
  auto empty = ParseAuthChallenges("");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

}  // namespace
}  // namespace imagefs::fetch
