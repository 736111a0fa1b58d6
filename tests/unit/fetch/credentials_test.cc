// Credentials from Docker's config, credential helpers (real scripts on PATH),
// $DOCKER_AUTH_CONFIG and containers-auth.json files.
#include "fetch/credentials.h"

#include <stdlib.h>

#include <atomic>
#include <thread>

#include "fetch/credential_helper.h"
#include "test_util.h"

namespace imagefs::fetch {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Sets an environment variable for one scope and puts the old value back.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::optional<std::string>& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      setenv(name, value->c_str(), 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

std::string B64(const std::string& s) {
  return testing::Shell("printf '%s' '" + s + "' | base64 -w0").output;
}

// Helpers written as shell scripts into a directory put first on PATH. Each logs the
// server URL it was asked for to DIR/asked; what it answers depends on that URL.
class HelperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(bin());
    Script("store",
           R"(printf '{"ServerURL":"%s","Username":"store-user","Secret":"store-pw"}' "$url")");
    Script("per", R"(case "$url" in
  *notfound*) echo "credentials not found in native keychain"; exit 1;;
  *fail*) echo '{"Username":"u","Secret":"SECRET-ON-STDOUT"}'; echo "the keychain is locked" >&2; exit 3;;
  *slow*) exec sleep 30;;
  *garbage*) echo 'SECRET-NOT-JSON';;
  *token*) printf '{"ServerURL":"%s","Username":"<token>","Secret":"id-token"}' "$url";;
  *) printf '{"ServerURL":"%s","Username":"per-user","Secret":"per-pw"}' "$url";;
esac)");
    path_.emplace("PATH", bin().string() + ":" + std::getenv("PATH"));
  }
  fs::path bin() const { return dir_.path() / "bin"; }
  void Script(const std::string& name, const std::string& body) {
    fs::path p = bin() / ("docker-credential-" + name);
    testing::WriteAll(p, "#!/bin/sh\nread -r url\necho \"$url\" >> " +
                             (dir_.path() / "asked").string() + "\n" + body + "\n");
    fs::permissions(p, fs::perms::owner_all);
  }
  std::string Asked() { return testing::ReadAll(dir_.path() / "asked"); }
  CredentialSource Docker(const std::string& config) {
    testing::WriteAll(dir_.path() / "config.json", config);
    CredentialLocations where;
    where.docker_config = dir_.path() / "config.json";
    where.helper_timeout = std::chrono::milliseconds(700);
    return CredentialSource(std::nullopt, where);
  }

  testing::ScratchDir dir_;
  std::optional<ScopedEnv> path_;
};

TEST(Credentials, DockerConfigAndFlag) {
  testing::ScratchDir dir;
  testing::WriteAll(dir.path() / "config.json", R"({"auths": {
    "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="},
    "127.0.0.1:5000": {"auth": "YWxpY2U6cDQ6c3M="},
    "https://reg.example": {"username": "bob", "password": "pw"}}})");
  CredentialSource source(std::nullopt, dir.path() / "config.json");
  auto hub = source.Lookup("docker.io");
  ASSERT_TRUE(hub && *hub);
  EXPECT_EQ((*hub)->username, "hub");
  EXPECT_EQ((*hub)->password, "secret");
  auto local = source.Lookup("127.0.0.1:5000");
  ASSERT_TRUE(local && *local);
  EXPECT_EQ((*local)->password, "p4:ss");
  auto bob = source.Lookup("reg.example");
  ASSERT_TRUE(bob && *bob);
  EXPECT_EQ((*bob)->username, "bob");
  auto none = source.Lookup("quay.io");
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  CredentialSource flag(*ParseCredsFlag("u:p:q"), dir.path() / "config.json");
  EXPECT_EQ((*flag.Lookup("docker.io"))->password, "p:q");
  EXPECT_FALSE(ParseCredsFlag("nopassword"));
  // Read again at every lookup: a login after start is seen, a broken file named.
  testing::WriteAll(dir.path() / "config.json", R"({"auths": {"quay.io": {"auth": "eDp5"}}})");
  auto later = source.Lookup("quay.io");
  ASSERT_TRUE(later && *later);
  EXPECT_EQ((*later)->username, "x");
  testing::WriteAll(dir.path() / "config.json", R"({"auths": {"h": {"auth": "!!!"}}})");
  auto bad = source.Lookup("h");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().msg.find("config.json"), std::string::npos);
  testing::WriteAll(dir.path() / "config.json", "{not json");
  bad = source.Lookup("h");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().msg.find("config.json"), std::string::npos);
  // An empty path is the anonymous source.
  auto anon = CredentialSource(std::nullopt, fs::path()).Lookup("docker.io");
  ASSERT_TRUE(anon);
  EXPECT_FALSE(*anon);
}

TEST(Credentials, IdentityTokenInAuths) {
  testing::ScratchDir dir;
  testing::WriteAll(dir.path() / "config.json",
                    R"({"auths": {"a.example": {"identitytoken": "tok-a"},
    "b.example": {"auth": ")" +
                        B64("bob:") + R"(", "identitytoken": "tok-b"},
    "c.example": {}}})");
  CredentialSource source(std::nullopt, dir.path() / "config.json");
  auto a = source.Lookup("a.example");
  ASSERT_TRUE(a && *a) << (a ? "none" : a.error().msg);
  EXPECT_EQ((*a)->identity_token, "tok-a");
  EXPECT_EQ((*a)->password, "");
  auto b = source.Lookup("b.example");
  ASSERT_TRUE(b && *b);
  EXPECT_EQ((*b)->username, "bob");
  EXPECT_EQ((*b)->identity_token, "tok-b");
  auto c = source.Lookup("c.example");  // what Docker leaves beside a credsStore
  ASSERT_TRUE(c);
  EXPECT_FALSE(*c);
}

TEST_F(HelperTest, CredHelpersThenCredsStoreThenAuths) {
  const std::string auths = R"("auths": {"one.example": {"auth": ")" + B64("file:one") +
                            R"("}, "two.example": {"auth": ")" + B64("file:two") + R"("}})";
  auto source =
      Docker(R"({"credHelpers": {"one.example": "per"}, "credsStore": "store", )" + auths + "}");
  auto one = source.Lookup("one.example");
  ASSERT_TRUE(one && *one) << (one ? "none" : one.error().msg);
  EXPECT_EQ((*one)->username, "per-user");
  EXPECT_EQ((*one)->password, "per-pw");
  // credsStore serves every other host; as in Docker, the file's auths are not used then.
  auto two = source.Lookup("two.example");
  ASSERT_TRUE(two && *two);
  EXPECT_EQ((*two)->username, "store-user");
  auto hub = source.Lookup("docker.io");
  ASSERT_TRUE(hub && *hub);
  EXPECT_EQ(Asked(), "one.example\ntwo.example\nhttps://index.docker.io/v1/\n");
  // Without credsStore, hosts without a helper use auths.
  source = Docker(R"({"credHelpers": {"one.example": "per"}, )" + auths + "}");
  two = source.Lookup("two.example");
  ASSERT_TRUE(two && *two);
  EXPECT_EQ((*two)->username, "file");
  EXPECT_EQ((*two)->password, "two");
  one = source.Lookup("one.example");
  ASSERT_TRUE(one && *one);
  EXPECT_EQ((*one)->username, "per-user");
}

TEST_F(HelperTest, NotFoundIsAnonymousAndIdentityTokens) {
  auto source = Docker(R"({"credHelpers": {"notfound.example": "per", "token.example": "per"},
    "auths": {"notfound.example": {"auth": ")" +
                       B64("file:pw") + R"("}}})");
  auto none = source.Lookup("notfound.example");
  ASSERT_TRUE(none) << none.error().msg;
  EXPECT_FALSE(*none);
  auto token = source.Lookup("token.example");
  ASSERT_TRUE(token && *token);
  EXPECT_EQ((*token)->identity_token, "id-token");
  EXPECT_EQ((*token)->username, "");
  EXPECT_EQ((*token)->password, "");
}

TEST_F(HelperTest, FailuresNameTheHelperNeverTheSecret) {
  auto source = Docker(R"({"credHelpers": {"fail.example": "per", "garbage.example": "per",
    "missing.example": "nosuch", "evil.example": "../../bin/sh"}})");
  auto failed = source.Lookup("fail.example");
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, Code::kAuth);
  const std::string& msg = failed.error().msg;
  EXPECT_NE(msg.find("docker-credential-per"), std::string::npos) << msg;
  EXPECT_NE(msg.find("exit status 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("the keychain is locked"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("SECRET"), std::string::npos) << msg;
  auto garbage = source.Lookup("garbage.example");
  ASSERT_FALSE(garbage);
  EXPECT_NE(garbage.error().msg.find("not {\"Username\", \"Secret\"} JSON"), std::string::npos);
  EXPECT_EQ(garbage.error().msg.find("SECRET"), std::string::npos) << garbage.error().msg;
  auto missing = source.Lookup("missing.example");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().msg.find("docker-credential-nosuch: not found on PATH"),
            std::string::npos)
      << missing.error().msg;
  auto evil = source.Lookup("evil.example");
  ASSERT_FALSE(evil);
  EXPECT_NE(evil.error().msg.find("invalid credential helper name"), std::string::npos);
}

TEST_F(HelperTest, AHelperThatHangsIsKilled) {
  auto source = Docker(R"({"credsStore": "per"})");
  auto start = Clock::now();
  auto slow = source.Lookup("slow.example");
  auto took = Clock::now() - start;
  ASSERT_FALSE(slow);
  EXPECT_NE(slow.error().msg.find("no answer within 700 ms, killed"), std::string::npos)
      << slow.error().msg;
  EXPECT_LT(took, std::chrono::seconds(5));
}

// A mount stopping must not wait out a hung helper's timeout.
TEST_F(HelperTest, AHelperStillRunningWhenTheCallerStopsIsKilled) {
  testing::WriteAll(dir_.path() / "config.json", R"({"credsStore": "per"})");
  CredentialLocations where;
  where.docker_config = dir_.path() / "config.json";
  where.helper_timeout = std::chrono::seconds(60);
  CredentialSource source(std::nullopt, where);
  std::atomic<bool> stop{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop = true;
  });
  auto start = Clock::now();
  auto slow = source.Lookup("slow.example", "", [&] { return stop.load(); });
  auto took = Clock::now() - start;
  stopper.join();
  ASSERT_FALSE(slow);
  EXPECT_EQ(slow.error().code, Code::kCancelled) << slow.error().msg;
  EXPECT_NE(slow.error().msg.find("docker-credential-per get slow.example: cancelled"),
            std::string::npos)
      << slow.error().msg;
  EXPECT_GE(took, std::chrono::milliseconds(300));
  EXPECT_LT(took, std::chrono::seconds(5));
  // Not stopped: the same helper's answers are unchanged.
  auto fine = source.Lookup("a.example", "", [] { return false; });
  ASSERT_TRUE(fine && *fine) << (fine ? "none" : fine.error().msg);
  EXPECT_EQ((*fine)->password, "per-pw");
}

TEST_F(HelperTest, ConcurrentLookups) {
  auto source = Docker(R"({"credsStore": "per"})");
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < 5; ++j) {
        auto c = source.Lookup(i % 2 == 0 ? "a.example" : "token.example");
        if (c && *c && ((*c)->password == "per-pw" || (*c)->identity_token == "id-token")) ++good;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 40);
}

TEST(Credentials, DockerAuthConfigReplacesTheFile) {
  testing::ScratchDir dir;
  testing::WriteAll(dir.path() / "config.json",
                    R"({"auths": {"a.example": {"auth": ")" + B64("file:pw") + R"("}}})");
  CredentialLocations where;
  where.docker_config = dir.path() / "config.json";
  where.docker_auth_config = R"({"auths": {"b.example": {"auth": ")" + B64("env:pw") + R"("}}})";
  CredentialSource source(std::nullopt, where);
  auto b = source.Lookup("b.example");
  ASSERT_TRUE(b && *b);
  EXPECT_EQ((*b)->username, "env");
  auto a = source.Lookup("a.example");
  ASSERT_TRUE(a);
  EXPECT_FALSE(*a);
  where.docker_auth_config = "{oops";
  auto bad = CredentialSource(std::nullopt, where).Lookup("b.example");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().msg.find("$DOCKER_AUTH_CONFIG"), std::string::npos);
  ScopedEnv env("DOCKER_AUTH_CONFIG", R"({"auths": {}})");
  EXPECT_EQ(CredentialLocations::FromEnvironment().docker_auth_config, R"({"auths": {}})");
}

TEST(Credentials, AuthJsonAfterDockerInOrderMostSpecificKey) {
  testing::ScratchDir dir;
  fs::path docker = dir.path() / "config.json", first = dir.path() / "run.json",
           second = dir.path() / "config-home.json";
  testing::WriteAll(docker, R"({"auths": {"d.example": {"auth": ")" + B64("docker:pw") + R"("}}})");
  testing::WriteAll(first, R"({"auths": {
    "a.example": {"auth": ")" + B64("first:host") +
                               R"("},
    "a.example/team": {"auth": ")" +
                               B64("first:team") + R"("},
    "a.example/team/app": {"auth": ")" +
                               B64("first:app") + R"("},
    "d.example": {"auth": ")" + B64("first:d") +
                               R"("}}})");
  testing::WriteAll(second, R"({"auths": {
    "a.example": {"auth": ")" + B64("second:a") +
                                R"("},
    "https://index.docker.io/v1/": {"auth": ")" +
                                B64("second:hub") + R"("},
    "b.example": {"auth": ")" + B64("second:b") +
                                R"("}}})");
  CredentialLocations where;
  where.docker_config = docker;
  where.auth_files = {dir.path() / "absent.json", first, second};
  CredentialSource source(std::nullopt, where);
  auto password = [&](const std::string& host, const std::string& repo) -> std::string {
    auto c = source.Lookup(host, repo);
    if (!c) return "error: " + c.error().msg;
    return *c ? (*c)->username + ":" + (*c)->password : "none";
  };
  EXPECT_EQ(password("d.example", "x/y"), "docker:pw");  // Docker's config first
  EXPECT_EQ(password("a.example", "team/app"), "first:app");
  EXPECT_EQ(password("a.example", "team/app/sub"), "first:app");
  EXPECT_EQ(password("a.example", "team/other"), "first:team");
  EXPECT_EQ(password("a.example", "teamx/y"), "first:host");
  EXPECT_EQ(password("a.example", ""), "first:host");
  EXPECT_EQ(password("b.example", "x"), "second:b");  // the next file
  EXPECT_EQ(password("docker.io", "library/debian"), "second:hub");
  EXPECT_EQ(password("c.example", "x"), "none");
  testing::WriteAll(second, "[]");
  EXPECT_EQ(password("b.example", "x"), "error: " + second.string() + ": not a JSON object");
}

TEST(Credentials, AuthJsonLocationsFollowContainersAuthJson) {
  ScopedEnv home("HOME", "/home/u");
  ScopedEnv config_home("XDG_CONFIG_HOME", std::nullopt);
  ScopedEnv runtime("XDG_RUNTIME_DIR", "/run/user/7");
  ScopedEnv file("REGISTRY_AUTH_FILE", std::nullopt);
  ScopedEnv docker("DOCKER_CONFIG", std::nullopt);
  auto w = CredentialLocations::FromEnvironment();
  EXPECT_EQ(w.docker_config, "/home/u/.docker/config.json");
  EXPECT_FALSE(w.docker_auth_config);
  EXPECT_EQ(w.auth_files, (std::vector<fs::path>{"/run/user/7/containers/auth.json",
                                                 "/home/u/.config/containers/auth.json"}));
  {
    ScopedEnv xdg("XDG_CONFIG_HOME", "/cfg");
    ScopedEnv no_runtime("XDG_RUNTIME_DIR", std::nullopt);
    w = CredentialLocations::FromEnvironment();
    EXPECT_EQ(w.auth_files,
              (std::vector<fs::path>{"/run/containers/" + std::to_string(getuid()) + "/auth.json",
                                     "/cfg/containers/auth.json"}));
  }
  ScopedEnv explicit_file("REGISTRY_AUTH_FILE", "/tmp/mine.json");
  w = CredentialLocations::FromEnvironment();
  EXPECT_EQ(w.auth_files, std::vector<fs::path>{"/tmp/mine.json"});
}

TEST_F(HelperTest, AuthJsonCredHelpers) {
  testing::WriteAll(dir_.path() / "auth.json",
                    R"({"credHelpers": {"h.example": "per"},
    "auths": {"h.example": {"auth": ")" +
                        B64("file:pw") + R"("}}})");
  CredentialLocations where;
  where.auth_files = {dir_.path() / "auth.json"};
  auto c = CredentialSource(std::nullopt, where).Lookup("h.example", "x/y");
  ASSERT_TRUE(c && *c) << (c ? "none" : c.error().msg);
  EXPECT_EQ((*c)->username, "per-user");
  EXPECT_EQ(Asked(), "h.example\n");
}

TEST_F(HelperTest, RunDirectly) {
  auto c = RunCredentialHelper("per", "direct.example");
  ASSERT_TRUE(c && *c);
  EXPECT_EQ((*c)->username, "per-user");
  EXPECT_EQ((*c)->secret, "per-pw");
}

}  // namespace
}  // namespace imagefs::fetch
