// The files the WebSocket bridge serves over HTTP (the web chat page): which file, if
// any, a request target names. Pure functions over a directory; no sockets, no Beast.
//
// Only a regular file that is inside the root once the target is decoded, normalised
// and every symlink followed is ever named. Everything else (a target that leaves the
// root by "..", by an absolute part, by an encoded slash or dot, by a backslash, by a
// symlink pointing out; a NUL or control byte; a directory; a device) is "not found":
// the caller answers 404 and says no more.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "switchboard/common/error.hpp"

namespace switchboard::actors::bridge {

/// The decoded path of a request target ("/a%20b/c.js?x=1" -> "/a b/c.js"), or nullopt
/// if it is not an origin-form target ("/..."), or holds a malformed escape, a NUL or
/// another control byte, or a backslash (raw or encoded). Decoded once: "%252e" is the
/// three characters "%2e", never a dot.
std::optional<std::string> decode_target(std::string_view target);

/// A directory of static files, its path resolved once (symlinks followed).
class StaticFiles {
 public:
  /// Errors: bad_field if `root` is not a directory (the message names it).
  static Result<StaticFiles> open(const std::filesystem::path& root);

  /// The file `target` (a request target, as sent) names: a regular file inside the
  /// root, with symlinks followed; a target ending in '/' names its index.html.
  /// nullopt for anything else (see the file comment). Reads the file system (stat and
  /// readlink), never opens a file.
  std::optional<std::filesystem::path> resolve(std::string_view target) const;

  const std::filesystem::path& root() const noexcept { return root_; }

 private:
  explicit StaticFiles(std::filesystem::path root) : root_(std::move(root)) {}
  std::filesystem::path root_;  ///< canonical
};

/// The Content-Type of a file the bridge serves, by its extension.
const char* mime_type(const std::filesystem::path& path);

}  // namespace switchboard::actors::bridge
