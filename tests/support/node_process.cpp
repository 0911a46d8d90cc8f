#include "node_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <random>
#include <stdexcept>

namespace switchboard::testing {
namespace {

using SteadyClock = std::chrono::steady_clock;

/// Starts `args` with stdout (and stderr, stdin if given) on these descriptors. The
/// child is killed if the test process dies, so no node outlives a crashed test.
pid_t spawn(const std::vector<std::string>& args, int out_fd, int err_fd, int in_fd = -1) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("cannot start " + args[0]);
  if (pid == 0) {  // child: only async-signal-safe calls until exec
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(out_fd, STDOUT_FILENO);
    if (err_fd >= 0) ::dup2(err_fd, STDERR_FILENO);
    int in = in_fd >= 0 ? in_fd : ::open("/dev/null", O_RDONLY);
    ::dup2(in, STDIN_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

std::string field(const std::string& line, const std::string& key) {
  auto at = line.find(" " + key + "=");
  if (at == std::string::npos) return {};
  at += key.size() + 2;
  return line.substr(at, line.find(' ', at) - at);
}

/// Waits for output on fd until the deadline and appends what is there to `into`.
/// False at the deadline or at EOF.
bool read_some(int fd, std::string& into, SteadyClock::time_point deadline) {
  char chunk[4096];
  pollfd p{fd, POLLIN, 0};
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
  if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
  ssize_t n = ::read(fd, chunk, sizeof chunk);
  if (n <= 0) return false;
  into.append(chunk, static_cast<std::size_t>(n));
  return true;
}

/// Reads from fd into `into` until EOF (true) or the deadline (false).
bool drain(int fd, std::string& into, SteadyClock::time_point deadline) {
  while (read_some(fd, into, deadline)) {
  }
  return SteadyClock::now() < deadline;
}

}  // namespace

std::string switchboard_binary() { return SWITCHBOARD_BINARY; }

TempDir::TempDir() {
  std::random_device random;
  path_ = std::filesystem::temp_directory_path() / ("switchboard-test-" + std::to_string(random()) + "-" +
                                                    std::to_string(::getpid()));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

namespace {

/// Claims `port` for this test process: a file named after it, holding the claimant's
/// pid, in a directory every test process shares. A port a live process claimed is
/// never handed out again, even while its node is down between a kill and a restart
/// (the chaos harness does that all the time); a dead process's claims are taken over.
bool claim_port(int port) {
  static const std::string dir = "/tmp/switchboard-test-ports";
  ::mkdir(dir.c_str(), 0777);
  const std::string path = dir + "/" + std::to_string(port);
  const std::string me = std::to_string(::getpid());
  for (int tries = 0; tries < 2; ++tries) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) {
      const bool written = ::write(fd, me.data(), me.size()) == static_cast<ssize_t>(me.size());
      ::close(fd);
      return written;
    }
    char owner[32] = {};
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const ssize_t n = ::read(fd, owner, sizeof owner - 1);
    ::close(fd);
    const pid_t pid = n > 0 ? static_cast<pid_t>(std::atol(owner)) : 0;
    if (pid == ::getpid()) return false;  // this process has it already, for another node
    if (pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM)) return false;  // its claimant lives
    ::unlink(path.c_str());  // a dead process's claim: taken over (once)
  }
  return false;
}

}  // namespace

int free_port() {
  // At random below the kernel's ephemeral range (32768 and up on Linux), which it
  // hands out to every bind(0) and outgoing connection: a port found free here is not
  // given to another test process a moment later, as one from bind(0) may be. And
  // claimed (claim_port), so that no other test process takes it while it is unbound.
  static thread_local std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> pick(20000, 32000);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(pick(random)));
    const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (free && claim_port(ntohs(addr.sin_port))) return ntohs(addr.sin_port);
  }
  throw std::runtime_error("cannot find a free port");
}

NodeProcess::NodeProcess(const std::filesystem::path& data_dir, std::vector<std::string> extra,
                         std::chrono::seconds timeout, const std::string& listen) {
  std::vector<std::string> args = {"--data", data_dir.string(), "--listen", listen};
  args.insert(args.end(), extra.begin(), extra.end());
  start(Args{std::move(args)}, timeout);
}

NodeProcess::NodeProcess(Args args, std::chrono::seconds timeout) { start(std::move(args), timeout); }

void NodeProcess::start(Args how, std::chrono::seconds timeout) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  std::vector<std::string> args = {switchboard_binary(), "run"};
  if (!how.binary.empty()) args = {how.binary};
  args.insert(args.end(), how.run.begin(), how.run.end());
  int err_fd = -1;
  if (!how.log_file.empty()) {
    err_fd = ::open(how.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (err_fd < 0) throw std::runtime_error("cannot open " + how.log_file);
  }
  pid_ = spawn(args, fds[1], err_fd);
  ::close(fds[1]);
  if (err_fd >= 0) ::close(err_fd);
  out_fd_ = fds[0];
  auto deadline = SteadyClock::now() + timeout;
  std::string line;
  while (read_line(line, deadline)) {
    if (line.rfind(how.ready, 0) == 0) {
      client_ = field(line, "client");
      pub_ = field(line, "pub");
      data_ = field(line, "data");
      curve_ = field(line, "curve");
      return;
    }
  }
  kill_hard();
  throw std::runtime_error(args[0] + " did not become ready; it printed: " + output_);
}

NodeProcess::~NodeProcess() {
  if (pid_ > 0) kill_hard();
  if (out_fd_ >= 0) ::close(out_fd_);
}

bool NodeProcess::read_line(std::string& line, SteadyClock::time_point deadline) {
  for (;;) {
    auto nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return true;
    }
    std::string got;
    if (!read_some(out_fd_, got, deadline)) return false;
    buffer_ += got;
    output_ += got;
  }
}

void NodeProcess::kill_hard() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

int NodeProcess::stop(std::chrono::seconds timeout) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  // stdout reaches EOF when the node exits; then its status is there to reap.
  if (!drain(out_fd_, output_, SteadyClock::now() + timeout)) {
    kill_hard();
    return -1;
  }
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Interactive::Interactive(const std::vector<std::string>& args) {
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  std::vector<std::string> full = {switchboard_binary()};
  full.insert(full.end(), args.begin(), args.end());
  pid_ = spawn(full, out[1], -1, in[0]);
  ::close(in[0]);
  ::close(out[1]);
  in_fd_ = in[1];
  out_fd_ = out[0];
}

void Interactive::kill_hard() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

Interactive::~Interactive() {
  kill_hard();
  if (in_fd_ >= 0) ::close(in_fd_);
  if (out_fd_ >= 0) ::close(out_fd_);
}

void Interactive::write_line(const std::string& line) {
  std::string data = line + "\n";
  if (::write(in_fd_, data.data(), data.size()) != static_cast<ssize_t>(data.size()))
    throw std::runtime_error("cannot write to the command's stdin");
}

bool Interactive::wait_for(const std::string& text, std::chrono::seconds timeout) {
  auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    auto at = output_.find(text, scanned_);
    if (at != std::string::npos) {
      scanned_ = at + text.size();
      return true;
    }
    if (!read_some(out_fd_, output_, deadline)) return false;
  }
}

int Interactive::close_and_wait(std::chrono::seconds timeout) {
  ::close(in_fd_);
  in_fd_ = -1;
  if (!drain(out_fd_, output_, SteadyClock::now() + timeout)) return -1;  // EOF: it exited
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int Interactive::signal_and_wait(int signal, std::chrono::seconds timeout) {
  ::kill(pid_, signal);
  if (!drain(out_fd_, output_, SteadyClock::now() + timeout)) return -1;  // EOF: it exited
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

CommandResult run_command(const std::vector<std::string>& args, std::chrono::seconds timeout,
                          const std::filesystem::path& input) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  const int in = input.empty() ? -1 : ::open(input.c_str(), O_RDONLY | O_CLOEXEC);
  if (!input.empty() && in < 0) throw std::runtime_error("cannot open " + input.string());
  std::vector<std::string> full = {switchboard_binary()};
  full.insert(full.end(), args.begin(), args.end());
  pid_t pid = spawn(full, out[1], err[1], in);
  ::close(out[1]);
  ::close(err[1]);
  if (in >= 0) ::close(in);
  CommandResult result;
  auto deadline = SteadyClock::now() + timeout;
  // Read both pipes until both reach EOF (the command exited) or time runs out.
  bool out_open = true, err_open = true;
  char chunk[4096];
  while ((out_open || err_open) && SteadyClock::now() < deadline) {
    pollfd p[2] = {{out_open ? out[0] : -1, POLLIN, 0}, {err_open ? err[0] : -1, POLLIN, 0}};
    if (::poll(p, 2, 100) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (!(p[i].revents & (POLLIN | POLLHUP))) continue;
      ssize_t n = ::read(p[i].fd, chunk, sizeof chunk);
      if (n <= 0) (i == 0 ? out_open : err_open) = false;
      else (i == 0 ? result.out : result.err).append(chunk, static_cast<std::size_t>(n));
    }
  }
  ::close(out[0]);
  ::close(err[0]);
  if (out_open || err_open) ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace switchboard::testing
