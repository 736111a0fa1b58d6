// tags/: the store's tags as a tree of repository names (tags/docker.io/library/debian/),
// each tag a link to its image (…/bookworm -> ../../../../images/<id>). Key: the path
// below tags/.
#include <set>

#include "fusefs/nodes/common_kinds.h"
#include "fusefs/nodes/kinds.h"

namespace imagefs::kinds {
namespace {

// One name in a tags directory: a tag link or a directory below.
struct TagChild {
  std::string name;
  VKind kind;
  std::string key;
};

// The names of the tags directory `prefix`, in the store's tag order, each once; stops
// early when `visit` returns true.
template <typename Visit>
void ForEachChild(MountNodes& m, const std::string& prefix, Visit visit) {
  std::set<std::string> seen;
  for (const auto& [canonical, id] : m.store().Tags()) {
    auto ref = ParseReference(canonical);
    if (!ref) continue;
    std::string name = ref->Name();
    if (name == prefix) {
      // One node per (tag, image): a tag that moves is a new symlink, so the target the
      // kernel cached for the old one is never shown for the new.
      if (seen.insert(ref->tag).second &&
          visit(TagChild{ref->tag, VKind::kTagLink, canonical + "\n" + id}))
        return;
    } else if (prefix.empty() || name.rfind(prefix + "/", 0) == 0) {
      std::string rest = prefix.empty() ? name : name.substr(prefix.size() + 1);
      std::string component = rest.substr(0, rest.find('/'));
      std::string key = prefix.empty() ? component : prefix + "/" + component;
      if (seen.insert(component).second && visit(TagChild{component, VKind::kTagsDir, key})) return;
    }
  }
}

class TagsDirKind : public StoreDirKind {
 public:
  Result<NodeEntry> Lookup(MountNodes& m, const VNode& dir, const std::string& name,
                           RemoteAccess access) const override {
    std::optional<TagChild> found;
    ForEachChild(m, dir.key, [&](TagChild child) {
      if (child.name != name) return false;
      found = std::move(child);
      return true;
    });
    if (!found) return Fail(Errno(ENOENT, name));
    return m.Describe(m.inodes().Synthetic(found->kind, found->key), access);
  }

  Result<std::vector<DirEntry>> List(MountNodes& m, const VNode& dir, RemoteAccess) const override {
    std::vector<DirEntry> out;
    ForEachChild(m, dir.key, [&](const TagChild& child) {
      out.push_back({child.name, m.inodes().Synthetic(child.kind, child.key)});
      return false;
    });
    return out;
  }
};

// A tag link's key: "<canonical reference>\n<image id>".
Result<std::string> TagLinkTarget(const std::string& key) {
  size_t nl = key.find('\n');
  auto ref = ParseReference(key.substr(0, nl));
  if (!ref || nl == std::string::npos) return Fail(Errno(ENOENT, "tag gone"));
  std::string name = ref->Name();
  size_t components = 1 + std::count(name.begin(), name.end(), '/');
  std::string up;
  for (size_t i = 0; i <= components; ++i) up += "../";
  return up + "images/" + key.substr(nl + 1);
}

class TagLinkKind : public NodeKind {
 public:
  Result<NodeEntry> Attributes(MountNodes& m, fuse_ino_t ino, const VNode& v,
                               RemoteAccess) const override {
    ASSIGN_OR_RETURN(std::string target, TagLinkTarget(v.key));
    NodeEntry e = m.LinkEntry(ino, target.size());
    e.timeout = m.StoreTimeout();  // a tag may move: the watcher drops its entry then
    return e;
  }
  Result<std::string> ReadLink(MountNodes&, const VNode& v, RemoteAccess) const override {
    return TagLinkTarget(v.key);
  }
};

}  // namespace

const NodeKind& TagsDir() { return The<TagsDirKind>(); }
const NodeKind& TagLink() { return The<TagLinkKind>(); }

}  // namespace imagefs::kinds
