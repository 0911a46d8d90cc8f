// CURVE keys (transport/curve.hpp): made, saved with the right modes, read back, and
// every bad key file refused with a message naming the file.
#include <sys/stat.h>

#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "node_process.hpp"
#include "switchboard/transport/curve.hpp"

using namespace switchboard;
using namespace switchboard::transport;
using switchboard::testing::TempDir;

namespace {

unsigned mode_of(const std::filesystem::path& p) {
  struct stat info {};
  EXPECT_EQ(::stat(p.c_str(), &info), 0) << p;
  return info.st_mode & 0777;
}

std::string first_line(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

TEST(Curve, KeysAreFortyCharactersOfZ85) {
  const auto keys = generate_curve_keypair();
  EXPECT_TRUE(valid_curve_key(keys.public_key));
  EXPECT_TRUE(valid_curve_key(keys.secret_key));
  EXPECT_NE(keys.public_key, keys.secret_key);
  EXPECT_FALSE(valid_curve_key(keys.public_key.substr(1)));           // too short
  EXPECT_FALSE(valid_curve_key(keys.public_key + "A"));               // too long
  EXPECT_FALSE(valid_curve_key(std::string(39, 'a') + "\""));         // '"' is not Z85
  EXPECT_FALSE(valid_curve_key(std::string(39, 'a') + " "));          // nor is a space
  EXPECT_FALSE(valid_curve_key(""));
}

TEST(Curve, ASavedKeypairHasAPrivateSecretAndReadsBack) {
  TempDir dir;
  const auto file = dir.path() / "node.key";
  const auto keys = generate_curve_keypair();
  ASSERT_TRUE(save_curve_keypair(keys, file));
  EXPECT_EQ(mode_of(file), 0600u);
  EXPECT_EQ(mode_of(file.string() + ".pub"), 0644u);
  EXPECT_EQ(first_line(file), keys.secret_key);
  EXPECT_EQ(first_line(file.string() + ".pub"), keys.public_key);
  auto loaded = load_curve_keypair(file);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(loaded->public_key, keys.public_key) << "the public key is derived from the secret";
  EXPECT_EQ(loaded->secret_key, keys.secret_key);
  auto pub = load_curve_public(file.string() + ".pub");
  ASSERT_TRUE(pub);
  EXPECT_EQ(*pub, keys.public_key);
}

TEST(Curve, BadKeyFilesAreRefusedNamingTheFile) {
  TempDir dir;
  const auto file = dir.path() / "k.key";
  ASSERT_TRUE(save_curve_keypair(generate_curve_keypair(), file));

  ::chmod(file.c_str(), 0644);
  auto readable = load_curve_keypair(file);
  ASSERT_FALSE(readable);
  EXPECT_EQ(readable.error().code, errc::bad_field);
  EXPECT_NE(readable.error().message.find(file.string() + " has mode 0644"), std::string::npos)
      << readable.error().message;

  const auto junk = dir.path() / "junk.key";
  std::ofstream(junk) << "not a key\n";
  ::chmod(junk.c_str(), 0600);
  auto bad = load_curve_keypair(junk);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::bad_field);
  EXPECT_NE(bad.error().message.find(junk.string()), std::string::npos);
  auto bad_pub = load_curve_public(junk);
  ASSERT_FALSE(bad_pub);
  EXPECT_EQ(bad_pub.error().code, errc::bad_field);

  auto missing = load_curve_keypair(dir.path() / "nowhere.key");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, errc::unavailable);
  EXPECT_NE(missing.error().message.find("nowhere.key"), std::string::npos);
}

TEST(Curve, EnsureMakesTheKeypairOnceAndProcessesStartingTogetherAgree) {
  TempDir dir;
  const auto file = dir.path() / "keys" / "node.key";
  std::vector<CurveKeypair> seen(8);
  std::vector<std::thread> starters;
  for (auto& keys : seen)
    starters.emplace_back([&] {
      auto r = ensure_curve_keypair(file);
      ASSERT_TRUE(r) << r.error().message;
      keys = *r;
    });
  for (auto& t : starters) t.join();
  for (const auto& keys : seen) EXPECT_EQ(keys.public_key, seen.front().public_key) << "one keypair won";
  EXPECT_EQ(mode_of(file), 0600u);
  EXPECT_EQ(mode_of(dir.path() / "keys"), 0700u);
  EXPECT_EQ(first_line(file.string() + ".pub"), seen.front().public_key);
  auto again = ensure_curve_keypair(file);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->secret_key, seen.front().secret_key) << "an existing key is kept";
}
