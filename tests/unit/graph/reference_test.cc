#include "graph/reference.h"

#include <gtest/gtest.h>

namespace imagefs {
namespace {

TEST(Reference, NormalisesAsDocker) {
  struct Case {
    const char* in;
    const char* canonical;
    const char* familiar;
  } cases[] = {
      {"busybox", "docker.io/library/busybox:latest", "busybox:latest"},
      {"busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"},
      {"library/busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"},
      {"docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"},
      {"index.docker.io/user/app:v1", "docker.io/user/app:v1", "user/app:v1"},
      {"user/app", "docker.io/user/app:latest", "user/app:latest"},
      {"localhost/app", "localhost/app:latest", "localhost/app:latest"},
      {"localhost:5000/a/b/c:tag", "localhost:5000/a/b/c:tag", "localhost:5000/a/b/c:tag"},
      {"quay.io/org/img:1.0-rc_1", "quay.io/org/img:1.0-rc_1", "quay.io/org/img:1.0-rc_1"},
      {"127.0.0.1:5000/x", "127.0.0.1:5000/x:latest", "127.0.0.1:5000/x:latest"},
      {"a__b/c-d.e", "docker.io/a__b/c-d.e:latest", "a__b/c-d.e:latest"},
  };
  for (const auto& c : cases) {
    auto ref = ParseReference(c.in);
    ASSERT_TRUE(ref) << c.in << ": " << ref.error().msg;
    EXPECT_EQ(WithDefaultTag(*ref).String(), c.canonical) << c.in;
    EXPECT_EQ(WithDefaultTag(*ref).FamiliarString(), c.familiar) << c.in;
  }
}

TEST(Reference, Digests) {
  std::string d = "sha256:" + std::string(64, 'b');
  auto ref = ParseReference("busybox@" + d);
  ASSERT_TRUE(ref);
  EXPECT_EQ(ref->tag, "");
  EXPECT_EQ(ref->digest->str(), d);
  EXPECT_EQ(WithDefaultTag(*ref).String(), "docker.io/library/busybox@" + d);
  auto both = ParseReference("host:1/x:t@" + d);
  ASSERT_TRUE(both);
  EXPECT_EQ(both->String(), "host:1/x:t@" + d);
}

TEST(Reference, RejectsWithDockerMessages) {
  for (const char* bad : {"", "UPPER/case", "Busybox", "a//b", "-a", "a-", "busybox:", "busybox:-x",
                          "busybox@sha256:abc",
                          "x:"
                          "tag/withslash",
                          ":tag", "a..b"}) {
    auto ref = ParseReference(bad);
    EXPECT_FALSE(ref) << bad;
    if (!ref) {
      EXPECT_EQ(ref.error().msg.rfind("invalid reference format", 0), 0u) << ref.error().msg;
    }
  }
  EXPECT_NE(ParseReference("Upper").error().msg.find("lowercase"), std::string::npos);
  EXPECT_FALSE(ParseReference("a/" + std::string(300, 'b')));
  EXPECT_FALSE(ParseReference("busybox:" + std::string(129, 't')));
}

}  // namespace
}  // namespace imagefs
