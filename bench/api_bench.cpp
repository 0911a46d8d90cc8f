// The HTTP server API (docs/API.md), measured: publishes over HTTP keep-alive against
// the same publishes through the ZeroMQ client (client/client.hpp), one node in this
// process, in the same run; and publish_batch over HTTP against the client's pipelined
// publishes (which it gathers into publish_batch frames).
//
//   build/bench/api_bench [--seconds S] [--durability sync|nosync] [--connections N] [--batch N]
//
// Rows: one publish at a time on 1 connection and on N connections (latency p50/p99 and
// msg/s; the API's figure divided by the client's is the ratio), then batches of
// --batch items on N connections.
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <utility>  // Boost 1.74's asio/awaitable.hpp needs std::exchange
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "switchboard/actors/bridge/json_codec.hpp"
#include "switchboard/actors/node.hpp"
#include "switchboard/client/client.hpp"
#include "switchboard/router/topology.hpp"
#include "bench_support.hpp"

namespace {

namespace sb = switchboard;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using namespace sb::bench;

struct Config {
  double seconds = 5;
  std::string durability = "nosync";
  int connections = 16;
  int batch = 100;
};

const std::string kKey(64, 'k');
const std::string kBody(100, 'p');

/// One keep-alive HTTP connection to the API.
class HttpClient {
 public:
  explicit HttpClient(std::uint16_t port) : socket_(ioc_) {
    socket_.connect({asio::ip::make_address("127.0.0.1"), port});
    socket_.set_option(asio::ip::tcp::no_delay(true));
  }
  /// POSTs `body` to /api/v1/`op`; the answer's status, and its body in `out`.
  unsigned post(const std::string& op, std::string body, std::string& out) {
    http::request<http::string_body> req{http::verb::post, "/api/v1/" + op, 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::authorization, "Bearer " + kKey);
    req.set(http::field::content_type, "application/json");
    req.keep_alive(true);
    req.body() = std::move(body);
    req.prepare_payload();
    http::write(socket_, req);
    http::response<http::string_body> res;
    http::read(socket_, buffer_, res);
    out = std::move(res.body());
    return res.result_int();
  }

 private:
  asio::io_context ioc_;
  asio::ip::tcp::socket socket_;
  beast::flat_buffer buffer_;
};

std::string publish_json(const std::string& room, std::uint64_t n, int thread) {
  sb::actors::bridge::JsonWriter w;
  w.begin_object().str("room", room).str("user", "bench").str("body", kBody);
  w.str("cmid", "h" + std::to_string(thread) + "-" + std::to_string(n)).end_object();
  return w.take();
}

std::string batch_json(const std::string& room, std::uint64_t first, int items, int thread) {
  sb::actors::bridge::JsonWriter w;
  w.begin_object().str("room", room).str("user", "bench").key("items").begin_array();
  for (int i = 0; i < items; ++i)
    w.begin_array()
        .str("b" + std::to_string(thread) + "-" + std::to_string(first + static_cast<std::uint64_t>(i)))
        .str(kBody)
        .end_array();
  w.end_array().end_object();
  return w.take();
}

struct Row {
  Throughput t;
  LatencySummary latency;
};

/// `connections` threads, each on a room of its own, one request at a time for `seconds`.
template <class Connect, class Once>
Row run(int connections, double seconds, int per_request, Connect connect, Once once) {
  std::vector<std::vector<double>> lat(static_cast<std::size_t>(connections));
  std::atomic<std::uint64_t> acked{0}, errors{0};
  std::vector<decltype(connect(0))> conns(static_cast<std::size_t>(connections));
  Row row;
  row.t.connections = connections;
  row.t.seconds = run_threads(
      connections, Seconds(seconds), [&](int i) { conns[static_cast<std::size_t>(i)] = connect(i); },
      [&](int i, SteadyClock::time_point deadline) {
        auto& c = *conns[static_cast<std::size_t>(i)];
        for (std::uint64_t n = 0; SteadyClock::now() < deadline; n += static_cast<std::uint64_t>(per_request)) {
          const auto t0 = SteadyClock::now();
          const bool ok = once(c, i, n);
          lat[static_cast<std::size_t>(i)].push_back(micros(SteadyClock::now() - t0));
          ok ? acked += static_cast<std::uint64_t>(per_request) : ++errors;
        }
      });
  row.t.acked = acked;
  row.t.errors = errors;
  std::vector<double> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  row.latency = summarize(std::move(all));
  return row;
}

void print(const std::string& what, const Row& r, const Row* against) {
  std::printf("%-44s %10.0f msg/s  p50 %8.1f us  p99 %8.1f us  errors %llu", what.c_str(), r.t.per_second(),
              r.latency.p50_us, r.latency.p99_us, static_cast<unsigned long long>(r.t.errors));
  if (against && against->t.per_second() > 0) std::printf("   %.2fx", r.t.per_second() / against->t.per_second());
  std::printf("\n");
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--seconds") config.seconds = std::stod(v);
    else if (a == "--durability") config.durability = v;
    else if (a == "--connections") config.connections = std::stoi(v);
    else if (a == "--batch") config.batch = std::stoi(v);
    else {
      std::fprintf(stderr, "usage: api_bench [--seconds S] [--durability sync|nosync] [--connections N] [--batch N]\n");
      return 2;
    }
  }
  spdlog::set_level(spdlog::level::warn);
  TempDir dir(std::filesystem::temp_directory_path(), "switchboard-api-bench");
  auto parsed = sb::router::parse_topology(loopback_topology(dir.path(), config.durability, {"a"}) +
                                               "[limits]\npublish_per_s = 0\nrequests_per_s = 0\n",
                                           "api-bench");
  if (!parsed.ok()) {
    std::fprintf(stderr, "%s\n", parsed.errors.front().to_string().c_str());
    return 1;
  }
  auto options = sb::actors::node_options(parsed.topology, "a");
  sb::actors::ApiOptions api;
  api.address = "127.0.0.1";
  api.port = 0;
  api.keys.admit(kKey, std::nullopt);
  options.api = std::move(api);
  auto node = sb::actors::Node::start(options);
  if (!node) {
    std::fprintf(stderr, "cannot start the node: %s\n", node.error().message.c_str());
    return 1;
  }
  const std::uint16_t port = (*node)->api()->port();
  const std::string endpoint = parsed.topology.nodes.at("a").client;
  const int n = config.connections;
  std::printf("api_bench: one node in this process, durability %s, %.0f s a row, bodies of %zu bytes; load %s\n",
              config.durability.c_str(), config.seconds, kBody.size(), loadavg().c_str());

  // Rooms, one per connection and kind, with user `bench` a member.
  {
    sb::client::ClientOptions o;
    o.endpoint = endpoint;
    sb::client::Client c(o);
    for (int i = 0; i < n; ++i)
      for (const char* kind : {"z", "h", "b", "p"}) {
        const std::string room = std::string(kind) + std::to_string(i);
        if (!c.create_room(room, "bench") || !c.join(room, "bench")) {
          std::fprintf(stderr, "cannot make room %s\n", room.c_str());
          return 1;
        }
      }
  }
  auto zmq_connect = [&](int) {
    sb::client::ClientOptions o;
    o.endpoint = endpoint;
    return std::make_unique<sb::client::Client>(o);
  };
  auto zmq_once = [&](sb::client::Client& c, int i, std::uint64_t n) {
    return static_cast<bool>(
        c.publish("z" + std::to_string(i), "bench", kBody, "z" + std::to_string(i) + "-" + std::to_string(n)));
  };
  auto http_connect = [&](int) { return std::make_unique<HttpClient>(port); };
  auto http_once = [&](HttpClient& c, int i, std::uint64_t n) {
    std::string out;
    return c.post("publish", publish_json("h" + std::to_string(i), n, i), out) == 200;
  };
  for (int conns : {1, n}) {
    const std::string what = "one publish at a time, " + std::to_string(conns) + " connection" + (conns > 1 ? "s" : "");
    const Row z = run(conns, config.seconds, 1, zmq_connect, zmq_once);
    print("ZeroMQ client: " + what, z, nullptr);
    const Row h = run(conns, config.seconds, 1, http_connect, http_once);
    print("HTTP API:      " + what, h, &z);
  }
  const int b = config.batch;
  auto http_batch = [&](HttpClient& c, int i, std::uint64_t first) {
    std::string out;
    return c.post("publish_batch", batch_json("b" + std::to_string(i), first, b, i), out) == 200;
  };
  // The client's own batching: `b` publishes given to publish_async, then waited for.
  auto zmq_batch = [&](sb::client::Client& c, int i, std::uint64_t first) {
    std::atomic<int> failed{0};
    for (int k = 0; k < b; ++k)
      c.publish_async("p" + std::to_string(i), "bench", kBody, [&](const auto& ack) { if (!ack) ++failed; },
                      "p" + std::to_string(i) + "-" + std::to_string(first + static_cast<std::uint64_t>(k)));
    c.wait_all();
    return failed == 0;
  };
  const std::string what = "batches of " + std::to_string(b) + ", " + std::to_string(n) + " connections";
  const Row z = run(n, config.seconds, b, zmq_connect, zmq_batch);
  print("ZeroMQ client: " + what, z, nullptr);
  const Row h = run(n, config.seconds, b, http_connect, http_batch);
  print("HTTP API:      " + what, h, &z);
  (*node)->stop();
  return 0;
}
