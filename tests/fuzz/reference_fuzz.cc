// Image references and platforms as users type them: ParseReference and the forms printed
// back, which must parse again to the same reference; IsValidTag; ParsePlatform.
#include "graph/platform.h"
#include "graph/reference.h"
#include "tests/fuzz/fuzz_util.h"

namespace imagefs::fuzz {

void FuzzOne(std::string_view text) {
  (void)IsValidTag(text);
  if (auto platform = ParsePlatform(text)) {
    Platform normal = Normalize(*platform);
    (void)normal.String();
    (void)MatchRank(HostPlatform(), normal);
  }
  auto ref = ParseReference(text);
  if (!ref) return;
  // What imagefs prints (tags.json keys, `images`) must read back as the same image.
  const std::string canonical = ref->String();
  auto again = ParseReference(canonical);
  FUZZ_CHECK(again.has_value() && again->String() == canonical);
  auto familiar = ParseReference(ref->FamiliarString());
  FUZZ_CHECK(familiar.has_value() && familiar->String() == canonical);
  Reference tagged = WithDefaultTag(*ref);
  FUZZ_CHECK(!tagged.tag.empty() || tagged.digest.has_value());
  if (!ref->tag.empty()) FUZZ_CHECK(IsValidTag(ref->tag));
}

}  // namespace imagefs::fuzz
