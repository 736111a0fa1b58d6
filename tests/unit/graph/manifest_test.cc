// Manifests written by skopeo in the test run (OCI, schema2, signed schema1) and
// hand-made schema1 histories for Docker's repair rules.
#include "graph/manifest.h"

#include "test_util.h"

namespace imagefs {
namespace {

using testing::ScratchDir;
using testing::Shell;

class SkopeoManifests : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string d = dir_.path().string();
    auto r = Shell("set -e; cd " + d + R"SH(
      umoci init --layout oci >/dev/null && umoci new --image oci:img >/dev/null
      umoci unpack --image oci:img b >/dev/null
      echo one > b/rootfs/one && umoci repack --refresh-bundle --image oci:img b >/dev/null
      echo two > b/rootfs/two && umoci repack --refresh-bundle --image oci:img b >/dev/null
      skopeo copy -q --format v2s2 oci:oci:img dir:v2s2
      skopeo copy -q --format v2s1 oci:oci:img dir:v2s1 2>/dev/null
      skopeo copy -q --format oci oci:oci:img dir:ocidir
    )SH" + " 2>&1");
    ASSERT_EQ(r.status, 0) << r.output;
  }
  ScratchDir dir_;
};

TEST_F(SkopeoManifests, OciAndSchema2) {
  for (const char* d : {"ocidir", "v2s2"}) {
    SCOPED_TRACE(d);
    std::string bytes = testing::ReadAll(dir_ / d / "manifest.json");
    auto m = ParseManifest(bytes, "");
    ASSERT_TRUE(m) << m.error().msg;
    ASSERT_TRUE(m->image);
    EXPECT_EQ(m->image->layers.size(), 2u);
    EXPECT_EQ(m->media_type, std::string(d) == "v2s2" ? kDockerManifest : kOciManifest);
    // Every layer blob skopeo wrote is named by the manifest's digests.
    for (const Descriptor& l : m->image->layers) {
      std::string blob = testing::ReadAll(dir_ / d / l.digest.hex());
      EXPECT_EQ(Sha256::Of(blob), l.digest);
      EXPECT_EQ(blob.size(), l.size);
    }
    auto digest = ManifestDigest(bytes, m->media_type);
    ASSERT_TRUE(digest);
    EXPECT_EQ(digest->str() + "\n",
              Shell("skopeo manifest-digest " + (dir_ / d / "manifest.json").string()).output);
  }
}

TEST_F(SkopeoManifests, SignedSchema1DigestExcludesSignatures) {
  std::string bytes = testing::ReadAll(dir_ / "v2s1" / "manifest.json");
  ASSERT_NE(bytes.find("signatures"), std::string::npos) << "skopeo should sign schema1";
  auto m = ParseManifest(bytes, "application/json");
  ASSERT_TRUE(m) << m.error().msg;
  EXPECT_EQ(m->media_type, kDockerSchema1Signed);
  ASSERT_TRUE(m->schema1);
  EXPECT_EQ(m->schema1->blob_sums.size(), m->schema1->v1_compatibility.size());
  auto digest = ManifestDigest(bytes, m->media_type);
  ASSERT_TRUE(digest) << digest.error().msg;
  EXPECT_NE(*digest, Sha256::Of(bytes));
  EXPECT_EQ(digest->str() + "\n",
            Shell("skopeo manifest-digest " + (dir_ / "v2s1" / "manifest.json").string()).output);
}

std::string V1(const std::string& id, const std::string& parent) {
  return R"({"id":")" + id + "\"" + (parent.empty() ? "" : R"(,"parent":")" + parent + "\"") + "}";
}

std::string Schema1(const std::vector<std::pair<std::string, std::string>>& top_first) {
  nlohmann::json j = {{"schemaVersion", 1},
                      {"name", "x"},
                      {"tag", "t"},
                      {"fsLayers", nlohmann::json::array()},
                      {"history", nlohmann::json::array()}};
  int n = 0;
  for (const auto& [id, parent] : top_first) {
    j["fsLayers"].push_back({{"blobSum", Sha256::Of(std::to_string(n++)).str()}});
    j["history"].push_back({{"v1Compatibility", V1(id, parent)}});
  }
  return j.dump();
}

TEST(Schema1Repair, DockerRules) {
  std::string a(64, 'a'), b(64, 'b'), c(64, 'c');
  auto ok = ParseManifest(Schema1({{c, b}, {b, a}, {a, ""}}), "");
  ASSERT_TRUE(ok) << ok.error().msg;
  EXPECT_EQ(ok->schema1->blob_sums.size(), 3u);
  EXPECT_EQ(ok->schema1->v1_compatibility.front(), V1(a, "")) << "base first";
  auto repeated = ParseManifest(Schema1({{b, a}, {b, a}, {a, ""}}), "");
  ASSERT_TRUE(repeated) << repeated.error().msg;
  EXPECT_EQ(repeated->schema1->blob_sums.size(), 2u) << "adjacent repeats are dropped";
  auto bad_parent = ParseManifest(Schema1({{c, a}, {b, a}, {a, ""}}), "");
  ASSERT_FALSE(bad_parent);
  EXPECT_NE(bad_parent.error().msg.find("invalid parent ID"), std::string::npos);
  auto base_parent = ParseManifest(Schema1({{b, a}, {a, c}}), "");
  ASSERT_FALSE(base_parent);
  EXPECT_NE(base_parent.error().msg.find("base layer"), std::string::npos);
  auto dup = ParseManifest(Schema1({{a, b}, {b, a}, {a, ""}}), "");
  ASSERT_FALSE(dup);
  EXPECT_NE(dup.error().msg.find("multiple times"), std::string::npos);
  EXPECT_FALSE(ParseManifest(Schema1({{"nothex", ""}}), ""));
}

ManifestIndex Index() {
  std::string manifests;
  auto add = [&](const std::string& platform, const std::string& extra = "") {
    if (!manifests.empty()) manifests += ",";
    manifests += R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
                 Sha256::Of(platform + extra).str() + R"(","size":1,"platform":)" + platform +
                 extra + "}";
  };
  add(R"({"os":"linux","architecture":"amd64"})");
  add(R"({"os":"linux","architecture":"arm","variant":"v8"})");
  add(R"({"os":"linux","architecture":"arm","variant":"v6"})");
  add(R"({"os":"unknown","architecture":"unknown"})",
      R"(,"annotations":{"vnd.docker.reference.type":"attestation-manifest"})");
  auto m = ParseManifest(
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)" +
          manifests + "]}",
      "");
  EXPECT_TRUE(m) << m.error().msg;
  return *m->index;
}

TEST(SelectPlatform, DockerFallbacks) {
  ManifestIndex index = Index();
  auto pick = [&](const char* p) { return SelectPlatform(index, *ParsePlatform(p)); };
  EXPECT_EQ(pick("linux/amd64")->platform->architecture, "amd64");
  EXPECT_EQ(pick("linux/arm64")->platform->variant, "v8") << "arm64 falls back to arm/v8";
  EXPECT_EQ(pick("linux/arm/v7")->platform->variant, "v6") << "v7 runs v6";
  auto none = pick("linux/s390x");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().msg.find("linux/amd64"), std::string::npos) << none.error().msg;
  EXPECT_EQ(none.error().msg.find("unknown"), std::string::npos) << "attestations are not offered";
}

TEST(Manifest, Rejects) {
  EXPECT_FALSE(ParseManifest("not json", ""));
  EXPECT_FALSE(ParseManifest(
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"})", ""));
  EXPECT_FALSE(ParseManifest(
      R"({"schemaVersion":2,"config":{"digest":"sha256:x","size":1},"layers":[]})", ""));
  auto odd = ParseManifest(R"({"schemaVersion":2,"mediaType":"text/plain"})", "");
  ASSERT_FALSE(odd);
  EXPECT_EQ(odd.error().code, Code::kUnsupported);
}

}  // namespace
}  // namespace imagefs
