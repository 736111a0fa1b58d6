// The mount's nodes without a kernel: each kind and the dispatcher, called as the FUSE
// operations call them (MountNodes is ImageFs minus the replies), on a real store.
#include <atomic>
#include <nlohmann/json.hpp>

#include "fusefs/nodes/mount_nodes.h"
#include "graph/loader.h"
#include "tar_builder.h"
#include "test_util.h"

namespace imagefs {
namespace {

using testing::MakeTar;
using testing::ScratchDir;

const std::string kBase =
    MakeTar({{"etc/", "", S_IFDIR, "", false, 0755}, {"etc/hello", "hello\n"}});
const std::string kTop = MakeTar({{"etc/.wh.hello", ""}, {"etc/bye", "bye\n"}});

std::string Config() {
  return R"({"architecture":"amd64","os":"linux","created":"2022-02-02T02:02:02Z",)"
         R"("rootfs":{"type":"layers","diff_ids":[")" +
         Sha256::Of(kBase).str() + R"(",")" + Sha256::Of(kTop).str() + R"("]}})";
}

// registry/ without a registry: one image, "pulled" by Materialize from the store.
class FakeRemote : public RemoteImages {
 public:
  std::string id;
  std::optional<Digest> top;
  std::atomic<int> materialized{0};
  Result<RemoteEntry> Lookup(const std::string& dir, const std::string& name,
                             RemoteAccess) override {
    if (dir.empty() && name == "reg.test") return RemoteEntry{RemoteEntry::Kind::kDirectory, name};
    if (dir == "reg.test" && name == "app")
      return RemoteEntry{RemoteEntry::Kind::kDirectory, "reg.test/app"};
    if (dir == "reg.test/app" && name == "1")
      return RemoteEntry{RemoteEntry::Kind::kImage, "reg.test/app/1@sha256:" + std::string(64, 'c'),
                         30};
    return Fail(Code::kNotFound, name);
  }
  Result<RemoteImage> Image(const std::string&, RemoteAccess) override {
    return RemoteImage{id, Config(), top};
  }
  Result<std::string> Materialize(const std::string&, RemoteAccess) override {
    ++materialized;
    return id;
  }
  bool IsMaterialized(const std::string&) override { return materialized > 0; }
  // With `lazy` set (a Store to build from), the rootfs is served before any pull.
  const Store* lazy = nullptr;
  std::atomic<int> lazy_opened{0};
  std::shared_ptr<const Tree> served;
  Result<std::shared_ptr<const Tree>> LazyRootfs(const std::string& key, RemoteAccess) override {
    if (lazy == nullptr) return Fail(Code::kUnsupported, key);
    ++lazy_opened;
    if (!served) {
      ASSIGN_OR_RETURN(served, Tree::BuildMerged(*lazy, top));
    }
    return served;
  }
  Result<std::shared_ptr<const Tree>> ServedRootfs(const std::string& key) override {
    if (!served) return Fail(Error{Code::kIo, ESTALE, key});
    return served;
  }
  std::vector<std::string> Hosts() override { return {"reg.test"}; }
  std::map<std::string, std::string> StatusFiles() override { return {{"pulls.json", "{}"}}; }
};

class NodesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::Open(dir_ / "store", {.create = true});
    ASSERT_TRUE(store) << store.error().msg;
    store_ = std::move(*store);
    std::string config = Config();
    std::string config_name = Sha256::Of(config).hex() + ".json";
    testing::WriteAll(
        dir_ / "a.tar",
        MakeTar({{config_name, config},
                 {"l1/layer.tar", kBase},
                 {"l2/layer.tar", kTop},
                 {"manifest.json", R"([{"Config":")" + config_name +
                                       R"(","RepoTags":["example/app:1"],)"
                                       R"("Layers":["l1/layer.tar","l2/layer.tar"]}])"}}));
    auto report = LoadArchive(*store_, dir_ / "a.tar");
    ASSERT_TRUE(report && report->images.size() == 1);
    id_ = report->images[0].id;
    auto image = store_->GetImage(id_);
    ASSERT_TRUE(image);
    remote_.id = id_;
    remote_.top = image->top_layer;
    auto import = ImportDir::Create(*store_);
    ASSERT_TRUE(import);
    nodes_ = std::make_unique<MountNodes>(*store_, options_, &remote_, std::move(*import), stats_);
  }

  // Walks a path from the root, one lookup per component, as the kernel does.
  Result<NodeEntry> Walk(const std::string& path) {
    NodeEntry e;
    e.ino = InodeTable::kRootId;
    for (size_t start = 0; start < path.size();) {
      size_t slash = std::min(path.find('/', start), path.size());
      std::string name = path.substr(start, slash - start);
      if (InodeTable::SerialOf(e.ino) != 0) {
        ASSIGN_OR_RETURN(auto tree_node, nodes_->TreeAndNode(e.ino));
        auto child = tree_node.first->Lookup(tree_node.second, name);
        if (!child) return Fail(Code::kNotFound, name);
        ASSIGN_OR_RETURN(e,
                         nodes_->Describe(InodeTable::TreeIno(InodeTable::SerialOf(e.ino), *child),
                                          RemoteAccess::kMounter));
      } else {
        ASSIGN_OR_RETURN(e, nodes_->LookupSynthetic(e.ino, name, RemoteAccess::kMounter));
      }
      start = slash + 1;
    }
    return e;
  }

  std::vector<std::string> Names(const std::string& path) {
    auto dir = Walk(path);
    EXPECT_TRUE(dir) << path;
    if (!dir) return {};
    auto list = nodes_->ListSynthetic(dir->ino, RemoteAccess::kMounter);
    EXPECT_TRUE(list) << path << ": " << list.error().msg;
    std::vector<std::string> names;
    if (list) {
      for (const DirEntry& entry : *list) names.push_back(entry.name);
    }
    return names;
  }

  std::string ReadAll(fuse_ino_t ino) {
    auto source = nodes_->Open(ino, RemoteAccess::kMounter);
    EXPECT_TRUE(source) << source.error().msg;
    if (!source) return "";
    if (auto* bytes = std::get_if<NodeSource::Bytes>(&source->v)) return bytes->data;
    if (auto* archive = std::get_if<NodeSource::Archive>(&source->v)) {
      std::string out(archive->archive->size(), '\0');
      auto n = archive->archive->Read(0, out.size(), out.data());
      EXPECT_TRUE(n && *n == out.size());
      return out;
    }
    ADD_FAILURE() << "unexpected source";
    return "";
  }

  std::string Chain(int index) {
    auto chain = store_->LayerChain(*remote_.top);
    return (*chain)[static_cast<size_t>(index)].chain_id.hex();
  }

  ScratchDir dir_;
  std::unique_ptr<Store> store_;
  std::string id_;
  FsOptions options_;
  Stats stats_;
  FakeRemote remote_;
  std::unique_ptr<MountNodes> nodes_;
};

TEST_F(NodesTest, RootListsTheMountDirectoriesAndHidesStatus) {
  EXPECT_EQ(Names(""),
            (std::vector<std::string>{"images", "layers", "tags", "import", "registry"}));
  auto meta = Walk(".imagefs");
  ASSERT_TRUE(meta);
  EXPECT_TRUE(S_ISDIR(meta->attr.st_mode));
  EXPECT_EQ(Names(".imagefs"), (std::vector<std::string>{"memory", "pulls.json", "stats"}));
  auto stats = Walk(".imagefs/stats");
  ASSERT_TRUE(stats);
  EXPECT_EQ(ReadAll(stats->ino).size(), static_cast<size_t>(stats->attr.st_size));
  auto memory_file = Walk(".imagefs/memory");
  ASSERT_TRUE(memory_file);
  std::string text = ReadAll(memory_file->ino);
  EXPECT_EQ(text.size(), static_cast<size_t>(memory_file->attr.st_size));
  auto memory = nlohmann::json::parse(text);
  // (0 under a sanitizer, whose allocator malloc's statistics do not see)
  EXPECT_TRUE(memory.at("heap_in_use_bytes").is_number_unsigned());
  EXPECT_GT(memory.at("RssAnon_kib").get<uint64_t>(), 0u);
  EXPECT_EQ(memory.at("VmRSS_kib").get<uint64_t>(), memory.at("RssAnon_kib").get<uint64_t>() +
                                                        memory.at("RssFile_kib").get<uint64_t>() +
                                                        memory.at("RssShmem_kib").get<uint64_t>());
  EXPECT_EQ(Walk("nope").error().code, Code::kNotFound);
}

TEST_F(NodesTest, ImageDirectoryAnswersEachNameAlone) {
  EXPECT_EQ(Names("images"), std::vector<std::string>{id_});
  EXPECT_EQ(Names("images/" + id_),
            (std::vector<std::string>{"config.json", "image.tar", "layers", "rootfs"}));
  // A unique prefix resolves, briefly trusted; the full ID for as long as trees.
  auto by_prefix = Walk("images/" + id_.substr(0, 12));
  ASSERT_TRUE(by_prefix);
  EXPECT_EQ(by_prefix->ino, Walk("images/" + id_)->ino);
  EXPECT_LE(by_prefix->timeout, options_.store_timeout);
  auto config = Walk("images/" + id_ + "/config.json");
  ASSERT_TRUE(config);
  EXPECT_EQ(ReadAll(config->ino), Config());
  EXPECT_EQ(static_cast<size_t>(config->attr.st_size), Config().size());
  EXPECT_EQ(Walk("images/" + id_ + "/nope").error().code, Code::kNotFound);
  auto bye = Walk("images/" + id_ + "/rootfs/etc/bye");
  ASSERT_TRUE(bye);
  EXPECT_EQ(bye->attr.st_size, 4);
  EXPECT_FALSE(Walk("images/" + id_ + "/rootfs/etc/hello"));  // whited out
}

TEST_F(NodesTest, ImageLayersAreNumberedLinksToLayers) {
  EXPECT_EQ(Names("images/" + id_ + "/layers"), (std::vector<std::string>{"0", "1"}));
  auto link = Walk("images/" + id_ + "/layers/1");
  ASSERT_TRUE(link);
  EXPECT_TRUE(S_ISLNK(link->attr.st_mode));
  auto target = nodes_->ReadLink(link->ino, RemoteAccess::kMounter);
  ASSERT_TRUE(target);
  EXPECT_EQ(*target, "../../../layers/" + Chain(1));
  EXPECT_EQ(static_cast<size_t>(link->attr.st_size), target->size());
  for (const char* bad : {"2", "01", "-1", "1x"})
    EXPECT_FALSE(Walk("images/" + id_ + "/layers/" + bad)) << bad;
}

TEST_F(NodesTest, ImageTarStatMeasuresAndOpenBuildsTheSameBytes) {
  auto tar = Walk("images/" + id_ + "/image.tar");
  ASSERT_TRUE(tar);
  auto stat = nodes_->Describe(tar->ino, RemoteAccess::kMounter);
  ASSERT_TRUE(stat);
  std::string bytes = ReadAll(tar->ino);
  EXPECT_EQ(static_cast<size_t>(stat->attr.st_size), bytes.size());
  EXPECT_EQ(bytes.size() % 512, 0u);
}

TEST_F(NodesTest, LayerDirectoriesShowParentsOnlyWhereThereIsOne) {
  EXPECT_EQ(Names("layers").size(), 2u);
  EXPECT_EQ(Names("layers/" + Chain(0)), (std::vector<std::string>{"diff", "layer.tar", "rootfs"}));
  EXPECT_EQ(Names("layers/" + Chain(1)),
            (std::vector<std::string>{"diff", "layer.tar", "parent", "rootfs"}));
  EXPECT_FALSE(Walk("layers/" + Chain(0) + "/parent"));
  auto parent = Walk("layers/" + Chain(1) + "/parent");
  ASSERT_TRUE(parent);
  EXPECT_EQ(*nodes_->ReadLink(parent->ino, RemoteAccess::kMounter), "../" + Chain(0));
  auto tar = Walk("layers/" + Chain(1) + "/layer.tar");
  ASSERT_TRUE(tar);
  EXPECT_EQ(static_cast<size_t>(tar->attr.st_size), kTop.size());
  auto source = nodes_->Open(tar->ino, RemoteAccess::kMounter);
  ASSERT_TRUE(source);
  EXPECT_TRUE(std::holds_alternative<NodeSource::Blob>(source->v));
}

TEST_F(NodesTest, TagsAreATreeOfLinks) {
  EXPECT_EQ(Names("tags"), std::vector<std::string>{"docker.io"});
  EXPECT_EQ(Names("tags/docker.io/example"), std::vector<std::string>{"app"});
  auto tag = Walk("tags/docker.io/example/app/1");
  ASSERT_TRUE(tag);
  EXPECT_EQ(*nodes_->ReadLink(tag->ino, RemoteAccess::kMounter), "../../../../images/" + id_);
  EXPECT_FALSE(Walk("tags/docker.io/example/app/2"));
  EXPECT_FALSE(Walk("tags/quay.io"));
}

TEST_F(NodesTest, RegistryPullsOnlyWhenSomethingButTheConfigIsLookedUp) {
  EXPECT_EQ(Names("registry"), std::vector<std::string>{"reg.test"});
  auto image = Walk("registry/reg.test/app/1");
  ASSERT_TRUE(image);
  EXPECT_EQ(image->timeout, 30);
  // A listing and the config's lookup, stat and read pull nothing; the listing then
  // carries no attributes but the config's.
  auto list = nodes_->ListSynthetic(image->ino, RemoteAccess::kMounter);
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 4u);
  for (const DirEntry& entry : *list)
    EXPECT_EQ(entry.type_only.has_value(), entry.name != "config.json") << entry.name;
  auto config = Walk("registry/reg.test/app/1/config.json");
  ASSERT_TRUE(config);
  EXPECT_EQ(ReadAll(config->ino), Config());
  EXPECT_EQ(remote_.materialized, 0);
  // The first lookup of anything else pulls; stats of what it found do not pull again.
  auto layers = Walk("registry/reg.test/app/1/layers");
  ASSERT_TRUE(layers);
  EXPECT_EQ(remote_.materialized, 1);
  ASSERT_TRUE(nodes_->Describe(layers->ino, RemoteAccess::kMounter));
  EXPECT_EQ(remote_.materialized, 1);
  auto link = Walk("registry/reg.test/app/1/layers/0");
  ASSERT_TRUE(link);
  EXPECT_EQ(*nodes_->ReadLink(link->ino, RemoteAccess::kMounter),
            "../../../../../layers/" + Chain(0));
  EXPECT_TRUE(Walk("registry/reg.test/app/1/rootfs/etc/bye"));
  EXPECT_FALSE(Walk("registry/reg.test/app/2"));
}

TEST_F(NodesTest, ARegistryRootfsServedLazilyPullsNothing) {
  remote_.lazy = store_.get();
  auto bye = Walk("registry/reg.test/app/1/rootfs/etc/bye");
  ASSERT_TRUE(bye) << bye.error().msg;
  EXPECT_EQ(remote_.materialized, 0);
  EXPECT_EQ(remote_.lazy_opened, 1);
  EXPECT_EQ(bye->attr.st_size, 4);
  EXPECT_FALSE(Walk("registry/reg.test/app/1/rootfs/etc/hello"));  // whited out
  // Its nodes are the served tree's, under a serial of their own: not the pulled rootfs's.
  auto tree_node = nodes_->TreeAndNode(bye->ino);
  ASSERT_TRUE(tree_node);
  EXPECT_EQ(tree_node->first, remote_.served);
  auto pulled = Walk("images/" + id_ + "/rootfs/etc/bye");
  ASSERT_TRUE(pulled);
  EXPECT_NE(InodeTable::SerialOf(pulled->ino), InodeTable::SerialOf(bye->ino));
  // Anything else still pulls; once pulled, the rootfs is the store's.
  ASSERT_TRUE(Walk("registry/reg.test/app/1/layers"));
  EXPECT_EQ(remote_.materialized, 1);
  int asked = remote_.lazy_opened;
  auto after = Walk("registry/reg.test/app/1/rootfs/etc/bye");
  ASSERT_TRUE(after);
  EXPECT_NE(InodeTable::SerialOf(after->ino), InodeTable::SerialOf(bye->ino));
  EXPECT_EQ(remote_.lazy_opened, asked);
  // A node the kernel kept from before still answers.
  EXPECT_TRUE(nodes_->Describe(bye->ino, RemoteAccess::kMounter));
}

TEST_F(NodesTest, DispatcherAnswersWrongOperationsWithTheirErrors) {
  auto config = Walk("images/" + id_ + "/config.json");
  auto images = Walk("images");
  ASSERT_TRUE(config && images);
  EXPECT_EQ(nodes_->ListSynthetic(config->ino, RemoteAccess::kMounter).error().ToErrno(), ENOTDIR);
  EXPECT_EQ(nodes_->LookupSynthetic(config->ino, "x", RemoteAccess::kMounter).error().ToErrno(),
            ENOTDIR);
  EXPECT_EQ(nodes_->ReadLink(images->ino, RemoteAccess::kMounter).error().ToErrno(), EINVAL);
  EXPECT_EQ(nodes_->Open(images->ino, RemoteAccess::kMounter).error().ToErrno(), EISDIR);
  EXPECT_EQ(nodes_->Describe(12345, RemoteAccess::kMounter).error().ToErrno(), ESTALE);
  EXPECT_EQ(nodes_->Describe(InodeTable::TreeIno(77, 0), RemoteAccess::kMounter).error().ToErrno(),
            ESTALE);
}

TEST_F(NodesTest, ImportListsUploads) {
  EXPECT_TRUE(Names("import").empty());
  auto fd = nodes_->import().Open("up.tar", O_CREAT | O_WRONLY, 0644);
  ASSERT_TRUE(fd);
  fd->Reset();
  EXPECT_EQ(Names("import"), std::vector<std::string>{"up.tar"});
  auto up = Walk("import/up.tar");
  ASSERT_TRUE(up);
  EXPECT_TRUE(S_ISREG(up->attr.st_mode));
  EXPECT_TRUE(
      std::holds_alternative<NodeSource::Import>(nodes_->Open(up->ino, RemoteAccess::kMounter)->v));
}

}  // namespace
}  // namespace imagefs
