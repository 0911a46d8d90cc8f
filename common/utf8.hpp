// UTF-8 validation for every text field that comes from outside.
#pragma once

#include <cstddef>
#include <string_view>

namespace switchboard {

/// True if `text` is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates,
/// nothing above U+10FFFF).
bool valid_utf8(std::string_view text) noexcept;

/// True if `name` is usable as a room or user name: valid UTF-8 with no control
/// characters (U+0000..U+001F, U+007F), not empty.
bool valid_name(std::string_view name) noexcept;

/// The longest start of valid UTF-8 `text` of at most `max_bytes` that does not cut a
/// character in two.
std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes) noexcept;

}  // namespace switchboard
