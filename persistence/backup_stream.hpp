// A hot backup of the store as a stream of bytes: LMDB's compacting copy
// (mdb_env_copyfd2 with MDB_CP_COMPACT) writes into a pipe on a thread of its own, and
// the one who asks for the backup reads the pipe as fast as it can take the bytes. The
// copy is one read transaction, so it is consistent as of the moment it began, and
// writers go on committing beside it; what it holds back is the reuse of pages freed
// while it runs (the file may grow by what is written meanwhile).
//
// LMDB remaps the file when the store's map grows, and no transaction of the process may
// be open then: the copy holds the store's remap lock (shared) while it runs, and a
// writer that must grow the map first stops every running backup (abort()), which then
// ends with an error saying so (the backup is begun again).
//
// What comes out is a complete data.mdb: a directory holding it is a data directory
// `switchboard run --data` opens.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>

#include "switchboard/common/error.hpp"

typedef struct MDB_env MDB_env;

namespace switchboard::persistence {

class BackupStream {
 public:
  /// Starts the copy of `env`, holding `remap` shared while it runs; `keep` keeps the
  /// environment (and `remap`) alive until the copy ends.
  /// Errors: unavailable (no socket, no thread).
  static Result<std::shared_ptr<BackupStream>> start(MDB_env* env, std::shared_mutex& remap,
                                                     std::shared_ptr<const void> keep);

  /// Closes the pipe (a copy still running stops with EPIPE) and waits for the thread.
  ~BackupStream();
  BackupStream(const BackupStream&) = delete;
  BackupStream& operator=(const BackupStream&) = delete;

  /// Appends the next bytes of the copy to `out`: up to `max`, fewer only at the end.
  /// Returns true when the copy has ended (and every byte of it was given).
  /// Errors: unavailable (the copy failed: LMDB's error, or reading the pipe).
  Result<bool> read(std::string& out, std::size_t max);

  /// Bytes given so far.
  std::uint64_t offset() const noexcept { return offset_; }

  /// Stops the copy (from any thread): its next write fails, it lets go of the remap
  /// lock, and read() ends with an error that says the store's map grew.
  void abort() noexcept;

 private:
  BackupStream(int read_fd, int write_fd, std::shared_ptr<const void> keep)
      : read_fd_(read_fd), write_fd_(write_fd), keep_(std::move(keep)) {}

  int read_fd_ = -1;
  std::mutex write_end_;  ///< guards write_fd_: the copy closes it, abort() shuts it down
  int write_fd_ = -1;
  bool aborted_ = false;  ///< under write_end_
  std::shared_ptr<const void> keep_;
  std::thread copier_;
  int copy_rc_ = 0;  ///< mdb_env_copyfd2's result, read after the thread is joined
  std::uint64_t offset_ = 0;
  bool ended_ = false;
};

}  // namespace switchboard::persistence
