// Webhooks (docs/WEBHOOKS.md), measured: one node in this process POSTs to a receiver in
// this process (Boost.Beast, HTTP/1.1 keep-alive, answering 200 at once), over loopback.
//
//   build/bench/webhook_bench [--seconds S] [--durability sync|nosync] [--events N] [--rooms R]
//
// Rows:
// - at idle: one publish every 10 ms for S seconds; the time from the message's `ts`
//   (taken by chat as it gives the seq, before the store commits) to the receiver
//   reading the request, p50 and p99;
// - from the store: N events stored in R rooms by a node without webhooks; the same
//   data directory started with one delivers them all: events/s from the start to the
//   last event received, with max_batch 1 (a request per event) and 100;
// - alongside publishing: N events published as fast as a pipelined client can in R
//   rooms while the webhook delivers; events/s from the first publish to the last event
//   received, and the publish rate alone.
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <utility>  // Boost 1.74's asio/awaitable.hpp needs std::exchange
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "switchboard/actors/node.hpp"
#include "switchboard/client/client.hpp"
#include "switchboard/router/topology.hpp"
#include "bench_support.hpp"

namespace {

namespace sb = switchboard;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace sb::bench;

struct Config {
  double seconds = 5;
  std::string durability = "nosync";
  std::uint64_t events = 100'000;
  int rooms = 16;
};

const std::string kBody(100, 'w');

std::uint64_t wall_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

/// The receiver: counts the events of each request (its `"id":` fields), and for the
/// first of each notes how long ago its `ts` was. Answers 200 at once.
class Receiver {
 public:
  Receiver() : acceptor_(ioc_, {asio::ip::make_address("127.0.0.1"), 0}) {
    accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~Receiver() {
    ioc_.stop();
    thread_.join();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::atomic<std::uint64_t> events{0}, requests{0};

  /// Waits until `n` events were taken, or `deadline`.
  bool wait(std::uint64_t n, SteadyClock::time_point deadline) {
    std::unique_lock lock(mutex_);
    return cv_.wait_until(lock, deadline, [&] { return events.load() >= n; });
  }
  std::vector<double> take_latencies_ms() {
    std::lock_guard lock(mutex_);
    return std::move(latencies_);
  }

 private:
  struct Conn : std::enable_shared_from_this<Conn> {
    Conn(tcp::socket s, Receiver& r) : stream(std::move(s)), receiver(r) {}
    beast::tcp_stream stream;
    Receiver& receiver;
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    http::response<http::empty_body> res;
    void read() {
      req = {};
      http::async_read(stream, buffer, req, [self = shared_from_this()](beast::error_code ec, std::size_t) {
        if (ec) return;
        self->receiver.take(self->req.body());
        self->res = {http::status::ok, 11};
        self->res.keep_alive(true);
        self->res.prepare_payload();
        http::async_write(self->stream, self->res, [self](beast::error_code ec, std::size_t) {
          if (!ec) self->read();
        });
      });
    }
  };
  void accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket s) {
      if (!ec) {
        s.set_option(tcp::no_delay(true));
        std::make_shared<Conn>(std::move(s), *this)->read();
      }
      accept();
    });
  }
  void take(const std::string& body) {
    ++requests;
    std::uint64_t n = 0;
    for (std::size_t at = body.find("\"id\":"); at != std::string::npos; at = body.find("\"id\":", at + 5)) ++n;
    double latency = -1;
    if (auto at = body.find("\"ts\":"); at != std::string::npos) {
      std::uint64_t ts = 0;
      std::from_chars(body.data() + at + 5, body.data() + body.size(), ts);
      latency = static_cast<double>(wall_ms()) - static_cast<double>(ts);
    }
    std::lock_guard lock(mutex_);
    if (latency >= 0) latencies_.push_back(latency);
    events += n;
    cv_.notify_all();
  }

  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<double> latencies_;
};

/// A node of its own with one webhook to `receiver` (its data in `dir`/NAME).
/// No `receiver`: a node without webhooks.
std::unique_ptr<sb::actors::Node> start_node(const TempDir& dir, const std::string& name, const Config& config,
                                             const Receiver* receiver, int max_batch) {
  const std::string webhook = !receiver ? std::string()
                                        : "[webhooks.bench]\nurl = \"http://127.0.0.1:" +
                                              std::to_string(receiver->port()) + "/in\"\nsecret = \"" +
                                              std::string(40, 's') + "\"\nmax_batch = " + std::to_string(max_batch) +
                                              "\n";
  auto parsed = sb::router::parse_topology(loopback_topology(dir.path() / name, config.durability, {"a"}) +
                                               "[limits]\npublish_per_s = 0\nrequests_per_s = 0\n" + webhook,
                                           "webhook-bench");
  if (!parsed.ok()) {
    std::fprintf(stderr, "%s\n", parsed.errors.front().to_string().c_str());
    std::exit(1);
  }
  auto node = sb::actors::Node::start(sb::actors::node_options(parsed.topology, "a"));
  if (!node) {
    std::fprintf(stderr, "cannot start the node: %s\n", node.error().message.c_str());
    std::exit(1);
  }
  return std::move(*node);
}

std::unique_ptr<sb::client::Client> client_of(const sb::actors::Node& node, int rooms) {
  sb::client::ClientOptions o;
  o.endpoint = node.client_endpoints().front();
  auto c = std::make_unique<sb::client::Client>(o);
  for (int i = 0; i < rooms; ++i)
    if (!c->create_room("r" + std::to_string(i), "bench")) {
      std::fprintf(stderr, "cannot make room r%d\n", i);
      std::exit(1);
    }
  return c;
}

/// `n` publishes over `rooms` rooms, pipelined; the seconds it took.
double publish(sb::client::Client& c, std::uint64_t n, int rooms, const std::string& tag) {
  const auto t0 = SteadyClock::now();
  std::atomic<std::uint64_t> failed{0};
  // Chunks of 1000 to one room, the rooms in turn: the client gathers a chunk into
  // publish_batch frames.
  for (std::uint64_t i = 0; i < n; ++i) {
    c.publish_async("r" + std::to_string((i / 1000) % static_cast<std::uint64_t>(rooms)), "bench", kBody,
                    [&](const auto& ack) { if (!ack) ++failed; }, tag + std::to_string(i));
    if (i % 1000 == 999) c.wait_all();
  }
  c.wait_all();
  if (failed) std::fprintf(stderr, "%llu publishes failed\n", static_cast<unsigned long long>(failed.load()));
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--seconds") config.seconds = std::stod(v);
    else if (a == "--durability") config.durability = v;
    else if (a == "--events") config.events = std::stoull(v);
    else if (a == "--rooms") config.rooms = std::stoi(v);
    else {
      std::fprintf(stderr, "usage: webhook_bench [--seconds S] [--durability sync|nosync] [--events N] [--rooms R]\n");
      return 2;
    }
  }
  spdlog::set_level(spdlog::level::err);
  TempDir dir(std::filesystem::temp_directory_path(), "switchboard-webhook-bench");
  std::printf("webhook_bench: one node and its receiver in this process, durability %s, bodies of %zu bytes; load %s\n",
              config.durability.c_str(), kBody.size(), loadavg().c_str());
  const auto deadline_for = [](std::uint64_t n) { return SteadyClock::now() + std::chrono::seconds(60 + n / 5000); };

  {  // At idle: one publish every 10 ms.
    Receiver receiver;
    auto node = start_node(dir, "idle", config, &receiver, 1);
    auto c = client_of(*node, 1);
    const auto end = SteadyClock::now() + Seconds(config.seconds);
    std::uint64_t sent = 0;
    for (auto next = SteadyClock::now(); next < end; next += std::chrono::milliseconds(10)) {
      std::this_thread::sleep_until(next);  // the pacing of the load, not a wait for a result
      if (c->publish("r0", "bench", kBody, "idle" + std::to_string(sent))) ++sent;
    }
    receiver.wait(sent, deadline_for(sent));
    auto lat = receiver.take_latencies_ms();
    std::sort(lat.begin(), lat.end());
    std::printf("%-52s %8llu events  p50 %6.1f ms  p99 %6.1f ms  max %6.1f ms\n",
                "at idle (100 msg/s), ts -> receiver, max_batch 1", static_cast<unsigned long long>(lat.size()),
                percentile(lat, 50), percentile(lat, 99), lat.empty() ? 0.0 : lat.back());
    node->stop();
  }
  {  // From the store: stored by a node without webhooks, delivered by the same data
     // directory's next start with one.
    auto node = start_node(dir, "store", config, nullptr, 1);
    publish(*client_of(*node, config.rooms), config.events, config.rooms, "d");
    node->stop();
  }
  for (int batch : {1, 100}) {
    const std::string copy = "store" + std::to_string(batch);
    std::filesystem::copy(dir.path() / "store", dir.path() / copy, std::filesystem::copy_options::recursive);
    Receiver receiver;
    const auto t0 = SteadyClock::now();
    auto node = start_node(dir, copy, config, &receiver, batch);
    const bool all = receiver.wait(config.events, deadline_for(config.events));
    const double s = std::chrono::duration<double>(SteadyClock::now() - t0).count();
    std::printf("%-52s %8llu events  %9.0f events/s  (%llu requests)%s\n",
                ("from the store, " + std::to_string(config.rooms) + " rooms, max_batch " + std::to_string(batch)).c_str(),
                static_cast<unsigned long long>(receiver.events.load()), static_cast<double>(receiver.events) / s,
                static_cast<unsigned long long>(receiver.requests.load()), all ? "" : "  NOT ALL DELIVERED");
    node->stop();
  }
  for (int batch : {1, 100}) {  // Alongside publishing.
    Receiver receiver;
    auto node = start_node(dir, "live" + std::to_string(batch), config, &receiver, batch);
    auto c = client_of(*node, config.rooms);
    const auto t0 = SteadyClock::now();
    const double publishing = publish(*c, config.events, config.rooms, "l");
    const bool all = receiver.wait(config.events, deadline_for(config.events));
    const double s = std::chrono::duration<double>(SteadyClock::now() - t0).count();
    std::printf("%-52s %8llu events  %9.0f events/s  (published at %.0f msg/s)%s\n",
                ("alongside publishing, " + std::to_string(config.rooms) + " rooms, max_batch " + std::to_string(batch))
                    .c_str(),
                static_cast<unsigned long long>(receiver.events.load()), static_cast<double>(receiver.events) / s,
                static_cast<double>(config.events) / publishing, all ? "" : "  NOT ALL DELIVERED");
    node->stop();
  }
  return 0;
}
