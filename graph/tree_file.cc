#include "graph/tree_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "graph/base/fs_util.h"
#include "graph/base/log.h"
#include "graph/base/scope_guard.h"

namespace imagefs {

namespace fs = std::filesystem;
namespace {

constexpr char kTreeMagic[8] = {'I', 'M', 'G', 'F', 'S', 'T', 'R', '1'};
// 2: AUFS metadata hidden from merged trees, and the FNV-1a name hash (trees of version 1
// were built by other rules and hashed with the standard library's hash).
// 3: stargz TOC and landmark files hidden.
constexpr uint32_t kVersion = 3;
constexpr uint32_t kNoNode = UINT32_MAX;

struct TreeHeader {
  char magic[8];
  uint32_t version;
  uint32_t kind;
  uint32_t layer_count;
  uint32_t reserved;
  uint64_t node_count, children_count, slots_count, names_size;
  uint64_t reserved2;
};
static_assert(sizeof(TreeHeader) == 64);

struct LayerRecord {
  char diff_id[64];  // hex
  uint64_t entries;
  uint64_t tar_size;
};
static_assert(sizeof(LayerRecord) == 80);

const char* FileName(TreeKind kind) {
  return kind == TreeKind::kMerged ? "merged.tree" : "diff.tree";
}

struct Mapping {
  void* data = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (data != nullptr) munmap(data, size);
  }
};

}  // namespace

Result<std::shared_ptr<const Tree>> TreeFile::Open(const Store& store, TreeKind kind,
                                                   const Digest& top) {
  fs::path path = store.LayerFilePath(top, FileName(kind));
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDONLY));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return FailErrno("stat " + path.string());
  auto bad = [&](const std::string& why) {
    return Fail(Code::kCorrupt, path.string() + ": " + why);
  };
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < sizeof(TreeHeader)) return bad("too short");
  auto map = std::make_shared<Mapping>();
  map->data = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (map->data == MAP_FAILED) {
    map->data = nullptr;
    return FailErrno("mmap " + path.string());
  }
  map->size = size;
  const char* base = static_cast<const char*>(map->data);
  TreeHeader h;
  std::memcpy(&h, base, sizeof h);
  if (std::memcmp(h.magic, kTreeMagic, sizeof kTreeMagic) != 0 || h.version != kVersion)
    return bad("not a tree file of this version");
  if (h.kind != static_cast<uint32_t>(kind)) return bad("kind differs");
  // Each count is bounded by the file size first, so that the size check below cannot wrap.
  if (h.node_count > size / sizeof(TreeNode) || h.children_count > size / sizeof(uint32_t) ||
      h.slots_count > size / sizeof(uint32_t) || h.layer_count > size / sizeof(LayerRecord)) {
    return bad("counts exceed the file size");
  }
  if (h.node_count == 0 || h.node_count >= kNoNode - 1 || h.slots_count < 16 ||
      (h.slots_count & (h.slots_count - 1)) != 0 || h.slots_count < h.node_count + 1 ||
      h.layer_count > (1u << 20) || h.children_count >= h.node_count || h.names_size > size) {
    return bad("counts out of range");
  }
  uint64_t expect = sizeof(TreeHeader) + h.layer_count * sizeof(LayerRecord) +
                    h.node_count * sizeof(TreeNode) +
                    (h.children_count + h.slots_count) * sizeof(uint32_t) + h.names_size;
  if (expect != size) return bad("size does not match its header");

  // Its inputs: the layers it was built from, as the store has them now.
  std::shared_ptr<Tree> tree(new Tree());
  const auto* layers = reinterpret_cast<const LayerRecord*>(base + sizeof(TreeHeader));
  std::vector<LayerInfo> chain;
  if (kind == TreeKind::kMerged) {
    ASSIGN_OR_RETURN(chain, store.LayerChain(top));
    if (chain.size() != h.layer_count) return bad("built from another chain");
  } else {
    ASSIGN_OR_RETURN(LayerInfo layer, store.GetLayer(top));
    chain.push_back(layer);
    if (h.layer_count == 0) return bad("no layers");
  }
  for (uint32_t i = 0; i < h.layer_count; ++i) {
    auto diff = Digest::FromHex(std::string_view(layers[i].diff_id, 64));
    if (!diff) return bad("layer " + std::to_string(i) + ": bad DiffID");
    if (i < chain.size() && *diff != chain[i].diff_id) return bad("built from other layers");
    ASSIGN_OR_RETURN(auto blob, store.OpenBlob(*diff));
    if (blob->index->entries().size() != layers[i].entries ||
        blob->index->tar_size() != layers[i].tar_size) {
      return bad("layer " + diff->str() + " has changed since");
    }
    tree->layers_.push_back(std::move(blob));
  }

  const char* at = base + sizeof(TreeHeader) + h.layer_count * sizeof(LayerRecord);
  std::span<const TreeNode> nodes(reinterpret_cast<const TreeNode*>(at), h.node_count);
  at += h.node_count * sizeof(TreeNode);
  std::span<const uint32_t> children(reinterpret_cast<const uint32_t*>(at), h.children_count);
  at += h.children_count * sizeof(uint32_t);
  std::span<const uint32_t> slots(reinterpret_cast<const uint32_t*>(at), h.slots_count);
  at += h.slots_count * sizeof(uint32_t);
  std::string_view names(at, h.names_size);
  // No pass over the nodes: a fresh mount's first lookup costs the same at ten entries or
  // ten million. The file is ours (fsynced, then renamed into place); Tree's accessors
  // keep a damaged one inside the mapping.
  tree->nodes_ = nodes;
  tree->children_ = children;
  tree->slots_ = slots;
  tree->names_ = names;
  tree->storage_ = std::move(map);
  // One lookup through the hash table: a table built with another hash finds nothing.
  if (h.node_count > 1 && tree->Lookup(tree->node(1).parent, tree->Name(1)) != 1u) {
    return bad("its name index does not find its own nodes");
  }
  return std::shared_ptr<const Tree>(std::move(tree));
}

Status TreeFile::Save(const Store& store, const Tree& tree, TreeKind kind, const Digest& top) {
  TreeHeader h{};
  std::memcpy(h.magic, kTreeMagic, sizeof kTreeMagic);
  h.version = kVersion;
  h.kind = static_cast<uint32_t>(kind);
  h.layer_count = static_cast<uint32_t>(tree.layers_.size());
  h.node_count = tree.nodes_.size();
  h.children_count = tree.children_.size();
  h.slots_count = tree.slots_.size();
  h.names_size = tree.names_.size();
  std::vector<LayerRecord> layers(tree.layers_.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    std::memcpy(layers[i].diff_id, tree.layers_[i]->diff_id.hex().data(), 64);
    layers[i].entries = tree.layers_[i]->index->entries().size();
    layers[i].tar_size = tree.layers_[i]->index->tar_size();
  }
  fs::path tmp = store.TmpDir() / ("tree-" + RandomSuffix());
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600));
  ScopeGuard remove([&] { ::unlink(tmp.c_str()); });
  RETURN_IF_ERROR(WriteAll(fd.get(), &h, sizeof h));
  RETURN_IF_ERROR(WriteAll(fd.get(), layers.data(), layers.size() * sizeof(LayerRecord)));
  RETURN_IF_ERROR(WriteAll(fd.get(), tree.nodes_.data(), tree.nodes_.size_bytes()));
  RETURN_IF_ERROR(WriteAll(fd.get(), tree.children_.data(), tree.children_.size_bytes()));
  RETURN_IF_ERROR(WriteAll(fd.get(), tree.slots_.data(), tree.slots_.size_bytes()));
  RETURN_IF_ERROR(WriteAll(fd.get(), tree.names_.data(), tree.names_.size()));
  // Durable before it is named: after a crash there is a whole tree file or none.
  if (fsync(fd.get()) != 0) return FailErrno("fsync " + tmp.string());
  fs::path dest = store.LayerFilePath(top, FileName(kind));
  if (::rename(tmp.c_str(), dest.c_str()) != 0) return FailErrno("rename to " + dest.string());
  remove.Dismiss();
  return {};
}

Result<std::shared_ptr<const Tree>> TreeFile::Load(const Store& store, TreeKind kind,
                                                   const Digest& top) {
  auto opened = Open(store, kind, top);
  if (opened) return opened;
  if (opened.error().code != Code::kNotFound)
    Logger("graph")->info("tree {}: building it again: {}", top.str(), opened.error().msg);
  ASSIGN_OR_RETURN(auto built, kind == TreeKind::kMerged ? Tree::BuildMerged(store, top)
                                                         : Tree::BuildDiff(store, top));
  if (auto saved = Save(store, *built, kind, top); !saved) {
    Logger("graph")->debug("tree {}: not saved: {}", top.str(), saved.error().msg);
  }
  return built;
}

}  // namespace imagefs
