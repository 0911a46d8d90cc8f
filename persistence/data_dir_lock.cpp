#include "switchboard/persistence/data_dir_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace switchboard::persistence {

Result<DataDirLock> DataDirLock::acquire(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return make_error(errc::unavailable, "cannot create the data directory '" + dir.string() + "': " + ec.message());
  const auto path = dir / "switchboard.lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return make_error(errc::unavailable, "cannot open the lock file '" + path.string() + "': " + std::strerror(errno));
  DataDirLock lock(fd);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    if (error != EWOULDBLOCK)
      return make_error(errc::unavailable, "cannot lock '" + path.string() + "': " + std::strerror(error));
    char holder[32] = {};
    const ssize_t n = ::pread(fd, holder, sizeof holder - 1, 0);
    std::string pid(holder, n > 0 ? static_cast<std::size_t>(n) : 0);
    pid.erase(pid.find_last_not_of("\n ") + 1);
    return make_error(errc::unavailable,
                      "the data directory '" + dir.string() + "' is in use by another Switchboard node" +
                          (pid.empty() ? std::string() : " (process " + pid + ")") +
                          ": two nodes must not share a data directory; stop that one, or give this one its own "
                          "--data");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
    return make_error(errc::unavailable, "cannot write '" + path.string() + "': " + std::strerror(errno));
  return lock;
}

DataDirLock& DataDirLock::operator=(DataDirLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

DataDirLock::~DataDirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor of the open file releases the flock
}

}  // namespace switchboard::persistence
