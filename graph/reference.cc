#include "graph/reference.h"

#include <vector>

namespace imagefs {
namespace {

constexpr size_t kMaxNameLength = 255;

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

// path-component := [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
bool IsValidPathComponent(std::string_view s) {
  size_t i = 0;
  auto alnum_run = [&] {
    size_t start = i;
    while (i < s.size() && IsLowerAlnum(s[i])) ++i;
    return i > start;
  };
  if (!alnum_run()) return false;
  while (i < s.size()) {
    if (s[i] == '.') {
      ++i;
    } else if (s[i] == '_') {
      ++i;
      if (i < s.size() && s[i] == '_') ++i;
    } else if (s[i] == '-') {
      while (i < s.size() && s[i] == '-') ++i;
    } else {
      return false;
    }
    if (!alnum_run()) return false;
  }
  return true;
}

// domain := component ('.' component)* (':' port)?, or a bracketed IPv6 address.
bool IsValidDomain(std::string_view s) {
  size_t colon = s.rfind(':');
  std::string_view host = s;
  if (!s.empty() && s.front() == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos) return false;
    for (char c : s.substr(1, close - 1)) {
      if (!(std::isxdigit(static_cast<unsigned char>(c)) || c == ':')) return false;
    }
    if (close + 1 == s.size()) return true;
    if (s[close + 1] != ':') return false;
    colon = close + 1;
    host = {};
  } else if (colon != std::string_view::npos) {
    host = s.substr(0, colon);
  }
  if (colon != std::string_view::npos && colon > 0) {
    std::string_view port = s.substr(colon + 1);
    if (port.empty()) return false;
    for (char c : port) {
      if (c < '0' || c > '9') return false;
    }
  }
  if (host.empty()) return s.front() == '[';
  size_t start = 0;
  while (start <= host.size()) {
    size_t dot = host.find('.', start);
    std::string_view comp =
        host.substr(start, dot == std::string_view::npos ? host.npos : dot - start);
    if (comp.empty() || !IsAlnum(comp.front()) || !IsAlnum(comp.back())) return false;
    for (char c : comp) {
      if (!IsAlnum(c) && c != '-') return false;
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

// Whether the first component of a name with a '/' is its domain, as Docker decides.
bool LooksLikeDomain(std::string_view first) {
  return first.find('.') != std::string_view::npos || first.find(':') != std::string_view::npos ||
         first == "localhost" || (!first.empty() && first.front() == '[');
}

tl::unexpected<Error> Invalid(const std::string& why) {
  return Fail(Code::kInvalid, "invalid reference format: " + why);
}

}  // namespace

bool IsValidTag(std::string_view tag) {
  if (tag.empty() || tag.size() > 128) return false;
  auto word = [](char c) { return IsAlnum(c) || c == '_'; };
  if (!word(tag[0])) return false;
  for (char c : tag) {
    if (!word(c) && c != '.' && c != '-') return false;
  }
  return true;
}

Result<Reference> ParseReference(std::string_view s) {
  if (s.empty()) return Invalid("empty reference");
  Reference ref;
  std::string_view rest = s;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    auto digest = Digest::Parse(rest.substr(at + 1));
    if (!digest) return Fail(Code::kInvalid, "invalid reference format: " + digest.error().msg);
    ref.digest = *digest;
    rest = rest.substr(0, at);
  }
  // A ':' after the last '/' starts the tag; one before it belongs to a domain's port.
  size_t last_slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos &&
      (last_slash == std::string_view::npos || colon > last_slash)) {
    ref.tag = std::string(rest.substr(colon + 1));
    if (!IsValidTag(ref.tag)) return Invalid("invalid tag \"" + ref.tag + "\"");
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return Invalid("missing repository name");

  std::string_view remainder = rest;
  size_t slash = rest.find('/');
  std::string_view first = rest.substr(0, slash);
  if (slash != std::string_view::npos && LooksLikeDomain(first)) {
    if (!IsValidDomain(first)) return Invalid("invalid domain \"" + std::string(first) + "\"");
    ref.domain = std::string(first);
    remainder = rest.substr(slash + 1);
  } else {
    ref.domain = "docker.io";
  }
  if (ref.domain == "index.docker.io") ref.domain = "docker.io";

  for (char c : remainder) {
    if (c >= 'A' && c <= 'Z') return Invalid("repository name must be lowercase");
  }
  size_t start = 0;
  while (true) {
    size_t next = remainder.find('/', start);
    std::string_view comp =
        remainder.substr(start, next == std::string_view::npos ? remainder.npos : next - start);
    if (!IsValidPathComponent(comp)) {
      return Invalid("invalid repository name component \"" + std::string(comp) + "\" in \"" +
                     std::string(s) + "\"");
    }
    if (next == std::string_view::npos) break;
    start = next + 1;
  }
  ref.path = std::string(remainder);
  if (ref.domain == "docker.io" && ref.path.find('/') == std::string::npos) {
    ref.path = "library/" + ref.path;
  }
  if (ref.Name().size() > kMaxNameLength) {
    return Invalid("repository name must not be more than 255 characters");
  }
  return ref;
}

Reference WithDefaultTag(Reference ref) {
  if (ref.tag.empty() && !ref.digest) ref.tag = "latest";
  return ref;
}

std::string Reference::String() const {
  std::string s = Name();
  if (!tag.empty()) s += ":" + tag;
  if (digest) s += "@" + digest->str();
  return s;
}

std::string Reference::FamiliarName() const {
  if (domain != "docker.io") return Name();
  // docker.io/a.b/c must not print as a.b/c, which names registry a.b (an image.tar's
  // RepoTags would load under another name).
  if (LooksLikeDomain(std::string_view(path).substr(0, path.find('/')))) return Name();
  if (path.rfind("library/", 0) == 0 && path.find('/', 8) == std::string::npos) {
    return path.substr(8);
  }
  return path;
}

std::string Reference::FamiliarString() const {
  std::string s = FamiliarName();
  if (!tag.empty()) s += ":" + tag;
  if (digest) s += "@" + digest->str();
  return s;
}

}  // namespace imagefs
