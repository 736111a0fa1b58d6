// Digest: a validated "sha256:<64 lowercase hex>" content address, and Sha256, a
// streaming hasher over OpenSSL's EVP API. Only validated digests ever become
// store paths, so a Digest is safe to join into a path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "graph/base/error.h"

struct evp_md_ctx_st;

namespace imagefs {

// True for exactly 64 lowercase hex characters.
bool IsHex64(std::string_view s);

class Digest {
 public:
  Digest() = default;
  // Accepts "sha256:<hex>"; other algorithms are kUnsupported, malformed input kInvalid.
  static Result<Digest> Parse(std::string_view s);
  // Accepts a bare 64-hex string (a v1 image ID or a store directory name).
  static Result<Digest> FromHex(std::string_view hex);

  const std::string& hex() const { return hex_; }
  std::string str() const { return "sha256:" + hex_; }
  bool empty() const { return hex_.empty(); }
  auto operator<=>(const Digest&) const = default;

 private:
  explicit Digest(std::string hex) : hex_(std::move(hex)) {}
  std::string hex_;
};

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256& other);  // the same state, to go on from separately
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void Update(const void* data, size_t len);
  void Update(std::string_view s) { Update(s.data(), s.size()); }
  // Finishes the hash; the object must not be updated afterwards.
  Digest Finish();
  // The hash of what was fed so far, leaving this one to go on.
  Digest Peek() const;

  static Digest Of(std::string_view data);

 private:
  struct CtxDeleter {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  std::unique_ptr<evp_md_ctx_st, CtxDeleter> ctx_;
};

// OCI ChainID: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
Digest ChainIdOf(const Digest* parent_chain_id, const Digest& diff_id);

}  // namespace imagefs

template <>
struct std::hash<imagefs::Digest> {
  size_t operator()(const imagefs::Digest& d) const noexcept {
    return std::hash<std::string>()(d.hex());
  }
};
