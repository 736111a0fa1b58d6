#include "graph/base/digest.h"

#include <openssl/evp.h>

#include <new>

namespace imagefs {

bool IsHex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Result<Digest> Digest::Parse(std::string_view s) {
  size_t colon = s.find(':');
  if (colon == std::string_view::npos) {
    return Fail(Code::kInvalid, "invalid digest \"" + std::string(s) + "\": missing algorithm");
  }
  std::string_view algo = s.substr(0, colon);
  if (algo != "sha256") {
    return Fail(Code::kUnsupported,
                "unsupported digest algorithm \"" + std::string(algo) + "\" (only sha256)");
  }
  return FromHex(s.substr(colon + 1));
}

Result<Digest> Digest::FromHex(std::string_view hex) {
  if (!IsHex64(hex)) {
    return Fail(Code::kInvalid, "invalid sha256 digest \"" + std::string(hex.substr(0, 80)) +
                                    "\": want 64 lowercase hex characters");
  }
  return Digest(std::string(hex));
}

void Sha256::CtxDeleter::operator()(evp_md_ctx_st* ctx) const { EVP_MD_CTX_free(ctx); }

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) throw std::bad_alloc();
}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::Update(const void* data, size_t len) { EVP_DigestUpdate(ctx_.get(), data, len); }

Digest Sha256::Finish() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_.get(), md, &len);
  static const char kHex[] = "0123456789abcdef";
  std::string hex(len * 2, '0');
  for (unsigned i = 0; i < len; ++i) {
    hex[2 * i] = kHex[md[i] >> 4];
    hex[2 * i + 1] = kHex[md[i] & 0xf];
  }
  return *Digest::FromHex(hex);
}

Sha256::Sha256(const Sha256& other) : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_MD_CTX_copy_ex(ctx_.get(), other.ctx_.get()) != 1) throw std::bad_alloc();
}

Digest Sha256::Peek() const { return Sha256(*this).Finish(); }

Digest Sha256::Of(std::string_view data) {
  Sha256 h;
  h.Update(data);
  return h.Finish();
}

Digest ChainIdOf(const Digest* parent_chain_id, const Digest& diff_id) {
  if (parent_chain_id == nullptr) return diff_id;
  return Sha256::Of(parent_chain_id->str() + " " + diff_id.str());
}

}  // namespace imagefs
