// The tree builder over layer indexes: the input is up to four layer tars joined by
// kLayerSeparator, registered as one chain; then the merged and diff trees are built,
// walked, diffed against the chain below, exported as a tar (which our own indexer must
// take back), saved and mapped again. The layers are deleted afterwards, so the store does
// not grow.
#include <sys/mman.h>

#include <vector>

#include "graph/tree.h"
#include "graph/tree_diff.h"
#include "graph/tree_export.h"
#include "graph/tree_file.h"
#include "tests/fuzz/fuzz_util.h"

namespace imagefs::fuzz {
namespace {

constexpr std::string_view kLayerSeparator = "IMAGEFS-NEXT-LAYER";
constexpr size_t kMaxLayers = 4;

void Walk(const Tree& tree) {
  std::vector<char> buf(4096);
  for (uint32_t id = 0; id < tree.size(); ++id) {
    // Every node is found again by its path.
    std::string path = tree.Path(id);
    auto found = tree.Resolve(path);
    FUZZ_CHECK(found.has_value() && *found == id);
    TreeAttr attr = tree.Attr(id);
    (void)tree.IsDir(id);
    (void)tree.SymlinkTarget(id);
    (void)tree.Xattrs(id);
    (void)tree.DataRuns(id);
    (void)tree.ContiguousData(id);
    for (uint32_t child : tree.Children(id)) {
      FUZZ_CHECK(child < tree.size() && tree.node(child).parent == id);
    }
    if ((attr.mode & S_IFMT) == S_IFREG) {
      auto n = tree.Read(id, 0, buf.size(), buf.data());
      if (n) FUZZ_CHECK(*n == std::min<uint64_t>(buf.size(), attr.size));
    }
  }
}

// An exported tree is a tar that imagefs must be able to load again.
void CheckExport(const Tree& tree, const std::filesystem::path& dir) {
  UniqueFd out(memfd_create("export.tar", MFD_CLOEXEC));
  FUZZ_CHECK(out.valid());
  if (!ExportTree(tree, out.get())) return;  // a file whose data cannot be read
  off_t size = lseek(out.get(), 0, SEEK_END);
  FUZZ_CHECK(size > 0);
  void* map = mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, out.get(), 0);
  FUZZ_CHECK(map != MAP_FAILED);
  auto summary = WriteTarIndex(static_cast<const char*>(map), static_cast<uint64_t>(size),
                               dir / "export.index");
  munmap(map, static_cast<size_t>(size));
  if (!summary) std::fprintf(stderr, "export not indexable: %s\n", summary.error().msg.c_str());
  FUZZ_CHECK(summary.has_value());
}

void Exercise(Store& store, const std::vector<LayerInfo>& chain, const std::filesystem::path& dir) {
  std::shared_ptr<const Tree> below;
  for (const LayerInfo& layer : chain) {
    auto merged = Tree::BuildMerged(store, layer.chain_id);
    if (!merged) return;  // e.g. a hardlink to a name that is not there
    Walk(**merged);
    if (auto diff = Tree::BuildDiff(store, layer.chain_id)) Walk(**diff);
    if (below) (void)DiffTrees(*below, **merged);
    below = *merged;
  }
  CheckExport(*below, dir);
  if (!TreeFile::Save(store, *below, TreeKind::kMerged, chain.back().chain_id)) return;
  auto mapped = TreeFile::Open(store, TreeKind::kMerged, chain.back().chain_id);
  FUZZ_CHECK(mapped.has_value() && (*mapped)->size() == below->size());
  Walk(**mapped);
}

}  // namespace

void FuzzOne(std::string_view input) {
  static ScratchDir dir("imagefs-fuzz-tree");
  static std::unique_ptr<Store> store = [] {
    StoreOptions options;
    options.create = true;
    auto s = Store::Open(dir.path() / "store", options);
    FUZZ_CHECK(s.has_value());
    return std::move(*s);
  }();
  std::vector<LayerInfo> chain;
  for (std::string_view tar : SplitInput(input, kLayerSeparator, kMaxLayers)) {
    MemorySource source(tar);
    std::optional<Digest> parent;
    if (!chain.empty()) parent = chain.back().chain_id;
    auto layer = store->RegisterLayer(parent, source);
    if (!layer) break;
    chain.push_back(*layer);
  }
  if (!chain.empty()) Exercise(*store, chain, dir.path());
  // The same tar twice in a chain is two layers over one diff: delete top down.
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    auto st = store->DeleteLayer(it->chain_id);
    FUZZ_CHECK(st.has_value());
  }
}

}  // namespace imagefs::fuzz
