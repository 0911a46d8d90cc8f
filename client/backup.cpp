// Client::backup: a hot backup of a node's store, received in chunks and written to a
// directory that `switchboard run --data` opens (docs/PROTOCOL.md 4.12).
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "switchboard/client/client.hpp"
#include "switchboard/common/file_io.hpp"

namespace switchboard::client {

namespace {

constexpr int kAttempts = 3;  ///< a backup the node stopped is begun again this often
constexpr std::uint64_t kBackupChunk = 1 << 20;  ///< every chunk but the last (docs/PROTOCOL.md 4.12)
constexpr std::size_t kAhead = 8;  ///< chunks asked for at once

Error file_error(const std::string& what, const std::filesystem::path& path, int err) {
  return make_error(errc::unavailable, what + " '" + path.string() + "': " + std::strerror(err));
}

/// The backup being written: data.mdb.partial, removed unless kept. Written with
/// O_DIRECT where the file system allows it, as LMDB's own copy writes: the chunks go
/// to the disk as they come instead of piling up as dirty pages that the kernel then
/// makes the writer wait for. An LMDB file is whole pages, so every write but a short
/// last one is aligned; one that is not goes through the page cache.
///
/// A thread of its own writes, from a few aligned buffers, again as LMDB's copy does:
/// the client takes the next chunks off the connection while the disk writes the last.
class PartialFile {
 public:
  explicit PartialFile(std::filesystem::path path) : path_(std::move(path)) {}
  ~PartialFile() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    if (writer_.joinable()) writer_.join();  // after what was queued
    if (fd_ >= 0) ::close(fd_);
    if (!keep_) ::unlink(path_.c_str());
    for (Slot& slot : slots_) std::free(slot.buffer);
  }
  PartialFile(const PartialFile&) = delete;
  PartialFile& operator=(const PartialFile&) = delete;

  Result<void> open() {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0600);
    if (fd_ < 0 && errno == EINVAL) fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    else direct_ = fd_ >= 0;
    if (fd_ < 0) return file_error("opening", path_, errno);
    for (std::size_t i = 0; i < slots_.size(); ++i) free_.push_back(i);
    writer_ = std::thread([this] { write_queued(); });
    return {};
  }

  /// Queues `data` for `offset` (copied: the caller's string may go). Errors: an earlier
  /// write's, once it is known.
  Result<void> write(const std::string& data, std::uint64_t offset) {
    if (direct_ && (data.size() % kAlign != 0 || offset % kAlign != 0)) {  // a short last chunk
      if (auto done = finish(); !done) return done;
      if (::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_DIRECT) != 0) return file_error("writing", path_, errno);
      direct_ = false;
    }
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !free_.empty() || error_ != 0; });
    if (error_ != 0) return file_error("writing", path_, error_);
    const std::size_t index = free_.front();
    free_.pop_front();
    lock.unlock();
    Slot& slot = slots_[index];  // this thread's until queued
    if (slot.capacity < data.size()) {
      std::free(slot.buffer);
      slot.buffer = nullptr;
      slot.capacity = 0;
      if (::posix_memalign(&slot.buffer, kAlign, data.size()) != 0) {
        lock.lock();
        free_.push_back(index);
        return make_error(errc::unavailable, "backup: no memory");
      }
      slot.capacity = data.size();
    }
    std::memcpy(slot.buffer, data.data(), data.size());
    slot.size = data.size();
    slot.offset = offset;
    lock.lock();
    queued_.push_back(index);
    changed_.notify_all();
    return {};
  }

  /// Waits for every queued write. Errors: the first that failed.
  Result<void> finish() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return queued_.empty(); });
    if (error_ != 0) return file_error("writing", path_, error_);
    return {};
  }

  int fd() const noexcept { return fd_; }
  const std::filesystem::path& path() const noexcept { return path_; }
  void keep() noexcept { keep_ = true; }

 private:
  static constexpr std::size_t kAlign = 4096;
  struct Slot {
    void* buffer = nullptr;
    std::size_t capacity = 0, size = 0;
    std::uint64_t offset = 0;
  };

  void write_queued() {
    std::unique_lock lock(mutex_);
    for (;;) {
      changed_.wait(lock, [&] { return stop_ || !queued_.empty(); });
      if (queued_.empty()) return;
      const Slot& slot = slots_[queued_.front()];
      lock.unlock();
      const WriteAll wrote = error_ == 0 ? pwrite_all(fd_, std::string_view(static_cast<const char*>(slot.buffer), slot.size),
                                                      slot.offset)
                                         : WriteAll{};
      lock.lock();
      if (wrote.error != 0 && error_ == 0) error_ = wrote.error;
      free_.push_back(queued_.front());
      queued_.pop_front();
      changed_.notify_all();
    }
  }

  std::filesystem::path path_;
  int fd_ = -1;
  bool keep_ = false, direct_ = false;
  std::array<Slot, 3> slots_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::size_t> free_, queued_;  ///< slots; the writer writes queued_.front()
  bool stop_ = false;
  int error_ = 0;  ///< errno of the first failed write
  std::thread writer_;
};

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
    PartialFile file(dir / "data.mdb.partial");
    if (auto opened = file.open(); !opened) return opened.error();

    // The first chunk names the backup; then up to kAhead chunks are asked for at once
    // (every chunk but the last is kBackupChunk bytes, so their offsets are known).
    auto first = call(transport::Backup{});
    if (!first) return first.error();
    if (auto* e = std::get_if<transport::ErrorReply>(&*first)) return Error{e->code, e->message};
    // A chunk as the protocol promises it: at the offset asked, of the backup begun, and
    // a whole chunk unless it is the last.
    auto unexpected = [](const transport::BackupOk* c, std::uint64_t offset,
                         std::optional<std::uint64_t> id) -> std::optional<Error> {
      if (!c || c->offset != offset || (id && c->backup != *id))
        return make_error(errc::internal, "the node answered a backup's chunk with another reply");
      if (!c->done && c->data.size() != kBackupChunk)
        return make_error(errc::internal, "backup: a chunk of " + std::to_string(c->data.size()) +
                                              " bytes before the last");
      return std::nullopt;
    };
    auto* chunk = std::get_if<transport::BackupOk>(&*first);
    if (auto bad = unexpected(chunk, 0, std::nullopt)) return *bad;
    const std::uint64_t id = chunk->backup, estimate = chunk->estimate;
    std::uint64_t written = 0, end = ~std::uint64_t{0}, next_ask = chunk->data.size();
    std::optional<Error> failed;  // ends this attempt
    bool restart = false;
    auto take = [&](const transport::BackupOk& c) {
      if (auto wrote = file.write(c.data, c.offset); !wrote) return failed.emplace(wrote.error()), void();
      written += c.data.size();
      if (c.done) end = c.offset + c.data.size();
      if (progress) progress(written, estimate);
    };
    take(*chunk);
    if (chunk->done) next_ask = end;
    std::size_t in_flight = 0;
    while (!failed && !restart && (in_flight > 0 || next_ask < end)) {
      while (in_flight < kAhead && next_ask < end && !failed && !restart) {
        const std::uint64_t offset = next_ask;
        next_ask += kBackupChunk;
        ++in_flight;
        send_request(transport::Backup{id, offset}, [&, offset](Result<transport::Reply> reply) {
          --in_flight;
          if (!reply) return failed.emplace(reply.error()), void();
          if (auto* e = std::get_if<transport::ErrorReply>(&reply->body)) {
            if (offset >= end) return;  // asked ahead past the end
            // Stopped midway (the store's map grew), or a chunk asked out of order after
            // a reconnect: begin again. Anything else is the caller's to see.
            if (e->code == errc::unavailable || e->code == errc::bad_field) {
              last = Error{e->code, e->message};
              restart = true;
              return;
            }
            return failed.emplace(Error{e->code, e->message}), void();
          }
          auto* c = std::get_if<transport::BackupOk>(&reply->body);
          if (auto bad = unexpected(c, offset, id)) return failed.emplace(std::move(*bad)), void();
          take(*c);
        });
      }
      pump(std::chrono::steady_clock::now() + Millis(1000));
    }
    while (in_flight > 0) pump(std::chrono::steady_clock::now() + Millis(1000));  // callbacks hold references to this frame
    if (failed) return *failed;
    if (restart) continue;
    if (written != end) return make_error(errc::internal, "backup: " + std::to_string(written) + " of " +
                                                              std::to_string(end) + " bytes received");
    if (auto done = file.finish(); !done) return done.error();
    if (::fsync(file.fd()) != 0) return file_error("syncing", file.path(), errno);
    if (::rename(file.path().c_str(), final_path.c_str()) != 0) return file_error("renaming", file.path(), errno);
    file.keep();
    if (auto synced = sync_dir(dir); !synced) return synced.error();
    return written;
  }
  return last;
}

}  // namespace switchboard::client
