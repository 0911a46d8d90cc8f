// Writing a whole buffer to a file at an offset, whatever pwrite returns short.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace switchboard {

struct WriteAll {
  std::size_t written = 0;  ///< bytes written (all of them unless `error`)
  int error = 0;            ///< errno of the write that failed; 0: none did
};

/// pwrite(2) of all of `data` at `offset` in `fd`, again after a short write or EINTR.
WriteAll pwrite_all(int fd, std::string_view data, std::uint64_t offset) noexcept;

}  // namespace switchboard
