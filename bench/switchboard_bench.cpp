// Switchboard against plain ZeroMQ, in one run, on one machine.
//
// Every Switchboard figure is printed beside a raw ZeroMQ baseline measured in the same
// run (DEALER->ROUTER over tcp loopback), with the ratio Switchboard/raw and the issue's
// target for that ratio. Results also go to a JSON file (--json PATH).
//
//   durable publish throughput   Switchboard: N Clients, each on its own thread, pipelining
//                                100-byte publishes (window 1000) into an in-process Node
//                                over tcp loopback, acked only once stored (sync / nosync).
//                                Raw: N DEALERs pipelining 100-byte messages (window 1000)
//                                to a ROUTER thread that acks each one.
//   publish->delivery latency    Switchboard: one Client publishes one message at a time
//                                (publish() waits for the ack), another Client, subscribed
//                                on its own thread, receives it: before publish() to after
//                                next() returns it. Raw: DEALER->ROUTER echo round trip.
//
// For context the latency section also times plain LMDB commits of one 100-byte record
// (sync and nosync), the floor that storage puts under a durable publish.
//
// Usage: switchboard_bench [--quick] [--json PATH] [--dir PATH] [--window N]
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <lmdb.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "switchboard/actors/node.hpp"
#include "switchboard/client/client.hpp"
#include "bench_support.hpp"

namespace {

namespace sb = switchboard;
using sb::persistence::Durability;
using SteadyClock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;
using json = nlohmann::json;
using namespace sb::bench;

// ---- configuration ------------------------------------------------------------------

struct Config {
  bool quick = false;
  std::filesystem::path json_path = "bench-results.json";
  std::filesystem::path data_base = std::filesystem::temp_directory_path();

  std::size_t payload_bytes = 100;
  std::size_t window = 1000;           // messages in flight per connection (pipelining)
  std::vector<int> publishers;         // connections, each on its own thread
  int rtt_warmup = 1000, rtt_samples = 10'000;  // per raw run; each latency baseline pools two
  Seconds throughput_run{3.0};         // timed part of each throughput run
  int throughput_warmup = 500;         // publishes per connection before the clock starts
  int latency_warmup = 200, latency_samples = 5000;
  Seconds latency_max{10.0};           // a latency run stops here even if short of samples

  void make_quick() {
    quick = true;
    publishers = {1, 4};
    rtt_samples = 2500;
    throughput_run = Seconds(1.0);
    throughput_warmup = 200;
    latency_warmup = 100;
    latency_samples = 1000;
    latency_max = Seconds(2.0);
  }
};

// ---- percentiles ----------------------------------------------------------------------


// ---- raw ZeroMQ baseline ----------------------------------------------------------------

/// A ROUTER on its own thread (and its own context, as a Node has) that answers every
/// message: with the message itself (echo) or with an 8-byte ack.
class RawServer {
 public:
  enum class Answer { echo, ack };

  explicit RawServer(Answer answer) : answer_(answer), context_(1), router_(context_, zmq::socket_type::router) {
    router_.set(zmq::sockopt::linger, 0);
    // At the high-water mark a plain ROUTER drops silently; mandatory makes send() block
    // instead, so no ack is lost (a pipe may refuse before `window` messages are queued).
    router_.set(zmq::sockopt::router_mandatory, 1);
    router_.bind("tcp://127.0.0.1:*");
    endpoint_ = router_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { run(); });
  }
  ~RawServer() {
    stop_.store(true);
    thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }

 private:
  void run() {
    zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
    std::uint64_t acks = 0;
    while (!stop_.load(std::memory_order_relaxed)) {
      zmq::poll(&item, 1, std::chrono::milliseconds(20));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      for (int n = 0; n < 4096; ++n) {
        zmq::message_t id, body;
        if (!router_.recv(id, zmq::recv_flags::dontwait)) break;
        (void)router_.recv(body, zmq::recv_flags::none);  // the rest of a message is already here
        router_.send(id, zmq::send_flags::sndmore);
        if (answer_ == Answer::echo) {
          router_.send(body, zmq::send_flags::none);
        } else {
          ++acks;
          router_.send(zmq::buffer(&acks, sizeof acks), zmq::send_flags::none);
        }
      }
    }
  }

  Answer answer_;
  zmq::context_t context_;
  zmq::socket_t router_;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

zmq::socket_t raw_dealer(zmq::context_t& context, const std::string& endpoint) {
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.set(zmq::sockopt::rcvtimeo, 5000);  // a lost answer fails the run instead of hanging it
  dealer.connect(endpoint);
  return dealer;
}

struct RawRoundTrip {
  std::vector<double> us;  // one sample per round trip, in run order
  std::string error;
};

/// Round trips in a few blocks, each with a fresh server thread and sockets: where the
/// scheduler puts the threads (same core or not) moves a block's median by 2x on a small VM.
RawRoundTrip raw_round_trip(const Config& config) {
  constexpr int kBlocks = 4;
  const std::string payload(config.payload_bytes, 'x');
  RawRoundTrip result;
  result.us.reserve(static_cast<std::size_t>(config.rtt_samples));
  for (int block = 0; block < kBlocks && result.error.empty(); ++block) {
    RawServer server(RawServer::Answer::echo);
    zmq::context_t context(1);
    auto dealer = raw_dealer(context, server.endpoint());
    const int warmup = config.rtt_warmup / kBlocks, samples = config.rtt_samples / kBlocks;
    for (int i = 0; i < warmup + samples; ++i) {
      zmq::message_t reply;
      auto t0 = SteadyClock::now();
      dealer.send(zmq::buffer(payload), zmq::send_flags::none);
      if (!dealer.recv(reply, zmq::recv_flags::none)) {
        result.error = "no echo within 5 s";
        break;
      }
      auto t1 = SteadyClock::now();
      if (i >= warmup) result.us.push_back(micros(t1 - t0));
    }
  }
  return result;
}

/// What a throughput run measured, over all its connections.
struct Throughput {
  int connections = 0;
  std::uint64_t acked = 0;
  std::uint64_t errors = 0;
  std::uint64_t duplicates = 0;  // Switchboard: acks of a retry (the first reply was lost)
  double seconds = 0;
  double per_second() const { return seconds > 0 ? static_cast<double>(acked) / seconds : 0; }
  std::string error;
};

/// Runs `setup(i)`, then `work(i, deadline)`, on `n` threads started together; each returns when
/// its connection is drained. The run lasts from the common start to the last return.
template <class Setup, class Work>
double run_threads(int n, Seconds duration, Setup setup, Work work) {
  std::barrier start_line(n + 1);
  std::vector<SteadyClock::time_point> ends(static_cast<std::size_t>(n));
  std::vector<std::thread> threads;
  SteadyClock::time_point start{};
  std::atomic<bool> started{false};
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      setup(i);  // connect and warm up before the clock starts
      start_line.arrive_and_wait();
      while (!started.load(std::memory_order_acquire)) std::this_thread::yield();
      work(i, start + std::chrono::duration_cast<SteadyClock::duration>(duration));
      ends[static_cast<std::size_t>(i)] = SteadyClock::now();
    });
  start_line.arrive_and_wait();
  start = SteadyClock::now();
  started.store(true, std::memory_order_release);
  for (auto& t : threads) t.join();
  return Seconds(*std::max_element(ends.begin(), ends.end()) - start).count();
}

Throughput raw_throughput(const Config& config, int connections) {
  RawServer server(RawServer::Answer::ack);
  const std::string payload(config.payload_bytes, 'x');
  struct Conn {
    zmq::context_t context{1};  // one context (one I/O thread) per connection, as a Client has
    std::optional<zmq::socket_t> dealer;
    std::uint64_t acked = 0;
    std::string error;
  };
  std::vector<Conn> conns(static_cast<std::size_t>(connections));
  Throughput t;
  t.connections = connections;
  t.seconds = run_threads(
      connections, config.throughput_run,
      [&](int i) {
        Conn& c = conns[static_cast<std::size_t>(i)];
        c.dealer = raw_dealer(c.context, server.endpoint());
        zmq::message_t m;
        for (int k = 0; k < config.throughput_warmup; ++k) {
          c.dealer->send(zmq::buffer(payload), zmq::send_flags::none);
          (void)c.dealer->recv(m, zmq::recv_flags::none);
        }
      },
      [&](int i, SteadyClock::time_point deadline) {
        Conn& c = conns[static_cast<std::size_t>(i)];
        std::size_t in_flight = 0;
        zmq::message_t m;
        for (;;) {
          const bool sending = SteadyClock::now() < deadline;
          if (!sending && in_flight == 0) break;
          while (sending && in_flight < config.window) {
            c.dealer->send(zmq::buffer(payload), zmq::send_flags::none);
            ++in_flight;
          }
          if (!c.dealer->recv(m, zmq::recv_flags::none)) {
            c.error = "no ack within 5 s";
            break;
          }
          --in_flight, ++c.acked;
          while (in_flight > 0 && c.dealer->recv(m, zmq::recv_flags::dontwait)) --in_flight, ++c.acked;
        }
      });
  for (auto& c : conns) {
    t.acked += c.acked;
    if (!c.error.empty()) t.error = c.error;
  }
  return t;
}

// ---- raw LMDB baseline --------------------------------------------------------------------

struct RawCommit {
  LatencySummary latency;
  std::string error;
};

/// One write transaction per record (one 100-byte put, then commit), as a durable
/// publish at idle load needs: the storage floor under publish->delivery latency.
RawCommit raw_lmdb_commit(const Config& config, Durability durability, int samples, Seconds max) {
  TempDir dir(config.data_base, "switchboard-bench");
  RawCommit result;
  MDB_env* env = nullptr;
  auto fail = [&](const char* what, int rc) {
    result.error = std::string(what) + ": " + mdb_strerror(rc);
    if (env) mdb_env_close(env);
    return result;
  };
  if (int rc = mdb_env_create(&env); rc) return fail("mdb_env_create", rc);
  if (int rc = mdb_env_set_mapsize(env, 256u << 20); rc) return fail("mdb_env_set_mapsize", rc);
  unsigned flags = MDB_NOTLS | (durability == Durability::nosync ? MDB_NOSYNC : 0u);
  if (int rc = mdb_env_open(env, dir.path().c_str(), flags, 0644); rc) return fail("mdb_env_open", rc);
  MDB_dbi dbi = 0;
  {
    MDB_txn* txn = nullptr;
    if (int rc = mdb_txn_begin(env, nullptr, 0, &txn); rc) return fail("mdb_txn_begin", rc);
    if (int rc = mdb_dbi_open(txn, nullptr, 0, &dbi); rc) {
      mdb_txn_abort(txn);
      return fail("mdb_dbi_open", rc);
    }
    if (int rc = mdb_txn_commit(txn); rc) return fail("mdb_txn_commit", rc);
  }
  std::string value(config.payload_bytes, 'x');
  std::vector<double> us;
  const int warmup = 20;
  const auto begin = SteadyClock::now();
  for (int i = 0; i < warmup + samples; ++i) {
    if (i >= warmup && SteadyClock::now() - begin > max) break;
    std::uint64_t key = __builtin_bswap64(static_cast<std::uint64_t>(i));  // big-endian: appends in order
    MDB_val k{sizeof key, &key}, v{value.size(), value.data()};
    auto t0 = SteadyClock::now();
    MDB_txn* txn = nullptr;
    if (int rc = mdb_txn_begin(env, nullptr, 0, &txn); rc) return fail("mdb_txn_begin", rc);
    if (int rc = mdb_put(txn, dbi, &k, &v, 0); rc) {
      mdb_txn_abort(txn);
      return fail("mdb_put", rc);
    }
    if (int rc = mdb_txn_commit(txn); rc) return fail("mdb_txn_commit", rc);
    if (i >= warmup) us.push_back(micros(SteadyClock::now() - t0));
  }
  mdb_env_close(env);
  result.latency = summarize(std::move(us));
  return result;
}

// ---- Switchboard ----------------------------------------------------------------------

const char* durability_name(Durability d) { return d == Durability::sync ? "sync" : "nosync"; }

/// A Node on tcp loopback ports of its own, with its data in a fresh directory that is
/// removed afterwards.
class BenchNode {
 public:
  BenchNode(const Config& config, Durability durability) : dir_(config.data_base, "switchboard-bench") {
    sb::actors::NodeOptions options;
    options.name = "bench";
    options.data_dir = dir_.path() / "data";
    options.client_endpoints = {"tcp://127.0.0.1:*"};
    options.pub_endpoints = {"tcp://127.0.0.1:*"};
    options.durability = durability;
    auto node = sb::actors::Node::start(options);
    if (!node) throw std::runtime_error("Node::start: " + node.error().message);
    node_ = std::move(*node);
    for (const auto& e : node_->client_endpoints())
      if (e.rfind("tcp://", 0) == 0) endpoint_ = e;
  }
  ~BenchNode() { node_.reset(); }  // stops the actors and closes the store, then the directory goes
  sb::client::ClientOptions client_options(std::size_t max_in_flight = 1024) const {
    sb::client::ClientOptions o;
    o.endpoint = endpoint_;
    o.max_in_flight = max_in_flight;
    return o;
  }

 private:
  TempDir dir_;
  std::unique_ptr<sb::actors::Node> node_;
  std::string endpoint_;
};

Throughput switchboard_throughput(const Config& config, Durability durability, int publishers) {
  BenchNode node(config, durability);
  const std::string body(config.payload_bytes, 'x');
  struct Publisher {
    std::unique_ptr<sb::client::Client> client;
    std::string room, user;
    std::uint64_t acked = 0, errors = 0, duplicates = 0;
    std::string error;
  };
  std::vector<Publisher> pubs(static_cast<std::size_t>(publishers));
  Throughput t;
  t.connections = publishers;
  t.seconds = run_threads(
      publishers, config.throughput_run,
      [&](int i) {
        Publisher& p = pubs[static_cast<std::size_t>(i)];
        p.client = std::make_unique<sb::client::Client>(node.client_options(config.window));
        // A room per publisher: chat rooms are independent, as in a chat with many rooms.
        p.room = "bench-" + std::to_string(i);
        p.user = "user-" + std::to_string(i);
        if (auto r = p.client->create_room(p.room, p.user); !r) p.error = "create_room: " + r.error().message;
        for (int k = 0; k < config.throughput_warmup && p.error.empty(); ++k)
          p.client->publish_async(p.room, p.user, body, [](const auto&) {});
        p.client->wait_all();
      },
      [&](int i, SteadyClock::time_point deadline) {
        Publisher& p = pubs[static_cast<std::size_t>(i)];
        if (!p.error.empty()) return;
        auto done = [&p](const sb::Result<sb::transport::PublishOk>& r) {
          if (r) {
            ++p.acked;
            if (r->duplicate) ++p.duplicates;
          } else {
            ++p.errors;
            p.error = r.error().message;
          }
        };
        while (SteadyClock::now() < deadline) p.client->publish_async(p.room, p.user, body, done);
        if (!p.client->wait_all(std::chrono::seconds(60))) p.error = "publishes still unacked 60 s after the run";
      });
  for (auto& p : pubs) {
    t.acked += p.acked;
    t.errors += p.errors;
    t.duplicates += p.duplicates;
    if (!p.error.empty()) t.error = p.error;
  }
  pubs.clear();  // clients close before the node stops
  return t;
}

struct DeliveryLatency {
  LatencySummary latency;
  sb::client::SubscriptionStats stats;
  double seconds = 0;
  std::string error;
};

DeliveryLatency switchboard_delivery(const Config& config, Durability durability) {
  BenchNode node(config, durability);
  const std::string room = "latency", user = "alice";
  const std::string body(config.payload_bytes, 'x');
  DeliveryLatency result;

  sb::client::Client publisher(node.client_options());
  if (auto r = publisher.create_room(room, user); !r) {
    result.error = "create_room: " + r.error().message;
    return result;
  }
  auto subscriber = std::make_unique<sb::client::Client>(node.client_options());
  if (auto r = subscriber->subscribe(room); !r) {
    result.error = "subscribe: " + r.error().message;
    return result;
  }

  // The subscriber thread stamps each message as next() returns it.
  std::mutex mutex;
  std::condition_variable delivered_cv;
  std::uint64_t delivered_seq = 0;
  std::vector<std::pair<std::uint64_t, SteadyClock::time_point>> received;
  std::string sub_error;
  std::atomic<bool> stop{false};
  received.reserve(static_cast<std::size_t>(config.latency_warmup + config.latency_samples) + 16);
  std::thread sub_thread([&] {
    while (!stop.load()) {
      auto m = subscriber->next(std::chrono::milliseconds(100));
      auto now = SteadyClock::now();
      std::lock_guard lock(mutex);
      if (!m) {
        sub_error = "next: " + m.error().message;
        delivered_cv.notify_all();
        return;
      }
      if (!*m) continue;
      received.emplace_back((*m)->seq, now);
      delivered_seq = std::max(delivered_seq, (*m)->seq);
      delivered_cv.notify_all();
    }
  });

  // One message at a time: publish, wait for the ack, wait for the delivery, repeat.
  std::vector<std::pair<std::uint64_t, SteadyClock::time_point>> sent;
  sent.reserve(received.capacity());
  const auto begin = SteadyClock::now();
  for (int i = 0; i < config.latency_warmup + config.latency_samples; ++i) {
    if (i >= config.latency_warmup && SteadyClock::now() - begin > config.latency_max) break;
    auto t0 = SteadyClock::now();
    auto ack = publisher.publish(room, user, body);
    if (!ack) {
      result.error = "publish: " + ack.error().message;
      break;
    }
    std::unique_lock lock(mutex);
    if (!delivered_cv.wait_for(lock, std::chrono::seconds(10),
                               [&] { return delivered_seq >= ack->seq || !sub_error.empty(); })) {
      result.error = "seq " + std::to_string(ack->seq) + " not delivered within 10 s";
      break;
    }
    if (!sub_error.empty()) {
      result.error = sub_error;
      break;
    }
    if (i >= config.latency_warmup) sent.emplace_back(ack->seq, t0);
  }
  result.seconds = Seconds(SteadyClock::now() - begin).count();
  stop.store(true);
  sub_thread.join();
  result.stats = subscriber->subscription_stats();

  std::sort(received.begin(), received.end());
  std::vector<double> us;
  for (const auto& [seq, t0] : sent) {
    auto it = std::lower_bound(received.begin(), received.end(), std::make_pair(seq, SteadyClock::time_point::min()));
    if (it != received.end() && it->first == seq) us.push_back(micros(it->second - t0));
  }
  result.latency = summarize(std::move(us));
  return result;
}

// ---- report ---------------------------------------------------------------------------

struct Row {
  std::string workload;
  std::string unit;
  double switchboard = 0;
  double raw = 0;
  enum class Target { none, at_least, at_most } target = Target::none;
  double target_ratio = 0;
  json details = json::object();
  std::string raw_label = "zmq";  // which baseline: "zmq" or "lmdb"

  double ratio() const { return raw > 0 ? switchboard / raw : std::nan(""); }
  std::string target_text() const {
    if (target == Target::none) return "-";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s %.2fx", target == Target::at_least ? ">=" : "<=", target_ratio);
    return buf;
  }
  std::string status() const {
    if (target == Target::none) return "-";
    double r = ratio();
    if (std::isnan(r) || switchboard <= 0) return "FAILED";
    bool met = target == Target::at_least ? r >= target_ratio : r <= target_ratio;
    return met ? "met" : "short";
  }
};




void print_table(const std::vector<Row>& rows) {
  std::printf("\n%-44s %-6s %12s %12s %8s %9s %6s\n", "workload", "unit", "switchboard", "raw", "ratio", "target",
              "status");
  std::printf("%s\n", std::string(44 + 6 + 12 + 12 + 8 + 9 + 6 + 6, '-').c_str());
  for (const auto& r : rows) {
    char ratio[16];
    if (std::isnan(r.ratio())) std::snprintf(ratio, sizeof ratio, "n/a");
    else std::snprintf(ratio, sizeof ratio, "%.3fx", r.ratio());
    std::printf("%-44s %-6s %12s %12s %8s %9s %6s\n", r.workload.c_str(), r.unit.c_str(),
                format_value(r.switchboard, r.unit).c_str(),
                (format_value(r.raw, r.unit) + (r.raw_label == "lmdb" ? "*" : "")).c_str(), ratio,
                r.target_text().c_str(), r.status().c_str());
  }
}


json to_json(const Throughput& t) {
  json j{{"connections", t.connections}, {"acked", t.acked},     {"errors", t.errors},
         {"duplicates", t.duplicates},   {"seconds", t.seconds}, {"msgs_per_s", t.per_second()}};
  if (!t.error.empty()) j["error"] = t.error;
  return j;
}

void usage(const char* argv0) {
  std::printf(
      "usage: %s [--quick] [--json PATH] [--dir PATH] [--window N]\n"
      "  --quick      a ~15 s run (fewer samples, 1 and 4 publishers only)\n"
      "  --json PATH  where to write the results (default: bench-results.json)\n"
      "  --dir PATH   where to make the temporary data directories (default: %s)\n"
      "  --window N   messages in flight per connection in the throughput runs (default: 1000)\n",
      argv0, std::filesystem::temp_directory_path().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  config.publishers = {1, 4, 16};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      config.make_quick();
    } else if (a == "--json" && i + 1 < argc) {
      config.json_path = argv[++i];
    } else if (a == "--dir" && i + 1 < argc) {
      config.data_base = argv[++i];
    } else if (a == "--window" && i + 1 < argc) {
      config.window = std::max(1ul, std::stoul(argv[++i]));
    } else if (a == "--help" || a == "-h") {
      usage(argv[0]);
      return 0;
    } else {
      usage(argv[0]);
      return 2;
    }
  }
  spdlog::set_level(spdlog::level::warn);  // node start/stop lines would interleave with the table

  const auto suite_start = SteadyClock::now();
  const std::string load_before = loadavg();
  const std::string fs = filesystem_of(config.data_base);
  std::printf("switchboard_bench%s: %u cores, load %s, data under %s (%s)\n", config.quick ? " --quick" : "",
              std::thread::hardware_concurrency(), load_before.c_str(), config.data_base.c_str(), fs.c_str());
  std::fflush(stdout);

  std::vector<Row> rows;
  std::vector<std::string> notes;
  bool failed = false;
  auto progress = [](const std::string& what) {
    std::printf("  running %s ...\n", what.c_str());
    std::fflush(stdout);
  };
  auto note_error = [&](const std::string& what, const std::string& error) {
    if (error.empty()) return;
    failed = true;
    std::printf("  ERROR in %s: %s\n", what.c_str(), error.c_str());
  };
  auto num = [](double v) { return std::isnan(v) ? json(nullptr) : json(v); };

  try {
    // Each Switchboard figure is compared with raw runs taken just before and just after
    // it (pooled), so that load from elsewhere on the machine weighs on both sides alike.
    auto bracket_note = [&](const std::string& what, double before, double after) {
      if (before <= 0 || after <= 0) return;
      double drift = std::abs(after - before) / std::min(before, after);
      if (drift < 0.2) return;
      char buf[200];
      std::snprintf(buf, sizeof buf, "%s: the raw baseline moved %.0f%% between its runs before and after (%.1f, %.1f)",
                    what.c_str(), drift * 100, before, after);
      notes.emplace_back(buf);
    };

    // Durable publish throughput, against raw DEALER->ROUTER with as many connections.
    for (int n : config.publishers) {
      const std::string conns = std::to_string(n) + (n == 1 ? " conn" : " conns");
      progress("raw DEALER->ROUTER throughput, " + conns);
      Throughput raw_before = raw_throughput(config, n);
      note_error("raw throughput", raw_before.error);
      std::vector<std::pair<Durability, Throughput>> runs;
      for (Durability d : {Durability::sync, Durability::nosync}) {
        std::string name = std::string("durable publish ") + durability_name(d) + ", " + std::to_string(n) +
                           (n == 1 ? " publisher" : " publishers");
        progress(name);
        runs.emplace_back(d, switchboard_throughput(config, d, n));
        note_error(name, runs.back().second.error);
      }
      progress("raw DEALER->ROUTER throughput, " + conns + " (again)");
      Throughput raw_after = raw_throughput(config, n);
      note_error("raw throughput", raw_after.error);
      Throughput raw = raw_before;  // pooled: all acks over all seconds
      raw.acked += raw_after.acked;
      raw.seconds += raw_after.seconds;
      bracket_note("throughput, " + conns + " (msg/s)", raw_before.per_second(), raw_after.per_second());

      for (auto& [d, s] : runs) {
        std::string name = std::string("durable publish ") + durability_name(d) + ", " + std::to_string(n) +
                           (n == 1 ? " publisher" : " publishers");
        if (s.duplicates > 0) {
          char buf[300];
          std::snprintf(buf, sizeof buf,
                        "%s: %llu acks answered a retry (the first reply never reached the client, which "
                        "resent after its 1000 ms attempt timeout); the run took %.2f s for %.2f s of publishing",
                        name.c_str(), static_cast<unsigned long long>(s.duplicates), s.seconds,
                        config.throughput_run.count());
          notes.emplace_back(buf);
        }
        Row row{name, "msg/s", s.per_second(), raw.per_second(), Row::Target::at_least, 0.25};
        row.details = {{"kind", "throughput"},
                       {"durability", durability_name(d)},
                       {"switchboard", to_json(s)},
                       {"raw", to_json(raw)},
                       {"raw_before", to_json(raw_before)},
                       {"raw_after", to_json(raw_after)},
                       {"payload_bytes", config.payload_bytes},
                       {"window", config.window}};
        rows.push_back(std::move(row));
      }
    }

    // Publish->delivery latency at idle load, against raw DEALER->ROUTER echo round trips
    // taken before and after it, and (for context) against a plain LMDB commit of one record.
    progress("raw DEALER->ROUTER round trip");
    RawRoundTrip rtt_before = raw_round_trip(config);
    note_error("raw round trip", rtt_before.error);
    for (Durability d : {Durability::sync, Durability::nosync}) {
      std::string name = std::string("publish->delivery ") + durability_name(d);
      progress(std::string("raw LMDB commit ") + durability_name(d));
      RawCommit commit = raw_lmdb_commit(config, d, config.latency_samples, config.latency_max / 2);
      note_error("raw LMDB commit", commit.error);
      progress(name + " latency");
      DeliveryLatency s = switchboard_delivery(config, d);
      note_error(name, s.error);
      progress("raw DEALER->ROUTER round trip (again)");
      RawRoundTrip rtt_after = raw_round_trip(config);
      note_error("raw round trip", rtt_after.error);
      std::vector<double> pooled = rtt_before.us;
      pooled.insert(pooled.end(), rtt_after.us.begin(), rtt_after.us.end());
      LatencySummary rtt = summarize(std::move(pooled));
      bracket_note(name + " (round trip p50, us)", summarize(rtt_before.us).p50_us, summarize(rtt_after.us).p50_us);
      rtt_before = std::move(rtt_after);  // the next run's "before"

      if (s.stats.repaired > 0)
        notes.push_back(name + ": " + std::to_string(s.stats.repaired) + " messages delivered by gap repair");
      json details = {{"kind", "latency"},
                      {"durability", durability_name(d)},
                      {"switchboard", to_json(s.latency)},
                      {"raw", to_json(rtt)},
                      {"raw_lmdb_commit", to_json(commit.latency)},
                      {"seconds", s.seconds},
                      {"delivered_live", s.stats.live},
                      {"delivered_by_repair", s.stats.repaired},
                      {"payload_bytes", config.payload_bytes}};
      rows.push_back({name + " p50", "us", s.latency.p50_us, rtt.p50_us, Row::Target::at_most, 3.0, details});
      rows.push_back({name + " p99", "us", s.latency.p99_us, rtt.p99_us, Row::Target::none, 0, details});
      Row floor{name + " p50 vs LMDB commit", "us", s.latency.p50_us, commit.latency.p50_us, Row::Target::none, 0,
                details};
      floor.raw_label = "lmdb";
      rows.push_back(std::move(floor));
    }
  } catch (const std::exception& e) {
    std::printf("  ERROR: %s\n", e.what());
    failed = true;
  }

  const double suite_seconds = Seconds(SteadyClock::now() - suite_start).count();
  const std::string load_after = loadavg();
  print_table(rows);
  std::printf(
      "\nraw zmq: DEALER->ROUTER over tcp loopback, %zu-byte payloads, measured just before and just after each\n"
      "  Switchboard figure and pooled; throughput: as many DEALERs (own thread, own context) as publishers,\n"
      "  window %zu in flight each, ROUTER acks each message; latency: echo round trip, 2 x %d samples\n"
      "  (each in 4 blocks with fresh threads).\n"
      "raw lmdb (rows marked *): one write transaction per %zu-byte record, same durability, same filesystem.\n"
      "switchboard: in-process Node, tcp loopback, one Client per publisher thread (window %zu), one room each;\n"
      "  latency: publish() (waits for the ack) one message at a time, stamped when the subscriber's next()\n"
      "  returns it.\n"
      "durability: sync = acked only after the group commit is fsynced (survives power loss);\n"
      "  nosync = acked after the LMDB commit without fsync (survives a process crash, not a power loss).\n"
      "percentiles: %s.\n"
      "suite: %.1f s; load average before %s, after %s.\n",
      config.payload_bytes, config.window, config.rtt_samples, config.payload_bytes, config.window, kPercentileMethod,
      suite_seconds, load_before.c_str(), load_after.c_str());
  for (const auto& n : notes) std::printf("note: %s\n", n.c_str());

  json out;
  out["suite"] = {{"quick", config.quick},
                  {"seconds", suite_seconds},
                  {"cores", std::thread::hardware_concurrency()},
                  {"load_before", load_before},
                  {"load_after", load_after},
                  {"data_dir_base", config.data_base.string()},
                  {"data_filesystem", fs},
                  {"window", config.window},
                  {"percentile_method", kPercentileMethod},
                  {"durability",
                   {{"sync", "ack after the group commit is fsynced: survives power loss"},
                    {"nosync", "ack after the commit without fsync: survives a process crash, not a power loss"}}},
                  {"notes", notes}};
  out["results"] = json::array();
  for (const auto& r : rows) {
    out["results"].push_back({{"workload", r.workload},
                              {"unit", r.unit},
                              {"switchboard", num(r.switchboard)},
                              {"baseline", r.raw_label == "lmdb" ? "raw LMDB commit" : "raw ZeroMQ DEALER->ROUTER"},
                              {"raw", num(r.raw)},
                              {"ratio", num(r.ratio())},
                              {"target", r.target_text()},
                              {"status", r.status()},
                              {"details", r.details}});
  }
  std::ofstream file(config.json_path);
  file << out.dump(2) << "\n";
  if (!file) {
    std::printf("cannot write %s\n", config.json_path.c_str());
    return 1;
  }
  std::printf("results written to %s\n", config.json_path.c_str());
  return failed ? 1 : 0;
}
