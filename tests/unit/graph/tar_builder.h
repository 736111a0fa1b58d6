// Builds small tar archives in memory for tests (libarchive's writer, PAX format).
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <string>
#include <vector>

namespace imagefs::testing {

struct TarMember {
  std::string path;
  std::string content;    // regular files
  mode_t type = S_IFREG;  // S_IFREG, S_IFDIR, S_IFLNK
  std::string link;       // symlink target, or hardlink target when hardlink is set
  bool hardlink = false;
  mode_t perm = 0644;
};

inline std::string MakeTar(const std::vector<TarMember>& members) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_set_bytes_in_last_block(a, 1);
  archive_write_open(
      a, &out, nullptr,
      [](archive*, void* ctx, const void* buf, size_t len) -> la_ssize_t {
        static_cast<std::string*>(ctx)->append(static_cast<const char*>(buf), len);
        return static_cast<la_ssize_t>(len);
      },
      nullptr);
  for (const TarMember& m : members) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, m.path.c_str());
    archive_entry_set_mode(e, m.type | m.perm);
    archive_entry_set_mtime(e, 1600000000, 0);
    if (m.hardlink) {
      archive_entry_set_hardlink(e, m.link.c_str());
    } else if (m.type == S_IFLNK) {
      archive_entry_set_symlink(e, m.link.c_str());
    } else if (m.type == S_IFREG) {
      archive_entry_set_size(e, static_cast<la_int64_t>(m.content.size()));
    }
    archive_write_header(a, e);
    if (m.type == S_IFREG && !m.hardlink) archive_write_data(a, m.content.data(), m.content.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

}  // namespace imagefs::testing
