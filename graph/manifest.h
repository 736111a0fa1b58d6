// Image formats, in one place for the loader (OCI layouts, docker-save archives) and the
// puller (registries): media types; decoding of OCI image manifests and indexes, Docker
// schema2 manifests and manifest lists, and Docker schema1 (signed or not), with schema1's
// layers checked and repaired as Docker's fixManifestLayers did; manifest digests; and
// platform choice from an index as Docker makes it. Adding a manifest media type: here.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "graph/base/digest.h"
#include "graph/base/error.h"
#include "graph/descriptor.h"
#include "graph/platform.h"

namespace imagefs {

inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerSchema1 =
    "application/vnd.docker.distribution.manifest.v1+json";
inline constexpr std::string_view kDockerSchema1Signed =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";
// The Accept header: every kind, preferred first.
std::string AcceptHeader();
// An OCI index or a Docker manifest list.
bool IsIndexMediaType(std::string_view media_type);
// An OCI image manifest or a Docker schema2 manifest.
bool IsImageManifestMediaType(std::string_view media_type);

// A list of platform manifests (OCI index or Docker manifest list).
struct ManifestIndex {
  std::vector<Descriptor> manifests;
};

// One image: its config blob and layers, base first.
struct ImageManifest {
  Descriptor config;
  std::vector<Descriptor> layers;
};

// A schema1 manifest after repair: layers and v1 JSON, base first.
struct Schema1Manifest {
  std::string name, tag, architecture;
  std::vector<Digest> blob_sums;              // per layer
  std::vector<std::string> v1_compatibility;  // per layer, the v1 image JSON
};

struct Manifest {
  std::string media_type;  // as detected
  std::optional<ManifestIndex> index;
  std::optional<ImageManifest> image;
  std::optional<Schema1Manifest> schema1;
};

// Decodes a manifest. content_type is the server's Content-Type (may be empty or wrong:
// the document's own mediaType and shape decide when they are clear).
Result<Manifest> ParseManifest(std::string_view bytes, std::string_view content_type);

// The digest a registry gives a manifest: sha256 of its bytes, except for signed schema1,
// whose digest covers the payload without the signatures.
Result<Digest> ManifestDigest(std::string_view bytes, std::string_view media_type);

// Picks the manifest for `wanted` from an index, skipping attestations; the best match by
// Docker's rules (arm64 hosts fall back to arm v8, v7, v6, v5).
Result<Descriptor> SelectPlatform(const ManifestIndex& index, const Platform& wanted);

}  // namespace imagefs
