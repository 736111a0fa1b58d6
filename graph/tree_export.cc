#include "graph/tree_export.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <memory>
#include <unordered_map>
#include <vector>

#include "graph/base/fs_util.h"

namespace imagefs {
namespace {

struct WriterDeleter {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct EntryDeleter {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};

Status Check(archive* a, int r, const std::string& what) {
  if (r == ARCHIVE_OK || r == ARCHIVE_WARN) return {};
  const char* why = archive_error_string(a);
  return Fail(Code::kIo, "export " + what + ": " + (why ? why : "write failed"));
}

}  // namespace

Status ExportTree(const Tree& tree, int out_fd) {
  std::unique_ptr<archive, WriterDeleter> a(archive_write_new());
  archive_write_set_format_pax(a.get());
  // SCHILY.xattr.* only: the form GNU tar and Docker read (libarchive adds its own too).
  archive_write_set_format_option(a.get(), "pax", "xattrheader", "SCHILY");
  archive_write_set_bytes_per_block(a.get(), 10240);
  archive_write_set_bytes_in_last_block(a.get(), 1);
  RETURN_IF_ERROR(Check(a.get(), archive_write_open_fd(a.get(), out_fd), "open"));
  std::unordered_map<uint32_t, std::string> first_name;  // inode -> path written
  std::vector<char> buf(1 << 20);
  for (uint32_t id = 0; id < tree.size(); ++id) {
    std::string path = id == Tree::kRoot ? "./" : "./" + tree.Path(id);
    TreeAttr attr = tree.Attr(id);
    std::unique_ptr<archive_entry, EntryDeleter> e(archive_entry_new());
    archive_entry_set_pathname(e.get(), path.c_str());
    archive_entry_set_mode(e.get(), attr.mode);
    archive_entry_set_uid(e.get(), attr.uid);
    archive_entry_set_gid(e.get(), attr.gid);
    archive_entry_set_mtime(e.get(), attr.mtime_sec, attr.mtime_nsec);
    for (const auto& [name, value] : tree.Xattrs(id)) {
      archive_entry_xattr_add_entry(e.get(), std::string(name).c_str(), value.data(), value.size());
    }
    bool is_file = S_ISREG(attr.mode);
    if (!S_ISDIR(attr.mode) && attr.nlink > 1) {
      auto [it, first] = first_name.emplace(attr.inode, path);
      if (!first) {
        archive_entry_set_hardlink(e.get(), it->second.c_str());
        archive_entry_set_size(e.get(), 0);
        RETURN_IF_ERROR(Check(a.get(), archive_write_header(a.get(), e.get()), path));
        continue;
      }
    }
    if (S_ISLNK(attr.mode))
      archive_entry_set_symlink(e.get(), std::string(tree.SymlinkTarget(id)).c_str());
    if (S_ISCHR(attr.mode) || S_ISBLK(attr.mode)) {
      archive_entry_set_rdevmajor(e.get(), attr.rdev_major);
      archive_entry_set_rdevminor(e.get(), attr.rdev_minor);
    }
    if (is_file) {
      archive_entry_set_size(e.get(), static_cast<la_int64_t>(attr.size));
      if (auto runs = tree.DataRuns(id)) {  // sparse: say where the data is
        for (const auto& [offset, length] : *runs) {
          archive_entry_sparse_add_entry(e.get(), static_cast<la_int64_t>(offset),
                                         static_cast<la_int64_t>(length));
        }
      }
    }
    RETURN_IF_ERROR(Check(a.get(), archive_write_header(a.get(), e.get()), path));
    if (is_file) {
      uint64_t off = 0;
      while (off < attr.size) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), attr.size - off));
        ASSIGN_OR_RETURN(size_t got, tree.Read(id, off, n, buf.data()));
        if (got == 0) return Fail(Code::kCorrupt, "export " + path + ": data ends early");
        la_ssize_t w = archive_write_data(a.get(), buf.data(), got);
        if (w < 0) RETURN_IF_ERROR(Check(a.get(), static_cast<int>(w), path));
        off += got;
      }
    }
  }
  return Check(a.get(), archive_write_close(a.get()), "close");
}

}  // namespace imagefs
