// Image formats: one JSON document decoded as every manifest kind a registry or an
// archive may name (OCI manifest and index, Docker schema2 and manifest list, schema1
// signed or not, no or a wrong Content-Type), its digest, the platform choice from an
// index, and the same bytes as an image config (diff_ids, created) and as a descriptor.
#include "graph/descriptor.h"
#include "graph/manifest.h"
#include "graph/records.h"
#include "tests/fuzz/fuzz_util.h"

namespace imagefs::fuzz {

void FuzzOne(std::string_view bytes) {
  static const std::string_view kContentTypes[] = {"",
                                                   kOciManifest,
                                                   kOciIndex,
                                                   kDockerManifest,
                                                   kDockerList,
                                                   kDockerSchema1,
                                                   kDockerSchema1Signed,
                                                   "application/json"};
  static const Platform kWanted[] = {{"linux", "amd64", ""},
                                     {"linux", "arm64", ""},
                                     {"linux", "arm", "v6"},
                                     {"windows", "amd64", ""}};
  for (std::string_view content_type : kContentTypes) {
    auto manifest = ParseManifest(bytes, content_type);
    (void)ManifestDigest(bytes, content_type);
    if (!manifest) continue;
    (void)ManifestDigest(bytes, manifest->media_type);
    if (manifest->index) {
      for (const Platform& wanted : kWanted) {
        if (auto chosen = SelectPlatform(*manifest->index, wanted)) {
          (void)IsAttestation(*chosen);
        }
      }
    }
  }
  auto json = nlohmann::json::parse(bytes, nullptr, false);
  if (json.is_discarded()) return;
  (void)DiffIdsOf(json, "config");
  (void)ParseDescriptor(json, "descriptor");
  if (json.is_object()) {
    if (auto created = json.find("created"); created != json.end() && created->is_string()) {
      (void)ParseRfc3339(created->get<std::string>());
    }
  }
}

}  // namespace imagefs::fuzz
