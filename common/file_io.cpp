#include "switchboard/common/file_io.hpp"

#include <unistd.h>

#include <cerrno>

namespace switchboard {

WriteAll pwrite_all(int fd, std::string_view data, std::uint64_t offset) noexcept {
  WriteAll result;
  while (result.written < data.size()) {
    const ssize_t n = ::pwrite(fd, data.data() + result.written, data.size() - result.written,
                               static_cast<off_t>(offset + result.written));
    if (n < 0) {
      if (errno == EINTR) continue;
      result.error = errno;
      break;
    }
    result.written += static_cast<std::size_t>(n);
  }
  return result;
}

}  // namespace switchboard
