// Reference: an image name as Docker reads it ([domain/]path[:tag][@digest]),
// normalised as Docker does ("busybox" = "docker.io/library/busybox:latest").
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "graph/base/digest.h"
#include "graph/base/error.h"

namespace imagefs {

struct Reference {
  std::string domain;  // "docker.io", "localhost:5000", "quay.io"
  std::string path;    // "library/busybox"
  std::string tag;     // empty when not given
  std::optional<Digest> digest;

  // "docker.io/library/busybox"
  std::string Name() const { return domain + "/" + path; }
  // Name with ":tag" and/or "@digest": the canonical, fully-qualified form.
  std::string String() const;
  // The short form Docker prints: "busybox", "user/app", "localhost:5000/x".
  std::string FamiliarName() const;
  std::string FamiliarString() const;
};

// Parses and normalises a reference. A missing tag stays empty; callers that need one
// call WithDefaultTag. Errors read like Docker's ("invalid reference format: ...").
Result<Reference> ParseReference(std::string_view s);
// Adds ":latest" when the reference has neither tag nor digest.
Reference WithDefaultTag(Reference ref);
// Validates a tag by itself ("[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}").
bool IsValidTag(std::string_view tag);

}  // namespace imagefs
