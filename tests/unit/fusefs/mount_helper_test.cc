#include "fusefs/cli/mount_helper.h"

#include <gtest/gtest.h>

namespace imagefs {
namespace {

using Args = std::vector<std::string>;
const Args kSubcommands = {"mount", "load", "images"};

TEST(MountHelper, RecognisesTheFormMountFuseUses) {
  EXPECT_TRUE(IsMountHelperForm({"/srv/store", "/mnt", "-o", "rw"}, kSubcommands));
  EXPECT_TRUE(IsMountHelperForm({"store", "/mnt"}, kSubcommands));
  EXPECT_FALSE(IsMountHelperForm({"mount", "/mnt"}, kSubcommands));
  EXPECT_FALSE(IsMountHelperForm({"load", "x.tar"}, kSubcommands));
  EXPECT_FALSE(IsMountHelperForm({"--store", "s", "mount", "/mnt"}, kSubcommands));
  EXPECT_FALSE(IsMountHelperForm({"/srv/store"}, kSubcommands));
  EXPECT_FALSE(IsMountHelperForm({"store", "-o", "x"}, kSubcommands));
}

TEST(MountHelper, MapsOptionsToTheMountCommand) {
  auto args = TranslateMountHelperArgs(
      {"/srv/store", "/mnt", "-o",
       "rw,allow_other,dev,suid,uid=1000,opens=daemon,log_level=info,cache_nodes=5"});
  ASSERT_TRUE(args.has_value()) << args.error().msg;
  EXPECT_EQ(*args, (Args{"--store", "/srv/store", "--log-level", "info", "mount", "/mnt", "--opens",
                         "daemon", "--cache-nodes", "5", "--daemon", "-o",
                         "allow_other,dev,suid,uid=1000"}));
}

TEST(MountHelper, ForegroundStaysInTheForeground) {
  auto args = TranslateMountHelperArgs({"s", "/mnt", "-o", "ro,foreground"});
  ASSERT_TRUE(args.has_value());
  EXPECT_EQ(*args, (Args{"--store", "s", "mount", "/mnt"}));
}

TEST(MountHelper, RefusesWhatItDoesNotKnow) {
  for (const Args& bad : std::vector<Args>{{"s", "/mnt", "-o", "rw,bogus"},
                                           {"s", "/mnt", "-o", "opens"},
                                           {"s", "/mnt", "-o", "allow_other=1"},
                                           {"s", "/mnt", "-o", "uid"},
                                           {"s", "/mnt", "-f"},
                                           {"s", "/mnt", "-o"}}) {
    auto args = TranslateMountHelperArgs(bad);
    EXPECT_FALSE(args.has_value()) << bad.back();
  }
  auto args = TranslateMountHelperArgs({"s", "/mnt", "-o", "rw,bogus"});
  ASSERT_FALSE(args.has_value());
  EXPECT_NE(args.error().msg.find("unknown mount option \"bogus\""), std::string::npos);
}

}  // namespace
}  // namespace imagefs
