// DiffIDs, ChainIDs and image IDs checked against images that umoci builds and skopeo
// converts in the test run: what other tools wrote is the reference, not our own code.
#include <fcntl.h>

#include <nlohmann/json.hpp>

#include "graph/base/fs_util.h"
#include "graph/byte_source.h"
#include "graph/store.h"
#include "test_util.h"

namespace imagefs {

namespace fs = std::filesystem;
namespace {

using nlohmann::json;
using testing::ScratchDir;
using testing::Shell;

class ToolIdsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string d = dir_.path().string();
    // Three layers: add files, then change and delete some (umoci writes the whiteout).
    std::string script = "set -e; cd " + d + R"SH(
      umoci init --layout oci >/dev/null
      umoci new --image oci:img >/dev/null
      umoci unpack --image oci:img bundle >/dev/null
      mkdir -p bundle/rootfs/etc bundle/rootfs/bin
      echo one > bundle/rootfs/etc/one; echo two > bundle/rootfs/etc/two
      ln bundle/rootfs/etc/one bundle/rootfs/bin/hard; ln -s ../etc/two bundle/rootfs/bin/soft
      umoci repack --refresh-bundle --image oci:img bundle >/dev/null
      rm bundle/rootfs/etc/two; echo changed > bundle/rootfs/etc/one
      umoci repack --refresh-bundle --image oci:img bundle >/dev/null
      mkdir -p bundle/rootfs/usr && head -c 300000 /dev/urandom > bundle/rootfs/usr/blob
      umoci repack --refresh-bundle --image oci:img bundle >/dev/null
      skopeo inspect --raw oci:oci:img > manifest.json
      skopeo inspect --config --raw oci:oci:img > config.json
      skopeo copy -q oci:oci:img docker-archive:docker.tar:test/img:1
      mkdir docker && tar -xf docker.tar -C docker
    )SH";
    auto r = Shell(script + " 2>&1");
    ASSERT_EQ(r.status, 0) << r.output;
    manifest_ = json::parse(testing::ReadAll(dir_ / "manifest.json"));
    config_bytes_ = testing::ReadAll(dir_ / "config.json");
    config_ = json::parse(config_bytes_);
  }

  Digest DiffIdOfBlob(const fs::path& blob) {
    auto fd = OpenFile(blob, O_RDONLY);
    EXPECT_TRUE(fd);
    auto src = Decompress(std::make_unique<FdSource>(std::move(*fd), blob.string()), blob.string());
    Sha256 h;
    std::vector<char> buf(1 << 16);
    while (true) {
      auto n = src->Read(buf.data(), buf.size());
      EXPECT_TRUE(n) << n.error().msg;
      if (!n || *n == 0) break;
      h.Update(buf.data(), *n);
    }
    return h.Finish();
  }

  ScratchDir dir_;
  json manifest_, config_;
  std::string config_bytes_;
};

TEST_F(ToolIdsTest, DiffIdsOfCompressedLayersMatchConfig) {
  const auto& layers = manifest_["layers"];
  const auto& diff_ids = config_["rootfs"]["diff_ids"];
  ASSERT_EQ(layers.size(), 3u);
  ASSERT_EQ(diff_ids.size(), 3u);
  for (size_t i = 0; i < layers.size(); ++i) {
    auto digest = Digest::Parse(layers[i]["digest"].get<std::string>());
    ASSERT_TRUE(digest);
    fs::path blob = dir_ / "oci" / "blobs" / "sha256" / digest->hex();
    EXPECT_EQ(DiffIdOfBlob(blob).str(), diff_ids[i].get<std::string>()) << "layer " << i;
  }
}

TEST_F(ToolIdsTest, ImageIdIsSha256OfConfigBytes) {
  EXPECT_EQ(Sha256::Of(config_bytes_).str(), manifest_["config"]["digest"].get<std::string>());
  // skopeo's docker-archive names the config after the image ID, as docker save does.
  json docker_manifest = json::parse(testing::ReadAll(dir_ / "docker" / "manifest.json"));
  std::string config_name = docker_manifest[0]["Config"];
  std::string docker_config = testing::ReadAll(dir_ / "docker" / config_name);
  EXPECT_EQ(Sha256::Of(docker_config).hex() + ".json", config_name);
  EXPECT_EQ(docker_config, config_bytes_);
}

TEST_F(ToolIdsTest, ChainIdsOfRegisteredLayersMatchIndependentComputation) {
  auto store = Store::Open(dir_ / "store", {.create = true});
  ASSERT_TRUE(store) << store.error().msg;
  json docker_manifest = json::parse(testing::ReadAll(dir_ / "docker" / "manifest.json"));
  const auto& diff_ids = config_["rootfs"]["diff_ids"];
  std::optional<Digest> parent;
  std::string chain_shell;
  for (size_t i = 0; i < diff_ids.size(); ++i) {
    fs::path tar = dir_ / "docker" / docker_manifest[0]["Layers"][i].get<std::string>();
    auto fd = OpenFile(tar, O_RDONLY);
    ASSERT_TRUE(fd);
    FdSource src(std::move(*fd), tar.string());
    auto expected = Digest::Parse(diff_ids[i].get<std::string>());
    auto layer = (*store)->RegisterLayer(parent, src, *expected);
    ASSERT_TRUE(layer) << layer.error().msg;
    EXPECT_EQ(layer->diff_id, *expected);
    // ChainID by the OCI spec's formula, computed by sha256sum.
    std::string want = i == 0 ? expected->str()
                              : "sha256:" + Shell("printf '%s' '" + chain_shell + " " +
                                                  expected->str() + "' | sha256sum | cut -c1-64")
                                                .output.substr(0, 64);
    EXPECT_EQ(layer->chain_id.str(), want) << "layer " << i;
    chain_shell = want;
    parent = layer->chain_id;
    // The stored blob is the uncompressed tar, byte for byte.
    EXPECT_EQ(
        Shell("cmp -s " + tar.string() + " " + (*store)->BlobPath(layer->diff_id).string()).status,
        0);
  }
}

}  // namespace
}  // namespace imagefs
