// One node per data directory: an exclusive lock on DIR/switchboard.lock, held for as
// long as the object lives (flock, so the kernel drops it when the process dies, kill -9
// included). Two nodes on one directory would hand out the same seqs twice and diverge;
// LMDB's own lock file lets several processes share an environment, so it does not
// stop them.
#pragma once

#include <filesystem>

#include "switchboard/common/error.hpp"

namespace switchboard::persistence {

class DataDirLock {
 public:
  /// Takes the lock, creating `dir` and its lock file if needed, and writes this
  /// process's id into the lock file (for the message of the next one to try).
  /// Errors: unavailable if another holder has it (the message names the directory and
  /// the process id the file holds), or if the file cannot be created or locked.
  /// Another DataDirLock of the same directory in this same process conflicts too.
  static Result<DataDirLock> acquire(const std::filesystem::path& dir);

  DataDirLock(DataDirLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  DataDirLock& operator=(DataDirLock&& other) noexcept;
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;
  ~DataDirLock();

 private:
  explicit DataDirLock(int fd) noexcept : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace switchboard::persistence
