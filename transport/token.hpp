// User tokens: who a client is, signed by the operator's key (Ed25519, libsodium).
//
// A token is a JSON Web Token with the EdDSA algorithm, so that any backend can mint
// one with a standard library:
//   base64url({"alg":"EdDSA","typ":"JWT"}) . base64url(claims) . base64url(signature)
// claims: {"sub": user, "exp": seconds since the epoch, "rooms": [room, ...]} where
// "rooms" is optional (room grants: the rooms the user may join without being added).
//
// Checked in this order, each failure `unauthenticated` with a message saying which:
// size and shape, the header (EdDSA only: no "none", no other algorithm), the
// signature, then the claims (types, names, expiry). Nothing in a token is read
// before its signature is known to be good.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "switchboard/common/error.hpp"
#include "switchboard/transport/limits.hpp"

namespace switchboard::transport {

/// The longest token accepted, in bytes.
inline constexpr std::size_t kMaxToken = 8192;

struct TokenClaims {
  std::string user;
  std::uint64_t expires_s = 0;     ///< seconds since the Unix epoch
  std::vector<std::string> rooms;  ///< room grants (may be empty)
};

struct TokenPublicKey {
  std::array<unsigned char, 32> bytes{};
};
struct TokenSecretKey {
  std::array<unsigned char, 64> bytes{};  ///< libsodium's: seed and public key
  TokenPublicKey public_key() const;
};

/// A new signing key from the system's random source.
TokenSecretKey generate_token_key();

/// The token for `claims`, signed with `key`.
std::string issue_token(const TokenClaims& claims, const TokenSecretKey& key);

/// Checks `token` against `key` at `now_s` (seconds since the epoch) and returns its
/// claims. Error: unauthenticated (malformed, another algorithm, a bad signature,
/// expired, a claim of the wrong type or a bad name).
Result<TokenClaims> verify_token(std::string_view token, const TokenPublicKey& key, std::uint64_t now_s,
                                 const Limits& limits);

/// Key files: one line of base64 (standard alphabet). The secret key file is written
/// with mode 0600 and `path` + ".pub" beside it holds the public key. Errors:
/// unavailable (cannot write/read), bad_field (not a key).
Result<void> save_token_key(const TokenSecretKey& key, const std::filesystem::path& path);
Result<TokenSecretKey> load_token_secret_key(const std::filesystem::path& path);
Result<TokenPublicKey> load_token_public_key(const std::filesystem::path& path);

}  // namespace switchboard::transport
