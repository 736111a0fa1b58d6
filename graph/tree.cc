#include "graph/tree.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <tuple>
#include <unordered_map>

#include "graph/base/fs_util.h"
#include "graph/base/log.h"
#include "graph/layer_names.h"
#include "graph/tree_internal.h"

namespace imagefs {

using tree_internal::HashChild;
using tree_internal::kNone;

std::optional<uint32_t> Tree::Lookup(uint32_t dir, std::string_view name) const {
  size_t mask = slots_.size() - 1;
  size_t s = HashChild(dir, name) & mask;
  for (size_t probes = 0; probes < slots_.size(); ++probes, s = (s + 1) & mask) {
    uint32_t n = slots_[s];
    if (n == kNone) return std::nullopt;
    if (n < nodes_.size() && nodes_[n].parent == dir && Name(n) == name) return n;
  }
  return std::nullopt;
}

std::optional<uint32_t> Tree::Resolve(std::string_view path) const {
  uint32_t cur = kRoot;
  while (!path.empty()) {
    size_t slash = path.find('/');
    std::string_view comp = path.substr(0, slash);
    if (!comp.empty()) {
      auto next = Lookup(cur, comp);
      if (!next) return std::nullopt;
      cur = *next;
    }
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
  }
  return cur;
}

std::string Tree::Path(uint32_t id) const {
  std::vector<std::string_view> parts;
  // Parents come before their children: a damaged parent id cannot make this loop.
  for (uint32_t cur = id; cur != kRoot && nodes_[cur].parent < cur; cur = nodes_[cur].parent)
    parts.push_back(Name(cur));
  std::string out;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    if (!out.empty()) out += '/';
    out.append(*it);
  }
  return out;
}

const IndexEntry* Tree::Entry(uint32_t id) const {
  const TreeNode& n = nodes_[id];
  if (n.layer == kImplied || n.layer >= layers_.size()) return nullptr;
  auto entries = layers_[n.layer]->index->entries();
  return n.entry < entries.size() ? &entries[n.entry] : nullptr;
}

bool Tree::IsDir(uint32_t id) const {
  const IndexEntry* e = Entry(id);
  return e == nullptr || e->kind == EntryKind::kDir;
}

TreeAttr Tree::Attr(uint32_t id) const {
  const TreeNode& n = nodes_[id];
  TreeAttr a{};
  a.nlink = n.nlink;
  a.inode = n.inode;
  const IndexEntry* e = Entry(id);
  if (e == nullptr) {
    a.mode = S_IFDIR | 0755;
    a.size = 4096;
    a.blocks = 8;
    return a;
  }
  // On disk a symlink's permission bits are always 0777, whatever its tar header says.
  a.mode = e->kind == EntryKind::kSymlink ? (S_IFLNK | 0777) : e->mode;
  a.uid = e->uid;
  a.gid = e->gid;
  a.mtime_sec = e->mtime_sec;
  a.mtime_nsec = e->mtime_nsec;
  a.rdev_major = e->rdev_major;
  a.rdev_minor = e->rdev_minor;
  switch (e->kind) {
    case EntryKind::kDir: a.size = 4096; break;
    case EntryKind::kSymlink: a.size = e->link_len; break;
    case EntryKind::kFile:
    case EntryKind::kHardlink: a.size = e->size; break;
    default: a.size = 0; break;
  }
  uint64_t stored = a.size;
  if (e->data_offset == kUseExtents) {
    stored = 0;
    for (const IndexExtent& x : layers_[n.layer]->index->Extents(*e)) stored += x.length;
  }
  a.blocks = (stored + 511) / 512;
  return a;
}

std::string_view Tree::SymlinkTarget(uint32_t id) const {
  const IndexEntry* e = Entry(id);
  if (e == nullptr || e->kind != EntryKind::kSymlink) return {};
  return layers_[nodes_[id].layer]->index->Link(*e);
}

std::vector<std::pair<std::string_view, std::string_view>> Tree::Xattrs(uint32_t id) const {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  const IndexEntry* e = Entry(id);
  if (e == nullptr) return out;
  const TarIndex& index = *layers_[nodes_[id].layer]->index;
  for (const IndexXattr& x : index.Xattrs(*e)) {
    out.emplace_back(index.Str(x.name_off, x.name_len), index.Str(x.value_off, x.value_len));
  }
  return out;
}

bool Tree::MayFetch(uint32_t id) const {
  if (data_) return data_->MayFetch(id);
  if (id >= nodes_.size()) return false;
  const uint32_t layer = nodes_[id].layer;
  return layer < layers_.size() && layers_[layer]->fetcher != nullptr;
}

Result<size_t> Tree::Read(uint32_t id, uint64_t off, size_t len, char* buf) const {
  if (data_) return data_->Read(id, off, len, buf);
  const IndexEntry* e = Entry(id);
  if (e == nullptr || (e->kind != EntryKind::kFile && e->kind != EntryKind::kHardlink)) {
    return Fail(Code::kInvalid, "not a regular file");
  }
  const LayerBlob& blob = *layers_[nodes_[id].layer];
  if (!blob.fd.valid()) {
    return Fail(Error{Code::kIo, EIO,
                      "read " + Path(id) + ": layer blob " + blob.diff_id.str() + " is missing"});
  }
  if (blob.fetcher && off < e->size) {
    uint64_t end = std::min<uint64_t>(e->size, off + len);
    Status st;
    if (e->data_offset != kUseExtents) {
      st = blob.fetcher->Ensure(e->data_offset + off, end - off);
    } else {
      for (const IndexExtent& x : blob.index->Extents(*e)) {
        uint64_t lo = std::max(off, x.logical), hi = std::min(end, x.logical + x.length);
        if (lo < hi && st) st = blob.fetcher->Ensure(x.physical + (lo - x.logical), hi - lo);
      }
    }
    if (!st) {
      return Fail(
          Error{Code::kIo, EIO,
                "read " + Path(id) + " from layer " + blob.diff_id.str() + ": " + st.error().msg});
    }
  }
  auto n = ReadEntryData(blob.fd.get(), *blob.index, *e, off, len, buf);
  if (!n) {
    // Whatever the blob's fault (short, unreadable), the reader sees EIO.
    return Fail(
        Error{Code::kIo, EIO,
              "read " + Path(id) + " from layer " + blob.diff_id.str() + ": " + n.error().msg});
  }
  return n;
}

std::optional<Tree::Extent> Tree::ContiguousData(uint32_t id) const {
  if (data_) return data_->ContiguousData(id);
  const IndexEntry* e = Entry(id);
  if (e == nullptr || e->kind != EntryKind::kFile || e->data_offset == kUseExtents)
    return std::nullopt;
  const LayerBlob& blob = *layers_[nodes_[id].layer];
  if (blob.fetcher) return std::nullopt;
  return Extent{blob.fd.get(), e->data_offset, blob.diff_id};
}

std::optional<std::vector<std::pair<uint64_t, uint64_t>>> Tree::DataRuns(uint32_t id) const {
  if (data_) return data_->DataRuns(id);
  const IndexEntry* e = Entry(id);
  if (e == nullptr || e->kind != EntryKind::kFile || e->data_offset != kUseExtents)
    return std::nullopt;
  std::vector<std::pair<uint64_t, uint64_t>> runs;
  for (const IndexExtent& x : layers_[nodes_[id].layer]->index->Extents(*e))
    runs.emplace_back(x.logical, x.length);
  return runs;
}

Result<std::shared_ptr<const Tree>> Tree::WithDataOf(std::shared_ptr<const Tree> meta,
                                                     std::shared_ptr<const Tree> data) {
  if (meta->size() != data->size())
    return Fail(Code::kInvalid,
                std::to_string(meta->size()) + " entries against " + std::to_string(data->size()));
  // Equal parents and names for every id make equal paths for every id.
  for (uint32_t id = 0; id < meta->size(); ++id) {
    const TreeNode& m = meta->node(id);
    const TreeNode& d = data->node(id);
    TreeAttr ma = meta->Attr(id), da = data->Attr(id);
    const char* what = nullptr;
    if (m.parent != d.parent || meta->Name(id) != data->Name(id)) {
      what = "a different name";
    } else if (m.child_count != d.child_count) {
      what = "different entries";
    } else if ((ma.mode & S_IFMT) != (da.mode & S_IFMT)) {
      what = "a different type";
    } else if (S_ISREG(ma.mode) && ma.size != da.size) {
      what = "a different size";
    } else if (ma.inode != da.inode || (!S_ISDIR(ma.mode) && ma.nlink != da.nlink)) {
      // (Not a directory's count: it follows its subdirectories, whose types tell first.)
      what = "different hard links";
    }
    if (what != nullptr) return Fail(Code::kInvalid, "/" + meta->Path(id) + " has " + what);
  }
  std::shared_ptr<Tree> tree(new Tree(*meta));
  tree->data_ = std::move(data);
  return std::shared_ptr<const Tree>(std::move(tree));
}

size_t Tree::MemoryBytes() const {
  return nodes_.size_bytes() + children_.size_bytes() + names_.size() + slots_.size_bytes() +
         sizeof(*this);
}

}  // namespace imagefs
