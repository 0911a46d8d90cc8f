// Which file, if any, a request target names (actors/bridge/static_files.hpp): a real
// directory with real files and symlinks, every shape of escape an attacker would try.
#include <gtest/gtest.h>

#include <fstream>

#include "node_process.hpp"
#include "switchboard/actors/bridge/static_files.hpp"

using switchboard::actors::bridge::decode_target;
using switchboard::actors::bridge::StaticFiles;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

// A web root with a page, a file in a subfolder, and beside it (outside the root) a
// secret, as a node's keys sit beside `--web` in the quick start.
struct WebRoot {
  switchboard::testing::TempDir dir;
  fs::path root = dir.path() / "web";
  fs::path secret = dir.path() / "keys" / "node.key";
  WebRoot() {
    write(root / "index.html", "<html>");
    write(root / "js" / "app.js", "app");
    write(root / "a b.txt", "space");
    write(secret, "secret");
    fs::create_directories(root / "empty");
  }
  StaticFiles files() const {
    auto f = StaticFiles::open(root);
    if (!f) throw std::runtime_error(f.error().message);
    return std::move(*f);
  }
};

}  // namespace

TEST(StaticFiles, ServesRegularFilesInsideTheRootAndTheIndexForADirectoryTarget) {
  WebRoot web;
  auto files = web.files();
  EXPECT_EQ(files.resolve("/"), fs::canonical(web.root / "index.html"));
  EXPECT_EQ(files.resolve("/index.html?v=2#top"), fs::canonical(web.root / "index.html"));
  EXPECT_EQ(files.resolve("/js/app.js"), fs::canonical(web.root / "js" / "app.js"));
  EXPECT_EQ(files.resolve("/a%20b.txt"), fs::canonical(web.root / "a b.txt"));
  EXPECT_EQ(files.resolve("/%6As/app.js"), fs::canonical(web.root / "js" / "app.js"));  // an escaped letter
}

TEST(StaticFiles, NamesNothingOutsideTheRootWhateverTheShapeOfTheTarget) {
  WebRoot web;
  auto files = web.files();
  const std::string abs = web.secret.string();  // "/tmp/.../keys/node.key"
  for (const std::string& target : std::vector<std::string>{
           "/" + abs,                          // "//abs": an absolute part would replace the root
           "/%2F" + abs.substr(1),             // an encoded slash
           "/%2f" + abs.substr(1),
           "/../keys/node.key",                // up and out
           "/js/../../keys/node.key",
           "/%2e%2e/keys/node.key",            // encoded dots
           "/%2E%2E/keys/node.key",
           "/.%2e/keys/node.key",
           "/%252e%252e/keys/node.key",        // double encoding: "%2e%2e" is a name, not a dot
           "/..%5ckeys%5cnode.key",            // backslashes, encoded and raw
           "/..\\keys\\node.key",
           "/index.html%00.png",               // NUL
           std::string("/index.html\0", 12),
           "/index.html%0a",                   // a control byte
           "/./index.html",                    // "." parts
           "/js//app.js",                      // an empty part
           "/empty",                           // a directory
           "/empty/",                          // a directory without index.html
           "/no-such-file",
           "/%zz",                             // a malformed escape
           "/%4",
           "",                                 // not origin-form
           "index.html",
           "http://127.0.0.1/index.html",
           "*",
       })
    EXPECT_FALSE(files.resolve(target)) << target;
}

TEST(StaticFiles, FollowsSymlinksOnlyToFilesInsideTheRoot) {
  WebRoot web;
  fs::create_symlink(web.secret, web.root / "key.txt");                  // a file outside
  fs::create_symlink(web.secret.parent_path(), web.root / "keys");       // a directory outside
  fs::create_symlink(web.root / "js" / "app.js", web.root / "app.js");  // a file inside
  fs::create_symlink("/dev/zero", web.root / "zero");                    // not a regular file
  auto files = web.files();
  EXPECT_FALSE(files.resolve("/key.txt"));
  EXPECT_FALSE(files.resolve("/keys/node.key"));
  EXPECT_FALSE(files.resolve("/zero"));
  EXPECT_EQ(files.resolve("/app.js"), fs::canonical(web.root / "js" / "app.js"));
}

TEST(StaticFiles, ARootThatIsASymlinkServesItsFiles) {
  WebRoot web;
  fs::create_directory_symlink(web.root, web.dir.path() / "link");
  auto files = StaticFiles::open(web.dir.path() / "link");
  ASSERT_TRUE(files);
  EXPECT_EQ(files->resolve("/js/app.js"), fs::canonical(web.root / "js" / "app.js"));
}

TEST(StaticFiles, ARootThatIsNotADirectoryIsRefusedNamingIt) {
  WebRoot web;
  for (const fs::path& bad : {web.root / "index.html", web.root / "missing"}) {
    auto files = StaticFiles::open(bad);
    ASSERT_FALSE(files);
    EXPECT_NE(files.error().message.find(bad.string()), std::string::npos) << files.error().message;
  }
}

TEST(StaticFiles, DecodesATargetOnce) {
  EXPECT_EQ(decode_target("/a%20b?x=%2F"), "/a b");
  EXPECT_EQ(decode_target("/%252e"), "/%2e");
  EXPECT_FALSE(decode_target("/a%5cb"));
  EXPECT_FALSE(decode_target("/a%7F"));
}
