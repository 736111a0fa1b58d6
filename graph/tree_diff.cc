#include "graph/tree_diff.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <tuple>

namespace imagefs {
namespace {

using Children = std::map<std::string_view, uint32_t>;

Children ChildrenOf(const Tree& tree, uint32_t dir) {
  Children out;
  for (uint32_t child : tree.Children(dir)) {
    if (child < tree.size()) out.emplace(tree.Name(child), child);
  }
  return out;
}

Result<bool> SameContent(const Tree& a, uint32_t na, const Tree& b, uint32_t nb, uint64_t size) {
  auto ea = a.ContiguousData(na), eb = b.ContiguousData(nb);
  if (ea && eb && ea->diff_id == eb->diff_id && ea->offset == eb->offset) return true;
  std::string ba(1 << 20, '\0'), bb(1 << 20, '\0');
  for (uint64_t off = 0; off < size;) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(ba.size(), size - off));
    ASSIGN_OR_RETURN(size_t ra, a.Read(na, off, want, ba.data()));
    ASSIGN_OR_RETURN(size_t rb, b.Read(nb, off, want, bb.data()));
    if (ra != rb || ra == 0 || std::memcmp(ba.data(), bb.data(), ra) != 0) return false;
    off += ra;
  }
  return true;
}

Result<std::vector<std::string>> Changes(const Tree& a, uint32_t na, const Tree& b, uint32_t nb) {
  TreeAttr x = a.Attr(na), y = b.Attr(nb);
  std::vector<std::string> what;
  if ((x.mode & S_IFMT) != (y.mode & S_IFMT)) return std::vector<std::string>{"type"};
  if ((x.mode & 07777) != (y.mode & 07777)) what.push_back("mode");
  if (x.uid != y.uid || x.gid != y.gid) what.push_back("owner");
  if (S_ISREG(x.mode)) {
    if (x.size != y.size) {
      what.push_back("size");
      what.push_back("content");
    } else {
      ASSIGN_OR_RETURN(bool same, SameContent(a, na, b, nb, x.size));
      if (!same) what.push_back("content");
    }
  }
  if (S_ISLNK(x.mode) && a.SymlinkTarget(na) != b.SymlinkTarget(nb)) what.push_back("target");
  if ((S_ISCHR(x.mode) || S_ISBLK(x.mode)) &&
      (x.rdev_major != y.rdev_major || x.rdev_minor != y.rdev_minor))
    what.push_back("device");
  if (a.Xattrs(na) != b.Xattrs(nb)) what.push_back("xattrs");
  if (x.mtime_sec != y.mtime_sec || x.mtime_nsec != y.mtime_nsec) what.push_back("mtime");
  return what;
}

// Every path below `dir` of `tree` (for a directory added or removed), in path order.
void AllBelow(const Tree& tree, uint32_t dir, const std::string& path, TreeChange::Kind kind,
              std::vector<TreeChange>& out) {
  std::vector<std::pair<uint32_t, std::string>> stack{{dir, path}};
  while (!stack.empty()) {
    auto [node, prefix] = std::move(stack.back());
    stack.pop_back();
    Children kids = ChildrenOf(tree, node);
    for (auto it = kids.rbegin(); it != kids.rend(); ++it) {
      std::string child = prefix + "/" + std::string(it->first);
      if (tree.IsDir(it->second)) stack.emplace_back(it->second, child);
    }
    for (const auto& [name, id] : kids) {
      std::string child = prefix + "/" + std::string(name);
      out.push_back({kind, child, {}});
    }
  }
}

}  // namespace

Result<std::vector<TreeChange>> DiffTrees(const Tree& from, const Tree& to) {
  std::vector<TreeChange> out;
  // Directories present in both, walked without recursion (trees may be deep).
  std::vector<std::tuple<uint32_t, uint32_t, std::string>> stack{{Tree::kRoot, Tree::kRoot, ""}};
  while (!stack.empty()) {
    auto [da, db, prefix] = std::move(stack.back());
    stack.pop_back();
    Children a = ChildrenOf(from, da), b = ChildrenOf(to, db);
    std::vector<std::tuple<uint32_t, uint32_t, std::string>> below;
    auto ia = a.begin();
    auto ib = b.begin();
    while (ia != a.end() || ib != b.end()) {
      bool take_a = ib == b.end() || (ia != a.end() && ia->first < ib->first);
      bool take_b = ia == a.end() || (ib != b.end() && ib->first < ia->first);
      std::string path = prefix + "/" + std::string(take_b ? ib->first : ia->first);
      if (take_a) {
        out.push_back({TreeChange::Kind::kRemoved, path, {}});
        if (from.IsDir(ia->second))
          AllBelow(from, ia->second, path, TreeChange::Kind::kRemoved, out);
        ++ia;
      } else if (take_b) {
        out.push_back({TreeChange::Kind::kAdded, path, {}});
        if (to.IsDir(ib->second)) AllBelow(to, ib->second, path, TreeChange::Kind::kAdded, out);
        ++ib;
      } else {
        ASSIGN_OR_RETURN(auto what, Changes(from, ia->second, to, ib->second));
        bool type_changed = !what.empty() && what.front() == "type";
        if (!what.empty()) out.push_back({TreeChange::Kind::kChanged, path, std::move(what)});
        if (type_changed) {  // a directory that became something else, or the other way
          if (from.IsDir(ia->second))
            AllBelow(from, ia->second, path, TreeChange::Kind::kRemoved, out);
          if (to.IsDir(ib->second)) AllBelow(to, ib->second, path, TreeChange::Kind::kAdded, out);
        } else if (from.IsDir(ia->second)) {
          below.emplace_back(ia->second, ib->second, path);
        }
        ++ia;
        ++ib;
      }
    }
    for (auto it = below.rbegin(); it != below.rend(); ++it) stack.push_back(std::move(*it));
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const TreeChange& x, const TreeChange& y) { return x.path < y.path; });
  return out;
}

}  // namespace imagefs
