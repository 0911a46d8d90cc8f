// Runs `switchboard run` as a real child process for integration tests, and waits
// for its ready line (never sleeps): the endpoints are read from that line.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace switchboard::testing {

/// How much slower the build under test runs than a plain one. ThreadSanitizer slows a
/// node 5-15x: the timeouts that stand for "the node did not answer" (a client's
/// attempt, a cluster's heartbeats) are stretched by this, so that a slow answer is not
/// taken for none (scripts/sanitize tsan).
#if defined(__SANITIZE_THREAD__)
inline constexpr int kSlowdown = 8;
#else
inline constexpr int kSlowdown = 1;
#endif

/// A fresh directory under the system temp dir, removed with the object.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

class NodeProcess {
 public:
  /// Starts the node with data in `data_dir` and tcp ports picked by the node
  /// ("tcp://127.0.0.1:*"), plus `extra` arguments; waits for its ready line.
  /// Throws std::runtime_error (with what the node printed) if it is not ready
  /// within `timeout`.
  NodeProcess(const std::filesystem::path& data_dir, std::vector<std::string> extra = {},
              std::chrono::seconds timeout = std::chrono::seconds(30),
              const std::string& listen = "tcp://127.0.0.1:*");
  /// Starts `switchboard run` with exactly these arguments (after "run").
  struct Args {
    std::vector<std::string> run;
    /// Another program instead (a service: examples/bot), started with `run` as its
    /// arguments and ready once it prints a line starting with `ready`.
    std::string binary = {};
    std::string ready = "switchboard ready ";
    /// Where its stderr (its log) goes: this file, appended to ("": the test's stderr).
    std::string log_file = {};
  };
  explicit NodeProcess(Args args, std::chrono::seconds timeout = std::chrono::seconds(30));
  ~NodeProcess();  ///< kill -9 if still running
  NodeProcess(const NodeProcess&) = delete;
  NodeProcess& operator=(const NodeProcess&) = delete;

  const std::string& client_endpoint() const noexcept { return client_; }
  const std::string& pub_endpoint() const noexcept { return pub_; }
  /// The node's data directory, and its keys directory (DATA/keys: the node's public
  /// key and the local client's keypair; client::load_local_keys reads it).
  const std::string& data_dir() const noexcept { return data_; }
  std::string keys_dir() const { return data_ + "/keys"; }
  /// The node's CURVE public key from its ready line ("off": CURVE is off).
  const std::string& curve_public() const noexcept { return curve_; }
  pid_t pid() const noexcept { return pid_; }

  /// kill -9 and reap.
  void kill_hard();
  /// SIGTERM, then wait for the exit; returns the exit status (-1 if it did not exit
  /// within `timeout` or died by a signal). Also reads the rest of its stdout.
  int stop(std::chrono::seconds timeout = std::chrono::seconds(60));
  /// Everything the node printed on stdout so far.
  const std::string& output() const noexcept { return output_; }

 private:
  bool read_line(std::string& line, std::chrono::steady_clock::time_point deadline);
  void start(Args args, std::chrono::seconds timeout);

  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string buffer_, output_, client_, pub_, data_, curve_;
};

/// The switchboard binary with `args`, its stdin and stdout on pipes: for
/// interactive commands.
class Interactive {
 public:
  explicit Interactive(const std::vector<std::string>& args);
  ~Interactive();  ///< kill -9 if still running
  Interactive(const Interactive&) = delete;
  Interactive& operator=(const Interactive&) = delete;

  void write_line(const std::string& line);
  /// Reads stdout lines until one contains `text`; false if none did within `timeout`.
  bool wait_for(const std::string& text, std::chrono::seconds timeout = std::chrono::seconds(20));
  /// Closes stdin (end of input) and waits for the exit status (-1: no exit in time).
  int close_and_wait(std::chrono::seconds timeout = std::chrono::seconds(20));
  /// kill -9 and reap.
  void kill_hard();
  /// Sends `signal`, reads stdout to its end and reaps: the exit status, 128 + the
  /// signal's number if a signal ended it (134: it aborted), -1 if it did not end in time.
  int signal_and_wait(int signal, std::chrono::seconds timeout = std::chrono::seconds(20));
  const std::string& output() const noexcept { return output_; }

 private:
  pid_t pid_ = -1;
  int in_fd_ = -1, out_fd_ = -1;
  std::string output_;
  std::size_t scanned_ = 0;
};

/// A tcp port on 127.0.0.1 that was free a moment ago (for a node that must come back
/// on the same endpoint after a restart).
int free_port();

/// The switchboard binary under test (set by CMake).
std::string switchboard_binary();

/// Runs the switchboard binary with `args` to completion (its stdin the file `input`,
/// when given); returns its exit status, stdout and stderr.
struct CommandResult {
  int status = -1;
  std::string out, err;
};
CommandResult run_command(const std::vector<std::string>& args, std::chrono::seconds timeout = std::chrono::seconds(60),
                          const std::filesystem::path& input = {});

}  // namespace switchboard::testing
