// bridge_bench: the WebSocket bridge under load, from a WebSocket client load generator
// (Boost.Beast, one thread) in this process against a `switchboard run` node process.
//
//  1. idle: N connections (default 100 000, fewer where the open-file limit is lower) authenticated and
//     following one room, opened with W upgrades in flight at a time (default 1024);
//     connections opened per second, the node's resident memory per connection (VmRSS
//     before and after) and its CPU time per connection (with its busiest thread: the
//     bridge's is the unnamed "switchboard"); beside the same from a bare Beast server;
//  2. rooms: R rooms (default 1000) of C clients each (default 100), one publisher per
//     room publishing P messages (default 20); room messages delivered per second, every
//     client checked to get every message of its room once and in order;
//  3. fan-out: K subscribed connections (default 1000) in one room, M messages
//     published through the bridge; room messages delivered per second to all of
//     them, each checked in order and complete;
//  4. the raw baseline: the same fan-out from a bare Beast broadcast server (this
//     binary run with --raw-server: no actors, no ZeroMQ, no storage), and the ratio.
//
// 100 000 connections need more than one source address and more open files than a
// shell allows: the bench raises its open-file limit (soft and hard, as root; the node
// it starts inherits it) and spreads its connections over 127.0.0.2, 127.0.0.3, ...,
// 20 000 each, within one address's ephemeral port range (28 000 by default).
//
// Usage: bridge_bench SWITCHBOARD_BINARY [--idle N] [--window W] [--rooms R]
//        [--room-clients C] [--room-messages P] [--clients K] [--messages M]
//        [--only idle|rooms|fan-out] [--quick] [--json]
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>  // before Boost 1.74's asio/awaitable.hpp, which uses std::exchange without it
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include "bench_support.hpp"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24  // linux/in.h, which cannot be included beside netinet/in.h
#endif

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using namespace switchboard::bench;

namespace {

// ---- the processes measured: their memory and CPU time ------------------------------

/// One thread's CPU time (user + system), in clock ticks, with its name.
struct ThreadTime {
  std::string name;
  unsigned long long ticks = 0;
};

/// The CPU time of every thread of process `pid`, by thread id (from /proc).
std::map<int, ThreadTime> thread_times(pid_t pid) {
  std::map<int, ThreadTime> out;
  const std::string task = "/proc/" + std::to_string(pid) + "/task";
  DIR* dir = ::opendir(task.c_str());
  if (dir == nullptr) return out;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream stat(task + "/" + e->d_name + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // "tid (name) state ppid ...": utime and stime are the 12th and 13th fields after the name.
    const auto open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 0; i < 11 && rest >> field; ++i) {
    }
    rest >> utime >> stime;
    out[std::atoi(e->d_name)] = {line.substr(open + 1, close - open - 1), utime + stime};
  }
  ::closedir(dir);
  return out;
}

/// What a process spent between two snapshots: all its CPU time, and its busiest thread's.
struct CpuSpent {
  double seconds = 0;          ///< every thread, user + system
  std::string busiest;         ///< the thread that spent the most
  double busiest_seconds = 0;
};

CpuSpent cpu_between(const std::map<int, ThreadTime>& before, const std::map<int, ThreadTime>& after) {
  const double tick = 1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
  CpuSpent spent;
  for (const auto& [tid, t] : after) {
    const auto was = before.find(tid);
    const double s = static_cast<double>(t.ticks - (was == before.end() ? 0 : was->second.ticks)) * tick;
    spent.seconds += s;
    if (s > spent.busiest_seconds) spent.busiest = t.name, spent.busiest_seconds = s;
  }
  return spent;
}

/// Resident memory of process `pid`, in bytes.
std::size_t rss_of(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  std::size_t kb = 0;
  while (status >> key)
    if (key == "VmRSS:" && status >> kb) break;
  return kb * 1024;
}

/// A child process whose standard output this process reads line by line; killed
/// (SIGTERM) and waited for when it goes.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv) {
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::close(out[0]);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(out[1]);
    out_ = out[0];
  }
  ~Child() {
    if (out_ >= 0) ::close(out_);
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  /// The next line of its output ("" at its end).
  std::string line() {
    std::string line;
    for (char c; ::read(out_, &c, 1) == 1 && c != '\n';) line += c;
    return line;
  }
  void stop_reading() {
    ::close(out_);
    out_ = -1;
  }
  pid_t pid() const noexcept { return pid_; }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
};

/// A `switchboard run` child process; its bridge port is read from the ready line.
struct NodeChild {
  Child child;
  std::uint16_t port = 0;

  NodeChild(const std::string& binary, const std::filesystem::path& dir)
      : child({binary, "run", "--data", dir.string(), "--listen", "tcp://127.0.0.1:*", "--durability", "nosync",
               "--bridge", "127.0.0.1:*", "--bridge-handshake-ms", "600000", "--bridge-idle-ms", "600000",
               // One publisher posts as fast as the bridge acks: measured is delivery, not the rate limit.
               "--limit", "publish_per_s=0", "--limit", "requests_per_s=0"}) {
    // Lines before the ready line are skipped: a wrapper (heaptrack, valgrind) may print its own.
    std::string line;
    std::size_t at = std::string::npos;
    while (at == std::string::npos && !(line = child.line()).empty()) at = line.find(" bridge=ws://");
    child.stop_reading();
    if (at == std::string::npos) throw std::runtime_error("the node did not start: " + line);
    const auto colon = line.find(':', at + 13);
    port = static_cast<std::uint16_t>(std::stoi(line.substr(colon + 1)));
  }
  std::size_t rss() const { return rss_of(child.pid()); }
};

/// The open-file limit this process runs with, raised first, soft and hard, to `want`
/// (within fs.nr_open) when it is lower: the load generator holds one descriptor per
/// connection and the node, forked after, inherits the limit and holds as many.
/// Raising the hard limit needs root (CAP_SYS_RESOURCE); without it the soft limit goes
/// up to the hard one.
rlim_t raise_open_files(rlim_t want) {
  rlim_t nr_open = 1 << 20;
  if (std::ifstream f("/proc/sys/fs/nr_open"); f) f >> nr_open;
  want = std::min(want, nr_open);
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  if (files.rlim_cur >= want) return files.rlim_cur;
  if (want > files.rlim_max) {
    const rlimit raised{want, want};
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) return want;
  }
  files.rlim_cur = std::min(want, files.rlim_max);
  ::setrlimit(RLIMIT_NOFILE, &files);
  ::getrlimit(RLIMIT_NOFILE, &files);
  return files.rlim_cur;
}

/// Loopback source addresses for the load generator's connections: 127.0.0.2 and up,
/// kPerAddress connections each, so that no address runs out of ephemeral ports.
class SourceAddresses {
 public:
  static constexpr std::size_t kPerAddress = 20'000;
  asio::ip::address next() {
    return asio::ip::address_v4(0x7f000002u + static_cast<std::uint32_t>(handed_++ / kPerAddress));
  }
  std::size_t used() const { return (handed_ + kPerAddress - 1) / kPerAddress; }

 private:
  std::size_t handed_ = 0;
};

// ---- the load generator -------------------------------------------------------------

/// One load-generator connection: connects, authenticates, follows a room, counts
/// the messages that arrive and checks their order.
class Client : public std::enable_shared_from_this<Client> {
 public:
  struct Shared {
    std::size_t ready = 0;     ///< clients authenticated, and subscribed when they follow a room
    std::size_t failed = 0;    ///< clients that did not get that far
    std::size_t complete = 0;  ///< clients that got `want` messages
    std::size_t errors = 0;    ///< messages out of order, missing or twice; error replies
    std::size_t dropped = 0;   ///< ready connections that the server ended
    std::size_t pongs = 0;     ///< answers to ping
    std::size_t want = 0;
    std::function<void()> on_settled;  ///< a client got ready or failed: the opening paces itself on it
    SteadyClock::time_point last_done;
  };

  Client(asio::io_context& ioc, Shared& shared, std::string user, std::string room)
      : ws_(ioc), shared_(shared), user_(std::move(user)), room_(std::move(room)) {}

  /// Connects from `from` (its port chosen by the kernel) to `to`, upgrades, authenticates
  /// and subscribes.
  void start(const tcp::endpoint& to, const asio::ip::address& from) {
    auto& socket = beast::get_lowest_layer(ws_).socket();
    beast::error_code ec;
    socket.open(tcp::v4(), ec);
    if (!ec) {
      // The port is picked at connect, for this destination: each source address then
      // has the whole ephemeral range for every node the bench starts.
      const int on = 1;
      ::setsockopt(socket.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof on);
      socket.set_option(tcp::no_delay(true), ec);  // auth and subscribe go out at once
      socket.bind({from, 0}, ec);
    }
    if (ec) {
      std::fprintf(stderr, "bridge_bench: a client socket: %s\n", ec.message().c_str());
      return asio::post(ws_.get_executor(), [self = shared_from_this()] { self->settle(false); });
    }
    beast::get_lowest_layer(ws_).async_connect(to, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return self->settle(false);
      self->ws_.async_handshake("127.0.0.1", "/ws", [self](beast::error_code ec) {
        if (ec) return self->settle(false);
        self->send("{\"op\":\"auth\",\"id\":1,\"user\":\"" + self->user_ + "\"}");
        if (!self->room_.empty())
          self->send("{\"op\":\"subscribe\",\"id\":2,\"room\":\"" + self->room_ + "\",\"presence\":false}");
        self->read();
      });
    });
  }

  /// Sends a text frame (queued behind the one being written).
  void send(std::string text) {
    out_.push_back(std::move(text));
    if (out_.size() == 1) write();
  }
  /// Ends the connection at once (a reset: no TIME_WAIT left holding the source port).
  void close() {
    closing_ = true;
    auto& socket = beast::get_lowest_layer(ws_).socket();
    beast::error_code ec;
    socket.set_option(asio::socket_base::linger(true, 0), ec);
    socket.close(ec);
  }
  /// The next seq this client expects in its room.
  std::uint64_t next() const noexcept { return next_; }
  /// Another reply: a publish ack, create_room's answer, or an error after the subscribe.
  std::function<void()> on_answer;

 private:
  void settle(bool ok) {
    if (settled_) return;
    settled_ = true;
    ++(ok ? shared_.ready : shared_.failed);
    if (shared_.on_settled) shared_.on_settled();
  }
  void ended() {
    if (closing_) return;
    closing_ = true;
    if (settled_) ++shared_.dropped;
    settle(false);
  }
  void write() {
    ws_.async_write(asio::buffer(out_.front()), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->ended();
      self->out_.pop_front();
      if (!self->out_.empty()) self->write();
    });
  }
  void read() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->ended();
      const auto data = self->buffer_.cdata();
      self->on_frame(std::string_view(static_cast<const char*>(data.data()), data.size()));
      self->buffer_.consume(self->buffer_.size());
      self->read();
    });
  }
  static std::uint64_t number_after(std::string_view f, std::string_view key) {
    const auto at = f.find(key);
    return at == std::string_view::npos ? 0 : std::strtoull(f.data() + at + key.size(), nullptr, 10);
  }
  void on_frame(std::string_view f) {
    // The bridge writes keys in order: {"after":A,...,"op":"subscribe",...} and
    // {...,"op":"message","room":...,"seq":N,...}.
    if (f.find("\"op\":\"message\"") != std::string_view::npos) {
      const std::uint64_t seq = number_after(f, "\"seq\":");
      if (seq != next_) ++shared_.errors;  // out of order, missing or twice
      next_ = seq + 1;
      if (++got_ == shared_.want) {
        ++shared_.complete;
        shared_.last_done = SteadyClock::now();
      }
    } else if (f.find("\"op\":\"subscribe\"") != std::string_view::npos) {
      next_ = number_after(f, "\"after\":") + 1;  // every message after the subscribe's `after`
      settle(true);
    } else if (f.find("\"op\":\"auth\"") != std::string_view::npos) {
      if (room_.empty()) settle(true);
    } else if (f.find("\"op\":\"ping\"") != std::string_view::npos) {
      ++shared_.pongs;
    } else if (f.find("\"op\":\"presence\"") != std::string_view::npos) {
    } else if (f.find("\"op\":\"error\"") != std::string_view::npos && !settled_) {
      std::fprintf(stderr, "bridge_bench: %.*s\n", static_cast<int>(f.size()), f.data());
      settle(false);
    } else {
      if (f.find("\"op\":\"error\"") != std::string_view::npos) ++shared_.errors;
      if (on_answer) on_answer();
    }
  }

  websocket::stream<beast::tcp_stream> ws_;
  Shared& shared_;
  std::string user_, room_;
  beast::flat_buffer buffer_;
  std::deque<std::string> out_;
  std::uint64_t next_ = 1, got_ = 0;
  bool settled_ = false, closing_ = false;
};

/// Runs `ioc` until `done()` or `timeout`; false on timeout.
template <class Done>
bool run_until(asio::io_context& ioc, Done done, std::chrono::seconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  while (!done()) {
    if (SteadyClock::now() > deadline) return false;
    ioc.run_one_for(std::chrono::milliseconds(20));
  }
  return true;
}

/// Who the i-th connection is: its user and the room it follows ("": none).
using Identity = std::function<std::pair<std::string, std::string>(std::size_t)>;

/// Users of 16 connections each: presence allows 32 sessions per user.
std::string user_of(std::size_t i) { return "u" + std::to_string(i / 16); }
/// A connection that follows no room.
std::pair<std::string, std::string> no_room(std::size_t i) { return {user_of(i), ""}; }

/// Opens `count` clients to `port`, at most `window` of them connecting, upgrading,
/// authenticating and subscribing at a time: one starts as soon as another is ready or
/// failed, so the node, not the load generator, sets the pace.
std::vector<std::shared_ptr<Client>> open_clients(asio::io_context& ioc, Client::Shared& shared,
                                                  SourceAddresses& from, std::uint16_t port, std::size_t count,
                                                  const Identity& who, std::size_t window) {
  const tcp::endpoint to(asio::ip::make_address("127.0.0.1"), port);
  const std::size_t settled_before = shared.ready + shared.failed;
  std::vector<std::shared_ptr<Client>> clients;
  clients.reserve(count);
  auto settled = [&] { return shared.ready + shared.failed - settled_before; };
  shared.on_settled = [&] {
    while (clients.size() < count && clients.size() - settled() < window) {
      auto [user, room] = who(clients.size());
      clients.push_back(std::make_shared<Client>(ioc, shared, std::move(user), std::move(room)));
      clients.back()->start(to, from.next());
    }
  };
  shared.on_settled();
  const bool ok = run_until(ioc, [&] { return settled() >= count; }, std::chrono::seconds(120 + count / 200));
  shared.on_settled = nullptr;
  if (!ok)
    throw std::runtime_error("connections not ready in time: " + std::to_string(settled()) + " of " +
                             std::to_string(count) + " settled");
  return clients;
}

/// Publishes `count` messages of `body` bytes to `room` through `client`, at most
/// `window` unanswered at a time: each answer sends the next.
class Publishing {
 public:
  Publishing(std::shared_ptr<Client> client, std::string room, std::size_t count, std::size_t body,
             std::size_t window)
      : client_(std::move(client)), room_(std::move(room)), body_(body, 'x'), count_(count), window_(window) {}
  void start() {
    client_->on_answer = [this] {
      ++acked_;
      pump();
    };
    pump();
  }
  std::size_t acked() const noexcept { return acked_; }

 private:
  void pump() {
    for (; sent_ < count_ && sent_ - acked_ < window_; ++sent_)
      client_->send("{\"op\":\"publish\",\"id\":" + std::to_string(100 + sent_) + ",\"room\":\"" + room_ +
                    "\",\"cmid\":\"m" + std::to_string(sent_) + "\",\"body\":\"" + body_ + "\"}");
  }
  std::shared_ptr<Client> client_;
  std::string room_, body_;
  std::size_t count_, window_, sent_ = 0, acked_ = 0;
};

/// Asks every client for a ping and waits for all the answers: the bridge answers in the
/// order it sends, so a message sent twice would arrive before the answer and be seen.
bool flush(asio::io_context& ioc, Client::Shared& shared, const std::vector<std::shared_ptr<Client>>& clients) {
  const std::size_t want = shared.pongs + clients.size();
  for (auto& c : clients) c->send("{\"op\":\"ping\",\"id\":9}");
  return run_until(ioc, [&] { return shared.pongs + shared.dropped >= want; }, std::chrono::seconds(120));
}

void close_all(asio::io_context& ioc, const std::vector<std::shared_ptr<Client>>& clients) {
  for (auto& c : clients) c->close();
  ioc.poll();  // the handlers of the closed connections end
}

// ---- the raw baseline: a bare Beast broadcast server -------------------------------

/// Accepts WebSockets; a text frame "go M SIZE" from one connection broadcasts M
/// message frames of the bridge's shape to every other connection, each with a
/// queue of shared frames written one at a time: what the bridge does, minus
/// Switchboard.
class RawServer {
 public:
  explicit RawServer(asio::io_context& ioc) : ioc_(ioc), acceptor_(ioc) {
    const tcp::endpoint at(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(at.protocol());
    acceptor_.bind(at);
    acceptor_.listen(asio::socket_base::max_listen_connections);  // as the bridge does
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  void accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket s) {
      if (!ec) {
        auto c = std::make_shared<Conn>(std::move(s), *this);
        c->ws.async_accept([this, c](beast::error_code ec) {
          if (ec) return;
          conns_.push_back(c);
          c->read();
        });
      }
      accept();
    });
  }

 private:
  struct Conn : std::enable_shared_from_this<Conn> {
    Conn(tcp::socket&& s, RawServer& srv) : ws(std::move(s)), server(srv) {}
    websocket::stream<beast::tcp_stream> ws;
    RawServer& server;
    beast::flat_buffer buffer;
    std::deque<std::shared_ptr<const std::string>> queue;
    void read() {
      ws.async_read(buffer, [self = shared_from_this()](beast::error_code ec, std::size_t) {
        if (ec) return;
        const std::string f = beast::buffers_to_string(self->buffer.data());
        self->buffer.consume(self->buffer.size());
        if (f.rfind("{\"op\":\"auth\"", 0) == 0) {
          self->send(std::make_shared<const std::string>("{\"id\":1,\"op\":\"auth\",\"v\":1}"));
        } else if (f.rfind("{\"op\":\"subscribe\"", 0) == 0) {
          self->send(std::make_shared<const std::string>("{\"after\":0,\"id\":2,\"op\":\"subscribe\",\"v\":1}"));
        } else if (f.rfind("{\"op\":\"ping\"", 0) == 0) {
          self->send(std::make_shared<const std::string>("{\"id\":9,\"op\":\"ping\",\"v\":1}"));
        } else if (f.rfind("go ", 0) == 0) {
          self->server.broadcast(self.get(), std::stoul(f.substr(3)), std::stoul(f.substr(f.rfind(' '))));
        }
        self->read();
      });
    }
    void send(std::shared_ptr<const std::string> frame) {
      queue.push_back(std::move(frame));
      if (queue.size() == 1) write();
    }
    void write() {
      ws.async_write(asio::buffer(*queue.front()), [self = shared_from_this()](beast::error_code ec, std::size_t) {
        if (ec) return;
        self->queue.pop_front();
        if (!self->queue.empty()) self->write();
      });
    }
  };
  void broadcast(Conn* from, std::size_t count, std::size_t size) {
    // Paced like a publisher: one message per turn of the loop.
    auto seq = std::make_shared<std::size_t>(0);
    auto step = std::make_shared<std::function<void()>>();
    *step = [this, from, count, size, seq, step] {
      ++*seq;
      auto frame = std::make_shared<const std::string>(
          "{\"body\":\"" + std::string(size, 'x') + "\",\"cmid\":\"c" + std::to_string(*seq) +
          "\",\"op\":\"message\",\"room\":\"fan\",\"seq\":" + std::to_string(*seq) +
          ",\"ts\":1763900000000,\"user\":\"pub\",\"v\":1}");
      for (auto& c : conns_)
        if (c.get() != from) c->send(frame);
      if (*seq < count) asio::post(ioc_, *step);
    };
    asio::post(ioc_, *step);
  }

  asio::io_context& ioc_;
  tcp::acceptor acceptor_;
  std::vector<std::shared_ptr<Conn>> conns_;
};

/// The raw server as a process of its own, one for each measure (it keeps every
/// connection it accepted): this binary run with --raw-server, which prints its port.
/// A fresh process, not a fork: a fork's heap would hold this process's freed memory,
/// and the server's memory per connection would not show in its RSS.
struct RawChild {
  Child child{{"/proc/self/exe", "--raw-server"}};
  std::uint16_t port = 0;
  RawChild() {
    const std::string line = child.line();
    child.stop_reading();
    if (line.empty()) throw std::runtime_error("the raw server did not start");
    port = static_cast<std::uint16_t>(std::stoi(line));
  }
};

/// bridge_bench --raw-server: serves until killed.
int serve_raw() {
  asio::io_context ioc;
  RawServer server(ioc);
  std::printf("%u\n", static_cast<unsigned>(server.port()));
  std::fflush(stdout);
  server.accept();
  ioc.run();
  return 0;
}

// ---- 1. idle connections ------------------------------------------------------------

struct Idle {
  std::size_t connections = 0, failed = 0, dropped = 0, rss_before = 0, rss_after = 0, sources = 0;
  double seconds = 0, opens_per_s = 0, bytes_per_connection = 0;
  CpuSpent server_cpu;
  double bench_cpu_seconds = 0;
};

double own_cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

/// Opens `count` connections to the server `pid` listening on `port`, all following
/// "lobby", and measures the opening and the server's memory. `room_creator`: a first
/// connection creates the room (Switchboard; the raw server needs none).
Idle idle_connections(pid_t pid, std::uint16_t port, std::size_t count, std::size_t window, bool room_creator) {
  asio::io_context ioc;
  SourceAddresses from;
  Client::Shared warm_shared;
  // The first connections make the server's first allocations (and the room), outside the measure.
  auto warm = open_clients(ioc, warm_shared, from, port, 16, no_room, window);
  if (room_creator) {
    bool created = false;
    warm[0]->on_answer = [&] { created = true; };
    warm[0]->send("{\"op\":\"create_room\",\"id\":3,\"room\":\"lobby\"}");
    if (!run_until(ioc, [&] { return created; }, std::chrono::seconds(30)))
      throw std::runtime_error("create_room: no reply");
  }
  Idle r;
  r.rss_before = rss_of(pid);
  Client::Shared many;
  const auto threads_before = thread_times(pid);
  const double own_before = own_cpu_seconds();
  const auto t0 = SteadyClock::now();
  auto conns = open_clients(ioc, many, from, port, count,
                            [](std::size_t i) { return std::pair{user_of(i), std::string("lobby")}; }, window);
  r.seconds = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  r.server_cpu = cpu_between(threads_before, thread_times(pid));
  r.bench_cpu_seconds = own_cpu_seconds() - own_before;
  r.rss_after = rss_of(pid);
  r.connections = many.ready - many.dropped;
  r.failed = many.failed;
  r.dropped = many.dropped;
  r.sources = from.used();
  r.opens_per_s = static_cast<double>(many.ready) / r.seconds;
  r.bytes_per_connection =
      static_cast<double>(r.rss_after - r.rss_before) / static_cast<double>(std::max<std::size_t>(r.connections, 1));
  close_all(ioc, conns);
  close_all(ioc, warm);
  return r;
}

json to_json(const Idle& r) {
  return {{"connections", r.connections}, {"failed", r.failed}, {"dropped", r.dropped},
          {"source_addresses", r.sources}, {"rss_before_bytes", r.rss_before}, {"rss_after_bytes", r.rss_after},
          {"bytes_per_connection", r.bytes_per_connection}, {"open_seconds", r.seconds},
          {"opens_per_s", r.opens_per_s}, {"server_cpu_seconds", r.server_cpu.seconds},
          {"server_busiest_thread", r.server_cpu.busiest},
          {"server_busiest_thread_seconds", r.server_cpu.busiest_seconds},
          {"bench_cpu_seconds", r.bench_cpu_seconds}};
}

void print(const char* who, const Idle& r) {
  std::printf("  %-11s %zu held (%zu failed, %zu dropped) from %zu source addresses: opened in %.1f s, %.0f/s; "
              "RSS %.1f -> %.1f MiB, %.2f KiB per connection; server CPU %.1f s (%.0f us per connection; busiest "
              "thread %s %.1f s), bench CPU %.1f s\n",
              who, r.connections, r.failed, r.dropped, r.sources, r.seconds, r.opens_per_s, r.rss_before / 1048576.0,
              r.rss_after / 1048576.0, r.bytes_per_connection / 1024.0, r.server_cpu.seconds,
              1e6 * r.server_cpu.seconds / static_cast<double>(std::max<std::size_t>(r.connections, 1)),
              r.server_cpu.busiest.c_str(), r.server_cpu.busiest_seconds, r.bench_cpu_seconds);
}

// ---- 2. many rooms, a publisher each -------------------------------------------------

struct Rooms {
  std::size_t connections = 0, failed = 0, errors = 0, incomplete = 0, dropped = 0, rss_before = 0, rss_after = 0;
  double open_seconds = 0, seconds = 0, deliveries_per_s = 0;
};

/// `rooms` rooms, each created by its publisher ("p<room>"), `per_room` clients following
/// each; then every publisher publishes `messages`, 16 in flight; timed until every client
/// has every message of its room, then checked that no message came twice (flush()).
Rooms many_rooms(const NodeChild& node, std::size_t rooms, std::size_t per_room, std::size_t messages,
                 std::size_t body, std::size_t window) {
  asio::io_context ioc;
  SourceAddresses from;
  auto room_name = [](std::size_t r) { return "r" + std::to_string(r); };
  Client::Shared pub_shared;
  auto publishers = open_clients(
      ioc, pub_shared, from, node.port, rooms,
      [&](std::size_t r) { return std::pair{"p" + std::to_string(r), std::string()}; }, window);
  std::size_t created = 0;
  for (std::size_t r = 0; r < rooms; ++r) {
    publishers[r]->on_answer = [&] { ++created; };
    publishers[r]->send("{\"op\":\"create_room\",\"id\":3,\"room\":\"" + room_name(r) + "\"}");
  }
  if (!run_until(ioc, [&] { return created >= rooms; }, std::chrono::seconds(60)))
    throw std::runtime_error("create_room: " + std::to_string(created) + " of " + std::to_string(rooms) + " answered");
  if (pub_shared.errors) throw std::runtime_error("create_room: " + std::to_string(pub_shared.errors) + " errors");

  Rooms r;
  r.rss_before = node.rss();
  Client::Shared shared;
  shared.want = messages;
  const auto t0 = SteadyClock::now();
  auto clients = open_clients(
      ioc, shared, from, node.port, rooms * per_room,
      [&](std::size_t i) { return std::pair{user_of(i), room_name(i % rooms)}; }, window);
  r.open_seconds = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  r.rss_after = node.rss();
  r.connections = shared.ready;
  r.failed = shared.failed;

  std::vector<std::unique_ptr<Publishing>> publishing;
  for (std::size_t i = 0; i < rooms; ++i)
    publishing.push_back(std::make_unique<Publishing>(publishers[i], room_name(i), messages, body, 16));
  const auto start = SteadyClock::now();
  for (auto& p : publishing) p->start();
  const bool ok = run_until(ioc, [&] { return shared.complete + shared.dropped >= shared.ready; },
                            std::chrono::seconds(120 + rooms * per_room * messages / 20'000));
  if (!ok) {
    std::uint64_t lo = UINT64_MAX, hi = 0;
    std::size_t acked = 0;
    for (auto& c : clients) lo = std::min(lo, c->next()), hi = std::max(hi, c->next());
    for (auto& p : publishing) acked += p->acked();
    std::fprintf(stderr, "rooms stalled: %zu of %zu clients complete, %zu errors, %zu of %zu publishes answered; "
                 "clients' next seq from %llu to %llu\n", shared.complete, shared.ready, shared.errors, acked,
                 rooms * messages, static_cast<unsigned long long>(lo), static_cast<unsigned long long>(hi));
  }
  r.seconds = std::chrono::duration<double>((ok ? shared.last_done : SteadyClock::now()) - start).count();
  r.deliveries_per_s = static_cast<double>(shared.complete * messages) / r.seconds;
  if (ok && !flush(ioc, shared, clients)) std::fprintf(stderr, "rooms: not every client answered the last ping\n");
  r.errors = shared.errors + pub_shared.errors;
  r.incomplete = shared.ready - shared.complete;
  r.dropped = shared.dropped + pub_shared.dropped;
  close_all(ioc, clients);
  close_all(ioc, publishers);
  return r;
}

// ---- 3. fan-out to one room, beside 4. the raw baseline -----------------------------

struct FanOut {
  double seconds = 0, deliveries_per_s = 0;
  std::size_t errors = 0;
};

/// K clients follow "fan"; one more publishes M messages (through the bridge: a
/// window of 128 publishes in flight; raw: "go M SIZE"); timed until every client
/// has all M.
FanOut fan_out(std::uint16_t port, std::size_t clients, std::size_t messages, std::size_t body, bool raw,
               std::size_t window) {
  asio::io_context ioc;
  SourceAddresses from;
  Client::Shared shared;
  shared.want = messages;
  auto subscribers = open_clients(
      ioc, shared, from, port, clients, [](std::size_t i) { return std::pair{user_of(i), std::string("fan")}; },
      window);
  // The publisher: a plain connection of its own.
  Client::Shared pub_shared;
  auto publisher = open_clients(ioc, pub_shared, from, port, 1, no_room, 1);
  // At most 128 publishes in flight (the bridge allows 256 per connection).
  Publishing publishing(publisher[0], "fan", messages, body, 128);
  const auto start = SteadyClock::now();
  if (raw)
    publisher[0]->send("go " + std::to_string(messages) + " " + std::to_string(body));
  else
    publishing.start();
  const bool ok = run_until(ioc, [&] { return shared.complete + shared.dropped >= shared.ready; },
                            std::chrono::seconds(60));
  if (!ok) {
    std::uint64_t lo = UINT64_MAX, hi = 0;
    for (auto& c : subscribers) lo = std::min(lo, c->next()), hi = std::max(hi, c->next());
    std::fprintf(stderr, "fan-out stalled: %zu of %zu clients complete, %zu errors, %zu publish acks, %zu publisher "
                 "errors; clients' next seq from %llu to %llu\n", shared.complete, clients, shared.errors,
                 publishing.acked(), pub_shared.errors, static_cast<unsigned long long>(lo),
                 static_cast<unsigned long long>(hi));
  }
  FanOut r;
  r.seconds = std::chrono::duration<double>((ok ? shared.last_done : SteadyClock::now()) - start).count();
  r.deliveries_per_s = static_cast<double>(clients * messages) / r.seconds;
  if (ok && !flush(ioc, shared, subscribers)) std::fprintf(stderr, "fan-out: not every client answered the last ping\n");
  r.errors = shared.errors + shared.failed + shared.dropped + (clients - std::min(clients, shared.complete));
  close_all(ioc, subscribers);
  close_all(ioc, publisher);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc < 2) {
    std::cerr << "usage: bridge_bench SWITCHBOARD_BINARY [--idle N] [--window W] [--rooms R] [--room-clients C] "
                 "[--room-messages P] [--clients K] [--messages M] [--only idle|rooms|fan-out] [--quick] [--json]\n";
    return 2;
  }
  if (std::string(argv[1]) == "--raw-server") return serve_raw();
  const std::string binary = argv[1];
  // 100 000 idle connections is the goal (--idle 100000); the default stays lower while
  // every subscribe to the one room walks all of its followers (RoomSequencer::catch_up).
  std::size_t idle = 100'000, window = 1024, rooms = 1000, room_clients = 100, room_messages = 20, clients = 1000,
              messages = 2000, body = 100;
  bool as_json = false;
  std::string only;  // "": every phase
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] { return i + 1 < argc ? std::stoul(argv[++i]) : 0ul; };
    if (a == "--idle") idle = value();
    else if (a == "--window") window = std::max(value(), 1ul);
    else if (a == "--rooms") rooms = value();
    else if (a == "--room-clients") room_clients = value();
    else if (a == "--room-messages") room_messages = value();
    else if (a == "--clients") clients = value();
    else if (a == "--messages") messages = value();
    else if (a == "--json") as_json = true;
    else if (a == "--only" && i + 1 < argc) only = argv[++i];
    else if (a == "--quick") idle = 1000, rooms = 100, room_clients = 10, room_messages = 20, clients = 200, messages = 500;
  }
  // Each process holds a descriptor per connection, and the node some of its own.
  const std::size_t most = std::max({idle, rooms * (room_clients + 1), clients + 1}) + 16;
  const rlim_t files = raise_open_files(most + 4096);
  if (most + 4096 > files) {
    const std::size_t fit = files > 4096 + 64 ? files - 4096 - 64 : 0;
    std::fprintf(stderr, "bridge_bench: the open-file limit stays at %zu (raising the hard limit needs "
                 "CAP_SYS_RESOURCE, and this system refused it): at most %zu connections a phase\n",
                 static_cast<std::size_t>(files), fit);
    idle = std::min(idle, fit);
    room_clients = std::min(room_clients, rooms ? fit / rooms - 1 : 0);
    clients = std::min(clients, fit);
  }

  json out = {{"bench", "bridge"}, {"cpu", cpu_model()}, {"loadavg", loadavg()}, {"open_files", files}};
  try {
    TempDir data(std::filesystem::temp_directory_path(), "switchboard-bridge-bench");
    // 1. idle connections: their memory and how fast they open, beside the raw server's
    if (only.empty() || only == "idle") {
      Idle sb, raw;
      {
        NodeChild node(binary, data.path() / "idle");
        sb = idle_connections(node.child.pid(), node.port, idle, window, true);
      }
      {
        RawChild server;
        raw = idle_connections(server.child.pid(), server.port, idle, window, false);
      }
      out["idle"] = {{"window", window}, {"switchboard", to_json(sb)}, {"raw_beast", to_json(raw)},
                     {"opens_ratio", sb.opens_per_s / raw.opens_per_s},
                     {"memory_ratio", sb.bytes_per_connection / raw.bytes_per_connection}};
      std::printf("idle: %zu WebSocket connections (auth + subscribe to one room), %zu upgrades in flight at a time\n",
                  idle, window);
      print("switchboard", sb);
      print("raw Beast", raw);
      std::printf("  switchboard/raw: opens/s %.2f, memory per connection %.2f\n", sb.opens_per_s / raw.opens_per_s,
                  sb.bytes_per_connection / raw.bytes_per_connection);
    }
    // 2. many rooms, a publisher each
    if ((only.empty() || only == "rooms") && rooms > 0 && room_clients > 0) {
      NodeChild node(binary, data.path() / "rooms");
      const Rooms r = many_rooms(node, rooms, room_clients, room_messages, body, window);
      out["rooms"] = {{"rooms", rooms}, {"clients_per_room", room_clients}, {"messages_per_room", room_messages},
                      {"body_bytes", body}, {"connections", r.connections}, {"failed", r.failed},
                      {"open_seconds", r.open_seconds}, {"rss_before_bytes", r.rss_before},
                      {"rss_after_bytes", r.rss_after}, {"seconds", r.seconds},
                      {"deliveries_per_s", r.deliveries_per_s}, {"errors", r.errors},
                      {"incomplete", r.incomplete}, {"dropped", r.dropped}};
      std::printf("rooms: %zu rooms x %zu clients (%zu held, %zu failed, opened in %.1f s, %.0f/s, RSS %.1f -> %.1f "
                  "MiB: %.2f KiB per connection), a publisher each, %zu messages of %zu B per room: %.0f deliveries/s "
                  "(%.2f s); %zu errors, %zu clients incomplete, %zu dropped\n",
                  rooms, room_clients, r.connections, r.failed, r.open_seconds,
                  static_cast<double>(r.connections) / r.open_seconds, r.rss_before / 1048576.0,
                  r.rss_after / 1048576.0,
                  static_cast<double>(r.rss_after - r.rss_before) / 1024.0 /
                      static_cast<double>(std::max<std::size_t>(r.connections, 1)),
                  room_messages, body, r.deliveries_per_s, r.seconds, r.errors, r.incomplete, r.dropped);
    }
    // 3. fan-out through Switchboard, 4. the raw baseline
    if (only.empty() || only == "fan-out") {
      FanOut sb, raw;
      {
        NodeChild node(binary, data.path() / "fan");
        {  // the room, created by a first connection
          asio::io_context ioc;
          SourceAddresses from;
          Client::Shared s;
          auto c = open_clients(ioc, s, from, node.port, 1, no_room, 1);
          bool created = false;
          c[0]->on_answer = [&] { created = true; };
          c[0]->send("{\"op\":\"create_room\",\"id\":3,\"room\":\"fan\"}");
          if (!run_until(ioc, [&] { return created; }, std::chrono::seconds(30)))
            throw std::runtime_error("create_room: no reply");
          close_all(ioc, c);
        }
        sb = fan_out(node.port, clients, messages, body, false, window);
      }
      {
        RawChild server;
        raw = fan_out(server.port, clients, messages, body, true, window);
      }
      out["fan_out"] = {{"clients", clients}, {"messages", messages}, {"body_bytes", body},
                        {"switchboard", {{"seconds", sb.seconds}, {"deliveries_per_s", sb.deliveries_per_s}, {"errors", sb.errors}}},
                        {"raw_beast", {{"seconds", raw.seconds}, {"deliveries_per_s", raw.deliveries_per_s}, {"errors", raw.errors}}},
                        {"ratio", sb.deliveries_per_s / raw.deliveries_per_s}};
      std::printf("fan-out: %zu messages (%zu B bodies) to %zu WebSocket clients: switchboard %.0f deliveries/s "
                  "(%.2f s, %zu errors); raw Beast broadcast %.0f/s (%.2f s); switchboard/raw %.2f\n",
                  messages, body, clients, sb.deliveries_per_s, sb.seconds, sb.errors, raw.deliveries_per_s,
                  raw.seconds, sb.deliveries_per_s / raw.deliveries_per_s);
    }
    if (as_json) std::cout << out.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "bridge_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
