// User tokens (transport/token.hpp): issued, verified, and every way a bad one is
// refused with `unauthenticated`.
#include <sys/stat.h>

#include <fstream>

#include <gtest/gtest.h>
#include <sodium.h>

#include "node_process.hpp"
#include "switchboard/transport/token.hpp"

using namespace switchboard;
using namespace switchboard::transport;

namespace {

constexpr std::uint64_t kNow = 1'800'000'000;

std::string b64url(std::string_view text) {
  std::string out(sodium_base64_encoded_len(text.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(text.data()), text.size(),
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(std::char_traits<char>::length(out.c_str()));
  return out;
}

/// A token with these header and claims, correctly signed with `key`.
std::string signed_token(std::string_view header, std::string_view claims, const TokenSecretKey& key) {
  const std::string input = b64url(header) + "." + b64url(claims);
  unsigned char sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, nullptr, reinterpret_cast<const unsigned char*>(input.data()), input.size(),
                       key.bytes.data());
  return input + "." + b64url(std::string_view(reinterpret_cast<const char*>(sig), sizeof sig));
}

Error refusal(std::string_view token, const TokenPublicKey& key, std::uint64_t now = kNow) {
  auto r = verify_token(token, key, now, Limits{});
  EXPECT_FALSE(r) << token;
  return r ? Error{errc::ok, ""} : r.error();
}

}  // namespace

TEST(Token, IssuedTokensVerifyWithTheirClaims) {
  auto key = generate_token_key();
  auto token = issue_token({"ann", kNow + 3600, {"lobby", "ops"}}, key);
  auto claims = verify_token(token, key.public_key(), kNow, Limits{});
  ASSERT_TRUE(claims) << claims.error().message;
  EXPECT_EQ(claims->user, "ann");
  EXPECT_EQ(claims->expires_s, kNow + 3600);
  EXPECT_EQ(claims->rooms, (std::vector<std::string>{"lobby", "ops"}));
  auto plain = verify_token(issue_token({"bob", kNow + 1, {}}, key), key.public_key(), kNow, Limits{});
  ASSERT_TRUE(plain);
  EXPECT_TRUE(plain->rooms.empty());
}

TEST(Token, ForgedExpiredWrongKeyAndTruncatedTokensAreRefused) {
  auto key = generate_token_key(), other = generate_token_key();
  const auto pk = key.public_key();
  const std::string good = issue_token({"ann", kNow + 60, {}}, key);

  EXPECT_EQ(refusal(good, other.public_key()).code, errc::unauthenticated) << "signed with another key";
  EXPECT_EQ(refusal(good, pk, kNow + 60).code, errc::unauthenticated) << "expired at exactly exp";
  EXPECT_NE(refusal(good, pk, kNow + 61).message.find("expired"), std::string::npos);
  EXPECT_EQ(refusal(good.substr(0, good.size() - 5), pk).code, errc::unauthenticated) << "truncated";
  EXPECT_EQ(refusal(good.substr(0, good.rfind('.')), pk).code, errc::unauthenticated) << "no signature";
  EXPECT_EQ(refusal("", pk).code, errc::unauthenticated);
  EXPECT_EQ(refusal("a.b.c.d", pk).code, errc::unauthenticated);
  EXPECT_EQ(refusal(std::string(kMaxToken + 1, 'a'), pk).code, errc::unauthenticated);

  // Forged: the claims changed (bob instead of ann), the signature kept.
  const auto dot1 = good.find('.'), dot2 = good.rfind('.');
  const std::string forged = good.substr(0, dot1 + 1) + b64url(R"({"sub":"bob","exp":1800000060})") + good.substr(dot2);
  EXPECT_NE(refusal(forged, pk).message.find("signature"), std::string::npos);
  // "alg": "none" and other algorithms are refused before anything else is read.
  const std::string none = b64url(R"({"alg":"none","typ":"JWT"})") + "." + b64url(R"({"sub":"ann","exp":1900000000})") + ".";
  EXPECT_NE(refusal(none, pk).message.find("EdDSA"), std::string::npos);
  EXPECT_NE(refusal(signed_token(R"({"alg":"HS256"})", R"({"sub":"ann","exp":1900000000})", key), pk).message.find("EdDSA"),
            std::string::npos);
}

TEST(Token, ClaimsOfTheWrongShapeAreRefusedEvenWhenSigned) {
  auto key = generate_token_key();
  const auto pk = key.public_key();
  const std::string header = R"({"alg":"EdDSA","typ":"JWT"})";
  for (const char* claims : {
           R"([1,2])",                                        // not an object
           R"({"exp":1900000000})",                           // no sub
           R"({"sub":"","exp":1900000000})",                  // empty user
           R"({"sub":"a\nb","exp":1900000000})",              // control character
           R"({"sub":"ann","exp":"tomorrow"})",               // exp not a number
           R"({"sub":"ann","exp":-5})",                       // negative
           R"({"sub":"ann","exp":1900000000,"rooms":"lobby"})",  // rooms not an array
           R"({"sub":"ann","exp":1900000000,"rooms":[7]})",      // a room not a string
           "not json",
       }) {
    auto e = refusal(signed_token(header, claims, key), pk);
    EXPECT_EQ(e.code, errc::unauthenticated) << claims;
  }
  const std::string long_user(65, 'u');
  EXPECT_EQ(refusal(signed_token(header, R"({"sub":")" + long_user + R"(","exp":1900000000})", key), pk).code,
            errc::unauthenticated);
}

TEST(Token, KeyFilesRoundTripAndTheSecretIsPrivate) {
  switchboard::testing::TempDir dir;
  auto key = generate_token_key();
  const auto path = dir.path() / "tokens.key";
  ASSERT_TRUE(save_token_key(key, path));
  struct stat st{};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto secret = load_token_secret_key(path);
  auto pub = load_token_public_key(path.string() + ".pub");
  ASSERT_TRUE(secret && pub);
  auto token = issue_token({"ann", kNow + 10, {}}, *secret);
  EXPECT_TRUE(verify_token(token, *pub, kNow, Limits{}));

  std::ofstream(dir.path() / "bad.pub") << "not a key\n";
  auto bad = load_token_public_key(dir.path() / "bad.pub");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::bad_field);
  EXPECT_EQ(load_token_public_key(path).error().code, errc::bad_field) << "a secret key is not a public key";
  EXPECT_EQ(load_token_secret_key(dir.path() / "missing").error().code, errc::unavailable);
}
