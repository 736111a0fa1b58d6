#include "fetch/auth_challenge.h"

#include <cctype>

namespace imagefs::fetch {
namespace {

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}
  void SkipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) ++pos_;
  }
  bool AtEnd() const { return pos_ >= s_.size(); }
  char Peek() const { return AtEnd() ? '\0' : s_[pos_]; }
  void Advance() { ++pos_; }
  std::string_view Token() {
    size_t start = pos_;
    while (pos_ < s_.size() && IsTokenChar(s_[pos_])) ++pos_;
    return s_.substr(start, pos_ - start);
  }
  // A token68 (base64-ish credentials): token chars plus '/' and trailing '='.
  std::string_view Token68() {
    size_t start = pos_;
    while (pos_ < s_.size() && (IsTokenChar(s_[pos_]) || s_[pos_] == '/')) ++pos_;
    while (pos_ < s_.size() && s_[pos_] == '=') ++pos_;
    return s_.substr(start, pos_ - start);
  }
  // Lenient: servers send unquoted URLs, which are no RFC tokens; take all up to , or space.
  std::string_view Unquoted() {
    size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != ',' && s_[pos_] != ' ' && s_[pos_] != '\t') ++pos_;
    return s_.substr(start, pos_ - start);
  }
  Result<std::string> Quoted() {
    std::string out;
    ++pos_;  // opening quote
    while (pos_ < s_.size() && s_[pos_] != '"') {
      if (s_[pos_] == '\\' && pos_ + 1 < s_.size()) ++pos_;
      out += s_[pos_++];
    }
    if (pos_ >= s_.size())
      return Fail(Code::kInvalid, "WWW-Authenticate: unterminated quoted string");
    ++pos_;
    return out;
  }
  size_t pos() const { return pos_; }
  void set_pos(size_t p) { pos_ = p; }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

Result<std::vector<AuthChallenge>> ParseAuthChallenges(std::string_view header) {
  std::vector<AuthChallenge> out;
  Parser p(header);
  while (true) {
    p.SkipSpace();
    while (p.Peek() == ',') {
      p.Advance();
      p.SkipSpace();
    }
    if (p.AtEnd()) break;
    std::string_view scheme = p.Token();
    if (scheme.empty())
      return Fail(Code::kInvalid,
                  "WWW-Authenticate: expected an auth scheme in \"" + std::string(header) + "\"");
    AuthChallenge challenge{Lower(scheme), {}};
    // auth-params (name=value, ...) until the next challenge's scheme.
    while (true) {
      p.SkipSpace();
      size_t save = p.pos();
      std::string_view name = p.Token();
      p.SkipSpace();
      if (name.empty() || p.Peek() != '=') {
        if (!name.empty() && challenge.params.empty() && (p.AtEnd() || p.Peek() == ',')) {
          // A token68 form (e.g. Negotiate abc==): keep it under an empty name.
          p.set_pos(save);
          challenge.params[""] = std::string(p.Token68());
          continue;
        }
        p.set_pos(save);  // the next challenge starts here
        break;
      }
      p.Advance();  // '='
      p.SkipSpace();
      std::string value;
      if (p.Peek() == '"') {
        ASSIGN_OR_RETURN(value, p.Quoted());
      } else {
        value = std::string(p.Unquoted());
      }
      challenge.params[Lower(name)] = value;
      p.SkipSpace();
      if (p.Peek() == ',') p.Advance();
    }
    out.push_back(std::move(challenge));
  }
  return out;
}

}  // namespace imagefs::fetch
