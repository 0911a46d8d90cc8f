// bridge_bench: the WebSocket bridge under load, from a WebSocket client load generator
// (Boost.Beast, one thread) in this process against a `switchboard run` node process.
//
//  1. idle: N connections (default 10 000) authenticated and following a room; the
//     node's resident memory per connection (VmRSS before and after);
//  2. fan-out: K subscribed connections (default 1000) in one room, M messages
//     published through the bridge; room messages delivered per second to all of
//     them, each checked in order and complete;
//  3. the raw baseline: the same fan-out from a bare Beast broadcast server (a child
//     of this process: no actors, no ZeroMQ, no storage), and the ratio.
//
// Usage: bridge_bench SWITCHBOARD_BINARY [--idle N] [--clients K] [--messages M]
//        [--quick] [--json]
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <iostream>
#include <memory>
#include <string>
#include <utility>  // before Boost 1.74's asio/awaitable.hpp, which uses std::exchange without it
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include "bench_support.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using namespace switchboard::bench;

namespace {

/// A `switchboard run` child process; its bridge port is read from the ready line.
struct NodeChild {
  pid_t pid = -1;
  std::uint16_t port = 0;
  std::filesystem::path data;

  NodeChild(const std::string& binary, const std::filesystem::path& dir) : data(dir) {
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe");
    pid = ::fork();
    if (pid == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::close(out[0]);
      const std::string d = data.string();
      ::execl(binary.c_str(), binary.c_str(), "run", "--data", d.c_str(), "--listen", "tcp://127.0.0.1:*",
              "--durability", "nosync", "--bridge", "127.0.0.1:*", "--bridge-handshake-ms", "600000",
              "--bridge-idle-ms", "600000",
              // One publisher posts as fast as the bridge acks: measured is delivery, not the rate limit.
              "--limit", "publish_per_s=0", "--limit", "requests_per_s=0", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(out[1]);
    std::string line;
    char c;
    while (::read(out[0], &c, 1) == 1 && c != '\n') line += c;
    ::close(out[0]);
    const auto at = line.find(" bridge=ws://");
    if (at == std::string::npos) throw std::runtime_error("the node did not start: " + line);
    const auto colon = line.find(':', at + 13);
    port = static_cast<std::uint16_t>(std::stoi(line.substr(colon + 1)));
  }
  ~NodeChild() {
    ::kill(pid, SIGTERM);
    ::waitpid(pid, nullptr, 0);
  }
  /// Resident memory, in bytes.
  std::size_t rss() const {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string key;
    std::size_t kb = 0;
    while (status >> key)
      if (key == "VmRSS:" && status >> kb) break;
    return kb * 1024;
  }
};

/// One load-generator connection: connects, authenticates, follows a room, counts
/// the messages that arrive and checks their order.
class Client : public std::enable_shared_from_this<Client> {
 public:
  struct Shared {
    std::size_t ready = 0;       ///< clients subscribed
    std::size_t complete = 0;    ///< clients that got `want` messages
    std::size_t errors = 0;
    std::size_t replies = 0;     ///< other replies (publish acks, create_room)
    std::size_t want = 0;
    std::uint64_t first_seq = 1;
    SteadyClock::time_point last_done;
  };

  Client(asio::io_context& ioc, Shared& shared, std::string user, std::string room)
      : ws_(ioc), shared_(shared), user_(std::move(user)), room_(std::move(room)) {}

  void start(const tcp::endpoint& to) {
    beast::get_lowest_layer(ws_).async_connect(to, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return self->fail();
      self->ws_.async_handshake("127.0.0.1", "/ws", [self](beast::error_code ec) {
        if (ec) return self->fail();
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
  void close() {
    beast::error_code ec;
    beast::get_lowest_layer(ws_).socket().close(ec);
  }
  std::uint64_t next = 0;

 private:
  void fail() { ++shared_.errors; }
  void write() {
    ws_.async_write(asio::buffer(out_.front()), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->fail();
      self->out_.pop_front();
      if (!self->out_.empty()) self->write();
    });
  }
  void read() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return;
      self->on_frame(beast::buffers_to_string(self->buffer_.data()));
      self->buffer_.consume(self->buffer_.size());
      self->read();
    });
  }
  void on_frame(const std::string& f) {
    // The bridge writes keys in order: ...,"op":"message","room":...,"seq":N,...
    if (f.find("\"op\":\"message\"") != std::string::npos) {
      const auto at = f.find("\"seq\":");
      const std::uint64_t seq = std::strtoull(f.c_str() + at + 6, nullptr, 10);
      if (next == 0) next = shared_.first_seq;
      if (seq != next) ++shared_.errors;  // out of order, missing or twice
      next = seq + 1;
      if (next - shared_.first_seq == shared_.want) {
        ++shared_.complete;
        shared_.last_done = SteadyClock::now();
      }
    } else if (f.find("\"op\":\"subscribe\"") != std::string::npos ||
               (room_.empty() && f.find("\"op\":\"auth\"") != std::string::npos)) {
      ++shared_.ready;
    } else if (f.find("\"op\":\"error\"") != std::string::npos) {
      ++shared_.errors;
    } else if (f.find("\"op\":\"presence\"") == std::string::npos && f.find("\"op\":\"auth\"") == std::string::npos) {
      ++shared_.replies;
    }
  }

  websocket::stream<beast::tcp_stream> ws_;
  Shared& shared_;
  std::string user_, room_;
  beast::flat_buffer buffer_;
  std::deque<std::string> out_;
};

/// Runs `ioc` until `done()` or `timeout`; false on timeout.
template <class Done>
bool run_until(asio::io_context& ioc, Done done, std::chrono::seconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  while (!done()) {
    if (SteadyClock::now() > deadline) return false;
    ioc.run_for(std::chrono::milliseconds(20));
  }
  return true;
}

/// Opens `count` clients following `room` ("": none), at most 256 handshakes at a time.
std::vector<std::shared_ptr<Client>> open_clients(asio::io_context& ioc, Client::Shared& shared, std::uint16_t port,
                                                  std::size_t count, const std::string& room) {
  const tcp::endpoint to(asio::ip::make_address("127.0.0.1"), port);
  std::vector<std::shared_ptr<Client>> clients;
  for (std::size_t i = 0; i < count; ++i) {
    // Users of 16 connections each: presence allows 32 sessions per user.
    clients.push_back(std::make_shared<Client>(ioc, shared, "u" + std::to_string(i / 16), room));
    clients.back()->start(to);
    while (clients.size() - shared.ready - shared.errors >= 256) ioc.run_for(std::chrono::milliseconds(5));
  }
  if (!run_until(ioc, [&] { return shared.ready + shared.errors >= count; }, std::chrono::seconds(120)))
    throw std::runtime_error("connections not ready in time");
  return clients;
}

// ---- the raw baseline: a bare Beast broadcast server -------------------------------

/// Accepts WebSockets; a text frame "go M SIZE" from one connection broadcasts M
/// message frames of the bridge's shape to every other connection, each with a
/// queue of shared frames written one at a time: what the bridge does, minus
/// Switchboard.
class RawServer {
 public:
  explicit RawServer(asio::io_context& ioc) : ioc_(ioc), acceptor_(ioc, {asio::ip::make_address("127.0.0.1"), 0}) {}
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
          self->send(std::make_shared<const std::string>("{\"id\":2,\"op\":\"subscribe\",\"v\":1}"));
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

/// Forks the raw server before any thread exists; returns its pid and port.
std::pair<pid_t, std::uint16_t> fork_raw_server() {
  int out[2];
  if (::pipe(out) != 0) throw std::runtime_error("pipe");
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(out[0]);
    asio::io_context ioc;
    RawServer server(ioc);
    const std::uint16_t port = server.port();
    if (::write(out[1], &port, sizeof port) != sizeof port) ::_exit(1);
    ::close(out[1]);
    server.accept();
    ioc.run();
    ::_exit(0);
  }
  ::close(out[1]);
  std::uint16_t port = 0;
  if (::read(out[0], &port, sizeof port) != sizeof port) throw std::runtime_error("the raw server did not start");
  ::close(out[0]);
  return {pid, port};
}

struct FanOut {
  double seconds = 0, deliveries_per_s = 0;
  std::size_t errors = 0;
};

/// K clients follow "fan"; one more publishes M messages (through the bridge: a
/// window of 128 publishes in flight; raw: "go M SIZE"); timed until every client
/// has all M.
FanOut fan_out(std::uint16_t port, std::size_t clients, std::size_t messages, std::size_t body, bool raw) {
  asio::io_context ioc;
  Client::Shared shared;
  shared.want = messages;
  auto subscribers = open_clients(ioc, shared, port, clients, "fan");
  // The publisher: a plain connection of its own.
  Client::Shared pub_shared;
  auto publisher = open_clients(ioc, pub_shared, port, 1, "");
  const auto start = SteadyClock::now();
  if (raw) {
    publisher[0]->send("go " + std::to_string(messages) + " " + std::to_string(body));
  } else {
    const std::string text(body, 'x');
    for (std::size_t i = 0; i < messages; ++i) {
      publisher[0]->send("{\"op\":\"publish\",\"id\":" + std::to_string(100 + i) +
                         ",\"room\":\"fan\",\"cmid\":\"m" + std::to_string(i) + "\",\"body\":\"" + text + "\"}");
      // At most 128 publishes in flight (the bridge allows 256 per connection).
      while (i - pub_shared.replies >= 128) ioc.run_one_for(std::chrono::milliseconds(5));
    }
  }
  const bool ok = run_until(ioc, [&] { return shared.complete + shared.errors >= clients; }, std::chrono::seconds(60));
  if (!ok) {
    std::uint64_t lo = UINT64_MAX, hi = 0;
    for (auto& c : subscribers) lo = std::min(lo, c->next), hi = std::max(hi, c->next);
    std::fprintf(stderr, "fan-out stalled: %zu of %zu clients complete, %zu errors, %zu publish acks, %zu publisher "
                 "errors; clients' next seq from %llu to %llu\n", shared.complete, clients, shared.errors,
                 pub_shared.replies, pub_shared.errors, static_cast<unsigned long long>(lo),
                 static_cast<unsigned long long>(hi));
  }
  FanOut r;
  r.seconds = std::chrono::duration<double>((ok ? shared.last_done : SteadyClock::now()) - start).count();
  r.deliveries_per_s = static_cast<double>(clients * messages) / r.seconds;
  r.errors = shared.errors + (ok ? 0 : clients - shared.complete);
  for (auto& c : subscribers) c->close();
  publisher[0]->close();
  ioc.run_for(std::chrono::milliseconds(50));
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc < 2) {
    std::cerr << "usage: bridge_bench SWITCHBOARD_BINARY [--idle N] [--clients K] [--messages M] [--quick] [--json]\n";
    return 2;
  }
  const std::string binary = argv[1];
  std::size_t idle = 10'000, clients = 1000, messages = 2000, body = 100;
  bool as_json = false;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] { return i + 1 < argc ? std::stoul(argv[++i]) : 0ul; };
    if (a == "--idle") idle = value();
    else if (a == "--clients") clients = value();
    else if (a == "--messages") messages = value();
    else if (a == "--json") as_json = true;
    else if (a == "--quick") idle = 1000, clients = 200, messages = 500;
  }
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &files);
  if (idle + 64 > files.rlim_cur) idle = files.rlim_cur - 64;

  const auto [raw_pid, raw_port] = fork_raw_server();
  json out = {{"bench", "bridge"}};
  try {
    TempDir data(std::filesystem::temp_directory_path(), "switchboard-bridge-bench");
    // 1. idle connections and memory
    {
      NodeChild node(binary, data.path() / "idle");
      asio::io_context ioc;
      Client::Shared shared;
      auto warm = open_clients(ioc, shared, node.port, 16, "");  // the bridge's first allocations
      warm[0]->send("{\"op\":\"create_room\",\"id\":3,\"room\":\"lobby\"}");
      if (!run_until(ioc, [&] { return shared.replies > 0; }, std::chrono::seconds(30)))
        throw std::runtime_error("create_room: no reply");
      const std::size_t before = node.rss();
      Client::Shared many;
      const auto t0 = SteadyClock::now();
      auto conns = open_clients(ioc, many, node.port, idle, "lobby");
      const double took = std::chrono::duration<double>(SteadyClock::now() - t0).count();
      const std::size_t after = node.rss();
      const double per = static_cast<double>(after - before) / static_cast<double>(idle);
      out["idle"] = {{"connections", idle - many.errors}, {"errors", many.errors}, {"rss_before_bytes", before},
                     {"rss_after_bytes", after}, {"bytes_per_connection", per}, {"open_seconds", took}};
      std::printf("idle: %zu WebSocket connections (auth + subscribe) held; node RSS %.1f -> %.1f MiB: "
                  "%.1f KiB per connection; opened in %.1f s (%zu errors)\n",
                  idle - many.errors, before / 1048576.0, after / 1048576.0, per / 1024.0, took, many.errors);
      for (auto& c : conns) c->close();
      for (auto& c : warm) c->close();
      ioc.run_for(std::chrono::milliseconds(100));
    }
    // 2. fan-out through Switchboard, 3. the raw baseline
    NodeChild node(binary, data.path() / "fan");
    {  // the room, created by a first connection
      asio::io_context ioc;
      Client::Shared s;
      auto c = open_clients(ioc, s, node.port, 1, "");
      c[0]->send("{\"op\":\"create_room\",\"id\":3,\"room\":\"fan\"}");
      if (!run_until(ioc, [&] { return s.replies > 0; }, std::chrono::seconds(30)))
        throw std::runtime_error("create_room: no reply");
      c[0]->close();
    }
    const FanOut sb = fan_out(node.port, clients, messages, body, false);
    const FanOut raw = fan_out(raw_port, clients, messages, body, true);
    out["fan_out"] = {{"clients", clients}, {"messages", messages}, {"body_bytes", body},
                      {"switchboard", {{"seconds", sb.seconds}, {"deliveries_per_s", sb.deliveries_per_s}, {"errors", sb.errors}}},
                      {"raw_beast", {{"seconds", raw.seconds}, {"deliveries_per_s", raw.deliveries_per_s}, {"errors", raw.errors}}},
                      {"ratio", sb.deliveries_per_s / raw.deliveries_per_s}};
    std::printf("fan-out: %zu messages (%zu B bodies) to %zu WebSocket clients: switchboard %.0f deliveries/s "
                "(%.2f s, %zu errors); raw Beast broadcast %.0f/s (%.2f s); switchboard/raw %.2f\n",
                messages, body, clients, sb.deliveries_per_s, sb.seconds, sb.errors, raw.deliveries_per_s,
                raw.seconds, sb.deliveries_per_s / raw.deliveries_per_s);
    if (as_json) std::cout << out.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "bridge_bench: " << e.what() << "\n";
    ::kill(raw_pid, SIGTERM);
    return 1;
  }
  ::kill(raw_pid, SIGTERM);
  ::waitpid(raw_pid, nullptr, 0);
  return 0;
}
