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

/// Makes the directory `file` goes in, if it is missing, readable by its owner only
/// (mode 0700). Error: unavailable (naming the directory).
Result<void> make_key_dir(const std::filesystem::path& file);

/// The first line of `path`, trailing spaces and CR removed. Error: unavailable.
Result<std::string> read_key_line(const std::filesystem::path& path);

}  // namespace switchboard::transport
