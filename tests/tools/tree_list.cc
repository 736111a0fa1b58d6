// tree_list STORE NAME: prints the merged rootfs of an image, one line per path, in the
// format list_fs.py prints for a directory or a tar, so that the two can be diffed.
// Fields: path|type|perms|uid|gid|size|mtime|link|sha256|rdev|xattrs|hardlink-group
#include <sys/stat.h>

#include <algorithm>
#include <clocale>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "graph/base/digest.h"
#include "graph/store.h"
#include "graph/tree.h"

namespace {

std::string Escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x21 && c < 0x7f && c != '\\' && c != '|' && c != '=' && c != ';') {
      out += static_cast<char>(c);
    } else {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

std::string Hex(std::string_view s) {
  std::string out;
  char buf[3];
  for (unsigned char c : s) {
    std::snprintf(buf, sizeof buf, "%02x", c);
    out += buf;
  }
  return out;
}

char TypeChar(mode_t m) {
  if (S_ISDIR(m)) return 'd';
  if (S_ISLNK(m)) return 'l';
  if (S_ISCHR(m)) return 'c';
  if (S_ISBLK(m)) return 'b';
  if (S_ISFIFO(m)) return 'p';
  if (S_ISSOCK(m)) return 's';
  return 'f';
}

}  // namespace

int main(int argc, char** argv) {
  std::setlocale(LC_CTYPE, "C.UTF-8");
  if (argc != 3) {
    std::cerr << "usage: tree_list STORE NAME\n";
    return 2;
  }
  auto store = imagefs::Store::Open(argv[1]);
  if (!store) return std::cerr << store.error().msg << "\n", 1;
  auto id = (*store)->ResolveImage(argv[2]);
  if (!id) return std::cerr << id.error().msg << "\n", 1;
  auto tree = imagefs::Tree::BuildMerged(**store, (*store)->GetImage(*id)->top_layer);
  if (!tree) return std::cerr << tree.error().msg << "\n", 1;
  const imagefs::Tree& t = **tree;
  std::map<uint32_t, std::string> group;  // inode -> smallest escaped path
  std::vector<std::pair<std::string, uint32_t>> rows;
  for (uint32_t n = 0; n < t.size(); ++n) {
    std::string path = n == 0 ? "." : Escape(t.Path(n));
    rows.emplace_back(path, n);
    auto attr = t.Attr(n);
    if (!S_ISDIR(attr.mode) && attr.nlink > 1) {
      auto [it, first] = group.emplace(attr.inode, path);
      if (!first && path < it->second) it->second = path;
    }
  }
  std::sort(rows.begin(), rows.end());
  std::vector<char> buf(1 << 20);
  for (const auto& [path, n] : rows) {
    auto a = t.Attr(n);
    std::string size = S_ISDIR(a.mode) ? "-" : std::to_string(a.size);
    std::string sha = "-";
    if (S_ISREG(a.mode)) {
      imagefs::Sha256 h;
      for (uint64_t off = 0; off < a.size;) {
        auto got = t.Read(n, off, buf.size(), buf.data());
        if (!got || *got == 0) return std::cerr << "read " << path << " failed\n", 1;
        h.Update(buf.data(), *got);
        off += *got;
      }
      sha = h.Finish().hex();
    }
    std::string rdev = S_ISCHR(a.mode) || S_ISBLK(a.mode)
                           ? std::to_string(a.rdev_major) + "," + std::to_string(a.rdev_minor)
                           : "-";
    auto xattrs = t.Xattrs(n);
    std::sort(xattrs.begin(), xattrs.end());
    std::string xs;
    for (const auto& [k, v] : xattrs) xs += (xs.empty() ? "" : ";") + Escape(k) + "=" + Hex(v);
    std::string grp = "-";
    if (!S_ISDIR(a.mode) && a.nlink > 1) grp = group[a.inode];
    // A directory no layer lists has no mtime of its own: marked, so comparisons skip it.
    std::string mtime = t.node(n).layer == imagefs::Tree::kImplied
                            ? "IMPLIED"
                            : std::to_string(a.mtime_sec) + "." + std::to_string(a.mtime_nsec);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", a.mode & 07777);
    std::cout << path << '|' << TypeChar(a.mode) << '|' << mode << '|' << a.uid << '|' << a.gid
              << '|' << size << '|' << mtime << '|'
              << (S_ISLNK(a.mode) ? Escape(t.SymlinkTarget(n)) : "-") << '|' << sha << '|' << rdev
              << '|' << (xs.empty() ? "-" : xs) << '|' << grp << '\n';
  }
  return 0;
}
