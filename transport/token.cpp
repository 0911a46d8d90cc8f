#include "switchboard/transport/token.hpp"

#include <sys/stat.h>

#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>
#include <sodium.h>

#include "switchboard/common/utf8.hpp"
#include "switchboard/transport/key_file.hpp"

namespace switchboard::transport {
namespace {

constexpr std::string_view kHeader = R"({"alg":"EdDSA","typ":"JWT"})";

void init_sodium() {
  if (sodium_init() < 0) throw std::runtime_error("libsodium cannot be initialised");
}

std::string to_base64(const unsigned char* data, std::size_t size, int variant) {
  std::string out(sodium_base64_encoded_len(size, variant), '\0');
  sodium_bin2base64(out.data(), out.size(), data, size, variant);
  out.resize(std::char_traits<char>::length(out.c_str()));
  return out;
}
std::string to_base64(std::string_view text, int variant) {
  return to_base64(reinterpret_cast<const unsigned char*>(text.data()), text.size(), variant);
}

/// Decodes `text` (all of it) into at most `max` bytes.
std::optional<std::string> from_base64(std::string_view text, std::size_t max, int variant) {
  std::string out(max, '\0');
  std::size_t size = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(), text.size(), nullptr,
                        &size, &end, variant) != 0 ||
      end != text.data() + text.size())
    return std::nullopt;
  out.resize(size);
  return out;
}

Error refused(std::string why) { return Error{errc::unauthenticated, std::move(why)}; }

template <std::size_t N>
Result<std::array<unsigned char, N>> parse_key(const std::filesystem::path& path, const char* what) {
  auto line = read_key_line(path);
  if (!line) return line.error();
  auto bytes = from_base64(*line, N, sodium_base64_VARIANT_ORIGINAL);
  if (!bytes || bytes->size() != N)
    return make_error(errc::bad_field, path.string() + " does not hold " + what + " (one line of base64, " +
                                           std::to_string(N) + " bytes)");
  std::array<unsigned char, N> key{};
  std::copy(bytes->begin(), bytes->end(), key.begin());
  return key;
}

}  // namespace

TokenPublicKey TokenSecretKey::public_key() const {
  init_sodium();
  TokenPublicKey pk;
  crypto_sign_ed25519_sk_to_pk(pk.bytes.data(), bytes.data());
  return pk;
}

TokenSecretKey generate_token_key() {
  init_sodium();
  TokenSecretKey sk;
  TokenPublicKey pk;
  crypto_sign_keypair(pk.bytes.data(), sk.bytes.data());
  return sk;
}

std::string issue_token(const TokenClaims& claims, const TokenSecretKey& key) {
  init_sodium();
  nlohmann::json body = {{"sub", claims.user}, {"exp", claims.expires_s}};
  if (!claims.rooms.empty()) body["rooms"] = claims.rooms;
  const int url = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
  const std::string input = to_base64(kHeader, url) + "." + to_base64(body.dump(), url);
  std::array<unsigned char, crypto_sign_BYTES> signature{};
  crypto_sign_detached(signature.data(), nullptr, reinterpret_cast<const unsigned char*>(input.data()), input.size(),
                       key.bytes.data());
  return input + "." + to_base64(signature.data(), signature.size(), url);
}

Result<TokenClaims> verify_token(std::string_view token, const TokenPublicKey& key, std::uint64_t now_s,
                                 const Limits& limits) {
  init_sodium();
  const int url = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
  if (token.empty()) return refused("no token");
  if (token.size() > kMaxToken) return refused("the token is longer than " + std::to_string(kMaxToken) + " bytes");
  const auto first = token.find('.');
  const auto second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos)
    return refused("malformed token: not three parts joined by '.'");
  const std::string_view header64 = token.substr(0, first), claims64 = token.substr(first + 1, second - first - 1),
                         signature64 = token.substr(second + 1);

  auto header = from_base64(header64, header64.size(), url);
  if (!header) return refused("malformed token: the header is not base64url");
  const auto header_json = nlohmann::json::parse(*header, nullptr, false);
  if (!header_json.is_object() || !header_json.contains("alg") || header_json["alg"] != "EdDSA")
    return refused("the token is not signed with EdDSA (Ed25519), the only algorithm accepted");

  auto signature = from_base64(signature64, crypto_sign_BYTES, url);
  if (!signature || signature->size() != crypto_sign_BYTES) return refused("malformed token: bad signature part");
  const std::string_view input = token.substr(0, second);
  if (crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(signature->data()),
                                  reinterpret_cast<const unsigned char*>(input.data()), input.size(),
                                  key.bytes.data()) != 0)
    return refused("the token's signature does not verify: forged, altered, or signed with another key");

  auto body = from_base64(claims64, claims64.size(), url);
  if (!body) return refused("malformed token: the claims are not base64url");
  const auto claims = nlohmann::json::parse(*body, nullptr, false);
  if (!claims.is_object()) return refused("malformed token: the claims are not a JSON object");
  TokenClaims out;
  const auto sub = claims.find("sub");
  if (sub == claims.end() || !sub->is_string() || sub->get_ref<const std::string&>().size() > limits.max_user ||
      !valid_name(sub->get_ref<const std::string&>()))
    return refused("the token's 'sub' must be a user name of at most " + std::to_string(limits.max_user) + " bytes");
  out.user = sub->get<std::string>();
  const auto exp = claims.find("exp");
  if (exp == claims.end() || !exp->is_number_unsigned())
    return refused("the token's 'exp' must be a time in seconds since the epoch");
  out.expires_s = exp->get<std::uint64_t>();
  if (now_s >= out.expires_s) return refused("the token expired at " + std::to_string(out.expires_s) + " (now " +
                                             std::to_string(now_s) + "): get a new one");
  if (const auto rooms = claims.find("rooms"); rooms != claims.end()) {
    if (!rooms->is_array() || rooms->size() > limits.max_array)
      return refused("the token's 'rooms' must be an array of at most " + std::to_string(limits.max_array) + " rooms");
    for (const auto& r : *rooms) {
      if (!r.is_string() || r.get_ref<const std::string&>().size() > limits.max_room ||
          !valid_name(r.get_ref<const std::string&>()))
        return refused("the token's 'rooms' must hold room names of at most " + std::to_string(limits.max_room) +
                       " bytes");
      out.rooms.push_back(r.get<std::string>());
    }
  }
  return out;
}

Result<void> save_token_key(const TokenSecretKey& key, const std::filesystem::path& path) {
  const int b64 = sodium_base64_VARIANT_ORIGINAL;
  if (auto r = write_key_file(path, to_base64(key.bytes.data(), key.bytes.size(), b64), 0600); !r) return r;
  const auto pk = key.public_key();
  return write_key_file(path.string() + ".pub", to_base64(pk.bytes.data(), pk.bytes.size(), b64), 0644);
}

Result<TokenSecretKey> load_token_secret_key(const std::filesystem::path& path) {
  auto bytes = parse_key<64>(path, "an Ed25519 secret key");
  if (!bytes) return bytes.error();
  return TokenSecretKey{*bytes};
}

Result<TokenPublicKey> load_token_public_key(const std::filesystem::path& path) {
  auto bytes = parse_key<32>(path, "an Ed25519 public key");
  if (!bytes) return bytes.error();
  return TokenPublicKey{*bytes};
}

}  // namespace switchboard::transport
