// Client::backup: a hot backup of a node's store, received in chunks and written to a
// directory that `switchboard run --data` opens (docs/PROTOCOL.md 4.12).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "switchboard/client/client.hpp"

namespace switchboard::client {

namespace {

constexpr int kAttempts = 3;  ///< a backup the node stopped is begun again this often

Error file_error(const std::string& what, const std::filesystem::path& path, int err) {
  return make_error(errc::unavailable, what + " '" + path.string() + "': " + std::strerror(err));
}

/// An open file that is closed (and, unless kept, removed) when it goes.
struct PartialFile {
  std::filesystem::path path;
  int fd = -1;
  bool keep = false;
  ~PartialFile() {
    if (fd >= 0) ::close(fd);
    if (!keep) ::unlink(path.c_str());
  }
};

Result<void> write_all(int fd, const std::string& data, std::uint64_t offset, const std::filesystem::path& path) {
  const char* at = data.data();
  std::size_t left = data.size();
  auto where = static_cast<off_t>(offset);
  while (left > 0) {
    const ssize_t n = ::pwrite(fd, at, left, where);
    if (n < 0) {
      if (errno == EINTR) continue;
      return file_error("writing", path, errno);
    }
    at += n;
    left -= static_cast<std::size_t>(n);
    where += n;
  }
  return {};
}

Result<void> sync_dir(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return file_error("opening", dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return file_error("syncing", dir, err);
  return {};
}

}  // namespace

Result<std::uint64_t> Client::backup(const std::filesystem::path& dir, const BackupProgress& progress) {
  std::error_code ec;
  if (std::filesystem::exists(dir, ec)) {
    if (!std::filesystem::is_directory(dir, ec))
      return make_error(errc::bad_field, "'" + dir.string() + "' is not a directory");
    if (!std::filesystem::is_empty(dir, ec))
      return make_error(errc::bad_field, "'" + dir.string() + "' is not empty: a backup goes into a new or empty "
                                                              "directory");
  } else if (!std::filesystem::create_directories(dir, ec) && ec) {
    return make_error(errc::unavailable, "creating '" + dir.string() + "': " + ec.message());
  }
  const auto final_path = dir / "data.mdb";
  Error last{errc::unavailable, "backup: no attempt made"};
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    PartialFile file{dir / "data.mdb.partial"};
    file.fd = ::open(file.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (file.fd < 0) return file_error("opening", file.path, errno);

    transport::Backup ask;  // no id: begin one
    std::uint64_t received = 0;
    bool done = false, restart = false;
    while (!done) {
      auto reply = call(ask);
      if (!reply) return reply.error();
      if (auto* e = std::get_if<transport::ErrorReply>(&*reply)) {
        // Stopped by the node midway (its store's map grew): begin again. Refusals and
        // a failure to begin are the caller's to see.
        if (ask.backup && e->code == errc::unavailable) {
          last = Error{e->code, e->message};
          restart = true;
          break;
        }
        return Error{e->code, e->message};
      }
      auto* chunk = std::get_if<transport::BackupOk>(&*reply);
      if (!chunk) return make_error(errc::internal, "the node answered a backup with an unexpected reply");
      if (chunk->offset != received)
        return make_error(errc::internal, "backup: the node sent bytes at " + std::to_string(chunk->offset) +
                                              ", expected " + std::to_string(received));
      if (auto wrote = write_all(file.fd, chunk->data, received, file.path); !wrote) return wrote.error();
      received += chunk->data.size();
      done = chunk->done;
      ask.backup = chunk->backup;
      ask.offset = received;
      if (progress) progress(received, chunk->estimate);
    }
    if (restart) continue;
    if (::fsync(file.fd) != 0) return file_error("syncing", file.path, errno);
    if (::rename(file.path.c_str(), final_path.c_str()) != 0) return file_error("renaming", file.path, errno);
    file.keep = true;
    if (auto synced = sync_dir(dir); !synced) return synced.error();
    return received;
  }
  return last;
}

}  // namespace switchboard::client
