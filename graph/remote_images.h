// RemoteImages: what the mount's registry/ tree asks of a registry, declared here so that
// fusefs needs no registry client (fetch implements it; the CLI wires it in).
// Implementations are thread-safe and may block on the network.
#pragma once

#include <cerrno>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "graph/base/digest.h"
#include "graph/base/error.h"

namespace imagefs {

class Tree;
class StreamingRootfs;

struct RemoteEntry {
  enum class Kind { kDirectory, kImage };
  Kind kind = Kind::kDirectory;
  // Directories: the path below registry/ ("host/a/b"). Images: a key naming the path and
  // the manifest digest it resolved to ("host/a/b/tag@sha256:…"), stable for that digest.
  std::string key;
  double ttl = 0;  // how long the kernel may trust this lookup, seconds
};

// What a resolved image entry knows before any layer is fetched.
struct RemoteImage {
  std::string image_id;
  std::string config;               // config bytes as the registry serves them
  std::optional<Digest> top_layer;  // ChainID of the top layer (none for schema1 until pulled)
};

// Whose credentials a request may use: the mounter's, or none at all (anonymous access
// only: what anyone on the machine could pull).
enum class RemoteAccess { kMounter, kAnonymous };

class RemoteImages {
 public:
  virtual ~RemoteImages() = default;
  // Looks up `name` in the registry directory `dir` ("" is registry/ itself, then "host",
  // "host/repo", …). An unknown tag of an existing repository is kNotFound; refused
  // credentials kAuth.
  // With kAnonymous nothing is looked up, resolved or pulled with credentials, and an
  // image resolved with them is resolved again anonymously before it is shown.
  virtual Result<RemoteEntry> Lookup(const std::string& dir, const std::string& name,
                                     RemoteAccess access) = 0;
  virtual Result<RemoteImage> Image(const std::string& key, RemoteAccess access) = 0;
  // Fetches what the image lacks and registers it (once, however many callers wait);
  // returns the image ID. A failure is not remembered: the next call tries again.
  virtual Result<std::string> Materialize(const std::string& key, RemoteAccess access) = 0;
  virtual bool IsMaterialized(const std::string& key) = 0;
  // The image's rootfs served before it is pulled, each file's bytes fetched when read,
  // where the image allows it (every layer seekable and the registry serving ranges);
  // kUnsupported otherwise, and the caller pulls the image instead. Built once per key.
  virtual Result<std::shared_ptr<const Tree>> LazyRootfs(const std::string& key,
                                                         RemoteAccess access) {
    (void)access;
    return Fail(Code::kUnsupported, key + ": not served lazily");
  }
  // The tree LazyRootfs gave for key, for nodes the kernel already holds.
  virtual Result<std::shared_ptr<const Tree>> ServedRootfs(const std::string& key) {
    return Fail(Error{Code::kIo, ESTALE, key + ": no rootfs served"});
  }
  // The image's rootfs served while its plain layers download, before they are verified
  // (stream_unverified), for an image LazyRootfs cannot serve; kUnsupported where that is
  // off. Built once per key (again after a failure); the pull it starts registers the image
  // as any pull does.
  virtual Result<std::shared_ptr<StreamingRootfs>> StreamedRootfs(const std::string& key,
                                                                  RemoteAccess access) {
    (void)access;
    return Fail(Code::kUnsupported, key + ": not streamed");
  }
  // The rootfs StreamedRootfs gave for key, for nodes the kernel already holds.
  virtual Result<std::shared_ptr<StreamingRootfs>> ServedStream(const std::string& key) {
    return Fail(Error{Code::kIo, ESTALE, key + ": no rootfs streamed"});
  }
  // Hosts looked up so far: registry/'s listing.
  virtual std::vector<std::string> Hosts() = 0;
  // Small JSON status documents by file name (pulls in progress, recent errors).
  virtual std::map<std::string, std::string> StatusFiles() = 0;
  // The mount is stopping: what waits on a registry or a download (pulls, streams, fetches)
  // ends now with kCancelled, and nothing new starts.
  virtual void Close() {}
};

}  // namespace imagefs
