// `imagefs save`: one docker-save tarball of several images, shared layers once — the CLI
// twin of the mount's image.tar, streamed from the store's blobs (graph/image_archive.h).
#include <unistd.h>

#include "fusefs/cli/commands.h"
#include "fusefs/cli/output_file.h"
#include "graph/base/fs_util.h"
#include "graph/image_archive.h"

namespace imagefs {

int CmdSave(Store& store, const std::vector<std::string>& names, const std::string& output) {
  std::vector<std::string> ids;
  for (const std::string& name : names) {
    auto id = store.ResolveImage(name);
    if (!id) return ReportError(id.error());
    ids.push_back(*id);
  }
  if ((output.empty() || output == "-") && isatty(STDOUT_FILENO)) {
    return ReportError(Error::Make(Code::kInvalid,
                                   "refusing to write a tar to a terminal: use -o FILE or a pipe"));
  }
  auto archive = ImageArchive::Build(store, ids);
  if (!archive) return ReportError(archive.error().WithContext("save"));
  auto out = OutputFile::Open(output);
  if (!out) return ReportError(out.error().WithContext("save"));
  std::string buf(1 << 20, '\0');
  Status st;
  for (uint64_t off = 0; st && off < (*archive)->size();) {
    auto n = (*archive)->Read(off, buf.size(), buf.data());
    if (!n || *n == 0) {
      st = n ? Fail(Code::kIo, "archive ended early") : tl::unexpected(n.error());
      break;
    }
    st = WriteAll(out->fd(), buf.data(), *n);
    off += *n;
  }
  if (st) st = out->Commit();
  if (!st) return ReportError(st.error().WithContext("save to " + out->name()));
  return 0;
}

}  // namespace imagefs
