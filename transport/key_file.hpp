// Key files: one line of text, written with the mode they keep (tokens, CURVE).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

#include "switchboard/common/error.hpp"

namespace switchboard::transport {

/// Writes `line` and a newline to `path`, replacing it; the file is created with
/// `mode` (never wider for a moment). Error: unavailable (naming the file).
Result<void> write_key_file(const std::filesystem::path& path, const std::string& line, mode_t mode);

/// The first line of `path`, trailing spaces and CR removed. Error: unavailable.
Result<std::string> read_key_line(const std::filesystem::path& path);

}  // namespace switchboard::transport
