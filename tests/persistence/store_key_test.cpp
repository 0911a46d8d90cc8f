// StoreKey: key files as an operator handles them, and sealing as the store uses it.
#include "switchboard/persistence/store_key.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace {

namespace fs = std::filesystem;
using switchboard::errc;
using switchboard::persistence::StoreKey;

class KeyDir {
 public:
  KeyDir() {
    std::string pattern = (fs::path(::testing::TempDir()) / "store_key_test.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~KeyDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path operator/(const char* name) const { return path_ / name; }

 private:
  fs::path path_;
};

void write_secret(const fs::path& path, const std::string& text) {
  std::ofstream(path) << text;
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
}

TEST(StoreKey, SavedKeyLoadsBackAsTheSameKeyAndIsNeverOverwritten) {
  KeyDir dir;
  const StoreKey key = StoreKey::generate();
  ASSERT_TRUE(key.save(dir / "k"));
  EXPECT_EQ(fs::status(dir / "k").permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  auto loaded = StoreKey::load(dir / "k");
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(loaded->fingerprint(), key.fingerprint());
  EXPECT_NE(StoreKey::generate().fingerprint(), key.fingerprint());
  // What one seals the other opens.
  auto opened = loaded->open(key.seal("body", "place"), "place");
  ASSERT_TRUE(opened);
  EXPECT_EQ(*opened, "body");

  auto again = StoreKey::generate().save(dir / "k");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, errc::bad_field);
  EXPECT_EQ(StoreKey::load(dir / "k")->fingerprint(), key.fingerprint()) << "the first key is still there";
}

TEST(StoreKey, BadKeyFilesAreRefusedNamingTheFile) {
  KeyDir dir;
  const std::string hex(64, 'a');
  struct Case { const char* name; std::string text; const char* says; };
  for (const Case& c : {Case{"short", std::string(62, 'a') + "\n", "64 hex digits"},
                        Case{"not-hex", std::string(63, 'a') + "g\n", "64 hex digits"},
                        Case{"two-lines", hex + "\n" + hex + "\n", "64 hex digits"},
                        Case{"empty", "", "cannot be read"}}) {
    SCOPED_TRACE(c.name);
    write_secret(dir / c.name, c.text);
    auto loaded = StoreKey::load(dir / c.name);
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().code, errc::bad_field);
    EXPECT_NE(loaded.error().message.find((dir / c.name).string()), std::string::npos) << loaded.error().message;
    EXPECT_NE(loaded.error().message.find(c.says), std::string::npos) << loaded.error().message;
  }
  write_secret(dir / "good", hex + "\n");
  EXPECT_TRUE(StoreKey::load(dir / "good"));
  fs::permissions(dir / "good", fs::perms::others_read, fs::perm_options::add);
  auto open_to_all = StoreKey::load(dir / "good");
  ASSERT_FALSE(open_to_all);
  EXPECT_NE(open_to_all.error().message.find("chmod 600"), std::string::npos) << open_to_all.error().message;
  EXPECT_FALSE(StoreKey::load(dir / "missing"));
}

TEST(StoreKey, ASealedBodyOpensOnlyUnchangedWithItsKeyAndItsPlace) {
  const StoreKey key = StoreKey::generate();
  const std::string body = "meet at noon";
  const std::string sealed = key.seal(body, "room 1 seq 7");
  EXPECT_EQ(sealed.size(), body.size() + StoreKey::kOverhead);
  EXPECT_EQ(sealed.find(body), std::string::npos);
  EXPECT_NE(key.seal(body, "room 1 seq 7"), sealed) << "a fresh nonce each time";
  ASSERT_TRUE(key.open(sealed, "room 1 seq 7"));
  EXPECT_FALSE(key.open(sealed, "room 1 seq 8")) << "moved to another place";
  EXPECT_FALSE(StoreKey::generate().open(sealed, "room 1 seq 7")) << "another key";
  for (std::size_t i = 0; i < sealed.size(); ++i) {
    std::string changed = sealed;
    changed[i] = static_cast<char>(changed[i] ^ 0x01);
    EXPECT_FALSE(key.open(changed, "room 1 seq 7")) << "byte " << i << " changed";
  }
  EXPECT_FALSE(key.open(sealed.substr(0, StoreKey::kOverhead - 1), "room 1 seq 7")) << "too short";
  EXPECT_EQ(*key.open(key.seal("", "x"), "x"), "") << "an empty body seals too";
}

}  // namespace
