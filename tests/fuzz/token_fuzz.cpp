// libFuzzer target: user tokens (transport::verify_token) with a fixed key. Each input
// is tried twice: as a whole token (a forgery: it must be refused, never crash), and
// as the claims of a token signed with the key, so the fuzzer reaches the claims
// parser behind the signature check. Claims that verify must name a valid user and
// survive issue_token -> verify_token unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <sodium.h>

#include "switchboard/transport/token.hpp"

using namespace switchboard::transport;

namespace {

constexpr std::uint64_t kNow = 1'800'000'000;

const TokenSecretKey& secret_key() {
  static const TokenSecretKey key = [] {
    if (sodium_init() < 0) std::abort();
    TokenSecretKey sk;
    TokenPublicKey pk;
    unsigned char seed[crypto_sign_SEEDBYTES] = {7};
    crypto_sign_seed_keypair(pk.bytes.data(), sk.bytes.data(), seed);
    return sk;
  }();
  return key;
}

std::string base64url(std::string_view bytes) {
  const int variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
  std::string out(sodium_base64_encoded_len(bytes.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                    variant);
  out.resize(std::char_traits<char>::length(out.c_str()));
  return out;
}

/// A token whose claims are `claims` (any bytes), signed with the fixed key.
std::string signed_token(std::string_view claims) {
  const std::string input = base64url(R"({"alg":"EdDSA","typ":"JWT"})") + "." + base64url(claims);
  unsigned char signature[crypto_sign_BYTES];
  crypto_sign_detached(signature, nullptr, reinterpret_cast<const unsigned char*>(input.data()), input.size(),
                       secret_key().bytes.data());
  return input + "." + base64url(std::string_view(reinterpret_cast<const char*>(signature), sizeof signature));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const TokenPublicKey key = secret_key().public_key();
  static const Limits limits;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  if (verify_token(input, key, kNow, limits)) std::abort();  // a forgery got through

  auto claims = verify_token(signed_token(input), key, kNow, limits);
  if (!claims) return 0;
  if (claims->user.empty() || claims->expires_s <= kNow) std::abort();
  auto again = verify_token(issue_token(*claims, secret_key()), key, kNow, limits);
  if (!again || again->user != claims->user || again->expires_s != claims->expires_s || again->rooms != claims->rooms)
    std::abort();
  return 0;
}
