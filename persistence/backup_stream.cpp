#include "switchboard/persistence/backup_stream.hpp"

#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace switchboard::persistence {

namespace {
/// Socket buffers this large let the copy run ahead of the reader by about this much.
constexpr int kBufferBytes = 1 << 20;
/// The copy's threads' nice value (0 is the node's).
constexpr int kCopyNice = 10;
}  // namespace

Result<std::shared_ptr<BackupStream>> BackupStream::start(MDB_env* env, std::shared_mutex& remap,
                                                          std::shared_ptr<const void> keep) {
  // A stream socket pair rather than a pipe: shutdown() stops the copy's writes without
  // closing a descriptor the copy may still be using.
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    return make_error(errc::unavailable, std::string("backup: socketpair: ") + std::strerror(errno));
  const int size = kBufferBytes;
  (void)::setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);  // best effort
  (void)::setsockopt(fds[0], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  std::shared_ptr<BackupStream> stream(new BackupStream(fds[0], fds[1], std::move(keep)));
  try {
    stream->copier_ = std::thread([s = stream.get(), env, &remap] {
      // A reader that goes away (or abort()) ends the copy's writes with EPIPE, not with
      // SIGPIPE for the process. LMDB's own writer thread inherits this mask.
      sigset_t pipe_signal;
      sigemptyset(&pipe_signal);
      sigaddset(&pipe_signal, SIGPIPE);
      pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
      // The copy yields the cores to the node's own work (publishes go on at their
      // pace while a backup runs): nice 10 for this thread, and for LMDB's writer
      // thread, which inherits it. Best effort.
      pthread_setname_np(pthread_self(), "sb-backup");
      (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kCopyNice);
      {
        std::shared_lock copying(remap);  // no remap while the copy's transaction is open
        s->copy_rc_ = mdb_env_copyfd2(env, s->write_fd_, MDB_CP_COMPACT);
      }
      std::lock_guard closing(s->write_end_);
      ::close(s->write_fd_);  // the reader sees the end
      s->write_fd_ = -1;
    });
  } catch (const std::system_error& e) {
    return make_error(errc::unavailable, std::string("backup: starting the copy: ") + e.what());
  }
  return stream;
}

BackupStream::~BackupStream() {
  abort();
  if (copier_.joinable()) copier_.join();
  ::close(read_fd_);
  std::lock_guard closing(write_end_);
  if (write_fd_ >= 0) ::close(write_fd_);  // the thread never started
}

void BackupStream::abort() noexcept {
  std::lock_guard stopping(write_end_);
  if (write_fd_ < 0 || aborted_) return;
  aborted_ = true;
  ::shutdown(write_fd_, SHUT_RDWR);
}

Result<bool> BackupStream::read(std::string& out, std::size_t max) {
  if (ended_) return true;
  const std::size_t start = out.size();
  out.resize(start + max);
  std::size_t got = 0;
  bool end = false;
  while (got < max) {
    const ssize_t n = ::read(read_fd_, out.data() + start + got, max - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      out.resize(start + got);
      return make_error(errc::unavailable, std::string("backup: reading the copy: ") + std::strerror(err));
    }
    if (n == 0) {
      end = true;
      break;
    }
    got += static_cast<std::size_t>(n);
  }
  out.resize(start + got);
  offset_ += got;
  if (!end) return false;
  ended_ = true;
  copier_.join();
  bool aborted = false;
  {
    std::lock_guard stopped(write_end_);
    aborted = aborted_;
  }
  if (aborted)
    return make_error(errc::unavailable, "backup: stopped because the store's map grew while it ran: begin it again");
  if (copy_rc_ != MDB_SUCCESS)
    return make_error(errc::unavailable, std::string("backup: mdb_env_copyfd2: ") + mdb_strerror(copy_rc_));
  return true;
}

}  // namespace switchboard::persistence
