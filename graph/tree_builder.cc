// Tree building: layers applied in order (whiteouts, opaque directories, hardlinks), then
// frozen into the flat arrays tree.cc reads.
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <tuple>
#include <unordered_map>

#include "graph/base/fs_util.h"
#include "graph/base/log.h"
#include "graph/layer_names.h"
#include "graph/tree.h"
#include "graph/tree_internal.h"

namespace imagefs {

using tree_internal::HashChild;
using tree_internal::kNone;

// Applies layers to a mutable tree, then freezes it. Names are views into the layers'
// mmap'd string tables, which outlive the builder. Lean on purpose, as a million-entry
// image is built in the process that loads it: 48 bytes a node, a node's children a
// linked list, the (parent, name) index an open-addressing table of node ids.
class TreeBuilder {
 public:
  // Finds a hardlink target that is not in the layers applied so far (a layer's diff view
  // linking into the layers below): returns (layer, entry, an inode key) or nullopt.
  using BelowResolver =
      std::function<std::optional<std::tuple<uint32_t, uint32_t, uint32_t>>(std::string_view)>;
  void set_below(BelowResolver resolver) { below_ = std::move(resolver); }
  // Layers whose tars are still arriving: a hardlink whose target has not arrived yet is
  // left out, not an error.
  void set_partial() { partial_ = true; }

  TreeBuilder() {
    nodes_.push_back(BNode{kNone, Tree::kImplied, 0, 0, kNone, kNone, "", true, true});
    table_.assign(1024, kNone);
  }

  Status ApplyLayer(uint32_t layer_index, const TarIndex& index, bool merge) {
    layer_ = layer_index;
    auto entries = index.entries();
    Reserve(nodes_.size() + entries.size());
    std::unordered_map<std::string_view, uint32_t> aufs_links;  // .wh..wh.plnk/NAME -> entry
    if (merge) {
      // Deletions first: whiteouts and opaque markers apply to the lower layers only,
      // whatever their position in this layer's tar.
      for (uint32_t i = 0; i < entries.size(); ++i) {
        const IndexEntry& e = entries[i];
        std::string_view path = index.Path(e);
        if (IsAufsMeta(path)) {
          if (DirName(path) == kAufsLinkDir && e.kind == EntryKind::kFile)
            aufs_links.emplace(BaseName(path), i);
          continue;
        }
        std::string_view base = BaseName(path);
        if (base == kOpaque) {
          if (auto dir = ResolveNoFollow(DirName(path)); dir && nodes_[*dir].is_dir) {
            for (uint32_t k = nodes_[*dir].first_kid; k != kNone; k = nodes_[k].next) Remove(k);
          }
        } else if (base.substr(0, kWhiteoutPrefix.size()) == kWhiteoutPrefix) {
          if (auto dir = ResolveNoFollow(DirName(path)); dir && nodes_[*dir].is_dir) {
            if (auto victim = Find(*dir, base.substr(kWhiteoutPrefix.size()))) Remove(*victim);
          }
        }
      }
    }
    std::vector<std::pair<uint32_t, uint32_t>> pending_links;  // (node, entry)
    const bool stargz = IsStargzLayer(index);
    for (uint32_t i = 0; i < entries.size(); ++i) {
      const IndexEntry& e = entries[i];
      std::string_view path = index.Path(e);
      if (stargz && IsStargzMeta(path)) continue;
      if (merge &&
          (IsAufsMeta(path) || BaseName(path).substr(0, kWhiteoutPrefix.size()) == kWhiteoutPrefix))
        continue;
      bool is_dir = e.kind == EntryKind::kDir;
      if (path.empty()) {  // the root's own entry
        if (is_dir) SetEntry(0, i);
        continue;
      }
      uint32_t parent = EnsureDir(DirName(path));
      std::string_view name = BaseName(path);
      if (auto existing = Find(parent, name)) {
        if (is_dir && nodes_[*existing].is_dir) {  // directory over directory: contents merge
          SetEntry(*existing, i);
          continue;
        }
        Remove(*existing);
      }
      uint32_t id = Add(parent, name, is_dir);
      std::string_view link = e.kind == EntryKind::kHardlink ? index.Link(e) : std::string_view();
      if (merge && e.kind == EntryKind::kHardlink && DirName(link) == kAufsLinkDir) {
        // A link into .wh..wh.plnk/ becomes a file of its own with the target's content
        // and attributes, as Docker unpacks it.
        auto target = aufs_links.find(BaseName(link));
        if (target == aufs_links.end() && partial_) {
          Remove(id);
          continue;
        }
        if (target == aufs_links.end()) {
          return Fail(Code::kCorrupt, "hardlink \"" + std::string(path) + "\" -> \"" +
                                          std::string(link) +
                                          "\": AUFS link target not in this layer");
        }
        SetEntry(id, target->second);
      } else if (e.kind == EntryKind::kHardlink) {
        // Bound to the inode its target names now; a target listed later in this same
        // layer is resolved once the layer's other entries are in.
        if (!Link(id, index.Link(e))) pending_links.emplace_back(id, i);
      } else {
        SetEntry(id, i);
      }
    }
    for (auto [id, i] : pending_links) {
      if (!nodes_[id].alive) continue;  // a later entry replaced the link
      if (!Link(id, index.Link(entries[i]), /*last_chance=*/true)) {
        if (partial_) {
          Remove(id);
          continue;
        }
        return Fail(Code::kCorrupt, "hardlink \"" + std::string(index.Path(entries[i])) +
                                        "\" -> \"" + std::string(index.Link(entries[i])) +
                                        "\": target not found");
      }
    }
    return {};
  }

  // The frozen form: nodes in DFS order of sorted names (deterministic ids, and locality
  // for tar -c and find), children in one array, the (parent, name) hash table.
  std::shared_ptr<Tree::Built> Freeze() {
    table_ = {};  // the builder's index is not needed any more: give its memory back first
    auto built = std::make_shared<Tree::Built>();
    std::vector<uint32_t> new_id(nodes_.size(), kNone);
    std::vector<uint32_t> order;
    std::vector<uint32_t> stack{0}, kids;
    while (!stack.empty()) {
      uint32_t id = stack.back();
      stack.pop_back();
      new_id[id] = static_cast<uint32_t>(order.size());
      order.push_back(id);
      if (!nodes_[id].is_dir) continue;
      SortedLiveKids(id, kids);
      for (auto it = kids.rbegin(); it != kids.rend(); ++it) stack.push_back(*it);
    }
    // Builder inodes are builder node ids: count the names of each, and find its first.
    std::vector<uint32_t> first_name(nodes_.size(), kNone), links(nodes_.size(), 0);
    for (uint32_t old : order) {
      uint32_t inode = nodes_[old].inode;
      if (first_name[inode] == kNone) first_name[inode] = new_id[old];
      ++links[inode];
    }
    size_t names = 0;
    for (uint32_t old : order) names += nodes_[old].name.size();
    built->nodes.resize(order.size());
    built->names.reserve(names);
    built->children.reserve(order.size() - 1);
    for (uint32_t n = 0; n < order.size(); ++n) {
      const BNode& b = nodes_[order[n]];
      TreeNode& t = built->nodes[n];
      t.parent = b.parent == kNone ? 0 : new_id[b.parent];
      t.name_off = static_cast<uint32_t>(built->names.size());
      t.name_len = static_cast<uint32_t>(b.name.size());
      built->names.append(b.name);
      t.layer = b.layer;
      t.entry = b.entry;
      t.inode = first_name[b.inode];
      t.nlink = b.is_dir ? 2 : links[b.inode];
      t.first_child = static_cast<uint32_t>(built->children.size());
      t.child_count = 0;
      if (b.is_dir) {
        SortedLiveKids(order[n], kids);  // new ids follow name order
        for (uint32_t k : kids) {
          built->children.push_back(new_id[k]);
          if (nodes_[k].is_dir) ++t.nlink;
        }
        t.child_count = static_cast<uint32_t>(kids.size());
      }
    }
    nodes_ = {};
    size_t slots = 16;
    while (slots < built->nodes.size() * 2) slots *= 2;
    built->slots.assign(slots, kNone);
    for (uint32_t n = 1; n < built->nodes.size(); ++n) {
      const TreeNode& t = built->nodes[n];
      std::string_view name(built->names.data() + t.name_off, t.name_len);
      size_t s = HashChild(t.parent, name) & (slots - 1);
      while (built->slots[s] != kNone) s = (s + 1) & (slots - 1);
      built->slots[s] = n;
    }
    return built;
  }

 private:
  static constexpr uint32_t kDead = UINT32_MAX - 1;  // a removed slot of table_
  struct BNode {
    uint32_t parent;
    uint32_t layer;
    uint32_t entry;
    uint32_t inode;
    uint32_t first_kid;  // children, newest first; may hold dead nodes
    uint32_t next;       // the next sibling
    std::string_view name;
    bool is_dir;
    bool alive;
  };

  void SortedLiveKids(uint32_t dir, std::vector<uint32_t>& out) const {
    out.clear();
    for (uint32_t k = nodes_[dir].first_kid; k != kNone; k = nodes_[k].next) {
      if (nodes_[k].alive) out.push_back(k);
    }
    std::sort(out.begin(), out.end(),
              [&](uint32_t a, uint32_t b) { return nodes_[a].name < nodes_[b].name; });
  }

  // Room for `nodes` in all, growing geometrically: a chain of many small layers must not
  // copy everything once per layer.
  void Reserve(size_t nodes) {
    if (nodes_.capacity() < nodes) nodes_.reserve(std::max(nodes, nodes_.capacity() * 2));
    if (table_.size() < nodes * 2) Rehash(std::max(nodes * 2, table_.size() * 2));
  }

  void Rehash(size_t at_least) {
    size_t size = 1024;
    while (size < at_least) size *= 2;
    std::vector<uint32_t> old = std::move(table_);
    table_.assign(size, kNone);
    used_ = 0;
    for (uint32_t id : old) {
      if (id == kNone || id == kDead) continue;
      size_t s = Slot(nodes_[id].parent, nodes_[id].name);
      while (table_[s] != kNone) s = (s + 1) & (table_.size() - 1);
      table_[s] = id;
      ++used_;
    }
  }

  size_t Slot(uint32_t parent, std::string_view name) const {
    return HashChild(parent, name) & (table_.size() - 1);
  }

  std::optional<uint32_t> Find(uint32_t dir, std::string_view name) const {
    for (size_t s = Slot(dir, name);; s = (s + 1) & (table_.size() - 1)) {
      uint32_t id = table_[s];
      if (id == kNone) return std::nullopt;
      if (id != kDead && nodes_[id].parent == dir && nodes_[id].name == name) return id;
    }
  }

  std::optional<uint32_t> ResolveNoFollow(std::string_view path) const {
    uint32_t cur = 0;
    while (!path.empty()) {
      size_t slash = path.find('/');
      std::string_view comp = path.substr(0, slash);
      if (!nodes_[cur].is_dir) return std::nullopt;
      auto next = Find(cur, comp);
      if (!next) return std::nullopt;
      cur = *next;
      path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
    }
    return cur;
  }

  // Walks to a directory, creating the ones the tar never lists (as tar and umoci do) and
  // replacing a non-directory in the way: symlinks are never followed.
  uint32_t EnsureDir(std::string_view path) {
    uint32_t cur = 0;
    while (!path.empty()) {
      size_t slash = path.find('/');
      std::string_view comp = path.substr(0, slash);
      auto next = Find(cur, comp);
      if (next && !nodes_[*next].is_dir) {
        Remove(*next);
        next.reset();
      }
      cur = next ? *next : Add(cur, comp, true);
      path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
    }
    return cur;
  }

  uint32_t Add(uint32_t parent, std::string_view name, bool is_dir) {
    if ((used_ + 1) * 2 > table_.size()) Rehash((used_ + 1) * 4);
    uint32_t id = static_cast<uint32_t>(nodes_.size());
    nodes_.push_back(
        BNode{parent, Tree::kImplied, 0, id, kNone, nodes_[parent].first_kid, name, is_dir, true});
    nodes_[parent].first_kid = id;
    size_t s = Slot(parent, name);
    while (table_[s] != kNone && table_[s] != kDead) s = (s + 1) & (table_.size() - 1);
    if (table_[s] == kNone) ++used_;
    table_[s] = id;
    return id;
  }

  void SetEntry(uint32_t id, uint32_t entry) {
    nodes_[id].layer = layer_;
    nodes_[id].entry = entry;
    nodes_[id].inode = id;
  }

  bool Link(uint32_t id, std::string_view target_path, bool last_chance = false) {
    auto target = ResolveNoFollow(target_path);
    if (!target && last_chance && below_) {
      auto found = below_(target_path);
      if (!found) return false;
      auto [layer, entry, below_inode] = *found;
      nodes_[id].layer = layer;
      nodes_[id].entry = entry;
      // Names of one lower inode share one inode here too.
      nodes_[id].inode = below_inodes_.emplace(below_inode, id).first->second;
      return true;
    }
    if (!target || *target == id || nodes_[*target].is_dir ||
        nodes_[*target].layer == Tree::kImplied) {
      return false;
    }
    nodes_[id].layer = nodes_[*target].layer;
    nodes_[id].entry = nodes_[*target].entry;
    nodes_[id].inode = nodes_[*target].inode;
    return true;
  }

  // Removes a subtree, iteratively: a hostile layer may nest directories very deep.
  void Remove(uint32_t root) {
    std::vector<uint32_t> pending{root};
    while (!pending.empty()) {
      uint32_t id = pending.back();
      pending.pop_back();
      BNode& n = nodes_[id];
      if (!n.alive) continue;
      n.alive = false;
      for (size_t s = Slot(n.parent, n.name);; s = (s + 1) & (table_.size() - 1)) {
        if (table_[s] == kNone) break;
        if (table_[s] == id) {
          table_[s] = kDead;
          break;
        }
      }
      if (n.is_dir) {
        for (uint32_t k = n.first_kid; k != kNone; k = nodes_[k].next) pending.push_back(k);
        n.first_kid = kNone;
      }
    }
  }

  std::vector<BNode> nodes_;
  std::vector<uint32_t> table_;  // node ids by (parent, name); kNone empty, kDead removed
  size_t used_ = 0;              // slots not kNone
  uint32_t layer_ = 0;
  BelowResolver below_;
  bool partial_ = false;
  std::unordered_map<uint32_t, uint32_t> below_inodes_;
};

void Tree::Adopt(std::shared_ptr<Built> built) {
  nodes_ = built->nodes;
  children_ = built->children;
  names_ = built->names;
  slots_ = built->slots;
  storage_ = std::move(built);
}

Result<std::shared_ptr<const Tree>> Tree::BuildMerged(const Store& store,
                                                      const std::optional<Digest>& top) {
  std::vector<std::shared_ptr<const LayerBlob>> layers;
  if (top) {
    ASSIGN_OR_RETURN(auto chain, store.LayerChain(*top));
    for (const LayerInfo& layer : chain) {
      ASSIGN_OR_RETURN(auto blob, store.OpenBlob(layer.diff_id));
      layers.push_back(std::move(blob));
    }
  }
  auto tree = BuildMergedFrom(std::move(layers));
  if (!tree) return Fail(tree.error().WithContext("chain " + top->str()));
  return tree;
}

Result<std::shared_ptr<const Tree>> Tree::BuildMergedFrom(
    std::vector<std::shared_ptr<const LayerBlob>> layers, bool partial) {
  std::shared_ptr<Tree> tree(new Tree());
  TreeBuilder builder;
  if (partial) builder.set_partial();
  for (size_t i = 0; i < layers.size(); ++i) {
    if (auto st = builder.ApplyLayer(static_cast<uint32_t>(i), *layers[i]->index, true); !st) {
      return Fail(st.error().WithContext("merge layer " + std::to_string(i) + " (diff " +
                                         layers[i]->diff_id.str() + ")"));
    }
    layers[i]->index->DropResidentPages();
  }
  tree->layers_ = std::move(layers);
  tree->Adopt(builder.Freeze());
  return std::shared_ptr<const Tree>(std::move(tree));
}

Result<std::shared_ptr<const Tree>> Tree::BuildDiff(const Store& store, const Digest& chain_id) {
  ASSIGN_OR_RETURN(LayerInfo layer, store.GetLayer(chain_id));
  ASSIGN_OR_RETURN(auto blob, store.OpenBlob(layer.diff_id));
  std::shared_ptr<Tree> tree(new Tree());
  tree->layers_.push_back(blob);
  TreeBuilder builder;
  // A hardlink to a file of a lower layer is resolved in the merged tree below, built only
  // when such a link turns up; its blob joins this tree's layers.
  std::shared_ptr<const Tree> below;
  Status below_status;
  builder.set_below(
      [&](std::string_view path) -> std::optional<std::tuple<uint32_t, uint32_t, uint32_t>> {
        if (!layer.parent) return std::nullopt;
        if (!below) {
          auto built = BuildMerged(store, layer.parent);
          if (!built) {
            below_status = Fail(built.error());
            return std::nullopt;
          }
          below = *built;
        }
        auto node = below->Resolve(path);
        if (!node || below->IsDir(*node) || below->node(*node).layer == kImplied)
          return std::nullopt;
        const TreeNode& n = below->node(*node);
        tree->layers_.push_back(below->layers_[n.layer]);
        return std::make_tuple(static_cast<uint32_t>(tree->layers_.size() - 1), n.entry, n.inode);
      });
  if (auto st = builder.ApplyLayer(0, *blob->index, false); !st) {
    if (!below_status) return Fail(below_status.error());
    return Fail(st.error().WithContext("layer " + chain_id.str()));
  }
  tree->Adopt(builder.Freeze());
  return std::shared_ptr<const Tree>(std::move(tree));
}

}  // namespace imagefs
