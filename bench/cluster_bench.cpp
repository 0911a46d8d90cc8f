// The cost of one hop: a publish sent to the node that owns its room, against the same
// publish sent to the other node of a two-node cluster, which forwards it to the owner
// and relays the owner's ack back.
//
// Two nodes, a and b, run in this process (each with its own ZeroMQ context), built
// from a topology with one chat shard each, on free tcp loopback ports and with their
// data in fresh temporary directories. Every room used here is owned by a. "owner" is a
// Client connected to a; "forwarded" is a Client connected to b, so each of its
// requests crosses b's chat actor, b's peer link to a, a's chat actor, and back.
//
//   pipelined publish   one Client, 100-byte publishes with publish_async (window 1000),
//                       then wait_all: acked publishes per second.
//   publish() ack       one Client, publish() one message at a time (waits for the ack):
//                       p50 and p99 of the round trip.
//   publish->delivery   a publisher and a subscriber on the same node, one message at a
//                       time: from before publish() until the subscriber's next() returns
//                       it. On b the publish is forwarded to a, and the message comes back
//                       through b, which relays a's room messages to its own subscribers.
//
// Each measurement is repeated in rounds (owner and forwarded back to back, their order
// alternating), and the table gives the median of the rounds: a 2-core machine is noisy.
//
// Usage: cluster_bench [--quick] [--json PATH] [--dir PATH] [--window N] [--rounds N]
//                      [--durability sync|nosync|both]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
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
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "switchboard/actors/node.hpp"
#include "switchboard/client/client.hpp"
#include "switchboard/router/placement.hpp"
#include "switchboard/router/topology.hpp"
#include "bench_nodes.hpp"
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
  std::optional<std::filesystem::path> json_path;
  std::filesystem::path data_base = std::filesystem::temp_directory_path();
  std::vector<Durability> durabilities = {Durability::nosync, Durability::sync};

  std::size_t payload_bytes = 100;
  std::size_t window = 1000;  // publishes in flight in the pipelined runs
  int rounds = 3;
  Seconds throughput_run{1.5};  // timed part of each pipelined run
  int throughput_warmup = 1000;
  int latency_warmup = 200, latency_samples = 1500;
  Seconds latency_max{1.5};  // a latency run stops here even if short of samples

  void make_quick() {
    quick = true;
    throughput_run = Seconds(0.3);
    throughput_warmup = 300;
    latency_warmup = 30;
    latency_samples = 300;
    latency_max = Seconds(0.25);
  }
};

const char* durability_name(Durability d) { return d == Durability::sync ? "sync" : "nosync"; }

// ---- statistics -----------------------------------------------------------------------

/// The median of the rounds' figures (the mean of the middle two for an even count).
double median(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return std::isnan(x); }), v.end());
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// ---- a two-node cluster in this process -----------------------------------------------

/// Nodes a and b, each owning one chat shard, with the cluster settings an operator
/// gets by default. Clients must be gone before the cluster is.
class Cluster {
 public:
  /// `s1`: more lines for shard s1's [[shards]] entry (its replicas and ack mode).
  Cluster(const Config& config, Durability durability, std::string s1 = {})
      : dir_(config.data_base, "switchboard-cluster-bench"), s1_(std::move(s1)) {
    auto started = sb::bench::start_in_process([&] { return topology_text(durability); }, "cluster-bench");
    topology_ = std::move(started.topology);
    nodes_ = std::move(started.nodes);
  }
  ~Cluster() {
    // The node that forwards first, so that nothing it forwards is left unanswered.
    nodes_.erase("b");
    nodes_.clear();
  }
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  sb::client::ClientOptions client_options(const std::string& node, std::size_t max_in_flight = 1024) const {
    sb::client::ClientOptions o;
    o.endpoint = topology_.nodes.at(node).client;
    o.max_in_flight = max_in_flight;
    return o;
  }

  /// A room whose owner, by the topology's rendezvous placement, is `node`.
  std::string room_owned_by(const std::string& node, const std::string& prefix) const {
    sb::router::RoomPlacement placement(topology_.shards);
    for (int i = 0;; ++i) {
      std::string room = prefix + "-" + std::to_string(i);
      if (placement.owner_of(room).owner == node) return room;
    }
  }

 private:
  std::string topology_text(Durability durability) {
    return two_node_topology(dir_.path(), durability_name(durability), s1_);
  }

  TempDir dir_;
  std::string s1_;
  sb::router::Topology topology_;
  std::map<std::string, std::unique_ptr<sb::actors::Node>> nodes_;
};

/// Creates `room` with `user` as a member through `client`. Right after the nodes
/// start, their links may not be up: `unavailable` is retried until the owner answers.
/// Returns how long that took.
double make_room(sb::client::Client& client, const std::string& room, const std::string& user) {
  const auto begin = SteadyClock::now();
  for (;;) {
    auto created = client.create_room(room, user);
    if (created) break;
    if (created.error().code != sb::errc::unavailable || SteadyClock::now() - begin > std::chrono::seconds(20))
      throw std::runtime_error("create_room " + room + ": " + created.error().message);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return Seconds(SteadyClock::now() - begin).count();
}

// ---- measurements ---------------------------------------------------------------------

/// The two ways to reach a room's owner.
enum class Path { owner, forwarded };
const char* path_name(Path p) { return p == Path::owner ? "owner" : "forwarded"; }
const char* node_of(Path p) { return p == Path::owner ? "a" : "b"; }

/// Pipelined publishes from one Client for `config.throughput_run`, then until the last
/// is acked: the run lasts from the first publish to the last ack.
Throughput pipelined(const Config& config, sb::client::Client& client, const std::string& room,
                     const std::string& user) {
  const std::string body(config.payload_bytes, 'x');
  Throughput t;
  t.connections = 1;
  for (int k = 0; k < config.throughput_warmup; ++k) client.publish_async(room, user, body, [](const auto&) {});
  if (!client.wait_all(std::chrono::seconds(60))) {
    t.error = "warm-up publishes still unacked after 60 s";
    return t;
  }
  auto done = [&t](const sb::Result<sb::transport::PublishOk>& r) {
    if (r) {
      ++t.acked;
      if (r->duplicate) ++t.duplicates;
    } else {
      ++t.errors;
      t.error = r.error().message;
    }
  };
  const auto start = SteadyClock::now();
  const auto deadline = start + std::chrono::duration_cast<SteadyClock::duration>(config.throughput_run);
  while (SteadyClock::now() < deadline) client.publish_async(room, user, body, done);
  if (!client.wait_all(std::chrono::seconds(60))) t.error = "publishes still unacked 60 s after the run";
  t.seconds = Seconds(SteadyClock::now() - start).count();
  return t;
}

struct Latency {
  LatencySummary latency;
  sb::client::SubscriptionStats stats;  // publish->delivery only
  std::string error;
};

/// publish() one message at a time: the time until its ack.
Latency ack_latency(const Config& config, sb::client::Client& client, const std::string& room,
                    const std::string& user) {
  const std::string body(config.payload_bytes, 'x');
  Latency result;
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(config.latency_samples));
  SteadyClock::time_point begin{};  // the end of the warm-up: latency_max counts from there
  for (int i = 0; i < config.latency_warmup + config.latency_samples; ++i) {
    if (i == config.latency_warmup) begin = SteadyClock::now();
    if (i > config.latency_warmup && SteadyClock::now() - begin > config.latency_max) break;
    const auto t0 = SteadyClock::now();
    auto ack = client.publish(room, user, body);
    const auto t1 = SteadyClock::now();
    if (!ack) {
      result.error = "publish: " + ack.error().message;
      break;
    }
    if (i >= config.latency_warmup) us.push_back(micros(t1 - t0));
  }
  result.latency = summarize(std::move(us));
  return result;
}

/// publish() one message at a time, waiting for each to reach a subscriber on the same
/// node: from before publish() until the subscriber's next() returns it.
Latency delivery_latency(const Config& config, const Cluster& cluster, Path path, const std::string& room,
                         const std::string& user) {
  const std::string body(config.payload_bytes, 'x');
  Latency result;
  sb::client::Client publisher(cluster.client_options(node_of(path)));
  auto subscriber = std::make_unique<sb::client::Client>(cluster.client_options(node_of(path)));
  if (auto r = subscriber->subscribe(room); !r) {
    result.error = "subscribe: " + r.error().message;
    return result;
  }

  // The subscriber's thread stamps each message as next() returns it.
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
      const auto now = SteadyClock::now();
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

  std::vector<std::pair<std::uint64_t, SteadyClock::time_point>> sent;
  sent.reserve(received.capacity());
  SteadyClock::time_point begin{};
  for (int i = 0; i < config.latency_warmup + config.latency_samples; ++i) {
    if (i == config.latency_warmup) begin = SteadyClock::now();
    if (i > config.latency_warmup && SteadyClock::now() - begin > config.latency_max) break;
    const auto t0 = SteadyClock::now();
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

/// One line of the table: a figure per round for each path, and their medians.
struct Row {
  Row(std::string workload_, std::string unit_) : workload(std::move(workload_)), unit(std::move(unit_)) {}
  std::string workload;
  std::string unit;
  std::vector<double> owner, forwarded;  // one per round
  json details = json::object();

  double owner_median() const { return median(owner); }
  double forwarded_median() const { return median(forwarded); }
  double ratio() const {
    double o = owner_median();
    return o > 0 ? forwarded_median() / o : std::nan("");
  }
  std::vector<double> round_ratios() const {
    std::vector<double> r;
    for (std::size_t i = 0; i < owner.size() && i < forwarded.size(); ++i)
      r.push_back(owner[i] > 0 ? forwarded[i] / owner[i] : std::nan(""));
    return r;
  }
};


void print_table(const std::vector<Row>& rows, const char* first = "owner", const char* second = "forwarded") {
  const std::string each = std::string("each round (") + second + "/" + first + ")";
  std::printf("\n%-40s %-6s %12s %12s %8s  %s\n", "workload", "unit", first, second, "ratio", each.c_str());
  std::printf("%s\n", std::string(40 + 6 + 12 + 12 + 8 + 30 + 5, '-').c_str());
  for (const auto& r : rows) {
    char ratio[16];
    if (std::isnan(r.ratio())) std::snprintf(ratio, sizeof ratio, "n/a");
    else std::snprintf(ratio, sizeof ratio, "%.3fx", r.ratio());
    std::string rounds;
    for (double x : r.round_ratios()) {
      char buf[16];
      if (std::isnan(x)) std::snprintf(buf, sizeof buf, "n/a ");
      else std::snprintf(buf, sizeof buf, "%.2f ", x);
      rounds += buf;
    }
    std::printf("%-40s %-6s %12s %12s %8s  %s\n", r.workload.c_str(), r.unit.c_str(),
                format_value(r.owner_median(), r.unit).c_str(), format_value(r.forwarded_median(), r.unit).c_str(),
                ratio, rounds.c_str());
  }
}



void usage(const char* argv0) {
  std::printf(
      "usage: %s [--quick] [--json PATH] [--dir PATH] [--window N] [--rounds N] [--durability sync|nosync|both]\n"
      "  --quick        a ~15 s run (shorter runs, fewer samples)\n"
      "  --json PATH    also write the results as JSON to PATH\n"
      "  --dir PATH     where to make the temporary data directories (default: %s)\n"
      "  --window N     publishes in flight in the pipelined runs (default: 1000)\n"
      "  --rounds N     rounds of each measurement; the table gives their median (default: 3)\n"
      "  --durability   which durabilities to measure (default: both, nosync first)\n",
      argv0, std::filesystem::temp_directory_path().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
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
    } else if (a == "--rounds" && i + 1 < argc) {
      config.rounds = std::max(1, std::stoi(argv[++i]));
    } else if (a == "--durability" && i + 1 < argc) {
      std::string d = argv[++i];
      if (d == "sync") config.durabilities = {Durability::sync};
      else if (d == "nosync") config.durabilities = {Durability::nosync};
      else if (d == "both") config.durabilities = {Durability::nosync, Durability::sync};
      else {
        usage(argv[0]);
        return 2;
      }
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
  std::printf("cluster_bench%s: %u cores, load %s, data under %s (%s)\n", config.quick ? " --quick" : "",
              std::thread::hardware_concurrency(), load_before.c_str(), config.data_base.c_str(), fs.c_str());
  std::fflush(stdout);

  std::vector<Row> rows;
  std::vector<std::string> notes;
  bool failed = false;
  auto progress = [](const std::string& what) {
    std::printf("  running %s ...\n", what.c_str());
    std::fflush(stdout);
  };
  auto check = [&](const std::string& what, const std::string& error) {
    if (error.empty()) return true;
    failed = true;
    std::printf("  ERROR in %s: %s\n", what.c_str(), error.c_str());
    return false;
  };

  try {
    for (Durability d : config.durabilities) {
      const std::string dur = durability_name(d);
      progress("two-node cluster, " + dur);
      Cluster cluster(config, d);
      const std::string user = "alice";
      const std::string tput_room = cluster.room_owned_by("a", "pipelined");
      const std::string ack_room = cluster.room_owned_by("a", "ack");
      const std::string delivery_room = cluster.room_owned_by("a", "delivery");

      // Every room is created through b: that waits for b's link to a.
      sb::client::Client owner(cluster.client_options("a", config.window));
      sb::client::Client forwarded(cluster.client_options("b", config.window));
      const double link_up = make_room(forwarded, tput_room, user);
      make_room(forwarded, ack_room, user);
      make_room(forwarded, delivery_room, user);
      char buf[160];
      std::snprintf(buf, sizeof buf, "%s: b's first request reached a %.0f ms after both nodes had started", dur.c_str(),
                    link_up * 1000);
      notes.emplace_back(buf);

      Row tput{"pipelined publish " + dur + ", window " + std::to_string(config.window), "msg/s"};
      Row ack50{"publish() ack " + dur + " p50", "us"}, ack99{"publish() ack " + dur + " p99", "us"};
      Row del50{"publish->delivery " + dur + " p50", "us"}, del99{"publish->delivery " + dur + " p99", "us"};
      json tput_rounds = json::array(), ack_rounds = json::array(), del_rounds = json::array();

      for (int round = 0; round < config.rounds; ++round) {
        // Owner first in even rounds, forwarded first in odd ones: drift weighs on both.
        const std::vector<Path> order =
            round % 2 == 0 ? std::vector<Path>{Path::owner, Path::forwarded} : std::vector<Path>{Path::forwarded, Path::owner};
        const std::string r = "round " + std::to_string(round + 1) + "/" + std::to_string(config.rounds);
        progress("pipelined publish " + dur + ", " + r);
        json jt;
        for (Path p : order) {
          Throughput t = pipelined(config, p == Path::owner ? owner : forwarded, tput_room, user);
          check(std::string("pipelined publish via ") + path_name(p), t.error);
          (p == Path::owner ? tput.owner : tput.forwarded).push_back(t.per_second());
          jt[path_name(p)] = to_json(t);
          if (t.duplicates > 0) {
            std::snprintf(buf, sizeof buf, "%s, %s, %s: %llu acks answered a retry (a reply was lost or late)",
                          tput.workload.c_str(), path_name(p), r.c_str(), static_cast<unsigned long long>(t.duplicates));
            notes.emplace_back(buf);
          }
        }
        tput_rounds.push_back(jt);

        progress("publish() ack latency " + dur + ", " + r);
        json ja;
        for (Path p : order) {
          Latency l = ack_latency(config, p == Path::owner ? owner : forwarded, ack_room, user);
          check(std::string("publish() via ") + path_name(p), l.error);
          (p == Path::owner ? ack50.owner : ack50.forwarded).push_back(l.latency.p50_us);
          (p == Path::owner ? ack99.owner : ack99.forwarded).push_back(l.latency.p99_us);
          ja[path_name(p)] = to_json(l.latency);
        }
        ack_rounds.push_back(ja);

        progress("publish->delivery latency " + dur + ", " + r);
        json jd;
        for (Path p : order) {
          Latency l = delivery_latency(config, cluster, p, delivery_room, user);
          check(std::string("publish->delivery on ") + path_name(p) + "'s node", l.error);
          (p == Path::owner ? del50.owner : del50.forwarded).push_back(l.latency.p50_us);
          (p == Path::owner ? del99.owner : del99.forwarded).push_back(l.latency.p99_us);
          jd[path_name(p)] = to_json(l.latency);
          jd[path_name(p)]["delivered_live"] = l.stats.live;
          jd[path_name(p)]["delivered_by_repair"] = l.stats.repaired;
          if (l.stats.repaired > 0) {
            std::snprintf(buf, sizeof buf, "publish->delivery %s, %s, %s: %llu messages delivered by gap repair",
                          dur.c_str(), path_name(p), r.c_str(), static_cast<unsigned long long>(l.stats.repaired));
            notes.emplace_back(buf);
          }
        }
        del_rounds.push_back(jd);
      }

      const json common{{"durability", dur}, {"payload_bytes", config.payload_bytes}};
      tput.details = common;
      tput.details["kind"] = "throughput";
      tput.details["window"] = config.window;
      tput.details["rounds"] = tput_rounds;
      ack50.details = common;
      ack50.details["kind"] = "publish ack latency";
      ack50.details["rounds"] = ack_rounds;
      ack99.details = ack50.details;
      del50.details = common;
      del50.details["kind"] = "publish->delivery latency";
      del50.details["rounds"] = del_rounds;
      del99.details = del50.details;
      for (Row* row : {&tput, &ack50, &ack99, &del50, &del99}) rows.push_back(std::move(*row));
    }
  } catch (const std::exception& e) {
    std::printf("  ERROR: %s\n", e.what());
    failed = true;
  }

  // Replicated shards (docs/REPLICATION.md): shard s1 (owner a) with b as its replica,
  // acknowledged by a alone (ack = local) or once b has the batch durably too (ack =
  // replicated). The same publishes through a Client connected to a.
  std::vector<Row> replication;
  try {
    for (Durability d : config.durabilities) {
      const std::string dur = durability_name(d);
      progress("replicated shard, ack = local and ack = replicated, " + dur);
      Cluster local(config, d, "replicas = [\"b\"]\nack = \"local\"\n");
      Cluster replicated(config, d, "replicas = [\"b\"]\nack = \"replicated\"\n");
      const std::string user = "alice";
      sb::client::Client on_local(local.client_options("a", config.window));
      sb::client::Client on_replicated(replicated.client_options("a", config.window));
      const std::string tput_room = local.room_owned_by("a", "pipelined"), ack_room = local.room_owned_by("a", "ack");
      for (auto* c : {&on_local, &on_replicated}) {
        make_room(*c, tput_room, user);
        make_room(*c, ack_room, user);
      }
      Row tput{"pipelined publish " + dur + ", window " + std::to_string(config.window), "msg/s"};
      Row ack50{"publish() ack " + dur + " p50", "us"}, ack99{"publish() ack " + dur + " p99", "us"};
      for (int round = 0; round < config.rounds; ++round) {
        const bool local_first = round % 2 == 0;  // order alternating: drift weighs on both
        for (int k = 0; k < 2; ++k) {
          const bool is_local = (k == 0) == local_first;
          sb::client::Client& c = is_local ? on_local : on_replicated;
          const char* what = is_local ? "ack = local" : "ack = replicated";
          Throughput t = pipelined(config, c, tput_room, user);
          check(std::string("pipelined publish, ") + what, t.error);
          (is_local ? tput.owner : tput.forwarded).push_back(t.per_second());
          Latency l = ack_latency(config, c, ack_room, user);
          check(std::string("publish(), ") + what, l.error);
          (is_local ? ack50.owner : ack50.forwarded).push_back(l.latency.p50_us);
          (is_local ? ack99.owner : ack99.forwarded).push_back(l.latency.p99_us);
        }
      }
      for (Row* row : {&tput, &ack50, &ack99}) {
        row->details = {{"durability", dur}, {"kind", "replicated vs local"}};
        replication.push_back(std::move(*row));
      }
    }
  } catch (const std::exception& e) {
    std::printf("  ERROR: %s\n", e.what());
    failed = true;
  }

  const double suite_seconds = Seconds(SteadyClock::now() - suite_start).count();
  const std::string load_after = loadavg();
  print_table(rows);
  std::printf(
      "\ncluster: nodes a and b in this process, one chat shard each, tcp loopback, default [cluster] settings;\n"
      "  every room is owned by a. owner = the Client is connected to a; forwarded = it is connected to b,\n"
      "  which forwards each request to a's peer endpoint and relays a's reply back (one hop).\n"
      "pipelined publish: one Client, %zu-byte publishes, window %zu in flight (publish_async, then wait_all),\n"
      "  %.1f s of publishing per run.\n"
      "publish() ack: one message at a time, each waiting for its ack; up to %d samples per run.\n"
      "publish->delivery: publisher and subscriber on the same node (a, or b), one message at a time, from\n"
      "  before publish() until the subscriber's next() returns it; on b the message comes back through b.\n"
      "rounds: %d, owner and forwarded back to back in each (order alternating); figures are the median of the\n"
      "  rounds, ratio = forwarded median / owner median, and the last column is each round's own ratio.\n"
      "durability: sync = acked only after the group commit is fsynced; nosync = acked after the commit.\n"
      "percentiles: %s.\n"
      "suite: %.1f s; load average before %s, after %s.\n",
      config.payload_bytes, config.window, config.throughput_run.count(), config.latency_samples, config.rounds,
      kPercentileMethod, suite_seconds, load_before.c_str(), load_after.c_str());
  for (const auto& n : notes) std::printf("note: %s\n", n.c_str());
  print_table(replication, "local", "replicated");
  std::printf(
      "\nreplication: shard s1 (owner a) with node b as its replica, in this process on tcp loopback; the same\n"
      "  workloads through a Client connected to a. local = ack = \"local\" (a acknowledges once the batch is\n"
      "  durable on a; b catches up); replicated = ack = \"replicated\" (a acknowledges once b has it durably\n"
      "  too: a's commit, then b's). ratio = replicated median / local median.\n");

  if (config.json_path) {
    json out;
    out["suite"] = {{"quick", config.quick},
                    {"seconds", suite_seconds},
                    {"cores", std::thread::hardware_concurrency()},
                    {"load_before", load_before},
                    {"load_after", load_after},
                    {"data_dir_base", config.data_base.string()},
                    {"data_filesystem", fs},
                    {"window", config.window},
                    {"rounds", config.rounds},
                    {"percentile_method", kPercentileMethod},
                    {"notes", notes}};
    out["results"] = json::array();
    for (auto& r : replication) {  // the same shape: "owner" is ack = local, "forwarded" ack = replicated
      r.workload = "replicated shard: " + r.workload;
      rows.push_back(std::move(r));
    }
    for (const auto& r : rows) {
      out["results"].push_back({{"workload", r.workload},
                                {"unit", r.unit},
                                {"owner", num(r.owner_median())},
                                {"forwarded", num(r.forwarded_median())},
                                {"ratio", num(r.ratio())},
                                {"owner_rounds", r.owner},
                                {"forwarded_rounds", r.forwarded},
                                {"details", r.details}});
    }
    std::ofstream file(*config.json_path);
    file << out.dump(2) << "\n";
    if (!file) {
      std::printf("cannot write %s\n", config.json_path->c_str());
      return 1;
    }
    std::printf("results written to %s\n", config.json_path->c_str());
  }
  return failed ? 1 : 0;
}
