// The client against a real registry (Debian's docker-registry) on 127.0.0.1, started by
// the test on a free port with fixtures pushed by skopeo; only its own PID is killed.
#include "fetch/registry_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "test_util.h"

namespace imagefs::fetch {
namespace {

using testing::Shell;

int FreePort() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);
  close(s);
  return ntohs(addr.sin_port);
}

class RegistryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::ScratchDir();
    host_ = "127.0.0.1:" + std::to_string(FreePort());
    std::string d = dir_->path().string();
    testing::WriteAll(dir_->path() / "config.yml",
                      "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: "
                      "true\nstorage:\n  filesystem:\n"
                      "    rootdirectory: " +
                          d + "/data\nhttp:\n  addr: " + host_ + "\n");
    pid_ = fork();
    if (pid_ == 0) {
      execlp("docker-registry", "docker-registry", "serve", (d + "/config.yml").c_str(),
             static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 100 && Shell("curl -sf http://" + host_ + "/v2/ >/dev/null").status != 0;
         ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    auto r = Shell("set -e; H=" + host_ + "; cd " + d + R"SH(
      umoci init --layout oci >/dev/null && umoci new --image oci:img >/dev/null
      umoci unpack --image oci:img b >/dev/null
      echo one > b/rootfs/one && umoci repack --refresh-bundle --image oci:img b >/dev/null
      head -c 300000 /dev/urandom > b/rootfs/two && umoci repack --refresh-bundle --image oci:img b >/dev/null
      skopeo copy -q --dest-tls-verify=false oci:oci:img docker://$H/test/oci:1
      skopeo copy -q --format v2s2 --dest-tls-verify=false oci:oci:img docker://$H/test/v2s2:1
    )SH" + " 2>&1");
    ASSERT_EQ(r.status, 0) << r.output;
  }
  static void TearDownTestSuite() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    delete dir_;
  }
  Reference Ref(const std::string& s) { return *ParseReference(host_ + "/" + s); }

  static inline testing::ScratchDir* dir_ = nullptr;
  static inline std::string host_;
  static inline pid_t pid_ = -1;
  static FetchConfig FastRetries() {
    FetchConfig c;
    c.retries = 2;
    c.retry_base_ms = 10;
    return c;
  }
  RegistryClient client_{FastRetries(), CredentialSource(std::nullopt, "/nonexistent/config.json")};
};

TEST_F(RegistryTest, ManifestsByTagAndDigestAndVerifiedBlobs) {
  for (const char* repo : {"test/oci:1", "test/v2s2:1"}) {
    SCOPED_TRACE(repo);
    auto m = client_.GetManifest(Ref(repo));
    ASSERT_TRUE(m) << m.error().msg;
    ASSERT_TRUE(m->manifest.image);
    EXPECT_EQ(m->manifest.image->layers.size(), 2u);
    EXPECT_EQ(m->digest, Sha256::Of(m->bytes));
    Reference by_digest = Ref(repo);
    by_digest.tag.clear();
    by_digest.digest = m->digest;
    auto again = client_.GetManifest(by_digest);
    ASSERT_TRUE(again) << again.error().msg;
    EXPECT_EQ(again->bytes, m->bytes);
    std::vector<Descriptor> blobs = m->manifest.image->layers;
    blobs.push_back(m->manifest.image->config);
    for (const Descriptor& blob : blobs) {
      std::string data;
      auto st = client_.GetBlob(Ref(repo), blob, [&](const char* p, size_t n) -> Status {
        data.append(p, n);
        return {};
      });
      ASSERT_TRUE(st) << st.error().msg;
      EXPECT_EQ(Sha256::Of(data), blob.digest);
    }
  }
}

TEST_F(RegistryTest, ErrorsCarryTheRegistrysWords) {
  auto unknown = client_.GetManifest(Ref("test/nothing:1"));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, Code::kNotFound);
  EXPECT_NE(unknown.error().msg.find("MANIFEST_UNKNOWN: manifest unknown"), std::string::npos)
      << unknown.error().msg;
  Reference missing = Ref("test/oci");
  missing.digest = Sha256::Of("no such manifest");
  auto m = client_.GetManifest(missing);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, Code::kNotFound);
  auto down = RegistryClient(FastRetries(), CredentialSource(std::nullopt, "/nonexistent"))
                  .GetManifest(*ParseReference("127.0.0.1:1/x/y:z"));
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().code, Code::kNetwork);
}

TEST_F(RegistryTest, TamperedBlobIsRefused) {
  auto m = client_.GetManifest(Ref("test/oci:1"));
  ASSERT_TRUE(m);
  const Descriptor& layer = m->manifest.image->layers[1];
  // Flip a byte of the blob in the registry's own storage.
  std::string path = (dir_->path() / "data/docker/registry/v2/blobs/sha256" /
                      layer.digest.hex().substr(0, 2) / layer.digest.hex() / "data")
                         .string();
  ASSERT_EQ(Shell("printf 'X' | dd of=" + path + " bs=1 seek=100 conv=notrunc status=none").status,
            0);
  uint64_t delivered = 0;
  auto st = client_.GetBlob(Ref("test/oci:1"), layer, [&](const char*, size_t n) -> Status {
    delivered += n;
    return {};
  });
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Code::kCorrupt);
  EXPECT_NE(st.error().msg.find("digest mismatch"), std::string::npos) << st.error().msg;
}

TEST_F(RegistryTest, RangesOfABlob) {
  auto m = client_.GetManifest(Ref("test/oci:1"));
  ASSERT_TRUE(m) << m.error().msg;
  // Layer 0: TamperedBlobIsRefused bends layer 1 in the registry's storage.
  const Descriptor& layer = m->manifest.image->layers[0];
  ASSERT_GT(layer.size, 100u);
  std::string whole;
  ASSERT_TRUE(client_.GetBlob(Ref("test/oci:1"), layer, [&](const char* p, size_t n) -> Status {
    whole.append(p, n);
    return {};
  }));
  ASSERT_EQ(whole.size(), layer.size);
  for (auto [off, len] :
       {std::pair<uint64_t, uint64_t>{0, 1}, {10, 40}, {layer.size - 51, 51}, {0, layer.size}}) {
    auto part = client_.GetBlobRange(Ref("test/oci:1"), layer, off, len);
    ASSERT_TRUE(part) << off << "+" << len << ": " << part.error().msg;
    EXPECT_EQ(*part, whole.substr(off, len)) << off << "+" << len;
  }
  EXPECT_FALSE(client_.RangesRefused(Ref("test/oci:1")));
  for (auto [off, len] :
       {std::pair<uint64_t, uint64_t>{layer.size, 1}, {layer.size - 1, 2}, {0, 0}}) {
    auto bad = client_.GetBlobRange(Ref("test/oci:1"), layer, off, len);
    ASSERT_FALSE(bad) << off << "+" << len;
    EXPECT_EQ(bad.error().code, Code::kInvalid);
  }
}

// A server that answers Range with the whole blob (Python's http.server does): detected at
// the first request, remembered for the registry, and never read to its end.
TEST_F(RegistryTest, ARegistryWithoutRangesIsDetectedOnce) {
  std::string blob(1 << 20, 'x');
  Descriptor d;
  d.digest = Sha256::Of(blob);
  d.size = blob.size();
  auto dir = dir_->path() / "plain/v2/test/plain/blobs";
  std::filesystem::create_directories(dir);
  testing::WriteAll(dir / d.digest.str(), blob);
  std::string host = "127.0.0.1:" + std::to_string(FreePort());
  pid_t pid = fork();
  if (pid == 0) {
    execlp("python3", "python3", "-m", "http.server", host.substr(10).c_str(), "--bind",
           "127.0.0.1", "--directory", (dir_->path() / "plain").c_str(),
           static_cast<char*>(nullptr));
    _exit(127);
  }
  for (int i = 0; i < 100 && Shell("curl -s -o /dev/null http://" + host + "/").status != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  Reference ref = *ParseReference(host + "/test/plain:1");
  auto r = client_.GetBlobRange(ref, d, 100, 10);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kUnsupported) << r.error().msg;
  EXPECT_TRUE(client_.RangesRefused(ref));
  EXPECT_FALSE(client_.RangesRefused(Ref("test/oci:1")));
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  auto again = client_.GetBlobRange(ref, d, 100, 10);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Code::kUnsupported) << "remembered, with the server gone";
}

std::string BaseUrl(const FetchConfig& c, const std::string& domain) {
  return c.EndpointsFor(domain).back().base_url;
}

TEST(RegistryEndpoints, LoopbackIsPlainHttpAndMirrorsComeFirst) {
  FetchConfig c;
  EXPECT_EQ(BaseUrl(c, "docker.io"), "https://registry-1.docker.io");
  EXPECT_EQ(BaseUrl(c, "127.0.0.1:5000"), "http://127.0.0.1:5000");
  EXPECT_EQ(BaseUrl(c, "localhost:5000"), "http://localhost:5000");
  EXPECT_EQ(BaseUrl(c, "[::1]:5000"), "http://[::1]:5000");
  EXPECT_EQ(BaseUrl(c, "quay.io"), "https://quay.io");
  auto parsed = FetchConfig::Parse(
      R"({"registries": {"docker.io": {"mirrors": ["127.0.0.1:5001", "https://m.example/"]},
    "10.1.1.1:5000": {"insecure": true}, "q.example": {"ca_file": "/ca.pem"}}, "concurrency": 5})",
      "reg.json");
  ASSERT_TRUE(parsed) << parsed.error().msg;
  auto e = parsed->EndpointsFor("docker.io");
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].base_url, "http://127.0.0.1:5001");
  EXPECT_TRUE(e[0].mirror);
  EXPECT_EQ(e[1].base_url, "https://m.example");
  EXPECT_EQ(e[2].base_url, "https://registry-1.docker.io");
  EXPECT_FALSE(e[2].mirror);
  EXPECT_EQ(BaseUrl(*parsed, "10.1.1.1:5000"), "http://10.1.1.1:5000");
  EXPECT_EQ(parsed->EndpointsFor("q.example").back().ca_file, "/ca.pem");
  EXPECT_EQ(parsed->concurrency, 5u);
  for (const char* bad :
       {R"([])", R"({"concurrency": -1})", R"({"registries": {"x": {"mirrors": "m"}}})",
        R"({"registries": {"x": {"mirrors": ["ftp://m"]}}})",
        R"({"registries": {"x": {"insecure": 1}}})"}) {
    auto r = FetchConfig::Parse(bad, "reg.json");
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().msg.find("reg.json"), std::string::npos) << r.error().msg;
  }
}

}  // namespace
}  // namespace imagefs::fetch
