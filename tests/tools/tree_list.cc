// tree_list STORE NAME: prints the merged rootfs of an image, one line per path, in the
// format list_fs.py prints for a directory or a tar, so that the two can be diffed.
// tree_list --estargz REF: the same for an image of eStargz or zstd:chunked layers in a
// registry (plain http on loopback), its tree built over fetch::ChunkedRemoteLayer, every
// file read by Range requests through Tree::Read; what it fetched goes to stderr.
// Fields: path|type|perms|uid|gid|size|mtime|link|sha256|rdev|xattrs|hardlink-group
#include <sys/stat.h>

#include <algorithm>
#include <clocale>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fetch/registry_client.h"
#include "fetch/chunked_remote_layer.h"
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

int Print(const imagefs::Tree& t);

// The lazily fetched tree of an eStargz image, or an error.
imagefs::Result<std::shared_ptr<const imagefs::Tree>> EstargzTree(
    const char* ref_arg, const std::string& cache, imagefs::fetch::RegistryClient& client,
    std::vector<std::shared_ptr<imagefs::fetch::ChunkedRemoteLayer>>& layers) {
  using namespace imagefs;
  ASSIGN_OR_RETURN(Reference ref, ParseReference(ref_arg));
  ASSIGN_OR_RETURN(fetch::FetchedManifest m, client.GetManifest(ref));
  if (!m.manifest.image) return Fail(Code::kInvalid, "not an image manifest");
  ASSIGN_OR_RETURN(std::string config, client.GetSmallBlob(ref, m.manifest.image->config));
  auto diff_ids = nlohmann::json::parse(config, nullptr, false)["rootfs"]["diff_ids"];
  const auto& descriptors = m.manifest.image->layers;
  if (!diff_ids.is_array() || diff_ids.size() != descriptors.size())
    return Fail(Code::kInvalid, "config and manifest disagree on the layers");
  std::vector<std::shared_ptr<const LayerBlob>> blobs;
  for (size_t i = 0; i < descriptors.size(); ++i) {
    ASSIGN_OR_RETURN(Digest diff_id, Digest::Parse(diff_ids[i].get<std::string>()));
    ASSIGN_OR_RETURN(auto layer,
                     fetch::ChunkedRemoteLayer::Open(client, ref, descriptors[i],
                                                    cache + "/" + descriptors[i].digest.hex()));
    ASSIGN_OR_RETURN(auto blob, layer->Blob(diff_id));
    blobs.push_back(std::move(blob));
    layers.push_back(std::move(layer));
  }
  return Tree::BuildMergedFrom(std::move(blobs));
}

}  // namespace

int main(int argc, char** argv) {
  std::setlocale(LC_CTYPE, "C.UTF-8");
  if (argc != 3) {
    std::cerr << "usage: tree_list STORE NAME | tree_list --estargz REF\n";
    return 2;
  }
  if (std::string_view(argv[1]) == "--estargz") {
    imagefs::fetch::FetchConfig config;
    config.retries = 2;
    config.retry_base_ms = 10;
    imagefs::fetch::RegistryClient client(
        config, imagefs::fetch::CredentialSource(std::nullopt, "/nonexistent"));
    char dir[] = "/tmp/tree-list-XXXXXX";
    if (mkdtemp(dir) == nullptr) return std::perror("mkdtemp"), 1;
    std::vector<std::shared_ptr<imagefs::fetch::ChunkedRemoteLayer>> layers;
    auto tree = EstargzTree(argv[2], dir, client, layers);
    int rc = tree ? Print(**tree) : (std::cerr << tree.error().msg << "\n", 1);
    uint64_t requests = 0, bytes = 0;
    for (const auto& l : layers) requests += l->requests(), bytes += l->bytes_fetched();
    std::cerr << "tree_list: " << layers.size()
              << " eStargz layers read through the tree: " << requests << " requests, " << bytes
              << " bytes\n";
    std::filesystem::remove_all(dir);
    return rc;
  }
  auto store = imagefs::Store::Open(argv[1]);
  if (!store) return std::cerr << store.error().msg << "\n", 1;
  auto id = (*store)->ResolveImage(argv[2]);
  if (!id) return std::cerr << id.error().msg << "\n", 1;
  auto tree = imagefs::Tree::BuildMerged(**store, (*store)->GetImage(*id)->top_layer);
  if (!tree) return std::cerr << tree.error().msg << "\n", 1;
  return Print(**tree);
}

namespace {

int Print(const imagefs::Tree& t) {
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

}  // namespace
