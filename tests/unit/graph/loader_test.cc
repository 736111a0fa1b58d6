// The loader against hostile and broken archives: each case must fail with a message
// naming the member and the problem, and leave the store exactly as it was.
#include "graph/loader.h"

#include <zlib.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "graph/base/fs_util.h"
#include "tar_builder.h"
#include "test_util.h"

namespace imagefs {

namespace fs = std::filesystem;
namespace {

using testing::Gzip;
using testing::MakeTar;
using testing::ScratchDir;
using testing::TarMember;

const std::string kLayer1 =
    MakeTar({{"etc/", "", S_IFDIR, "", false, 0755}, {"etc/hello", "hello\n"}});
const std::string kLayer2 = MakeTar({{"etc/.wh.hello", ""}, {"etc/bye", "bye\n"}});

std::string ConfigFor(const std::vector<std::string>& layers) {
  std::string ids;
  for (const auto& l : layers) ids += (ids.empty() ? "\"" : ",\"") + Sha256::Of(l).str() + "\"";
  return R"({"architecture":"amd64","os":"linux","created":"2022-02-02T02:02:02Z","rootfs":{"type":"layers","diff_ids":[)" +
         ids + "]}}";
}

// A modern docker-save archive of one image over kLayer1 and kLayer2, as members.
std::vector<TarMember> DockerArchive(const std::string& tag = "example/app:1") {
  std::string config = ConfigFor({kLayer1, kLayer2});
  std::string config_name = Sha256::Of(config).hex() + ".json";
  return {
      {config_name, config},
      {"l1/layer.tar", kLayer1},
      {"l2/layer.tar", kLayer2},
      {"manifest.json", R"([{"Config":")" + config_name + R"(","RepoTags":[")" + tag +
                            R"("],"Layers":["l1/layer.tar","l2/layer.tar"]}])"},
  };
}

std::string V1Json(const std::string& id, const std::string& parent) {
  return R"({"id":")" + id + "\"" + (parent.empty() ? "" : R"(,"parent":")" + parent + "\"") +
         R"(,"created":"2015-01-01T00:00:00Z","config":{}})";
}

std::string Hex(char c) { return std::string(64, c); }

std::vector<TarMember> LegacyArchive() {
  return {{Hex('a') + "/json", V1Json(Hex('a'), "")},
          {Hex('a') + "/layer.tar", kLayer1},
          {Hex('a') + "/VERSION", "1.0"},
          {Hex('b') + "/json", V1Json(Hex('b'), Hex('a'))},
          {Hex('b') + "/layer.tar", kLayer2},
          {Hex('b') + "/VERSION", "1.0"},
          {"repositories", R"({"legacy/app":{"v1":")" + Hex('b') + R"("}})"}};
}

// An OCI layout with gzip layers; `tamper` may change the members before packing.
std::vector<TarMember> OciArchive() {
  std::string config = ConfigFor({kLayer1, kLayer2});
  std::string g1 = Gzip(kLayer1), g2 = Gzip(kLayer2);
  auto desc = [](const std::string& type, const std::string& blob) {
    return R"({"mediaType":")" + type + R"(","digest":")" + Sha256::Of(blob).str() +
           R"(","size":)" + std::to_string(blob.size()) + "}";
  };
  std::string manifest =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":)" +
      desc("application/vnd.oci.image.config.v1+json", config) + R"(,"layers":[)" +
      desc("application/vnd.oci.image.layer.v1.tar+gzip", g1) + "," +
      desc("application/vnd.oci.image.layer.v1.tar+gzip", g2) + "]}";
  std::string index =
      R"({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
      Sha256::Of(manifest).str() + R"(","size":)" + std::to_string(manifest.size()) +
      R"(,"annotations":{"org.opencontainers.image.ref.name":"example/oci:2"}}]})";
  auto blob = [](const std::string& b) { return "blobs/sha256/" + Sha256::Of(b).hex(); };
  return {{"oci-layout", R"({"imageLayoutVersion":"1.0.0"})"},
          {"index.json", index},
          {blob(config), config},
          {blob(manifest), manifest},
          {blob(g1), g1},
          {blob(g2), g2}};
}

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::Open(dir_ / "store", {.create = true});
    ASSERT_TRUE(s) << s.error().msg;
    store_ = std::move(*s);
  }
  fs::path Write(const std::string& name, const std::string& bytes) {
    testing::WriteAll(dir_ / name, bytes);
    return dir_ / name;
  }
  // What a user could observe of the store: its images, layers, blobs and tags.
  std::string Snapshot() {
    return testing::Shell(
               "cd " + (dir_ / "store").string() +
               " && find images layers diffs -mindepth 1 | sort && cat tags.json 2>/dev/null")
        .output;
  }

  ScratchDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(LoaderTest, ModernDockerArchive) {
  auto report = LoadArchive(*store_, Write("a.tar", MakeTar(DockerArchive())));
  ASSERT_TRUE(report) << report.error().msg;
  ASSERT_TRUE(report->failures.empty()) << report->failures[0].msg;
  ASSERT_EQ(report->images.size(), 1u);
  EXPECT_EQ(report->images[0].id, Sha256::Of(ConfigFor({kLayer1, kLayer2})).hex());
  EXPECT_EQ(report->images[0].tags.at(0).String(), "docker.io/example/app:1");
  EXPECT_EQ(report->layers_stored, 2u);
  EXPECT_EQ(*store_->ResolveImage("example/app:1"), report->images[0].id);
}

TEST_F(LoaderTest, SameImageThroughThreeFormatsSharesLayers) {
  auto docker = LoadArchive(*store_, Write("d.tar", MakeTar(DockerArchive())));
  ASSERT_TRUE(docker && docker->failures.empty());
  auto oci = LoadArchive(*store_, Write("o.tar", MakeTar(OciArchive())));
  ASSERT_TRUE(oci) << oci.error().msg;
  ASSERT_TRUE(oci->failures.empty()) << oci->failures[0].msg;
  EXPECT_EQ(oci->images.at(0).id, docker->images.at(0).id);
  EXPECT_EQ(oci->layers_stored, 0u);
  auto legacy = LoadArchive(*store_, Write("l.tar", MakeTar(LegacyArchive())));
  ASSERT_TRUE(legacy) << legacy.error().msg;
  ASSERT_TRUE(legacy->failures.empty()) << legacy->failures[0].msg;
  EXPECT_EQ(legacy->layers_stored, 0u) << "same ChainIDs: nothing stored twice";
  EXPECT_EQ(store_->Layers().size(), 2u);
  EXPECT_EQ(*store_->GetImage(Hex('b'))->parent, Hex('a'));  // v1 IDs preserved
  EXPECT_EQ(store_->GetImage(Hex('b'))->top_layer,
            store_->GetImage(docker->images[0].id)->top_layer);
  EXPECT_EQ(*store_->ResolveImage("legacy/app:v1"), Hex('b'));
  EXPECT_EQ(*store_->ReadConfig(Hex('a')), V1Json(Hex('a'), ""));
}

TEST_F(LoaderTest, CompressedOuterTarballs) {
  auto report = LoadArchive(*store_, Write("a.tar.gz", Gzip(MakeTar(DockerArchive()))));
  ASSERT_TRUE(report) << report.error().msg;
  EXPECT_EQ(report->images.size(), 1u);
  ASSERT_EQ(testing::Shell("zstd -q " + (dir_ / "a.tar.gz").string() + " -o " +
                           (dir_ / "b.zst").string() + " && xz -k " + (dir_ / "a.tar.gz").string())
                .status,
            0);
  EXPECT_TRUE(LoadArchive(*store_, dir_ / "b.zst"));
  EXPECT_TRUE(LoadArchive(*store_, dir_ / "a.tar.gz.xz"));
}

TEST_F(LoaderTest, PartialArchiveKeepsGoodImagesAndNamesTheBadOne) {
  auto members = DockerArchive();
  // Claims l1 holds content stored nowhere (a DiffID the store has would be reused as is).
  std::string bad_config = ConfigFor({MakeTar({{"elsewhere", "x"}})});
  members.push_back({"bad.json", bad_config});
  members.back().content = bad_config;
  members[3].content.pop_back();  // drop the closing ']' of manifest.json
  members[3].content += R"(,{"Config":"bad.json","RepoTags":["bad:1"],"Layers":["l1/layer.tar"]}])";
  auto report = LoadArchive(*store_, Write("p.tar", MakeTar(members)));
  ASSERT_TRUE(report) << report.error().msg;
  ASSERT_EQ(report->images.size(), 1u);
  ASSERT_EQ(report->failures.size(), 1u);
  EXPECT_NE(report->failures[0].msg.find("does not match its DiffID"), std::string::npos);
  EXPECT_NE(report->failures[0].msg.find("l1/layer.tar"), std::string::npos);
  EXPECT_FALSE(store_->ResolveImage("bad:1"));
}

TEST_F(LoaderTest, TwoConcurrentLoadsDoTheWorkOnce) {
  fs::path path = Write("a.tar", MakeTar(DockerArchive()));
  auto other = Store::Open(dir_ / "store", {.create = true});  // as another process would
  ASSERT_TRUE(other);
  Result<LoadReport> first(Fail(Code::kIo, "not run")), second(Fail(Code::kIo, "not run"));
  std::thread t1([&] { first = LoadArchive(*store_, path); });
  std::thread t2([&] { second = LoadArchive(**other, path); });
  t1.join();
  t2.join();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->images.size(), 1u);
  EXPECT_EQ(second->images.size(), 1u);
  EXPECT_EQ(first->layers_stored + second->layers_stored, 2u)
      << "each layer stored by one load only";
  ASSERT_TRUE(store_->Refresh());
  EXPECT_EQ(store_->Layers().size(), 2u);
}

TEST_F(LoaderTest, PlatformSelectionFromIndex) {
  // Two platform manifests of the same image under one nested index, plus an attestation.
  auto members = OciArchive();
  std::string manifest_digest, manifest_size;
  {
    auto index = nlohmann::json::parse(members[1].content);
    manifest_digest = index["manifests"][0]["digest"];
    manifest_size = std::to_string(index["manifests"][0]["size"].get<int>());
  }
  std::string nested =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)"
      R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
      manifest_digest + R"(","size":)" + manifest_size +
      R"(,"platform":{"os":"linux","architecture":"arm","variant":"v6"}},)"
      R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
      manifest_digest + R"(","size":)" + manifest_size +
      R"(,"platform":{"os":"unknown","architecture":"unknown"}}]})";
  members[1].content =
      R"({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":")" +
      Sha256::Of(nested).str() + R"(","size":)" + std::to_string(nested.size()) +
      R"(,"annotations":{"org.opencontainers.image.ref.name":"example/multi:1"}}]})";
  members.push_back({"blobs/sha256/" + Sha256::Of(nested).hex(), nested});
  fs::path path = Write("m.tar", MakeTar(members));
  auto none = LoadArchive(*store_, path, {Platform{"linux", "amd64", ""}, false});
  ASSERT_TRUE(!none) << "amd64 is not in the index";
  EXPECT_NE(none.error().msg.find("no image for platform linux/amd64"), std::string::npos)
      << none.error().msg;
  EXPECT_NE(none.error().msg.find("linux/arm/v6"), std::string::npos);
  auto arm = LoadArchive(*store_, path, {Platform{"linux", "arm", "v7"}, false});  // v7 runs v6
  ASSERT_TRUE(arm) << arm.error().msg;
  ASSERT_EQ(arm->images.size(), 1u);
  EXPECT_EQ(arm->images[0].tags.at(0).FamiliarString(), "example/multi:1");
  auto v5 =
      LoadArchive(*store_, path, {Platform{"linux", "arm", "v5"}, false});  // v5 cannot run v6
  ASSERT_FALSE(v5);
  auto all = LoadArchive(*store_, path, {Platform{"linux", "amd64", ""}, true});  // every platform
  ASSERT_TRUE(all) << all.error().msg;
  EXPECT_EQ(all->images.size(), 1u) << "the attestation is skipped";
}

struct HostileCase {
  const char* name;
  std::function<std::string()> archive;  // the tarball's bytes
  const char* error;                     // a substring of the message
};

std::vector<TarMember> With(std::vector<TarMember> members,
                            const std::function<void(std::vector<TarMember>&)>& f) {
  f(members);
  return members;
}

TEST_F(LoaderTest, HostileArchivesFailClearlyAndChangeNothing) {
  // Something already in the store, which no failure may disturb. It shares no layer
  // with the cases, so that every case has to read its own layers.
  std::string other_layer = MakeTar({{"other/file", "unrelated"}});
  std::string other_config = ConfigFor({other_layer});
  std::string other_name = Sha256::Of(other_config).hex() + ".json";
  auto preload = LoadArchive(
      *store_,
      Write("ok.tar", MakeTar({{other_name, other_config},
                               {"x/layer.tar", other_layer},
                               {"manifest.json",
                                R"([{"Config":")" + other_name +
                                    R"(","RepoTags":["other:1"],"Layers":["x/layer.tar"]}])"}})));
  ASSERT_TRUE(preload && preload->images.size() == 1);
  std::string before = Snapshot();
  std::string good = MakeTar(DockerArchive());
  std::vector<HostileCase> cases = {
      {"absolute member",
       [] { return MakeTar(With(DockerArchive(), [](auto& m) { m[1].path = "/l1/layer.tar"; })); },
       "absolute path"},
      {"dotdot member",
       [] {
         return MakeTar(With(DockerArchive(), [](auto& m) { m[1].path = "l1/../../layer.tar"; }));
       },
       "\"..\" component"},
      {"layer symlink escapes",
       [] {
         return MakeTar(With(DockerArchive(), [](auto& m) {
           m[1] = {"l1/layer.tar", "", S_IFLNK, "../../../etc/passwd"};
         }));
       },
       "escapes the archive"},
      {"layer symlink absolute",
       [] {
         return MakeTar(With(DockerArchive(), [](auto& m) {
           m[1] = {"l1/layer.tar", "", S_IFLNK, "/etc/passwd"};
         }));
       },
       "symlink to an absolute path"},
      {"symlink cycle",
       [] {
         return MakeTar(With(DockerArchive(), [](auto& m) {
           m[1] = {"l1/layer.tar", "", S_IFLNK, "../l3/layer.tar"};
           m.push_back({"l3/layer.tar", "", S_IFLNK, "../l1/layer.tar"});
         }));
       },
       "too many levels"},
      {"truncated", [&] { return good.substr(0, 2600); }, "truncated"},
      {"not a tar", [] { return std::string(5000, 'x'); }, "not a tar archive"},
      {"missing layer member",
       [] { return MakeTar(With(DockerArchive(), [](auto& m) { m.erase(m.begin() + 2); })); },
       "no member \"l2/layer.tar\""},
      {"manifest not json",
       [] { return MakeTar(With(DockerArchive(), [](auto& m) { m[3].content = "[{"; })); },
       "manifest.json: not valid JSON"},
      {"manifest wrong types",
       [] {
         return MakeTar(With(DockerArchive(), [](auto& m) {
           m[3].content = R"([{"Config":")" + m[0].path + R"(","Layers":"l1/layer.tar"}])";
         }));
       },
       "\"Layers\" must be an array of strings"},
      {"manifest not an array",
       [] { return MakeTar(With(DockerArchive(), [](auto& m) { m[3].content = "{}"; })); },
       "want a JSON array"},
      {"config wrong types",
       [] {
         return MakeTar(With(DockerArchive(),
                             [](auto& m) { m[0].content = R"({"rootfs":{"diff_ids":"x"}})"; }));
       },
       "no rootfs.diff_ids array"},
      {"diff id mismatch",
       [] {
         return MakeTar(With(DockerArchive(), [](auto& m) {
           m[2].content = MakeTar({{"other", "x"}});
         }));
       },
       "does not match its DiffID"},
      {"layer count mismatch",
       [] {
         return MakeTar(With(DockerArchive(), [](auto& m) {
           m[3].content = R"([{"Config":")" + m[0].path + R"(","Layers":["l1/layer.tar"]}])";
         }));
       },
       "1 layers but config"},
      {"duplicate member",
       [] { return MakeTar(With(DockerArchive(), [](auto& m) { m.push_back(m[1]); })); },
       "duplicate member \"l1/layer.tar\""},
      {"invalid tag", [] { return MakeTar(DockerArchive("Bad/UPPER:1")); },
       "invalid reference format"},
      {"layer not a tar",
       [] {
         return MakeTar(With(DockerArchive(), [](auto& m) {
           m[1].content = std::string(3000, 'q');
           m[0].content = ConfigFor({m[1].content, kLayer2});
           m[0].path = Sha256::Of(m[0].content).hex() + ".json";
           m[3].content =
               R"([{"Config":")" + m[0].path + R"(","Layers":["l1/layer.tar","l2/layer.tar"]}])";
         }));
       },
       "index layer"},
      {"legacy id mismatch",
       [] {
         return MakeTar(
             With(LegacyArchive(), [](auto& m) { m[0].content = V1Json(Hex('c'), ""); }));
       },
       "does not match its directory"},
      {"legacy missing parent",
       [] {
         return MakeTar({{Hex('d') + "/json", V1Json(Hex('d'), Hex('e'))},
                         {Hex('d') + "/layer.tar", kLayer1}});
       },
       "neither in the archive nor in the store"},
      {"legacy parent cycle",
       [] {
         return MakeTar({{Hex('1') + "/json", V1Json(Hex('1'), Hex('2'))},
                         {Hex('1') + "/layer.tar", kLayer1},
                         {Hex('2') + "/json", V1Json(Hex('2'), Hex('1'))},
                         {Hex('2') + "/layer.tar", kLayer2}});
       },
       "parent cycle"},
      {"legacy bad directory",
       [] {
         return MakeTar({{"not-an-id/json", "{}"}});
       },
       "not a valid image ID"},
      {"legacy json not json",
       [] { return MakeTar(With(LegacyArchive(), [](auto& m) { m[3].content = "nope"; })); },
       "/json: not valid JSON"},
      {"unknown format",
       [] {
         return MakeTar({{"hello.txt", "hi"}});
       },
       "unknown archive format"},
      {"oci blob digest mismatch",
       [] {
         return MakeTar(
             With(OciArchive(), [](auto& m) { m[4].content[m[4].content.size() - 5] ^= 1; }));
       },
       "digest mismatch"},
      {"oci missing layer blob",
       [] { return MakeTar(With(OciArchive(), [](auto& m) { m.pop_back(); })); }, "is missing"},
      {"oci bad layout version",
       [] {
         return MakeTar(
             With(OciArchive(), [](auto& m) { m[0].content = R"({"imageLayoutVersion":"9"})"; }));
       },
       "imageLayoutVersion"},
      {"oci index wrong types",
       [] {
         return MakeTar(
             With(OciArchive(), [](auto& m) { m[1].content = R"({"manifests":[{"digest":5}]})"; }));
       },
       "descriptor has no digest"},
  };
  for (const HostileCase& c : cases) {
    SCOPED_TRACE(c.name);
    fs::path path = Write("hostile.tar", c.archive());
    auto report = LoadArchive(*store_, path);
    std::string message =
        !report ? report.error().msg : (report->failures.empty() ? "" : report->failures[0].msg);
    EXPECT_NE(message, "") << "loaded without error";
    EXPECT_NE(message.find(c.error), std::string::npos) << message;
    if (!report) {
      EXPECT_NE(message.find("hostile.tar"), std::string::npos) << "names the file: " << message;
    } else {
      EXPECT_TRUE(report->images.empty());
    }
    EXPECT_EQ(Snapshot(), before);
    EXPECT_EQ(testing::Shell("ls -A " + (dir_ / "store" / "tmp").string()).output, "");
  }
}

TEST_F(LoaderTest, OverlongLegacyChainFailsWithoutDeepRecursion) {
  // 1,100 v1 images, each the parent of the next, the base's parent absent. IDs fall as
  // the chain rises, so the loader (in ID order) starts at the top and descends.
  std::vector<TarMember> members;
  auto id_of = [](int i) {
    char buf[65];
    std::snprintf(buf, sizeof buf, "%064x", 5000 - i);
    return std::string(buf);
  };
  for (int i = 0; i < 1100; ++i) {
    members.push_back({id_of(i) + "/json", V1Json(id_of(i), id_of(i - 1))});
    members.push_back({id_of(i) + "/layer.tar", kLayer1});
  }
  std::string before = Snapshot();
  auto report = LoadArchive(*store_, Write("chain.tar", MakeTar(members)));
  ASSERT_TRUE(report) << report.error().msg;
  EXPECT_TRUE(report->images.empty());
  bool too_long = false;
  for (const Error& e : report->failures)
    too_long |= e.msg.find("parent chain longer than 1024") != std::string::npos;
  EXPECT_TRUE(too_long);
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(LoaderTest, DecompressionBombIsRefused) {
  store_.reset();
  StoreOptions small;
  small.max_layer_bytes = 1 << 20;
  auto s = Store::Open(dir_ / "store", small);
  ASSERT_TRUE(s);
  std::string big = MakeTar({{"zeros", std::string(8 << 20, '\0')}});
  auto members = OciArchive();
  // Swap the second layer for a gzip of 8 MiB of zeros (about 8 KiB compressed).
  std::string gz = Gzip(big);
  auto manifest = nlohmann::json::parse(members[3].content);
  manifest["layers"][1]["digest"] = Sha256::Of(gz).str();
  manifest["layers"][1]["size"] = gz.size();
  std::string config = ConfigFor({kLayer1, big});
  manifest["config"]["digest"] = Sha256::Of(config).str();
  manifest["config"]["size"] = config.size();
  std::string mtext = manifest.dump();
  auto index = nlohmann::json::parse(members[1].content);
  index["manifests"][0]["digest"] = Sha256::Of(mtext).str();
  index["manifests"][0]["size"] = mtext.size();
  members[1].content = index.dump();
  members[2] = {"blobs/sha256/" + Sha256::Of(config).hex(), config};
  members[3] = {"blobs/sha256/" + Sha256::Of(mtext).hex(), mtext};
  members[5] = {"blobs/sha256/" + Sha256::Of(gz).hex(), gz};
  auto report = LoadArchive(**s, Write("bomb.tar", MakeTar(members)));
  ASSERT_TRUE(report) << report.error().msg;
  ASSERT_EQ(report->failures.size(), 1u);
  EXPECT_NE(report->failures[0].msg.find("larger than the limit"), std::string::npos)
      << report->failures[0].msg;
  EXPECT_TRUE((*s)->Images().empty());
  EXPECT_TRUE((*s)->Layers().empty()) << "the first layer was rolled back";
}

TEST_F(LoaderTest, InterruptedImportLeavesNothingAndNextSucceeds) {
  std::string good = MakeTar(DockerArchive());
  ASSERT_FALSE(LoadArchive(*store_, Write("cut.tar", good.substr(0, good.size() / 2))));
  EXPECT_TRUE(store_->Images().empty());
  EXPECT_TRUE(store_->Layers().empty());
  auto report = LoadArchive(*store_, Write("whole.tar", good));
  ASSERT_TRUE(report);
  EXPECT_EQ(report->images.size(), 1u);
}

TEST_F(LoaderTest, OciLayoutDirectoryRefusesEscapingSymlinks) {
  fs::path layout = dir_ / "layout";
  for (const auto& m : OciArchive()) {
    fs::create_directories((layout / m.path).parent_path());
    testing::WriteAll(layout / m.path, m.content);
  }
  auto report = LoadArchive(*store_, layout);
  ASSERT_TRUE(report) << report.error().msg;
  EXPECT_EQ(report->images.size(), 1u);
  // Replace the config blob by a symlink out of the layout.
  ASSERT_TRUE(store_->DeleteImage(report->images[0].id));
  for (const auto& entry : fs::directory_iterator(layout / "blobs" / "sha256")) {
    std::string text = testing::ReadAll(entry.path());
    if (text.find("\"rootfs\"") != std::string::npos) {
      fs::remove(entry.path());
      fs::create_symlink("../../../outside", entry.path());
    }
  }
  testing::WriteAll(dir_ / "outside", "{}");
  auto escaped = LoadArchive(*store_, layout);
  ASSERT_TRUE(escaped);
  ASSERT_EQ(escaped->failures.size(), 1u);
  EXPECT_NE(escaped->failures[0].msg.find("escapes"), std::string::npos)
      << escaped->failures[0].msg;
}

}  // namespace
}  // namespace imagefs
