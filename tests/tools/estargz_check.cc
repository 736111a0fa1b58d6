// estargz_check BLOB TOC_DIGEST: reads an eStargz layer blob as a lazy reader will (footer,
// TOC, then each chunk from its own member, verified, into a content file) and compares the
// result with the layer's tar read whole: the same entries in the same order with the same
// attributes (the landmarks and the TOC excepted: format, not files), and every file's bytes
// equal. Exit 0 when all agree. stargz_test.sh runs it on layers made by ctr-remote.
// estargz_check --remote REF: the same for every eStargz layer of an image in a registry
// (plain http on loopback), read through fetch::ChunkedRemoteLayer by Range requests: first
// one small file (what it cost is printed), then everything; then the cache is reopened and
// read again with no request, and a chunk bent on disk is caught and fetched again.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "fetch/chunked_remote_layer.h"
#include "fetch/registry_client.h"
#include "graph/base/fs_util.h"
#include "graph/byte_source.h"
#include "graph/estargz.h"
#include "graph/layer_names.h"
#include "graph/tar_index.h"

namespace imagefs {
namespace {

int problems = 0;

void Problem(const std::string& what) {
  if (++problems <= 20) std::fprintf(stderr, "estargz_check: %s\n", what.c_str());
}

std::string Describe(const TarIndex& index, const IndexEntry& e) {
  std::string s = std::string(index.Path(e)) + " kind=" + std::to_string(int(e.kind)) +
                  " mode=" + std::to_string(e.mode) + " uid=" + std::to_string(e.uid) +
                  " gid=" + std::to_string(e.gid) + " link=" + std::string(index.Link(e)) +
                  " rdev=" + std::to_string(e.rdev_major) + "," + std::to_string(e.rdev_minor);
  if (e.kind == EntryKind::kFile) s += " size=" + std::to_string(e.size);
  for (const IndexXattr& x : index.Xattrs(e)) {
    s += " xattr:" + std::string(index.Str(x.name_off, x.name_len)) + "=" +
         std::string(index.Str(x.value_off, x.value_len));
  }
  return s;
}

// Compares the TOC's index and content file with the layer's tar read whole (decompressed
// from blob_path into dir); returns the number of regular files compared.
size_t rounded = 0;

Result<size_t> CompareWithTar(const TarIndex& toc_index, int content, const std::string& blob_path,
                              const std::string& dir) {
  // The tar, read whole.
  {
    ASSIGN_OR_RETURN(UniqueFd in, OpenFile(blob_path, O_RDONLY));
    auto source = Decompress(std::make_unique<FdSource>(std::move(in), blob_path), blob_path);
    ASSIGN_OR_RETURN(UniqueFd out, OpenFile(dir + "/layer.tar", O_RDWR | O_CREAT | O_TRUNC));
    std::vector<char> buf(1 << 20);
    while (true) {
      ASSIGN_OR_RETURN(size_t n, source->Read(buf.data(), buf.size()));
      if (n == 0) break;
      RETURN_IF_ERROR(WriteAll(out.get(), buf.data(), n));
    }
  }
  ASSIGN_OR_RETURN(UniqueFd tar_fd, OpenFile(dir + "/layer.tar", O_RDONLY));
  struct stat tst;
  if (fstat(tar_fd.get(), &tst) != 0) return FailErrno("stat tar");
  void* tar =
      mmap(nullptr, static_cast<size_t>(tst.st_size), PROT_READ, MAP_PRIVATE, tar_fd.get(), 0);
  if (tar == MAP_FAILED) return FailErrno("mmap tar");
  RETURN_IF_ERROR(WriteTarIndex(static_cast<const char*>(tar), static_cast<uint64_t>(tst.st_size),
                                dir + "/tar.index")
                      .map([](IndexSummary) {}));
  ASSIGN_OR_RETURN(auto tar_index, TarIndex::Open(dir + "/tar.index"));

  std::vector<const IndexEntry*> want;
  for (const IndexEntry& e : tar_index->entries()) {
    std::string_view path = tar_index->Path(e);
    if (path.find('/') == std::string_view::npos && IsStargzMeta(path)) continue;
    want.push_back(&e);
  }
  auto got = toc_index.entries();
  if (want.size() != got.size()) {
    Problem("the tar has " + std::to_string(want.size()) + " entries, the TOC index " +
            std::to_string(got.size()));
  }
  size_t files = 0;
  std::vector<char> a(1 << 20), b(1 << 20);
  for (size_t i = 0; i < std::min(want.size(), got.size()); ++i) {
    std::string w = Describe(*tar_index, *want[i]), g = Describe(toc_index, got[i]);
    if (w != g) Problem("entry " + std::to_string(i) + ": tar [" + w + "], TOC [" + g + "]");
    // The TOC keeps mtimes to the second, rounded (Go's Time.Round): the tar's may be finer.
    const IndexEntry& t = *want[i];
    if (t.mtime_sec != got[i].mtime_sec || t.mtime_nsec != got[i].mtime_nsec) {
      int64_t nearest = t.mtime_sec + (t.mtime_nsec >= 500000000 ? 1 : 0);
      if (got[i].mtime_nsec == 0 && got[i].mtime_sec == nearest) {
        ++rounded;
      } else {
        Problem(std::string(tar_index->Path(t)) + ": mtime " + std::to_string(t.mtime_sec) + "." +
                std::to_string(t.mtime_nsec) + " in the tar, " + std::to_string(got[i].mtime_sec) +
                "." + std::to_string(got[i].mtime_nsec) + " in the TOC");
      }
    }
    if (got[i].kind != EntryKind::kFile || want[i]->kind != EntryKind::kFile) continue;
    ++files;
    for (uint64_t off = 0; off < got[i].size; off += a.size()) {
      auto x = ReadEntryData(tar_fd.get(), *tar_index, *want[i], off, a.size(), a.data());
      auto y = ReadEntryData(content, toc_index, got[i], off, b.size(), b.data());
      if (!x || !y || *x != *y || std::memcmp(a.data(), b.data(), *x) != 0) {
        Problem(std::string(toc_index.Path(got[i])) + ": bytes differ at " + std::to_string(off));
        break;
      }
    }
  }
  munmap(tar, static_cast<size_t>(tst.st_size));
  return files;
}

Status Check(const char* blob_path, const char* toc_digest_arg) {
  ASSIGN_OR_RETURN(Digest toc_digest, Digest::Parse(toc_digest_arg));
  ASSIGN_OR_RETURN(UniqueFd blob_fd, OpenFile(blob_path, O_RDONLY));
  struct stat st;
  if (fstat(blob_fd.get(), &st) != 0) return FailErrno("stat");
  auto size = static_cast<uint64_t>(st.st_size);
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, blob_fd.get(), 0);
  if (map == MAP_FAILED) return FailErrno("mmap");
  std::string_view blob(static_cast<const char*>(map), size);

  ASSIGN_OR_RETURN(StargzFooter footer,
                   ParseStargzFooter(blob.substr(size - std::min<uint64_t>(size, 51)), size));
  ASSIGN_OR_RETURN(std::string toc,
                   ExtractStargzToc(blob.substr(footer.toc_offset,
                                                size - footer.footer_size - footer.toc_offset)));
  char dir_template[] = "/tmp/estargz-check-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) return FailErrno("mkdtemp");
  std::string dir = dir_template;
  ASSIGN_OR_RETURN(ChunkedLayout layer,
                   WriteStargzIndex(toc, toc_digest, footer.toc_offset, dir + "/toc.index"));
  ASSIGN_OR_RETURN(auto toc_index, TarIndex::Open(dir + "/toc.index"));

  // The content file, filled chunk by chunk as the mount will fill it.
  ASSIGN_OR_RETURN(UniqueFd content, OpenFile(dir + "/content", O_RDWR | O_CREAT | O_TRUNC));
  if (ftruncate(content.get(), static_cast<off_t>(layer.content_size)) != 0)
    return FailErrno("ftruncate");
  for (const TocChunk& c : layer.chunks) {
    ASSIGN_OR_RETURN(
        std::string bytes,
        InflateStargzChunk(blob.substr(c.compressed_offset, c.compressed_end - c.compressed_offset),
                           c));
    if (pwrite(content.get(), bytes.data(), bytes.size(), static_cast<off_t>(c.content_offset)) !=
        static_cast<ssize_t>(bytes.size()))
      return FailErrno("pwrite");
  }

  ASSIGN_OR_RETURN(size_t files, CompareWithTar(*toc_index, content.get(), blob_path, dir));
  std::filesystem::remove_all(dir);
  std::printf(
      "estargz_check: %zu entries, %zu files, %zu chunks (%zu to prefetch), %zu mtimes rounded to "
      "the second by the TOC: %s\n",
      toc_index->entries().size(), files, layer.chunks.size(), layer.prefetch_chunks, rounded,
      problems == 0 ? "the TOC and the chunks agree with the tar" : "DIFFERENCES");
  return {};
}

// The remote mode: every eStargz layer of the image at ref_arg.
Status CheckRemote(const char* ref_arg) {
  ASSIGN_OR_RETURN(Reference ref, ParseReference(ref_arg));
  fetch::FetchConfig config;
  config.retries = 2;
  config.retry_base_ms = 10;
  fetch::RegistryClient client(config, fetch::CredentialSource(std::nullopt, "/nonexistent"));
  ASSIGN_OR_RETURN(fetch::FetchedManifest m, client.GetManifest(ref));
  if (!m.manifest.image) return Fail(Code::kInvalid, "not an image manifest");
  char dir_template[] = "/tmp/estargz-check-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) return FailErrno("mkdtemp");
  std::string dir = dir_template;
  size_t layers = 0;
  for (const Descriptor& d : m.manifest.image->layers) {
    if (!fetch::ChunkedRemoteLayer::Seekable(d)) continue;
    ++layers;
    std::string cache = dir + "/cache-" + d.digest.hex();
    ASSIGN_OR_RETURN(auto layer, fetch::ChunkedRemoteLayer::Open(client, ref, d, cache));
    // One small file first: what a `cat` costs.
    const IndexEntry* small = nullptr;
    for (const IndexEntry& e : layer->index().entries()) {
      if (e.kind == EntryKind::kFile && e.size > 0 && e.size < 4096) {
        small = &e;
        break;
      }
    }
    if (small != nullptr) RETURN_IF_ERROR(layer->Ensure(small->data_offset, small->size));
    std::printf(
        "estargz_check: layer %s (%llu bytes): opened and one small file read with %llu "
        "requests, %llu bytes (%.2f%%)\n",
        d.digest.str().c_str(), static_cast<unsigned long long>(d.size),
        static_cast<unsigned long long>(layer->requests()),
        static_cast<unsigned long long>(layer->bytes_fetched()),
        100.0 * static_cast<double>(layer->bytes_fetched()) / static_cast<double>(d.size));
    RETURN_IF_ERROR(layer->Prefetch());
    // Then the rest at once, as a background fetch would: neighbouring chunks share requests.
    RETURN_IF_ERROR(layer->Ensure(0, layer->layout().content_size));
    std::printf("estargz_check: then the whole layer: %llu requests in all, %llu bytes of %llu\n",
                static_cast<unsigned long long>(layer->requests()),
                static_cast<unsigned long long>(layer->bytes_fetched()),
                static_cast<unsigned long long>(d.size));
    // The layer whole, to compare with.
    std::string blob_path = dir + "/blob";
    {
      ASSIGN_OR_RETURN(UniqueFd out, OpenFile(blob_path, O_WRONLY | O_CREAT | O_TRUNC));
      RETURN_IF_ERROR(client.GetBlob(
          ref, d, [&](const char* p, size_t n) { return WriteAll(out.get(), p, n); }));
    }
    ASSIGN_OR_RETURN(size_t files,
                     CompareWithTar(layer->index(), layer->content_fd(), blob_path, dir));
    std::printf("estargz_check: %zu files read by chunks, %zu mtimes rounded to the second: %s\n",
                files, rounded, problems == 0 ? "they agree with the tar" : "DIFFERENCES");
    // Reopened: everything is there, and verified once more, without a request.
    layer.reset();
    ASSIGN_OR_RETURN(auto again, fetch::ChunkedRemoteLayer::Open(client, ref, d, cache));
    for (const IndexEntry& e : again->index().entries()) {
      if (e.kind == EntryKind::kFile && e.size > 0)
        RETURN_IF_ERROR(again->Ensure(e.data_offset, e.size));
    }
    if (again->requests() != 0) {
      Problem("the reopened cache made " + std::to_string(again->requests()) + " requests");
    }
    // A chunk bent on disk after it was marked present is caught and fetched again.
    const TocChunk c = again->layout().chunks.back();
    again.reset();
    {
      ASSIGN_OR_RETURN(UniqueFd content, OpenFile(cache + "/content", O_RDWR));
      // Flipped, not set: a constant would bend nothing in a chunk that starts with it.
      char bent = 0;
      if (pread(content.get(), &bent, 1, static_cast<off_t>(c.content_offset)) != 1)
        return FailErrno("read the byte to bend");
      bent = static_cast<char>(~bent);
      if (pwrite(content.get(), &bent, 1, static_cast<off_t>(c.content_offset)) != 1)
        return FailErrno("bend");
    }
    ASSIGN_OR_RETURN(auto third, fetch::ChunkedRemoteLayer::Open(client, ref, d, cache));
    RETURN_IF_ERROR(third->Ensure(c.content_offset, c.size));
    std::string fixed(c.size, '\0');
    RETURN_IF_ERROR(PreadAll(third->content_fd(), fixed.data(), fixed.size(),
                             static_cast<off_t>(c.content_offset)));
    std::string want_hex;
    for (uint8_t byte : c.sha256) {
      char h[3];
      std::snprintf(h, sizeof h, "%02x", byte);
      want_hex += h;
    }
    if (Sha256::Of(fixed).hex() != want_hex) Problem("the bent chunk is still bent");
    if (third->requests() != 1) {
      Problem("a bent chunk took " + std::to_string(third->requests()) + " requests, not 1");
    }
    std::printf(
        "estargz_check: reopened: 0 requests for every file again; a bent chunk "
        "refetched with %llu request\n",
        static_cast<unsigned long long>(third->requests()));
  }
  std::filesystem::remove_all(dir);
  if (layers == 0) return Fail(Code::kInvalid, "no eStargz layer in the image");
  return {};
}

}  // namespace
}  // namespace imagefs

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: estargz_check BLOB TOC_DIGEST | --remote REF\n");
    return 2;
  }
  auto st = std::string_view(argv[1]) == "--remote" ? imagefs::CheckRemote(argv[2])
                                                    : imagefs::Check(argv[1], argv[2]);
  if (!st) {
    std::fprintf(stderr, "estargz_check: %s: %s\n", argv[1], st.error().msg.c_str());
    return 1;
  }
  return imagefs::problems == 0 ? 0 : 1;
}
