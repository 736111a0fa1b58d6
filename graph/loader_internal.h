// Shared between the docker-save and OCI layout loaders; not part of graph's interface.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "graph/archive_view.h"
#include "graph/descriptor.h"
#include "graph/image_transaction.h"
#include "graph/loader.h"

namespace imagefs::loader {

// One layer to register: where its bytes are, and what they must hash to.
struct LayerInput {
  std::string member;
  std::optional<Digest> diff_id;      // from the config; none for legacy v1 images
  std::optional<Digest> blob_digest;  // OCI: the (compressed) blob's digest, verified
  std::optional<uint64_t> blob_size;
};

// An ImageTransaction whose layers are members of the archive being loaded: opened,
// verified against their blob digests, decompressed, and reported to the progress.
class ArchiveTransaction {
 public:
  ArchiveTransaction(Store& store, const ArchiveView& archive, LoadProgress* progress,
                     LoadReport& report)
      : tx_(store), archive_(archive), progress_(progress), report_(report) {}

  // Adds a layer on top of `parent`; returns its ChainID.
  Result<Digest> AddLayer(const std::optional<Digest>& parent, const LayerInput& layer);
  // Registers the image and its tags, and commits the transaction.
  Result<ImageInfo> Commit(const ImageSpec& spec, const std::vector<Reference>& tags);

 private:
  ImageTransaction tx_;
  const ArchiveView& archive_;
  LoadProgress* progress_;
  LoadReport& report_;
};

// Parses a JSON document, naming the member in the error.
Result<nlohmann::json> ParseJson(const std::string& text, const std::string& what);
// Parses RepoTags-style names into references with a tag.
Result<std::vector<Reference>> ParseTags(const std::vector<std::string>& names,
                                         const std::string& what);
using imagefs::DiffIdsOf;

Status LoadOciLayout(Store& store, const ArchiveView& archive, const LoadOptions& options,
                     LoadProgress* progress, LoadReport& report);

}  // namespace imagefs::loader
